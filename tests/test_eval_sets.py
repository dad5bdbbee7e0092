"""Kodak / CLIC download: resumable, verified, clear offline errors; tested against a local HTTP server."""

from __future__ import annotations

import hashlib
import io
import re
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hific_lit.cli import main as hific
from hific_lit.data import eval_sets
from hific_lit.data.eval_sets import EvalSet, RemoteFile, download_eval_set, eval_set_images, load_registry
from hific_lit.errors import DatasetError


def png_bytes(seed: int, size: tuple[int, int] = (24, 32)) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


class FileServer:
    """A local HTTP server for ``files`` that honours ``Range`` (unless told not to) and logs requests."""

    def __init__(self, files: dict[str, bytes], honour_range: bool = True) -> None:
        self.files, self.honour_range, self.ranges = files, honour_range, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = server.files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                start = int(match.group(1)) if match and server.honour_range else 0
                server.ranges.append(self.headers.get("Range"))
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                self.wfile.write(data[start:])

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FileServer]:
    files = {f"img{i}.png": png_bytes(i) for i in range(3)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(4):
            zf.writestr(f"test/z{i}.png", png_bytes(10 + i))
        zf.writestr("__MACOSX/test/._z0.png", b"resource fork")
    files["set.zip"] = buf.getvalue()
    srv = FileServer(files)
    yield srv
    srv.close()


def register(monkeypatch: pytest.MonkeyPatch, name: str, images: int, files: list[RemoteFile]) -> None:
    monkeypatch.setitem(eval_sets.REGISTRY, name, EvalSet(f"test set {name}", images, tuple(files)))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_verifies_published_checksums(server: FileServer, tmp_path: Path, monkeypatch) -> None:
    files = [RemoteFile(n, f"{server.url}/{n}", {"sha256": sha256(server.files[n])}) for n in ("img0.png", "img1.png")]
    register(monkeypatch, "toy", 2, files)
    folder = download_eval_set("toy", tmp_path, progress=False)
    assert folder == tmp_path / "toy"
    assert [p.read_bytes() for p in eval_set_images("toy", tmp_path)] == [
        server.files["img0.png"],
        server.files["img1.png"],
    ]
    server.ranges.clear()
    download_eval_set("toy", tmp_path, progress=False)  # present and verified: nothing downloaded again
    assert server.ranges == []


def test_interrupted_download_resumes_with_a_range_request(server: FileServer, tmp_path: Path, monkeypatch) -> None:
    data = server.files["img2.png"]
    register(monkeypatch, "toy", 1, [RemoteFile("img2.png", f"{server.url}/img2.png", {"sha256": sha256(data)})])
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "img2.png.part").write_bytes(data[:100])
    download_eval_set("toy", tmp_path, progress=False)
    assert server.ranges == ["bytes=100-"]
    assert (tmp_path / "toy" / "img2.png").read_bytes() == data
    assert not (tmp_path / "toy" / "img2.png.part").exists()


def test_server_without_range_support_restarts_the_download(tmp_path: Path, monkeypatch) -> None:
    data = png_bytes(5)
    srv = FileServer({"a.png": data}, honour_range=False)
    try:
        register(
            monkeypatch, "toy", 1, [RemoteFile("a.png", f"{srv.url}/a.png", {"md5": hashlib.md5(data).hexdigest()})]
        )
        (tmp_path / "toy").mkdir()
        (tmp_path / "toy" / "a.png.part").write_bytes(b"stale bytes")
        download_eval_set("toy", tmp_path, progress=False)
    finally:
        srv.close()
    assert (tmp_path / "toy" / "a.png").read_bytes() == data


def test_checksum_mismatch_raises_and_moves_the_file_aside(server: FileServer, tmp_path: Path, monkeypatch) -> None:
    register(monkeypatch, "toy", 1, [RemoteFile("img0.png", f"{server.url}/img0.png", {"sha1": "0" * 40})])
    with pytest.raises(DatasetError, match="sha1 checksum mismatch"):
        download_eval_set("toy", tmp_path, progress=False)
    assert (tmp_path / "toy" / "img0.png.corrupt").exists() and not (tmp_path / "toy" / "img0.png").exists()


def test_files_without_published_digest_are_pinned_on_first_download(server: FileServer, tmp_path: Path, monkeypatch):
    register(monkeypatch, "toy", 1, [RemoteFile("img1.png", f"{server.url}/img1.png")])
    download_eval_set("toy", tmp_path, progress=False)
    lock = (tmp_path / "toy" / "SHA256SUMS").read_text()
    assert lock == f"{sha256(server.files['img1.png'])}  img1.png\n"
    (tmp_path / "toy" / "img1.png").write_bytes(png_bytes(99))  # the local copy changes afterwards
    with pytest.raises(DatasetError, match="checksum does not match"):
        eval_set_images("toy", tmp_path)


def test_zip_sets_are_verified_and_unpacked(server: FileServer, tmp_path: Path, monkeypatch) -> None:
    digest = {"sha256": sha256(server.files["set.zip"])}
    register(monkeypatch, "zipped", 4, [RemoteFile("set.zip", f"{server.url}/set.zip", digest, extract=True)])
    download_eval_set("zipped", tmp_path, progress=False)
    images = eval_set_images("zipped", tmp_path)
    assert [p.name for p in images] == ["z0.png", "z1.png", "z2.png", "z3.png"]
    assert not (tmp_path / "zipped" / "set" / "__MACOSX").exists()


def test_offline_error_names_the_url_and_the_folder(tmp_path: Path, monkeypatch) -> None:
    url = "http://127.0.0.1:9/kodim01.png"  # discard port: nothing listens
    register(monkeypatch, "toy", 1, [RemoteFile("kodim01.png", url)])
    with pytest.raises(DatasetError) as info:
        download_eval_set("toy", tmp_path, progress=False)
    assert url in str(info.value) and str(tmp_path / "toy") in str(info.value)


def test_existing_local_copy_missing_and_incomplete_sets(tmp_path: Path, monkeypatch) -> None:
    register(monkeypatch, "toy", 3, [RemoteFile(f"im{i}.png", f"http://example.invalid/im{i}.png") for i in range(3)])
    with pytest.raises(DatasetError, match=r"toy not found .*example\.invalid/im0\.png"):
        eval_set_images("toy", tmp_path)
    copy = tmp_path / "my_copy"
    copy.mkdir()
    for i in range(2):
        (copy / f"im{i}.png").write_bytes(png_bytes(i))
    with pytest.raises(DatasetError, match="incomplete: 2 of 3"):
        eval_set_images("toy", copy)
    (copy / "im2.png").write_bytes(png_bytes(2))
    assert len(eval_set_images("toy", copy)) == 3  # data.root= may point straight at a copy
    with pytest.raises(DatasetError, match="unknown evaluation set"):
        eval_set_images("nope", tmp_path)


def test_registry_lists_official_urls_and_well_formed_digests() -> None:
    registry = load_registry()
    kodak = registry["kodak"]
    assert kodak.images == 24 and [f.name for f in kodak.files] == [f"kodim{i:02d}.png" for i in range(1, 25)]
    assert all(f.url == f"https://r0k.us/graphics/kodak/kodak/{f.name}" for f in kodak.files)
    assert registry["clic2020"].images == 428 and all(f.extract for f in registry["clic2020"].files)
    lengths = {"sha256": 64, "sha1": 40, "md5": 32}
    for spec in registry.values():
        for f in spec.files:
            assert f.url.startswith("https://")
            assert all(re.fullmatch(f"[0-9a-f]{{{lengths[k]}}}", v) for k, v in f.digests.items())


def test_command_line_downloads_and_reports(server: FileServer, tmp_path: Path, monkeypatch, capsys) -> None:
    """``hific download``: 0 when every set is there, 1 when some failed (the others are done), 2 when none could."""
    register(monkeypatch, "toy", 1, [RemoteFile("img0.png", f"{server.url}/img0.png")])
    assert hific(["download", "toy", "--root", str(tmp_path), "--quiet"]) == 0
    assert "toy: 1 images verified" in capsys.readouterr().out
    register(monkeypatch, "gone", 1, [RemoteFile("gone.png", f"{server.url}/gone.png")])
    assert hific(["download", "gone", "--root", str(tmp_path), "--quiet"]) == 2
    assert "HTTP 404" in capsys.readouterr().err
    assert hific(["download", "toy", "gone", "--root", str(tmp_path), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "toy: 1 images verified" in captured.out and captured.err.count("error:") == 1

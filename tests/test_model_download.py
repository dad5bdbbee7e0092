"""``hific download hific-*``: resumed, refused (web page, wrong size), imported, cached and found by name and
fingerprint; tested against a local HTTP server on 127.0.0.1 serving a JT-port fixture checkpoint."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest
import torch

from hific_lit.cli import main as hific
from hific_lit.errors import CheckpointError
from hific_lit.io.checkpoint import load_inference_checkpoint
from hific_lit.pretrained import registry
from hific_lit.pretrained.download import download_model
from hific_lit.pretrained.registry import RemoteModel, find_by_fingerprint, resolve_model

FIXTURES = Path(__file__).parent / "fixtures" / "jt"
QUOTA_PAGE = b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>...</body></html>"


class ModelServer:
    """Serves ``files`` on 127.0.0.1 with ``Range``; ``cut[path] = n`` sends n bytes of a full-length answer, once."""

    def __init__(self, files: dict[str, tuple[bytes, str]]) -> None:
        self.files, self.cut, self.requests = files, {}, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.lstrip("/")
                server.requests.append((path, self.headers.get("Range")))
                if path not in server.files:
                    self.send_error(404)
                    return
                data, content_type = server.files[path]
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                start = int(match.group(1)) if match else 0
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                cut = server.cut.pop(path, None)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client refused it
                    self.wfile.write(body if cut is None else body[:cut])
                self.close_connection = cut is not None

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def port_file(tmp_path_factory: pytest.TempPathFactory, load_script: Callable[[str], ModuleType]) -> bytes:
    """The bytes of a JT-port checkpoint (the 'logistic' fixture, weights regenerated from its recipe)."""
    recipe = json.loads((FIXTURES / "logistic.json").read_text())["recipe"]
    regenerate = load_script("make_jt_fixtures").regenerate
    ckpt = torch.load(FIXTURES / "logistic.skeleton.pt", weights_only=True)
    ckpt["model_state_dict"] = {
        k: regenerate(recipe[ref.removeprefix("recipe:")]) for k, ref in ckpt["model_state_dict"].items()
    }
    path = tmp_path_factory.mktemp("port") / "hific_med.pt"
    torch.save(ckpt, path)
    return path.read_bytes()


@pytest.fixture
def server(port_file: bytes) -> Iterator[ModelServer]:
    srv = ModelServer(
        {
            "zenodo/hific_med.pt": (port_file, "application/octet-stream"),
            "drive/uc": (QUOTA_PAGE, "text/html; charset=utf-8"),
            "short/hific_med.pt": (port_file[:-1000], "application/octet-stream"),
        }
    )
    yield srv
    srv.close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(registry.HOME_ENV, str(tmp_path / "home"))
    return tmp_path / "home"


def register(monkeypatch: pytest.MonkeyPatch, size: int, *urls: str) -> None:
    spec = RemoteModel("hific-med", "test model", "hific_med.pt", urls, size=size, min_size=1000)
    monkeypatch.setitem(registry.REMOTE_MODELS, "hific-med", spec)


def test_cut_download_resumes_then_imports_and_is_used_by_name(server, home, monkeypatch, port_file) -> None:
    register(monkeypatch, len(port_file), f"{server.url}/zenodo/hific_med.pt")
    server.cut["zenodo/hific_med.pt"] = 5000
    with pytest.raises(CheckpointError, match=r"stopped at 5000 of .* run `hific download hific-med` again"):
        download_model("hific-med", progress=False)
    assert (home / "downloads" / "hific_med.pt.part").stat().st_size == 5000
    got = download_model("hific-med", progress=False)
    assert server.requests[-1] == ("zenodo/hific_med.pt", "bytes=5000-")
    assert got.path == home / "models" / "hific-med.ckpt" and not (home / "downloads" / "hific_med.pt").exists()
    entry = resolve_model("hific-med")
    model = load_inference_checkpoint(entry.path)
    assert entry.place == "cache" and entry.fingerprint == model.fingerprint().hex()
    assert find_by_fingerprint(model.fingerprint()) == entry
    assert download_model("hific-med", progress=False).already_cached


def test_web_page_is_refused_and_the_next_mirror_is_tried(server, home, monkeypatch, port_file) -> None:
    register(monkeypatch, len(port_file), f"{server.url}/drive/uc", f"{server.url}/zenodo/hific_med.pt")
    got = download_model("hific-med", progress=False)
    assert got.source.endswith("/zenodo/hific_med.pt")
    register(monkeypatch, len(port_file), f"{server.url}/drive/uc")
    (home / "models" / "hific-med.ckpt").unlink()
    with pytest.raises(CheckpointError, match="sent a web page, not the file") as excinfo:
        download_model("hific-med", progress=False)
    assert "\n" not in str(excinfo.value) and "by hand" in str(excinfo.value)
    assert not list((home / "downloads").iterdir())  # nothing of the page was kept


def test_wrong_size_is_refused_before_and_after_downloading(server, home, monkeypatch, port_file) -> None:
    register(monkeypatch, len(port_file), f"{server.url}/short/hific_med.pt")
    with pytest.raises(CheckpointError, match=f"offers {len(port_file) - 1000} bytes where the file has"):
        download_model("hific-med", progress=False)
    short = (f"{server.url}/short/hific_med.pt",)
    spec = RemoteModel("hific-med", "test", "hific_med.pt", short, min_size=len(port_file))
    monkeypatch.setitem(registry.REMOTE_MODELS, "hific-med", spec)  # no published size: the weights' bound
    with pytest.raises(CheckpointError, match="cannot hold the model's weights"):
        download_model("hific-med", progress=False)
    assert (home / "downloads" / "hific_med.pt.corrupt").is_file()


def test_command_line_download_says_where_and_fails_in_one_line(server, home, monkeypatch, port_file, capsys) -> None:
    register(monkeypatch, len(port_file), f"{server.url}/drive/uc")
    assert hific(["download", "hific-med", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("hific download: error: could not download hific-med")
    register(monkeypatch, len(port_file), f"{server.url}/zenodo/hific_med.pt")
    assert hific(["download", "hific-med", "--quiet"]) == 0
    assert "use it with --model hific-med" in capsys.readouterr().out


def test_unknown_and_missing_names_say_what_to_do(home) -> None:
    with pytest.raises(CheckpointError, match="run `hific download hific-low`"):
        resolve_model("hific-low")
    with pytest.raises(CheckpointError, match=r"unknown model 'nope'; known: .*hific-high"):
        resolve_model("nope")

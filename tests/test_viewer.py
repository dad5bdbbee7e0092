"""The HTML viewer: self-contained, and in headless Chromium its images load and switch in place."""

from __future__ import annotations

import io
import re
import shutil

import numpy as np
import pytest
from PIL import Image
from skimage import data

from hific_lit.eval.viewer import ViewerImage, ViewerVariant, render_viewer, write_viewer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _encoded(image: np.ndarray, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, **options)
    return buf.getvalue()


@pytest.fixture(scope="module")
def images() -> list[ViewerImage]:
    photos = {"astronaut": data.astronaut()[:96, :128].copy(), "coffee <&>": data.coffee()[:64, :96].copy()}
    return [
        ViewerImage(
            name,
            [
                ViewerVariant("Original", _encoded(photo, "PNG"), "image/png"),
                ViewerVariant("HiFiC (ours)", _encoded(photo // 2, "PNG"), "image/png", {"bpp": 0.31, "psnr": 30.5}),
                ViewerVariant(
                    "JPEG q=12", _encoded(photo, "JPEG", quality=12), "image/jpeg", {"bpp": 0.33, "lpips": None}
                ),
            ],
        )
        for name, photo in photos.items()
    ]


def test_viewer_is_self_contained_and_escapes_names(images: list[ViewerImage]) -> None:
    text = render_viewer(images)
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text), "the viewer must not reference the network"
    assert text.count("data:image/") == 6
    assert "coffee &lt;&amp;&gt;" in text and "coffee <&>" not in text
    assert "0.3100" in text and "30.50" in text and "–" in text


def test_write_viewer_writes_the_rendered_file(images: list[ViewerImage], tmp_path) -> None:
    path = write_viewer(images, tmp_path / "sub" / "viewer.html", title="t")
    assert path.read_text(encoding="utf-8") == render_viewer(images, title="t")
    assert [p.name for p in path.parent.iterdir()] == ["viewer.html"]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: run `make browser` (make test does)")
def test_images_load_and_toggle_switches_them_in_chromium(images: list[ViewerImage], tmp_path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (dev extra)")
    path = write_viewer(images, tmp_path / "viewer.html")
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]  # fmt: skip
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            page = browser.new_page()
            page.goto(path.as_uri())
            page.wait_for_function("[...document.images].every(img => img.complete)")
            sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])")
            assert sizes == [[128, 96]] * 3 + [[96, 64]] * 3, "every embedded image decodes at its size"
            first = page.locator("section.image").first
            visible = "s => [...s.querySelectorAll('.frame img')].filter(i => !i.hidden).map(i => i.dataset.index)"
            assert first.evaluate(visible) == ["0"]
            first.get_by_role("button", name="JPEG q=12").click()
            assert first.evaluate(visible) == ["2"]
            assert first.locator("tr.active td").first.inner_text() == "JPEG q=12"
            assert page.locator("section.image").nth(1).evaluate(visible) == ["0"], "other images keep their state"
            page.keyboard.press("2")
            assert first.evaluate(visible) == ["1"] and page.locator("section.image").nth(1).evaluate(visible) == ["1"]
            first.locator("select.zoom").select_option("4")
            assert first.locator(".frame img").nth(1).evaluate("i => i.getBoundingClientRect().width") == 4 * 128
        finally:
            browser.close()

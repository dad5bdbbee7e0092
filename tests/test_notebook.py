"""notebooks/demo.ipynb: committed without outputs, and it runs on an arch=tiny checkpoint and a photo."""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image
from skimage import data

from hific_lit import HiFiC
from hific_lit.io.checkpoint import save_inference_checkpoint

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "demo.ipynb"


def test_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_compresses_a_user_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbclient import NotebookClient

    ckpt, image = tmp_path / "tiny.pt", tmp_path / "photo.png"
    save_inference_checkpoint(HiFiC.from_preset("tiny"), ckpt)
    Image.fromarray(np.ascontiguousarray(data.coffee()[:96, :160])).save(image)
    for key, value in {"HIFIC_CKPT": ckpt, "HIFIC_IMAGE": image, "HIFIC_OUT": tmp_path / "out"}.items():
        monkeypatch.setenv(key, str(value))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    hfc = tmp_path / "out" / "image.hfc"
    assert f"{hfc}: {hfc.stat().st_size} bytes = {8 * hfc.stat().st_size / (96 * 160):.4f} bpp" in text
    assert (tmp_path / "out" / "reconstruction.png").is_file()
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)

"""RD plots: one PNG per metric that has values, ours against the baselines."""

from __future__ import annotations

from PIL import Image

from hific_lit.eval.plots import plot_rd
from hific_lit.eval.published import published_points


def test_plots_are_written_for_metrics_with_values(tmp_path) -> None:
    points = [
        {"method": "hific", "checkpoint": "high", "bpp": 0.3, "psnr": 30.0, "ms_ssim": None, "lpips": 0.05},
        {"method": "hific", "bpp": 0.1, "psnr": 27.0, "ms_ssim": None, "lpips": 0.10},
        {"method": "jpeg", "bpp": 0.12, "psnr": 24.0, "ms_ssim": None, "lpips": 0.30},
        {"method": "jpeg", "bpp": 0.31, "psnr": 28.0, "ms_ssim": None, "lpips": 0.20},
    ]
    written = plot_rd(points, tmp_path / "plots")
    assert sorted(p.name for p in written) == ["rd_lpips.png", "rd_psnr.png"]
    for path in written:
        with Image.open(path) as img:
            assert img.format == "PNG" and img.width > 300 and img.height > 200


def test_published_points_are_drawn_only_beside_metrics_we_measured(tmp_path) -> None:
    assert published_points("folder") == []
    ours = [{"method": "hific", "bpp": 0.2, "psnr": 28.0, "lpips": None}, {"method": "hific", "bpp": 0.4, "psnr": 30.0}]
    paper = published_points("kodak")
    assert [p["bpp"] for p in paper] == [0.183, 0.351, 0.538] and all(p["method"] == "hific_paper" for p in paper)
    written = plot_rd(ours + paper, tmp_path)
    assert [p.name for p in written] == ["rd_psnr.png"]  # the paper's LPIPS alone makes no plot

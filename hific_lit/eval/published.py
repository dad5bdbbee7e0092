"""HiFiC's published results (Mentzer et al. 2020, arXiv:2006.09965: the HiFiC low / medium / high
models), drawn beside ours in the RD plots and copied into the summary.

Only the metrics the paper reports for each set are given; FID and KID are FID/256 and KID on 256²
patches, the protocol of :mod:`hific_lit.eval.fid`.
"""

from __future__ import annotations

PUBLISHED: dict[str, list[dict[str, float]]] = {
    "kodak": [
        {"bpp": 0.183, "psnr": 27.56, "lpips": 0.069},
        {"bpp": 0.351, "psnr": 29.65, "lpips": 0.043},
        {"bpp": 0.538, "psnr": 31.74, "lpips": 0.028},
    ],
    "clic2020": [
        {"bpp": 0.129, "psnr": 30.87, "lpips": 0.054, "fid": 4.20, "kid_mean": 1.08e-3},
        {"bpp": 0.250, "psnr": 32.94, "lpips": 0.035, "fid": 2.38, "kid_mean": 5.4e-4},
        {"bpp": 0.374, "psnr": 34.60, "lpips": 0.025, "fid": 1.67, "kid_mean": 3.6e-4},
    ],
}


def published_points(dataset: str) -> list[dict]:
    """The paper's points for ``dataset`` as RD-plot points (method ``hific_paper``); none for other sets."""
    return [{"method": "hific_paper", **point} for point in PUBLISHED.get(dataset, [])]

"""LPIPS (Zhang et al. 2018) with an AlexNet trunk, the perceptual distortion HiFiC trains with (Sec. 4.2).

The ``lpips`` package ships its calibrated linear layers; the AlexNet trunk's ImageNet weights come
from torchvision through the torch hub cache (``$TORCH_HOME/hub/checkpoints``). This module never
downloads at import; :func:`build_lpips` checks the cache first, downloads only when asked to, and
otherwise raises :class:`~hific_lit.errors.WeightsUnavailableError` saying where to put the file.
``pretrained_backbone=False`` builds a randomly initialised trunk, for tests and offline demos
only: its numbers are not LPIPS, and a warning says so.
"""

from __future__ import annotations

import logging
import pickle
import warnings
import zipfile
from pathlib import Path
from urllib.error import URLError

import lpips
import torch
from torch import nn

from hific_lit.errors import WeightsUnavailableError

log = logging.getLogger(__name__)

ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
"""torchvision's ImageNet AlexNet weights, the trunk LPIPS-Alex uses."""

RANDOM_BACKBONE_WARNING = (
    "LPIPS IS USING A RANDOMLY INITIALISED ALEXNET TRUNK (perceptual.pretrained_backbone=false): "
    "the perceptual loss and every logged LPIPS value are NOT LPIPS. Use this for tests and offline demos only."
)


def alexnet_weights_path() -> Path:
    """Where torchvision looks for the AlexNet weights: ``<torch hub dir>/checkpoints/<file name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_URL.rsplit("/", 1)[-1]


def _how_to_provide(path: Path) -> str:
    return (
        f"download {ALEXNET_URL} on a machine with internet access and copy it to {path} "
        "(or point TORCH_HOME at a directory holding hub/checkpoints/ with it); "
        "for tests and offline demos only, set perceptual.pretrained_backbone=false to use a random trunk"
    )


def ensure_alexnet_weights(download: bool = True) -> Path:
    """Return the cached AlexNet weights file, downloading it first when ``download`` is true.

    Raises :class:`WeightsUnavailableError` when the file is absent and cannot be fetched.
    """
    path = alexnet_weights_path()
    if path.is_file():
        return path
    if not download:
        raise WeightsUnavailableError(
            f"LPIPS needs AlexNet's ImageNet weights, not found at {path}: {_how_to_provide(path)}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(ALEXNET_URL, str(path), hash_prefix=path.stem.rsplit("-", 1)[-1])
    except (URLError, OSError, RuntimeError) as exc:
        raise WeightsUnavailableError(
            f"LPIPS needs AlexNet's ImageNet weights and downloading them failed ({exc}): {_how_to_provide(path)}"
        ) from exc
    return path


def _load_lpips(pretrained_backbone: bool, download: bool) -> nn.Module:
    if pretrained_backbone:
        path = ensure_alexnet_weights(download)
        try:
            return lpips.LPIPS(net="alex", pretrained=True, pnet_rand=False, verbose=False)
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
            raise WeightsUnavailableError(
                f"the AlexNet weights at {path} could not be loaded ({exc}); delete the file and "
                + _how_to_provide(path)
            ) from exc
    log.warning(RANDOM_BACKBONE_WARNING)
    return lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)


class LPIPSLoss(nn.Module):
    """Frozen LPIPS-Alex distance between images in [0, 1]; ``forward`` returns the batch mean.

    Args:
        pretrained_backbone: load the ImageNet AlexNet trunk (the real LPIPS); false for a random trunk.
        download: allow fetching the trunk's weights when they are not in the torch hub cache.
    """

    def __init__(self, pretrained_backbone: bool = True, download: bool = True) -> None:
        super().__init__()
        self.pretrained_backbone = pretrained_backbone
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
            self.net = _load_lpips(pretrained_backbone, download)
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> LPIPSLoss:
        """LPIPS stays in eval mode (no dropout) whatever the surrounding module does."""
        super().train(mode)
        self.net.eval()
        return self

    def forward(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        return self.net(x_hat * 2.0 - 1.0, x * 2.0 - 1.0).mean()

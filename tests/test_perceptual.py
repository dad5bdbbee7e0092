"""LPIPS loading: the real trunk from the hub cache, a clear error offline, and the explicit random trunk."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torchvision

from hific_lit.errors import WeightsUnavailableError
from hific_lit.training import perceptual
from hific_lit.training.perceptual import LPIPSLoss, alexnet_weights_path


@pytest.fixture
def hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache, and no network: a download attempt fails like it does offline."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(perceptual.torch.hub, "download_url_to_file", offline)
    yield tmp_path
    torch.hub.set_dir(old)


def test_expected_path_is_torchvisions_hub_cache(hub_dir: Path) -> None:
    assert alexnet_weights_path() == hub_dir / "checkpoints" / "alexnet-owt-7be5be79.pth"


@pytest.mark.parametrize("download", [False, True])
def test_missing_weights_offline_say_where_to_put_them(hub_dir: Path, download: bool) -> None:
    with pytest.raises(WeightsUnavailableError) as err:
        LPIPSLoss(pretrained_backbone=True, download=download)
    message = str(err.value)
    assert str(alexnet_weights_path()) in message
    assert perceptual.ALEXNET_URL in message and "pretrained_backbone=false" in message


def test_weights_from_the_cache_are_the_ones_used(hub_dir: Path) -> None:
    trunk = torchvision.models.alexnet().state_dict()
    path = alexnet_weights_path()
    path.parent.mkdir(parents=True)
    torch.save(trunk, path)
    lpips_loss = LPIPSLoss(pretrained_backbone=True, download=False)
    assert torch.equal(lpips_loss.net.net.slice1[0].weight, trunk["features.0.weight"])
    assert not any(p.requires_grad for p in lpips_loss.parameters())


def test_a_corrupt_weights_file_is_named(hub_dir: Path) -> None:
    path = alexnet_weights_path()
    path.parent.mkdir(parents=True)
    path.write_text("<html>404</html>")
    with pytest.raises(WeightsUnavailableError, match="could not be loaded"):
        LPIPSLoss(pretrained_backbone=True, download=False)


def test_random_trunk_is_loud_and_still_a_distance(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        lpips_loss = LPIPSLoss(pretrained_backbone=False).train()
    assert "RANDOMLY INITIALISED" in caplog.text and "NOT LPIPS" in caplog.text
    assert not lpips_loss.net.training  # dropout stays off
    x = torch.rand(2, 3, 64, 64)
    assert lpips_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert lpips_loss(x, torch.rand_like(x)).item() > 0

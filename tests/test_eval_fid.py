"""FID/KID on 256² patches: the patch protocol, the statistics, and loading Inception offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data
from torch import nn

from hific_lit.errors import WeightsUnavailableError
from hific_lit.eval.fid import INCEPTION_URL, PatchEmbedder, fid_kid, fid_patches, load_inception


class TinyFeatures(nn.Module):
    """A small stand-in for Inception: uint8 patches -> 16-d features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 8, stride=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x.float() / 255.0)).mean(dim=(2, 3))


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [(512, 768, 6 + 2), (512, 512, 4 + 1), (383, 600, 2), (384, 384, 1 + 1), (300, 300, 1), (255, 1000, 0)],
)
def test_patch_counts_follow_the_protocol(height: int, width: int, expected: int) -> None:
    image = np.zeros((height, width, 3), np.uint8)
    patches = fid_patches(image)
    assert patches.shape == (expected, 3, 256, 256) and patches.dtype == torch.uint8


def test_patches_are_the_aligned_then_shifted_crops() -> None:
    image = data.astronaut()
    patches = fid_patches(image)
    chw = torch.from_numpy(image).permute(2, 0, 1)
    assert torch.equal(patches[1], chw[:, 0:256, 256:512])
    assert torch.equal(patches[2], chw[:, 256:512, 0:256])
    assert torch.equal(patches[4], chw[:, 128:384, 128:384])


def test_fid_kid_near_zero_for_identical_sets_and_larger_for_distorted() -> None:
    embed = PatchEmbedder(TinyFeatures(), batch_size=3)
    photos = [data.astronaut(), data.coffee(), data.chelsea()[:, :, :3], data.rocket()]
    real = torch.cat([embed(p) for p in photos])
    blurred = torch.cat([embed((p // 32 * 32).astype(np.uint8)) for p in photos])
    same, worse = fid_kid(real, real), fid_kid(real, blurred)
    assert same["patches"] == worse["patches"] == len(real) == 5 + 3 + 1 + 4  # astronaut, coffee, chelsea, rocket
    assert abs(same["fid"]) < 1e-3 and worse["fid"] > 100 * max(abs(same["fid"]), 1e-6)
    assert worse["kid_mean"] > same["kid_mean"]
    with pytest.raises(ValueError, match="at least 2"):
        fid_kid(real[:1], real[:1])


def test_inception_missing_offline_says_where_to_put_the_weights(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsUnavailableError, match="downloading is off") as err:
        load_inception(download=False)
    assert INCEPTION_URL in str(err.value) and str(tmp_path / "hub" / "checkpoints") in str(err.value)
    with pytest.raises(WeightsUnavailableError, match="do not exist"):
        load_inception(tmp_path / "nope.pth")


def test_inception_weights_file_that_is_not_weights_is_refused(tmp_path) -> None:
    bogus = tmp_path / "inception.pth"
    bogus.write_text("<html>not found</html>")
    with pytest.raises(WeightsUnavailableError, match="could not load"):
        load_inception(bogus)


@pytest.mark.slow
def test_inception_loads_a_weights_file_and_embeds_patches(tmp_path, monkeypatch) -> None:
    from torch_fidelity import feature_extractor_inceptionv3 as tf_inception

    with monkeypatch.context() as patch:  # build the architecture once without weights, to write a weights file
        patch.setattr(tf_inception.torch, "load", lambda *args, **kwargs: {})
        patch.setattr(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        random_net = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], "ignored.pth")
    weights = tmp_path / "inception.pth"
    torch.save(random_net.state_dict(), weights)
    inception = load_inception(weights)
    features = PatchEmbedder(inception)(data.astronaut()[:256, :512].copy())
    assert features.shape == (2, 2048) and torch.isfinite(features).all()

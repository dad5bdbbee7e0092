"""GC2018's discriminator and losses against the TF1 port's own (Justin-Tan/generative-compression).

``tests/fixtures/gc2018`` was made by ``scripts/make_gc2018_fixtures.py``, which runs the port's ``Model``
(``model.py``, ``network.py`` at the commit recorded in the fixture) under ``tf.compat.v1`` on a fixed image
pair with D's weights from a recipe; these tests rebuild the same weights here and compare.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
import torch

from hific_lit.models.gc2018.arch import GC2018_PRESETS
from hific_lit.models.gc2018.discriminator import MultiscaleDiscriminator
from hific_lit.training.gc2018 import GC2018GANStage, mse_symmetric
from hific_lit.training.gc2018_losses import GC2018Loss, discriminator_loss, feature_matching_loss, generator_loss

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "gc2018"
SCALES = {"original": 0, "downsampled_2": 1, "downsampled_4": 2}


@pytest.fixture(scope="module")
def port(load_script: Callable[[str], ModuleType]) -> SimpleNamespace:
    """The fixture: the port's outputs, its config, and our 3-scale D carrying the port's D weights."""
    meta = json.loads((FIXTURE / "port_losses.json").read_text())
    outputs = dict(np.load(FIXTURE / "port_losses.npz"))
    script = load_script("make_gc2018_fixtures")
    d = MultiscaleDiscriminator((64, 128, 256, 512), scales=3)
    state = {}
    for name, spec in meta["recipe"].items():
        _, scope, layer, leaf = name.split("/")
        scale = SCALES[scope.removeprefix("discriminator_")]
        kind, _, index = layer.partition("_")
        value = torch.from_numpy(script.regenerate(spec))
        if kind == "conv2d":
            conv = int(index or 0)
            key = f"discriminators.{scale}.layers.{conv}.0.{'weight' if leaf == 'kernel' else 'bias'}"
            state[key] = value.permute(3, 2, 0, 1) if leaf == "kernel" else value
        else:  # InstanceNorm, InstanceNorm_1, ...: the norm of conv layer index + 1
            norm = int(index or 0) + 1
            state[f"discriminators.{scale}.layers.{norm}.1.{'weight' if leaf == 'gamma' else 'bias'}"] = value
    d.load_state_dict(state)
    x, x_hat = (torch.from_numpy(outputs[k]).permute(0, 3, 1, 2).add(1.0).div(2.0) for k in ("x", "x_hat"))
    with torch.no_grad():
        real, fake = d(x), d(x_hat)
    return SimpleNamespace(meta=meta, out=outputs, d=d, x=x, x_hat=x_hat, real=real, fake=fake)


def test_the_fixture_is_the_ports_config_at_its_head(port: SimpleNamespace) -> None:
    assert re.fullmatch(r"[0-9a-f]{40}", port.meta["port_commit"])
    # config.py at the port's HEAD: lambda_X = 12, feature_matching_weight = 10, LSGAN, multiscale D
    assert port.meta["port_config"] == {
        "lambda_X": 12,
        "feature_matching_weight": 10,
        "use_vanilla_GAN": False,
        "multiscale": True,
        "use_feature_matching_loss": True,
    }
    assert len(port.meta["recipe"]) == 3 * (5 * 2 + 3 * 2)  # per scale: 5 convs (kernel, bias), 3 norms (gamma, beta)


def test_the_discriminator_computes_the_ports_logits_at_every_scale(port: SimpleNamespace) -> None:
    # TF "same" padding (odd maps at the coarse scales), TF "same" average pooling, InstanceNorm epsilon 1e-6
    for kind, outputs in (("real", port.real), ("fake", port.fake)):
        for scope, scale in SCALES.items():
            expected = torch.from_numpy(port.out[f"logits_{kind}_{scope}"]).permute(0, 3, 1, 2)
            assert outputs[scale][-1].shape == expected.shape
            torch.testing.assert_close(outputs[scale][-1], expected, rtol=1e-4, atol=2e-5)


def test_the_losses_are_the_ports(port: SimpleNamespace) -> None:
    out, config = port.out, port.meta["port_config"]
    d_loss = discriminator_loss(port.real, port.fake)
    fm = feature_matching_loss(port.real, port.fake)
    mse = mse_symmetric(port.x, port.x_hat)
    assert float(d_loss) == pytest.approx(float(out["D_loss"]), rel=1e-5)
    assert float(fm) == pytest.approx(float(out["feature_matching_loss"]), rel=1e-5)
    assert float(config["lambda_X"] * mse) == pytest.approx(float(out["distortion_penalty"]), rel=1e-5)
    g_ls = out["G_loss"] - out["distortion_penalty"] - config["feature_matching_weight"] * out["feature_matching_loss"]
    assert float(generator_loss(port.fake)) == pytest.approx(float(g_ls), rel=1e-4)


def test_the_stage_objective_with_the_ports_lambda_is_the_ports_g_loss(port: SimpleNamespace) -> None:
    stage = GC2018GANStage(GC2018_PRESETS["gc2018_tiny"], loss=GC2018Loss(distortion_weight=12.0), discriminator=port.d)
    result = SimpleNamespace(x_hat=port.x_hat, bpp=torch.tensor(0.0), bpp_bound=torch.tensor(0.0))
    with torch.no_grad():
        terms = stage.codec_objective(port.x, result)
    assert float(terms["loss"]) == pytest.approx(float(port.out["G_loss"]), rel=1e-5)


def test_pix2pixhds_forms_are_the_documented_multiples(port: SimpleNamespace) -> None:
    # docs/fidelity.md G5, G6, G16: pix2pixHD weights each of the 3 scales 1/3 (4 layers: 4/4 each), halves D's
    # loss, and sums G's term over the scales
    real, fake = port.real, port.fake
    assert float(feature_matching_loss(real, fake, "pix2pixhd")) == pytest.approx(
        float(feature_matching_loss(real, fake)) / 3, rel=1e-6
    )
    assert float(discriminator_loss(real, fake, 0.5)) == pytest.approx(0.5 * float(port.out["D_loss"]), rel=1e-5)
    every = sum(float((f[-1] - 1).pow(2).mean()) for f in fake)
    assert float(generator_loss(fake, "all")) == pytest.approx(every, rel=1e-6)


def test_a_fresh_discriminator_has_the_ports_glorot_uniform_kernels_and_zero_biases() -> None:
    # tf.layers.conv2d's defaults: glorot_uniform kernels, limit sqrt(6 / (fan_in + fan_out)), zero biases
    torch.manual_seed(0)
    d = MultiscaleDiscriminator((64, 128, 256, 512), scales=1)
    conv = d.discriminators[0].layers[2][0]
    limit = (6.0 / (16 * (128 + 256))) ** 0.5
    assert float(conv.weight.detach().abs().max()) <= limit and float(conv.weight.detach().abs().max()) > 0.99 * limit
    assert float(conv.weight.detach().std()) == pytest.approx(limit / 3**0.5, rel=0.01)
    assert all(float(m.bias.abs().max()) == 0.0 for m in d.modules() if isinstance(m, torch.nn.Conv2d))

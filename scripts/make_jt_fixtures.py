"""Make the fixtures that pin ``hific import-jt`` to the JT port's own outputs (issue #11).

The port (github.com/Justin-Tan/high-fidelity-generative-compression) needs numpy < 2, scipy,
autograd, scikit-image and torchvision, so this script runs in a virtual environment of its own,
never in this package's::

    python3.11 -m venv /work/jt-venv
    /work/jt-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 'numpy<2' scipy autograd tqdm scikit-image
    /work/jt-venv/bin/python scripts/make_jt_fixtures.py --jt PATH_TO_PORT_CHECKOUT

It imports the port's modules from that checkout at run time (none of its code is in this
repository), builds the port's model with seeded random weights, saves it with the port's own
``utils.save_model``, loads it back with the port's ``utils.load_model`` exactly as the port's
``compress.py`` does, and records what the port computes on a fixed photo crop: y, the
hyperlatents, means, scales, the reconstruction (entropy-coded
round trip) and the estimated bits. The weights themselves are not kept (a 9-block model is
~700 MB): each tensor is ``randn(shape, generator=torch.Generator().manual_seed(seed)) * std + mean``
in float32 (spectral-norm vectors then divided by their norm), and the per-tensor seed, mean
and std are written to the fixture; :func:`regenerate` rebuilds the exact tensors.

The port's LPIPS module downloads AlexNet weights when built; it is not part of the codec and
its state dict is empty, so a parameter-free stand-in is installed in its place before import.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import sys
import tempfile
import types
import zlib
from pathlib import Path

import numpy as np
import torch

BASE_SEED = 20200616
"""Mixed with the CRC32 of each state-dict key to give that tensor's seed."""

FORMULA = "randn(shape, generator=manual_seed(seed), float32) * std + mean; unit: / norm()"

VARIANTS: dict[str, dict] = {
    "gaussian9": {
        "doc": "HIFIC-low/high layout: Gaussian y likelihood, 9 residual blocks, C=220, inputs in [-1, 1] (-norm)",
        "model_type": "compression_gan",
        "args": {"latent_channels": 220, "n_residual_blocks": 9, "likelihood_type": "gaussian"},
        "normalize_input_image": True,
        "regime": "low",
        "steps": 412345,
        "full_reconstruction": True,
    },
    "logistic": {
        "doc": "HIFIC-med layout (logistic y likelihood, inputs in [0, 1]), smaller: 2 blocks, C=32",
        "model_type": "compression_gan",
        "args": {"latent_channels": 32, "n_residual_blocks": 2, "likelihood_type": "logistic"},
        "normalize_input_image": False,
        "regime": "med",
        "steps": 200001,
        "full_reconstruction": False,
    },
    "instance_norm": {
        "doc": "instance norm instead of channel norm (use_channel_norm=False): Gaussian, 1 block, C=16, [0, 1]",
        "model_type": "compression",
        "args": {
            "latent_channels": 16,
            "n_residual_blocks": 1,
            "likelihood_type": "gaussian",
            "use_channel_norm": False,
        },
        "normalize_input_image": False,
        "regime": "med",
        "steps": 5000,
        "full_reconstruction": False,
    },
    "with_discriminator": {
        "doc": "GAN-stage checkpoint with the discriminator kept: Gaussian, 1 block, C=16, inputs in [0, 1]",
        "model_type": "compression_gan",
        "args": {"latent_channels": 16, "n_residual_blocks": 1, "likelihood_type": "gaussian"},
        "normalize_input_image": False,
        "regime": "high",
        "steps": 1000,
        "full_reconstruction": False,
        "discriminator": True,
        "odd_size": True,
    },
}

CROP = (slice(40, 168), slice(180, 308))
"""128 x 128 crop of scikit-image's astronaut (her face). 128 is the smallest size the port codes:
its h_a reflect-pads by 2, which needs z maps of at least 3 x 3 before the last conv."""
ODD_CROP = (slice(100, 250), slice(150, 350))
"""150 x 200: not a multiple of 64, so the port pads the image to 16 and then y to a multiple of 4."""
ODD_WINDOW = (slice(86, 150), slice(136, 200))
"""The bottom-right 64 x 64 of the odd-size reconstruction, nearest the padding."""
RECON_CROP = (slice(32, 96), slice(32, 96))
"""Reconstruction window kept for the smaller variants (the 9-block one keeps all of it)."""


def tensor_seed(key: str) -> int:
    """The seed of the tensor named ``key``: BASE_SEED mixed with the CRC32 of the name."""
    return (BASE_SEED * 1_000_003 + zlib.crc32(key.encode())) % (1 << 62)


def regenerate(spec: dict) -> torch.Tensor:
    """The tensor described by one recipe entry (``FORMULA``)."""
    gen = torch.Generator().manual_seed(int(spec["seed"]))
    t = torch.randn(tuple(spec["shape"]), generator=gen, dtype=torch.float32) * float(spec["std"]) + float(spec["mean"])
    if spec.get("kind") == "unit":
        t = t / t.norm()
    return t


def _conv_fan_in(module: torch.nn.Module) -> float:
    k = math.prod(module.kernel_size)
    if isinstance(module, torch.nn.ConvTranspose2d):
        return module.in_channels * k / math.prod(module.stride)
    return module.in_channels * k


def _special(key: str, normalize: bool) -> tuple[float, float] | None:
    """(weight gain, bias mean) of the layers whose outputs must land in a useful range."""
    if key.startswith("Encoder.conv_block_out"):
        return 3.0, 0.0  # y of a few units: many distinct symbols
    if key.startswith("Generator.conv_block_out"):
        return (0.6, 0.0) if normalize else (0.25, 0.5)  # images mostly inside the clamp range
    if key.startswith("Hyperprior.synthesis_std.conv3"):
        return 1.0, 1.5  # scales spread over the table, some below the 0.11 bound
    return None


def make_recipe(model: torch.nn.Module, normalize: bool) -> dict[str, dict]:
    """A recipe entry per state-dict tensor: convolutions ~ gain/sqrt(fan_in), norms near identity,
    the hyperlatent density near the port's own initialisation."""
    modules = dict(model.named_modules())
    recipe: dict[str, dict] = {}
    for key, tensor in model.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        module = modules.get(owner)
        spec = {"seed": tensor_seed(key), "shape": list(tensor.shape), "mean": 0.0, "std": 0.05}
        special = _special(key, normalize)
        if leaf in ("weight", "weight_orig") and isinstance(module, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            gain = special[0] if special else 1.0
            spec["std"] = gain / math.sqrt(_conv_fan_in(module))
        elif leaf == "bias" and special:
            spec["mean"] = special[1]
        elif leaf in ("weight_u", "weight_v"):
            spec.update(std=1.0, kind="unit")
        elif leaf == "gamma" or (leaf == "weight" and isinstance(module, torch.nn.InstanceNorm2d)):
            spec.update(mean=1.0, std=0.1)
        elif leaf == "beta" or (leaf == "bias" and isinstance(module, torch.nn.InstanceNorm2d)):
            spec["std"] = 0.1
        elif leaf.startswith("H_"):
            k = int(leaf[2:])
            width = tensor.shape[1]
            scale = 10.0 ** (1.0 / 4)
            spec.update(mean=math.log(math.expm1(1.0 / scale / width)), std=0.1 * (k + 1))
        elif leaf.startswith(("a_", "b_")):
            spec["std"] = 0.4
        recipe[key] = spec
    return recipe


def _import_port(jt: Path) -> types.SimpleNamespace:
    """Import the port's modules from the checkout, with a parameter-free LPIPS stand-in."""
    sys.path.insert(0, str(jt))

    class PerceptualLoss(torch.nn.Module):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__()

    import src.loss.perceptual_similarity as lpips_pkg

    stub = types.ModuleType("src.loss.perceptual_similarity.perceptual_loss")
    stub.PerceptualLoss = PerceptualLoss
    sys.modules[stub.__name__] = stub
    lpips_pkg.perceptual_loss = stub
    import default_config
    from src import model as port_model
    from src.helpers import maths, utils
    from src.network import discriminator

    return types.SimpleNamespace(
        config=default_config, model=port_model, utils=utils, maths=maths, discriminator=discriminator
    )


def _port_args(port: types.SimpleNamespace, variant: dict, workdir: Path, name: str) -> object:
    """The port's args as its train.py builds them: hific_args, then the command-line choices."""
    base = port.config.hific_args
    d = {n: getattr(base, n) for n in dir(base) if not n.startswith("__")}
    d.update(variant["args"])
    d.update(
        name=name,
        model_type=variant["model_type"],
        regime=variant["regime"],
        normalize_input_image=variant["normalize_input_image"],
        multigpu=False,
        snapshot=str(workdir),
        checkpoints_save=str(workdir / "checkpoints"),
        latent_dims=(variant["args"]["latent_channels"], 16, 16),
    )
    d["target_rate"] = d["target_rate_map"][d["regime"]]
    d["lambda_A"] = d["lambda_A_map"][d["regime"]]
    d["n_steps"] = int(d["n_steps"])
    return port.utils.Struct(**d)


def _save_port_checkpoint(port: types.SimpleNamespace, args: object, recipe: dict, steps: int) -> Path:
    """Build the training-mode model, fill it from the recipe, save it with the port's save_model."""
    logger = logging.getLogger("jt-port")
    model = port.model.Model(args, logger, model_mode="training", model_type=args.model_type)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            tensor.copy_(regenerate(recipe[key]))
    model.step_counter = steps
    amort = torch.optim.Adam([p for m in model.amortization_models for p in m.parameters()], lr=args.learning_rate)
    hyper = torch.optim.Adam(model.Hyperprior.hyperlatent_likelihood.parameters(), lr=args.learning_rate)
    optimizers = {"amort": amort, "hyper": hyper}
    if model.use_discriminator:
        optimizers["disc"] = torch.optim.Adam(model.Discriminator.parameters(), lr=args.learning_rate)
    with contextlib.redirect_stdout(io.StringIO()):
        path = port.utils.save_model(model, optimizers, 0.0, 3, "cpu", args=args, logger=logger)
    return Path(path)


def _skeleton(path: Path) -> dict:
    """The saved checkpoint with every weight tensor replaced by the name of its recipe entry."""
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_state_dict"] = {k: f"recipe:{k}" for k in ckpt["model_state_dict"]}
    if "discriminator_state_dict" in ckpt:
        ckpt["discriminator_state_dict"] = {k: f"recipe:Discriminator.{k}" for k in ckpt["discriminator_state_dict"]}
    return ckpt


class _Recorder:
    """Forward hooks on the port's modules: the first input and output of each call."""

    def __init__(self, modules: dict[str, torch.nn.Module]) -> None:
        self.calls: dict[str, list] = {name: [] for name in modules}
        for name, module in modules.items():
            module.register_forward_hook(self._hook(name))

    def _hook(self, name: str):
        def hook(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            self.calls[name].append((inputs[0].detach().clone(), output.detach().clone()))

        return hook

    def clear(self) -> None:
        for calls in self.calls.values():
            calls.clear()


def _run_port(port: types.SimpleNamespace, path: Path, image: np.ndarray, variant: dict) -> dict[str, np.ndarray]:
    """Load the checkpoint as the port's compress.py does, then its forward and compress paths."""
    logger = logging.getLogger("jt-port")
    logger.setLevel(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()):
        args, model, _ = port.utils.load_model(
            str(path), logger, "cpu", model_mode="evaluation", current_args_d=None, prediction=True, strict=False
        )
        model.Hyperprior.hyperprior_entropy_model.build_tables()
    hp = model.Hyperprior
    rec = _Recorder(
        {
            "g_a": model.Encoder,
            "h_a": hp.analysis_net,
            "h_s_mu": hp.synthesis_mu,
            "h_s_sigma": hp.synthesis_std,
            "g_s": model.Generator,
        }
    )
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    if args.normalize_input_image:
        x = x * 2.0 - 1.0
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        x_fwd, q_bpp = model(x, writeout=False)
        rec.clear()
        coded = model.compress(x, silent=True)
        y, z = rec.calls["g_a"][0][1], rec.calls["h_a"][0][1]
        z_hat, mu = rec.calls["h_s_mu"][0]
        sigma = port.maths.LowerBoundToward.apply(rec.calls["h_s_sigma"][0][1], hp.scale_lower_bound)
        rec.clear()
        x_dec = model.decompress(coded)
        y_hat = rec.calls["g_s"][0][0]
    window = (slice(None), slice(None)) if variant["full_reconstruction"] else RECON_CROP
    out["reconstruction"] = np.round(x_dec[0][(slice(None), *window)].numpy() * 65535.0).astype(np.uint16)
    out["forward_vs_decoded_max_abs"] = np.array(float((x_fwd - x_dec).abs().max()), dtype=np.float64)
    out.update(y=y.numpy(), z=z.numpy(), z_hat=z_hat.numpy(), means=mu.numpy(), scales=sigma.numpy())
    out["bits"] = np.array([coded.hyperlatent_bits, coded.latent_bits, coded.total_bits], dtype=np.float64)
    out["q_bpp_forward"] = np.array(float(q_bpp), dtype=np.float64)
    out["attained_bytes"] = np.array([4 * len(coded.hyperlatents_encoded), 4 * len(coded.latents_encoded)])
    if variant.get("discriminator"):
        out.update(_run_discriminator(port, path, x, y_hat, x_dec))
    if variant.get("odd_size"):
        out.update(_run_odd_size(model, args.normalize_input_image))
    return out


def _run_odd_size(model: torch.nn.Module, normalize: bool) -> dict[str, np.ndarray]:
    """The port's coded round trip and bits on a 150 x 200 crop (its own padding: image to 16, y to 4)."""
    from skimage import data

    x = torch.from_numpy(np.ascontiguousarray(data.astronaut()[ODD_CROP])).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        coded = model.compress(x * 2.0 - 1.0 if normalize else x, silent=True)
        x_dec = model.decompress(coded)
    window = x_dec[0][(slice(None), *ODD_WINDOW)].numpy()
    return {
        "odd_reconstruction": np.round(window * 65535.0).astype(np.uint16),
        "odd_bits": np.array(coded.total_bits, dtype=np.float64),
    }


def _run_discriminator(
    port: types.SimpleNamespace, path: Path, x: torch.Tensor, y_hat: torch.Tensor, x_dec: torch.Tensor
) -> dict[str, np.ndarray]:
    """The port's D (eval mode: stored spectral-norm vectors, no power iteration) on x and x_hat."""
    ckpt = torch.load(path, weights_only=True)
    c = y_hat.shape[1]
    disc = port.discriminator.Discriminator(image_dims=(3, *x.shape[-2:]), context_dims=tuple(y_hat.shape[1:]), C=c)
    disc.load_state_dict(ckpt["discriminator_state_dict"])
    disc.eval()
    with torch.no_grad():
        _, real = disc(x, y_hat)
        _, fake = disc(x_dec, y_hat)
    return {"d_logits_real": real.numpy(), "d_logits_fake": fake.numpy()}


def make_variant(
    port: types.SimpleNamespace, name: str, image: np.ndarray, out_dir: Path, work: Path, commit: str
) -> None:
    """Write ``NAME.json`` (recipe, doc), ``NAME.skeleton.pt`` (the port's checkpoint less its weights) and
    ``NAME.npz`` (the port's outputs on ``input.npz``) for one variant."""
    variant = VARIANTS[name]
    workdir = work / name
    args = _port_args(port, variant, workdir, name)
    logger = logging.getLogger("jt-port")
    with contextlib.redirect_stdout(io.StringIO()):
        probe = port.model.Model(args, logger, model_mode="training", model_type=args.model_type)
    recipe = make_recipe(probe, variant["normalize_input_image"])
    del probe
    path = _save_port_checkpoint(port, args, recipe, variant["steps"])
    outputs = _run_port(port, path, image, variant)
    meta = {
        "doc": variant["doc"],
        "formula": FORMULA,
        "port_commit": commit,
        "torch": torch.__version__,
        "input_crop": [[CROP[0].start, CROP[0].stop], [CROP[1].start, CROP[1].stop]],
        "reconstruction_window": None
        if variant["full_reconstruction"]
        else [[RECON_CROP[0].start, RECON_CROP[0].stop], [RECON_CROP[1].start, RECON_CROP[1].stop]],
        "reconstruction_scale": 65535,
        "recipe": recipe,
    }
    if variant.get("odd_size"):
        meta["odd_crop"] = [[ODD_CROP[0].start, ODD_CROP[0].stop], [ODD_CROP[1].start, ODD_CROP[1].stop]]
        meta["odd_window"] = [[ODD_WINDOW[0].start, ODD_WINDOW[0].stop], [ODD_WINDOW[1].start, ODD_WINDOW[1].stop]]
    (out_dir / f"{name}.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    torch.save(_skeleton(path), out_dir / f"{name}.skeleton.pt")
    np.savez_compressed(out_dir / f"{name}.npz", **outputs)
    print(f"{name}: bits {outputs['bits'].tolist()}, checkpoint {path.stat().st_size / 1e6:.1f} MB (not kept)")


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--jt PATH [--out DIR] [--only NAME ...]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jt", type=Path, required=True, help="checkout of the JT port (its src/ and default_config.py)"
    )
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/jt"), help="fixture folder")
    parser.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="variants to make (default: all)")
    parser.add_argument("--commit", default="unknown", help="the port's git commit, recorded in the fixtures")
    args = parser.parse_args(argv)
    port = _import_port(args.jt.resolve())
    from skimage import data

    image = np.ascontiguousarray(data.astronaut()[CROP])
    args.out.mkdir(parents=True, exist_ok=True)
    odd = np.ascontiguousarray(data.astronaut()[ODD_CROP])
    np.savez_compressed(args.out / "input.npz", image=image, odd_image=odd)
    with tempfile.TemporaryDirectory(prefix="jt-fixtures-") as work:
        for name in args.only or VARIANTS:
            make_variant(port, name, image, args.out, Path(work), args.commit)
    return 0


if __name__ == "__main__":
    sys.exit(main())

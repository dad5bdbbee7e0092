"""Make the fixture that pins GC2018's losses to the TF1 port's own loss code (issue #26).

The port (github.com/Justin-Tan/generative-compression, ``model.py`` / ``network.py``) is TensorFlow 1
code. It runs here under TensorFlow 2's ``tf.compat.v1`` graph mode, in a virtual environment of its
own (Python 3.11 has no TensorFlow 1 wheels)::

    python3.11 -m venv /tmp/tf-venv
    /tmp/tf-venv/bin/pip install tensorflow-cpu==2.15.1 tf_slim pandas matplotlib seaborn
    /tmp/tf-venv/bin/python scripts/make_gc2018_fixtures.py --port PATH_TO_PORT_CHECKOUT --commit SHA

``tf.contrib`` is gone from TensorFlow 2; the port uses two of its functions, which moved unchanged to
the ``tf_slim`` package: ``tf.contrib.layers.instance_norm`` (the D's InstanceNorm) and
``tf.contrib.layers.xavier_initializer``. The port's modules are imported from the checkout with ``tf``
bound to ``tf.compat.v1`` plus those two names (:func:`_import_port`); none of the port's code is in
this repository.

What runs is the port's ``Model.__init__`` (its whole graph: encoder, quantizer, generator, multi-scale
D, losses, optimizers), with the configuration of its ``config_train`` except ``sample_noise = False``
(the noise sampler needs ``tf.contrib.distributions``; the losses do not involve it). The image and the
reconstruction are fed directly (``feed_dict`` on ``Model.example`` and ``Model.reconstruction``), so
the losses are the port's on a fixed pair: the port's D with weights set from :data:`RECIPE`
(:func:`uniform_values`, integer arithmetic, so the test rebuilds the same float32 tensors with any numpy),
its ``D_loss``, ``G_loss``, distortion and feature-matching terms (read from the graph's summary ops),
and D's logits at each scale. Written to ``tests/fixtures/gc2018/``: ``port_losses.npz`` and
``port_losses.json`` (the recipe, the port's commit and config).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import types
import zlib
from pathlib import Path

import numpy as np

BASE_SEED = 18040295
"""Mixed with the CRC32 of each variable's name to give its seed (arXiv:1804.02958)."""
SCALES = ("original", "downsampled_2", "downsampled_4")
"""The port's names of its three discriminators (``network.py`` ``multiscale_discriminator``)."""
SIZE = (96, 80)
"""Height and width of the fixed pair: odd feature maps appear at the coarse scales (TF ``same`` padding)."""
CROP = (slice(160, 256), slice(200, 280))
"""The window of scikit-image's astronaut that is ``x``."""


def splitmix64(index: np.ndarray, seed: int) -> np.ndarray:
    """SplitMix64 of ``seed + index``: uint64 words, identical under any numpy version (integer arithmetic)."""
    with np.errstate(over="ignore"):
        z = index.astype(np.uint64) + np.uint64(seed % (1 << 64))
        z = z * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform_values(seed: int, shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
    """float32 values uniform in [low, high) from :func:`splitmix64` (53-bit fractions, then rounded once)."""
    count = int(np.prod(shape))
    unit = (splitmix64(np.arange(count, dtype=np.uint64), seed) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return (low + (high - low) * unit).astype(np.float32).reshape(shape)


def variable_seed(name: str) -> int:
    """The seed of the variable named ``name``."""
    return (BASE_SEED * 1_000_003 + zlib.crc32(name.encode())) % (1 << 62)


def variable_range(name: str, shape: tuple[int, ...]) -> tuple[float, float]:
    """The interval a variable's values are drawn from: Glorot-uniform kernels (the port's initialiser),
    small biases, InstanceNorm scales near 1 and offsets near 0."""
    leaf = name.rsplit("/", 1)[-1].split(":")[0]
    if leaf == "kernel":
        kh, kw, cin, cout = shape
        limit = float(np.sqrt(6.0 / (kh * kw * (cin + cout))))
        return -limit, limit
    if leaf == "gamma":
        return 0.8, 1.2
    return -0.1, 0.1


def make_recipe(shapes: dict[str, tuple[int, ...]]) -> dict[str, dict]:
    """A recipe entry per D variable of the port: seed, shape (TF layout) and interval."""
    recipe = {}
    for name, shape in sorted(shapes.items()):
        low, high = variable_range(name, shape)
        recipe[name] = {"seed": variable_seed(name), "shape": list(shape), "low": low, "high": high}
    return recipe


def regenerate(spec: dict) -> np.ndarray:
    """The float32 array of one recipe entry."""
    return uniform_values(int(spec["seed"]), tuple(spec["shape"]), float(spec["low"]), float(spec["high"]))


def fixed_pair() -> tuple[np.ndarray, np.ndarray]:
    """(x, x_hat), each (1, H, W, 3) float32 in [-1, 1] (the port's image range): x a window of the
    astronaut, x_hat that window blurred (2x2 box, shifted by one pixel) plus uniform noise of +-0.1."""
    from skimage import data

    x = data.astronaut()[CROP].astype(np.float32) / 255.0 * 2.0 - 1.0
    padded = np.pad(x, ((0, 1), (0, 1), (0, 0)), mode="edge")
    blurred = 0.25 * (padded[:-1, :-1] + padded[1:, :-1] + padded[:-1, 1:] + padded[1:, 1:])
    noise = uniform_values(variable_seed("x_hat noise"), x.shape, -0.1, 0.1)
    x_hat = np.clip(blurred + noise, -1.0, 1.0).astype(np.float32)
    return x[None], x_hat[None]


def _import_port(port: Path) -> types.SimpleNamespace:
    """The port's ``config``, ``network`` and ``model`` modules, imported with ``tf`` = ``tf.compat.v1``
    plus ``contrib.layers.{instance_norm, xavier_initializer}`` from tf_slim."""
    import tensorflow as real_tf
    from tf_slim.layers import initializers, normalization

    v1 = real_tf.compat.v1
    v1.disable_v2_behavior()

    class CompatV1(types.ModuleType):
        def __getattr__(self, name: str) -> object:
            return getattr(v1, name)

    shim = CompatV1("tensorflow")
    layers = types.SimpleNamespace(
        instance_norm=normalization.instance_norm, xavier_initializer=initializers.xavier_initializer
    )
    shim.contrib = types.SimpleNamespace(layers=layers)
    sys.path.insert(0, str(port))
    sys.modules["tensorflow"] = shim
    try:
        import config
        import model
        import network
    finally:
        sys.modules["tensorflow"] = real_tf
    return types.SimpleNamespace(tf=v1, config=config, network=network, model=model)


def run_port(port: types.SimpleNamespace, x: np.ndarray, x_hat: np.ndarray) -> tuple[dict, dict, dict]:
    """Build the port's Model, set its D from the recipe, feed (x, x_hat); return (outputs, recipe, config)."""
    tf = port.tf
    recorded: list[tuple] = []
    original = port.network.Network.multiscale_discriminator

    def recording(*args: object, **kwargs: object) -> tuple:
        outputs = original(*args, **kwargs)
        recorded.append(outputs)
        return outputs

    port.network.Network.multiscale_discriminator = staticmethod(recording)

    class Config(port.config.config_train):
        sample_noise = False  # needs tf.contrib.distributions; not part of the losses

    paths = np.array(["unused.png"], dtype=object)
    model = port.model.Model(Config, paths, dataset="cityscapes", name="gc2018_fixture")
    d_vars = [v for v in tf.trainable_variables() if v.name.startswith("discriminator/")]
    shapes = {v.name.split(":")[0]: tuple(v.shape.as_list()) for v in d_vars}
    recipe = make_recipe(shapes)
    graph = tf.get_default_graph()

    def summarised(tag: str) -> object:
        return graph.get_operation_by_name(tag).inputs[1]

    fetches = {
        "D_loss": model.D_loss,
        "G_loss": model.G_loss,
        "distortion_penalty": summarised("distortion_penalty"),
        "feature_matching_loss": summarised("feature_matching_loss"),
    }
    for kind, outputs in zip(("real", "fake"), recorded, strict=True):
        for index, scale in enumerate(SCALES):
            fetches[f"logits_{kind}_{scale}"] = outputs[index]
    with tf.Session() as sess:
        for v in d_vars:
            sess.run(v.initializer)
            v.load(regenerate(recipe[v.name.split(":")[0]]), sess)
        feed = {model.example: x, model.reconstruction: x_hat, model.training_phase: True}
        values = sess.run(fetches, feed_dict=feed)
    names = ("lambda_X", "feature_matching_weight", "use_vanilla_GAN", "multiscale", "use_feature_matching_loss")
    config = {name: getattr(Config, name) for name in names}
    return {k: np.asarray(v, dtype=np.float32) for k, v in values.items()}, recipe, config


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--port PATH [--out DIR] [--commit SHA]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=Path, required=True, help="checkout of Justin-Tan/generative-compression")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/gc2018"), help="fixture folder")
    parser.add_argument("--commit", default="unknown", help="the port's git commit, recorded in the fixture")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    port = _import_port(args.port.resolve())
    x, x_hat = fixed_pair()
    with tempfile.TemporaryDirectory(prefix="gc2018-fixture-") as work:
        os.chdir(work)  # the port's Model writes tensorboard/ into the working directory
        outputs, recipe, config = run_port(port, x, x_hat)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "port_losses.npz", x=x, x_hat=x_hat, **outputs)
    meta = {
        "port_commit": args.commit,
        "tensorflow": port.tf.__version__ if hasattr(port.tf, "__version__") else "unknown",
        "port_config": config,
        "size": list(SIZE),
        "crop": [[CROP[0].start, CROP[0].stop], [CROP[1].start, CROP[1].stop]],
        "recipe": recipe,
    }
    (out / "port_losses.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    shown = {k: float(v) for k, v in outputs.items() if v.ndim == 0}
    print(f"port losses: {shown}; {len(recipe)} D variables")
    return 0


if __name__ == "__main__":
    sys.exit(main())

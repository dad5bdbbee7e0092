"""Make the fixture that pins h_a's RDFT kernels to tensorflow/compression 1.3's own code (issue #26).

The authors' HiFiC (tensorflow/compression ``models/hific``) pins ``tensorflow-compression==1.3``, whose
``SignalConv2D`` trains h_a's kernels through ``layers/parameterizers.py`` ``RDFTParameterizer`` and the matrix of
``ops/spectral_ops.py`` ``irdft_matrix``. Both modules need only ``tensorflow.compat.v1``, numpy and scipy, so
this script imports them from a checkout of tag v1.3 (bypassing the package's ``__init__``, which loads compiled
range-coding ops), in a virtual environment of its own::

    python3.11 -m venv /tmp/tfc-venv
    /tmp/tfc-venv/bin/pip install tensorflow-cpu scipy
    git -C TFC_CLONE archive v1.3 tensorflow_compression | tar -x -C /tmp/tfc-1.3
    /tmp/tfc-venv/bin/python scripts/make_tfc_rdft_fixture.py --tfc /tmp/tfc-1.3 --commit SHA

None of tfc's code is in this repository. Recorded (``tests/fixtures/tfc/rdft.npz`` and ``rdft.json``):
``irdft_matrix`` for the 1-D sizes 2..5 and the 2-D kernels 3x3, 4x4, 5x5 (float64), and, for a 5x5 and a 3x3
kernel, what ``RDFTParameterizer`` makes of a given initial kernel (its variable's initial value and the kernel it
reparameterizes back) and the kernel after each of three steps of TF 1's ``AdamOptimizer`` on the loss
``sum(kernel * G_t)`` (graph mode, as tfc 1.3 runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tfc"
KERNELS = {"k5": (5, 5, 3, 2), "k3": (3, 3, 2, 3)}
"""Kernel shapes in tfc's layout (kh, kw, in, out)."""
ADAM = {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
"""TF 1 ``AdamOptimizer``'s defaults, except the learning rate."""
STEPS = 3
SEED = 20200626


def _import_tfc(root: Path) -> tuple[types.ModuleType, types.ModuleType]:
    """tfc 1.3's ``spectral_ops`` and ``parameterizers`` modules, loaded from the checkout ``root``."""
    base = root / "tensorflow_compression"
    for name, folder in (
        ("tensorflow_compression", base),
        ("tensorflow_compression.python", base / "python"),
        ("tensorflow_compression.python.ops", base / "python" / "ops"),
        ("tensorflow_compression.python.layers", base / "python" / "layers"),
    ):
        package = types.ModuleType(name)
        package.__path__ = [str(folder)]
        sys.modules[name] = package
    from tensorflow_compression.python.layers import parameterizers
    from tensorflow_compression.python.ops import spectral_ops

    return spectral_ops, parameterizers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tfc", type=Path, required=True, help="checkout of tensorflow/compression at tag v1.3")
    parser.add_argument("--commit", required=True, help="the commit of that checkout, recorded in the fixture")
    args = parser.parse_args()
    import tensorflow.compat.v1 as tf

    tf.disable_eager_execution()
    spectral_ops, parameterizers = _import_tfc(args.tfc)
    rng = np.random.default_rng(SEED)
    arrays: dict[str, np.ndarray] = {}
    graph = tf.Graph()
    with graph.as_default():
        matrices = {f"irdft_{n}": spectral_ops.irdft_matrix((n,), dtype=tf.float64) for n in (2, 3, 4, 5)}
        matrices |= {f"irdft_{n}x{n}": spectral_ops.irdft_matrix((n, n), dtype=tf.float64) for n in (3, 4, 5)}
        runs = {}
        for name, shape in KERNELS.items():
            initial = rng.uniform(-0.5, 0.5, shape).astype(np.float32)
            grads = rng.standard_normal((STEPS, *shape)).astype(np.float32)
            arrays[f"{name}_initial"], arrays[f"{name}_grads"] = initial, grads

            def initializer(shape, dtype=None, partition_info=None, value=initial):  # tf calls it so
                return tf.constant(value, dtype=dtype)

            with tf.variable_scope(name):
                kernel = parameterizers.RDFTParameterizer()(  # v1.3 returns the reparameterized kernel itself
                    getter=tf.get_variable, name="kernel", shape=shape, dtype=tf.float32, initializer=initializer
                )
            variable = tf.trainable_variables(scope=name)[0]
            target = tf.placeholder(tf.float32, shape)
            step = tf.train.AdamOptimizer(**ADAM).minimize(tf.reduce_sum(kernel * target), var_list=[variable])
            runs[name] = (variable, kernel, target, step, grads)
        with tf.Session(graph=graph) as session:
            session.run(tf.global_variables_initializer())
            arrays |= session.run(matrices)
            for name, (variable, kernel, target, step, grads) in runs.items():
                arrays[f"{name}_rdft_variable"], arrays[f"{name}_kernel"] = session.run([variable, kernel])
                stepped = []
                for g in grads:
                    session.run(step, {target: g})
                    stepped.append(session.run(kernel))
                arrays[f"{name}_kernel_after_steps"] = np.stack(stepped)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / "rdft.npz", **arrays)
    meta = {
        "source": "tensorflow/compression tag v1.3 (the version models/hific/requirements.txt pins)",
        "commit": args.commit,
        "modules": [
            "tensorflow_compression/python/ops/spectral_ops.py",
            "tensorflow_compression/python/layers/parameterizers.py",
        ],
        "tensorflow": tf.__version__,
        "layout": "kernels (kh, kw, in, out); rdft variable (kh*kw, in*out); grads and kernel_after_steps (step, ...)",
        "kernels": {name: list(shape) for name, shape in KERNELS.items()},
        "adam": ADAM,
        "loss": "sum(kernel * grads[t]) at step t",
        "seed": SEED,
        "arrays": {k: list(v.shape) for k, v in sorted(arrays.items())},
    }
    (OUT / "rdft.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {OUT / 'rdft.npz'} ({len(arrays)} arrays)")


if __name__ == "__main__":
    main()

"""Shared fixtures: seeded RNG, small real photos and tiny models."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def astronaut() -> torch.Tensor:
    """scikit-image's 512x512 astronaut photo as a (1, 3, H, W) float tensor in [0, 1]."""
    from skimage import data

    return torch.from_numpy(data.astronaut().copy()).permute(2, 0, 1).float().div(255.0)[None]


@pytest.fixture(scope="session")
def load_script() -> Callable[[str], ModuleType]:
    """``load_script(name)``: ``scripts/<name>.py`` imported as a module (the scripts are not a package)."""
    scripts = Path(__file__).resolve().parents[1] / "scripts"

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"script_{name}", scripts / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def seeded_tiny() -> Callable[[int], object]:
    """``seeded_tiny(seed)``: the ``tiny`` HiFiC, initialised after ``torch.manual_seed(seed)``, in eval
    mode with its coding tables built (a fresh model on each call)."""
    from hific_lit import HiFiC

    def make(seed: int) -> HiFiC:
        torch.manual_seed(seed)
        model = HiFiC.from_preset("tiny").eval()
        model.update()
        return model

    return make


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Run a module on one torch thread: tiled code is many small ops, and on a busy machine each
    op's thread hand-off costs more than the op itself."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TIERS = {
    "config": {"test_config", "test_config_combinations"},
    "smoke": {
        "test_train",
        "test_lit",
        "test_cli",
        "test_notebook",
        "test_viewer",
        "test_eval_pipeline",
        "test_tiling_memory",
        "test_shards",
        "test_portable",
        "test_jt_import",
        "test_gc2018",
        "test_mric_train",
        "test_readme",
        "test_preemption",
    },
}
"""Test modules by tier; every other module is ``unit``. The budgets of the tiers: pyproject.toml, ``markers``."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test ``unit``, ``config`` or ``smoke`` by its module (see :data:`TIERS`)."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        tier = next((name for name, modules in TIERS.items() if module in modules), "unit")
        item.add_marker(getattr(pytest.mark, tier))

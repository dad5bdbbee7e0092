"""The README as a newcomer meets it: its cheap code blocks run as written, it names every option of the config
groups it lists and only paths that exist, and it stays a ten-minute read.

Run: every ```python block (in order, in one namespace) and every ```sh block (one ``hific`` command a line, run
in-process), in an empty folder. ```bash blocks are shown, not run (training, GPUs, downloads): a cheap example goes
in a ```python or ```sh block."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from hific_lit.cli import main as hific
from hific_lit.config import group_options

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)


def test_the_python_and_sh_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    python, shell = blocks("python"), blocks("sh")
    assert python and shell
    namespace: dict[str, object] = {}
    for code in python:
        exec(compile(code, "README.md", "exec"), namespace)
    for block in shell:
        for line in block.splitlines():
            args = shlex.split(line, comments=True)
            if args:
                assert args[0] == "hific", line
                assert hific(args[1:]) == 0, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.hfc", "photo.png", "tiny.ckpt"]


def test_every_option_of_the_listed_groups_is_named() -> None:
    for group in ("arch", "regime", "stage", "trainer", "logger", "experiment", "hparams_search", "debug"):
        for option in group_options(group):
            assert f"`{option}`" in README, (group, option)


def test_every_path_it_names_exists() -> None:
    root = Path(__file__).resolve().parents[1]
    paths = re.findall(r"[`(]((?:hific_lit|conf|docs|scripts|tests|notebooks)/[\w./-]*)[`)]", README)
    assert len(paths) > 30
    missing = [path for path in paths if not (root / path).exists()]
    assert not missing


def test_the_readme_is_at_most_250_lines() -> None:
    assert len(README.splitlines()) <= 250

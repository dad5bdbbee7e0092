"""Command-line error reporting shared by the package's entry points."""

from __future__ import annotations

import pytest

from hific_lit.errors import NOTHING_RAN, OK, SOME_FAILED, DatasetError, exit_status


def test_exit_status_reports_hific_errors_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_status(lambda: print("fine"), "prog") == OK == 0
    assert capsys.readouterr().out == "fine\n"
    assert exit_status(lambda: SOME_FAILED, "prog") == 1  # the action reported its failed inputs itself

    def fail() -> None:
        raise DatasetError("data/kodak: 3 of 24 images missing")

    assert exit_status(fail, "prog") == NOTHING_RAN == 2
    assert capsys.readouterr().err == "prog: error: data/kodak: 3 of 24 images missing\n"


def test_ctrl_c_is_one_line_and_status_130(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    assert exit_status(interrupted, "prog") == 130
    assert capsys.readouterr().err == "prog: interrupted\n"


def test_exit_status_lets_programming_errors_through() -> None:
    with pytest.raises(ZeroDivisionError):
        exit_status(lambda: 1 / 0, "prog")

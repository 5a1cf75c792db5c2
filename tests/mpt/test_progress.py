"""Tests of mpt/progress.py: shown only for long inputs on a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from mpt.progress import StageProgress


def console(*, terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=terminal, width=80), buffer


def test_long_input_on_a_terminal_shows_both_stages() -> None:
    con, buffer = console(terminal=True)
    with StageProgress(con) as stages:
        stages.decoding(30.0, 120.0)
        assert stages.active
        stages.decoding(120.0, 120.0)
        stages.stage("Analysing", 120.0)
    assert not stages.active
    out = buffer.getvalue()
    assert "Decoding" in out
    assert "Analysing" in out


def test_short_input_shows_nothing() -> None:
    con, buffer = console(terminal=True)
    with StageProgress(con) as stages:
        stages.decoding(10.0, 10.0)
        stages.stage("Analysing", 10.0)
        assert not stages.active
    assert buffer.getvalue() == ""


def test_length_unknown_until_decoded_past_threshold() -> None:
    con, _ = console(terminal=True)
    with StageProgress(con, threshold_s=60.0) as stages:
        stages.decoding(59.0, None)
        assert not stages.active
        stages.decoding(61.0, None)
        assert stages.active


def test_not_a_terminal_shows_nothing() -> None:
    con, buffer = console(terminal=False)
    with StageProgress(con) as stages:
        stages.decoding(300.0, 600.0)
        stages.stage("Analysing", 600.0)
        assert not stages.active
    assert buffer.getvalue() == ""


def test_without_a_console_nothing_is_shown() -> None:
    with StageProgress(None) as stages:
        stages.decoding(30.0, 600.0)
        stages.stage("Analysing", 600.0)
        assert not stages.active

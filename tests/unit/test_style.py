"""Colour only on a terminal (NO_COLOR, --no-color, TERM=dumb respected); the apply progress bar."""

from __future__ import annotations

import io

import pytest
from builders import compute, one_bridge

from netplan_lite.render import plans as render
from netplan_lite.engine.apply import ActionResult
from netplan_lite.render.progress import ERASE_LINE, Progress
from netplan_lite.render.style import Style


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def colour_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


def test_colour_on_a_terminal_only():
    assert Style.for_stream(Terminal()).enabled
    assert not Style.for_stream(io.StringIO()).enabled


@pytest.mark.parametrize("env", [("NO_COLOR", "1"), ("TERM", "dumb")])
def test_environment_turns_colour_off(monkeypatch, env):
    monkeypatch.setenv(*env)
    assert not Style.for_stream(Terminal()).enabled


def test_empty_no_color_does_not_count(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: present and not empty
    assert Style.for_stream(Terminal()).enabled


def test_no_color_flag():
    assert not Style.for_stream(Terminal(), no_color=True).enabled


def test_plan_markers_are_coloured_and_plain_text_has_no_escapes():
    planned = compute(one_bridge("a"), [])
    coloured, plain = render.plan_text(planned, Style(True)), render.plan_text(planned)
    assert "\033[32m+\033[0m namespace a" in coloured
    assert "\033" not in plain
    assert [line for line in plain.splitlines()] == [
        line.replace("\033[32m", "").replace("\033[1m", "").replace("\033[0m", "") for line in coloured.splitlines()
    ]


def results(count: int) -> list[ActionResult]:
    actions = compute(one_bridge(*[f"n{i}" for i in range(count)]), []).plan.actions
    return [ActionResult(a, 0.001) for a in actions]


def test_progress_bar_when_the_actions_do_not_fit_on_the_screen(monkeypatch):
    monkeypatch.setattr("shutil.get_terminal_size", lambda: __import__("os").terminal_size((80, 5)))
    out = Terminal()
    progress = Progress(out, Style(True), terminal=True)
    done = results(3)
    progress.start(len(done))
    for result in done:
        progress(result)
    progress.finish()
    text = out.getvalue()
    assert f"] 1/{len(done)} actions, " in text and "s left" in text
    assert text.endswith(ERASE_LINE)


def test_no_bar_in_a_pipe_or_when_the_plan_fits(monkeypatch):
    monkeypatch.setattr("shutil.get_terminal_size", lambda: __import__("os").terminal_size((80, 24)))
    for terminal, count in ((False, 40), (True, 1)):
        out = io.StringIO()
        progress = Progress(out, Style(False), terminal=terminal)
        done = results(count)
        progress.start(len(done))
        for result in done:
            progress(result)
        assert "actions, " not in out.getvalue() and "\033" not in out.getvalue()
        assert len(out.getvalue().splitlines()) == len(done)

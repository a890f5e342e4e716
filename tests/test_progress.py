"""Progress in a log is whole short lines; on a terminal it is tqdm's bar; a stage ends with its duration."""

from __future__ import annotations

import io
import logging
import re
import sys

import pytest
from tqdm import tqdm

import lama.pipeline.stage as stage
from lama.progress import (
    INTERVAL_VARIABLE,
    MAX_LINE,
    MODE_VARIABLE,
    ProgressLines,
    format_duration,
    progress_bar,
    write_line,
)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _auto_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODE_VARIABLE, raising=False)
    monkeypatch.delenv(INTERVAL_VARIABLE, raising=False)


def _lines(text: str) -> list[str]:
    assert "\r" not in text and text.endswith("\n"), repr(text)
    lines = text.splitlines()
    assert all(0 < len(line) <= MAX_LINE for line in lines), lines
    return lines


@pytest.mark.parametrize("interval", ["0", None])
def test_a_loop_in_a_log_writes_short_whole_lines_from_the_first_to_n_of_n(
        monkeypatch: pytest.MonkeyPatch, interval: str | None) -> None:
    if interval is not None:
        monkeypatch.setenv(INTERVAL_VARIABLE, interval)
    stream = io.StringIO()
    seen = list(progress_bar(range(7), desc="predict", unit="img", file=stream))
    lines = _lines(stream.getvalue())
    assert seen == list(range(7))
    assert lines[0] == "predict: 0/7 img (0%)"
    assert re.fullmatch(r"predict: 7/7 img \(100%\) · done in \d+ s", lines[-1]), lines[-1]
    # every update once the interval is 0; only the first and the last within the default 30 s
    assert len(lines) == (2 + 7 if interval == "0" else 2), lines


def test_a_line_carries_the_resumed_start_the_eta_and_the_postfix_cut_to_length(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INTERVAL_VARIABLE, "0")
    stream = io.StringIO()
    bar = progress_bar(total=1200, initial=300, desc="train", unit="step", dynamic_ncols=True, file=stream)
    bar.set_postfix({"G": "0.123", "D": "0.456"}, refresh=False)
    bar.update(300)
    bar.set_postfix_str("x" * 500, refresh=False)
    bar.update(300)
    bar.close()
    first, middle, long, last = _lines(stream.getvalue())
    assert first == "train: 300/1200 steps (25%)"
    assert re.fullmatch(r"train: 600/1200 steps \(50%\) · \S+ s elapsed, ETA \S+ s · G=0\.123, D=0\.456", middle)
    assert long.startswith("train: 900/1200 steps (75%) · ") and len(long) == MAX_LINE
    assert re.match(r"train: 900/1200 steps \(75%\) · stopped after \S+ s · xxx", last)


def test_unknown_totals_and_byte_counts_read_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INTERVAL_VARIABLE, "0")
    stream = io.StringIO()
    with progress_bar(desc="index a.tar", unit="file", leave=False, file=stream) as bar:
        bar.update(3)
    with progress_bar(total=3 * 1024**2, desc="weights", unit="B", unit_scale=True, unit_divisor=1024,
                      file=stream) as bar:
        bar.update(3 * 1024**2)
    lines = _lines(stream.getvalue())
    assert lines[0] == "index a.tar: 0 files" and lines[2].startswith("index a.tar: 3 files · done in ")
    assert lines[3] == "weights: 0.00B/3.00MB (0%)" and lines[-1].startswith("weights: 3.00MB/3.00MB (100%) · done")


def test_a_disabled_loop_writes_nothing() -> None:
    stream = io.StringIO()
    assert list(progress_bar(range(3), desc="x", disable=True, file=stream)) == [0, 1, 2]
    assert stream.getvalue() == ""


def test_a_message_between_lines_stays_a_line_of_its_own() -> None:
    stream = io.StringIO()
    bar = progress_bar(total=2, desc="predict", unit="img", file=stream)
    bar.update()
    write_line("error: a.png: unreadable", file=stream)
    bar.update()
    bar.close()
    lines = _lines(stream.getvalue())
    assert lines[:2] == ["predict: 0/2 img (0%)", "error: a.png: unreadable"]
    assert lines[2].startswith("predict: 2/2 img (100%) · done in ") and len(lines) == 3


def test_a_terminal_gets_tqdms_bar() -> None:
    terminal = FakeTerminal()
    bar = progress_bar(range(5), desc="masks", unit="img", file=terminal)
    assert type(bar) is tqdm
    list(bar)
    assert "\r" in terminal.getvalue() and "5/5" in terminal.getvalue()


@pytest.mark.parametrize(("forced", "stream", "kind"), [("bar", io.StringIO(), tqdm),
                                                         ("lines", FakeTerminal(), ProgressLines)])
def test_the_environment_forces_a_mode(monkeypatch: pytest.MonkeyPatch, forced: str, stream: io.StringIO,
                                       kind: type) -> None:
    monkeypatch.setenv(MODE_VARIABLE, forced)
    bar = progress_bar(total=1, file=stream)
    bar.close()
    assert type(bar) is kind


@pytest.mark.parametrize(("variable", "value"), [(MODE_VARIABLE, "fancy"), (INTERVAL_VARIABLE, "-1"),
                                                 (INTERVAL_VARIABLE, "soon")])
def test_a_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        progress_bar(total=1, file=io.StringIO())


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (0.4, "0 s"), (2.6, "3 s"), (41, "41 s"), (59.6, "1 min"), (192, "3 min 12 s"), (3599.6, "1 h"),
    (3720, "1 h 2 min"), (3959, "1 h 5 min"), (90061, "25 h 1 min"), (-1, "0 s"), (float("nan"), "?"),
    (float("inf"), "?"),
])
def test_durations_read_as_people_write_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# -- the stage's closing line --

@pytest.fixture
def stage_call(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """Run ``run_stage`` in-process on a fake params and return (exit status, stderr lines)."""
    monkeypatch.setattr(stage, "load_params", lambda: "params")
    monkeypatch.setattr(sys, "argv", ["stages/demo.py", "lama", "thick"])
    monkeypatch.delenv("RANK", raising=False)
    level = logging.getLogger("lama").level

    def call(body) -> tuple[int, list[str]]:
        with pytest.raises(SystemExit) as exiting:
            stage.run_stage("demo", body)
        return exiting.value.code, capsys.readouterr().err.splitlines()

    yield call
    logging.getLogger("lama").setLevel(level)


def test_a_stage_ends_with_one_line_of_its_duration(stage_call) -> None:
    status, lines = stage_call(lambda params: print("summary", file=sys.stderr))
    assert status == 0 and lines[0] == "summary"
    assert len(lines) == 2 and re.fullmatch(r"stage demo lama thick: done in \d+ s", lines[1]), lines


def _bad_value(params: object) -> None:
    raise ValueError("runs.lama: no such run")


def _crash(params: object) -> None:
    raise RuntimeError("boom")


@pytest.mark.parametrize(("body", "expected"), [(lambda params: 1, 1), (_bad_value, 2), (_crash, 1)])
def test_a_failed_stage_says_so_last(stage_call, body, expected: int) -> None:
    status, lines = stage_call(body)
    assert status == expected
    assert re.fullmatch(rf"stage demo lama thick: failed after \d+ s \(exit status {expected}\)", lines[-1])
    assert sum("demo lama thick" in line for line in lines) == 1
    if body is _bad_value:
        assert lines == ["stage demo: runs.lama: no such run", lines[-1]]
    if body is _crash:
        assert lines[0].startswith("Traceback") and "RuntimeError: boom" in lines[-2]


def test_only_the_first_training_process_reports_success(stage_call, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    assert stage_call(lambda params: None) == (0, [])

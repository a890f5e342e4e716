"""Progress of long loops, readable both on a terminal and in a log file.

On a terminal (the stream is a TTY) a loop gets tqdm's bar, redrawn in place. Anywhere else (DVC's run.log, CI,
``| cat``) an in-place bar is one line rewritten with carriage returns, which a log keeps as thousands of
characters; there the loop gets a short, newline-terminated line instead: the first at the start, then at most one
every ``LAMA_PROGRESS_INTERVAL`` seconds, and the last when the loop ends::

    train: 300/1200 steps (25%) · 41 s elapsed, ETA 2 min 3 s · G=0.123, D=0.456

Environment:
    ``LAMA_PROGRESS=bar|lines`` forces one mode whatever the stream is (``auto``, the default, asks ``isatty()``).
    ``LAMA_PROGRESS_INTERVAL=SECONDS`` sets the least time between two lines (default 30; 0 writes every update).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable
from typing import IO, Any

from tqdm import tqdm
from tqdm.utils import disp_trim

MODE_VARIABLE = "LAMA_PROGRESS"
INTERVAL_VARIABLE = "LAMA_PROGRESS_INTERVAL"
MODES = ("auto", "bar", "lines")
DEFAULT_INTERVAL = 30.0  # seconds between two progress lines in a log: a few lines a minute at most
MAX_LINE = 199  # characters; a longer postfix is cut


def format_duration(seconds: float) -> str:
    """A duration as a log line says it: "45 s", "3 min 12 s", "1 h 2 min" (whole seconds, then cut to the two
    largest units; "?" for a time that is not a number)."""
    if not math.isfinite(seconds):
        return "?"
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def progress_bar(iterable: Iterable[Any] | None = None, *, desc: str | None = None, total: float | None = None,
                 unit: str = "it", initial: float = 0, disable: bool = False, file: IO[str] | None = None,
                 **options: Any) -> tqdm:
    """A tqdm bar on a terminal, progress lines elsewhere; takes tqdm's arguments and is used like tqdm.

    ``file`` defaults to stderr, read when called (so a redirected stderr is honoured)."""
    stream = sys.stderr if file is None else file
    arguments = {"desc": desc, "total": total, "unit": unit, "initial": initial, "disable": disable, "file": stream,
                 **options}
    if _mode(stream) == "bar":
        return tqdm(iterable, **arguments)
    return ProgressLines(iterable, interval=_interval(), **arguments)


def write_line(text: str, file: IO[str] | None = None) -> None:
    """Print ``text`` as its own line without tearing a bar that is on screen (tqdm clears and redraws it)."""
    tqdm.write(text, file=sys.stderr if file is None else file)


class ProgressLines(tqdm):
    """tqdm's counting, rate and throttling with a different display: whole lines instead of a bar redrawn with
    carriage returns. tqdm's own non-TTY options (``ncols``, ``ascii``, ``mininterval``) still write ``\\r``, so
    only ``display`` (what a refresh shows), ``clear`` and ``close`` are replaced."""

    def __init__(self, iterable: Iterable[Any] | None = None, *, interval: float = DEFAULT_INTERVAL,
                 **options: Any) -> None:
        self._interval = interval
        self._last_line: float | None = None  # when the last line was written
        for terminal_only in ("dynamic_ncols", "mininterval", "maxinterval"):  # lines have no width and their
            options.pop(terminal_only, None)  # own pace, ``interval``
        super().__init__(iterable, mininterval=interval, maxinterval=interval, **options)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        """One line, unless the last one is younger than the interval (a refresh can come from anywhere: an update,
        tqdm's monitor thread, ``tqdm.write``)."""
        if msg == "":  # tqdm clearing its bar: no line was drawn in place, so none is cleared
            return False
        now = self._time()
        if self._last_line is not None and now - self._last_line < self._interval:
            return False
        self._write(self._line(final=False))
        return True

    def clear(self, nolock: bool = False) -> None:
        """Nothing to clear: every line is already finished."""

    def close(self) -> None:
        """The last line (the count reached and the time it took), then tqdm's own cleanup."""
        if not getattr(self, "disable", True) and hasattr(self, "start_t"):
            with self._lock:
                self._write(self._line(final=True))
            self.leave = False  # tqdm would end a kept bar with an extra newline; the line is already ended
        super().close()

    def _write(self, line: str) -> None:
        self.fp.write(disp_trim(line, MAX_LINE) + "\n")
        getattr(self.fp, "flush", lambda: None)()
        self._last_line = self._time()

    def _line(self, final: bool) -> str:
        state = self.format_dict
        n, total, elapsed = state["n"], state["total"], state["elapsed"]
        desc = (state["prefix"] or "").removesuffix(": ")
        line = f"{desc}: " if desc else ""
        line += f"{self._amount(n)}/{self._amount(total)}" if total else self._amount(n)
        if state["unit"] not in ("", "it") and not self.unit_scale:
            line += f" {_plural(state['unit'], n)}"
        if total:
            line += f" ({math.floor(100 * n / total)}%)"
        if final:
            line += f" · {'done in' if total is None or n >= total else 'stopped after'} {format_duration(elapsed)}"
        elif elapsed:
            line += f" · {format_duration(elapsed)} elapsed"
            rate = state["rate"] or ((n - state["initial"]) / elapsed if n > state["initial"] else None)
            if total and rate and n < total:
                line += f", ETA {format_duration((total - n) / rate)}"
        if state["postfix"]:
            line += f" · {state['postfix']}"
        return line

    def _amount(self, value: float) -> str:
        """``1200``; with ``unit_scale`` a scaled number and the unit, ``12.3MB``, as tqdm writes it."""
        if self.unit_scale:
            return tqdm.format_sizeof(value, self.unit, self.unit_divisor)
        return f"{value:g}" if isinstance(value, float) else str(value)


def _plural(unit: str, count: float) -> str:
    """"steps", "files"; abbreviations ("img", "B") stay as they are."""
    return unit + "s" if count != 1 and len(unit) > 3 and unit.isalpha() and not unit.endswith("s") else unit


def _mode(stream: IO[str]) -> str:
    mode = os.environ.get(MODE_VARIABLE, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"{MODE_VARIABLE}={mode!r}: expected one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    isatty = getattr(stream, "isatty", None)
    return "bar" if isatty is not None and isatty() else "lines"


def _interval() -> float:
    text = os.environ.get(INTERVAL_VARIABLE, "").strip()
    if not text:
        return DEFAULT_INTERVAL
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < math.inf:
        raise ValueError(f"{INTERVAL_VARIABLE}={text!r}: expected a number of seconds >= 0")
    return seconds

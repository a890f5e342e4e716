"""Stop signals in the sweep: SIGINT/SIGTERM stop a worker cleanly, wherever they arrive.

A stop signal raises :class:`~lama.signals.Interrupted` only inside :func:`interruptible` blocks: the waits and the
objective, where the worker holds no database connection. Anywhere else the sweep's handler only notes it, and
:func:`check` raises it at the worker's next safe point (every loop of the worker, and the start of each
interruptible block), so a claimed trial is always recorded, never left running for its heartbeat to fail it.
Raised in the middle of a storage call, inside SQLAlchemy, the exception could leave a SQLite connection holding
its lock while the traceback keeps it alive, and the worker's next write (recording the trial, giving back its
lease) would wait for that lock until the database's timeout. Storage calls inside the objective (its
intermediate reports) are :func:`protected` for the same reason. Inside a training the training's own handler
takes the signal, saves and returns (the objective then raises
:class:`~lama.sweep.objective.TrialInterruptedError`). A signal during the handling of an earlier one is raised
again where raising is allowed: a second Ctrl-C cuts the MLflow bookkeeping short.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from lama.signals import Interrupted, on_stop_signals

log = logging.getLogger(__name__)


class _Guard:
    """The handler's state: the signal not raised yet, and whether the main thread may be interrupted now."""

    def __init__(self) -> None:
        self.pending: int | None = None
        self.armed = False

    def handle(self, signum: int) -> None:
        log.warning("received %s: stopping this worker", signal.Signals(signum).name)
        self.pending = signum
        if self.armed:
            self.raise_pending()

    def raise_pending(self) -> None:
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)


_guards: list[_Guard] = []  # the installed handler's state; nested uses share it


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Handle SIGINT/SIGTERM as described above while the block runs (nested uses share the outer handler; off
    the main thread nothing changes); the previous handlers come back after. A signal that arrived after the
    last safe point is raised when the block ends: the command still stops with 128 + N."""
    if _guards:
        yield
        return
    guard = _Guard()
    _guards.append(guard)
    try:
        with on_stop_signals(guard.handle):
            yield
            guard.raise_pending()
    finally:
        _guards.pop()


@contextmanager
def _armed(armed: bool) -> Iterator[None]:
    guard = _guards[-1] if _guards else None
    if guard is None:
        yield
        return
    before, guard.armed = guard.armed, armed
    try:
        yield
    finally:
        guard.armed = before


@contextmanager
def protected() -> Iterator[None]:
    """A block inside an interruptible one that a stop signal does not cut short (a storage call); the signal
    waits for the next :func:`check`."""
    with _armed(False):
        yield


@contextmanager
def interruptible(check_first: bool = True) -> Iterator[None]:
    """A block that a stop signal may cut short: an objective, a wait; it must hold no database connection. A
    signal that arrived before it is raised first, unless ``check_first`` is false."""
    if check_first:
        check()
    with _armed(True):
        yield


def check() -> None:
    """Raise :class:`~lama.signals.Interrupted` for a stop signal that arrived in a protected block."""
    if _guards:
        _guards[-1].raise_pending()


def interruption(error: KeyboardInterrupt) -> Interrupted:
    """``error`` as the stop signal it stands for: a plain KeyboardInterrupt is a SIGINT."""
    return error if isinstance(error, Interrupted) else Interrupted(signal.SIGINT)

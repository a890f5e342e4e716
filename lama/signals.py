"""How a long command stops: the stop signals, what they become, and how worker processes take them.

Schedulers (``timeout``, Slurm, Kubernetes) and Ctrl-C signal the whole process group, so worker processes get
the signal together with their parent. Workers ignore the stop signals and leave the decision to the parent, which
keeps what it finished (a training state, a journal) and exits with 128 + N. Workers also die with their parent,
so a SIGKILLed command leaves none of them running.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived. A ``KeyboardInterrupt``, so per-item ``except Exception`` handlers let it through and
    code that already treats Ctrl-C as a stop (tracking ends a run KILLED) treats SIGTERM the same way."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"interrupted by {self.name}")

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by signal N."""
        return 128 + self.signum


@contextmanager
def on_stop_signals(handler: Callable[[int], Any]) -> Iterator[None]:
    """Call ``handler(signum)`` on each stop signal while inside; the previous handlers come back on leaving.

    Off the main thread nothing changes: Python lets only the main thread set handlers."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, lambda signum, _frame: handler(signum))
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _raise_interrupted(signum: int) -> NoReturn:
    raise Interrupted(signum)


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """A stop signal raises :class:`Interrupted` in the main thread: for commands whose finished work is already
    on disk (journaled or written atomically), so unwinding is all that stopping takes."""
    with on_stop_signals(_raise_interrupted):
        yield


@contextmanager
def stop_requests() -> Iterator[dict[str, int]]:
    """A stop signal only sets ``received["signal"]``: for loops that must finish a step and save before they stop."""
    received: dict[str, int] = {}

    def note(signum: int) -> None:
        received["signal"] = signum
        log.warning("received %s: stopping after the current step", signal.Signals(signum).name)

    with on_stop_signals(note):
        yield received


def worker_initializer() -> Callable[..., None]:
    """The initializer of worker processes started by this process: ``ProcessPoolExecutor(initializer=...)`` or
    ``DataLoader(worker_init_fn=...)`` (which passes the worker id, ignored). Picklable, for any start method."""
    return functools.partial(_start_worker, os.getpid())


def _start_worker(parent: int, *_ignored: object) -> None:
    ignore_stop_signals_but_from(parent)
    die_with_parent(parent)


def ignore_stop_signals_but_from(parent: int) -> None:
    """Drop the stop signals that reach this worker through its process group; obey those its parent sends.

    A parent stops its workers with SIGTERM too (``multiprocessing`` terminates daemonic workers at exit, torch's
    DataLoader those that do not join), so ignoring the signal outright would leave that parent waiting forever.
    Python's handlers do not see who sent a signal, so the signals are blocked and a thread takes them with
    ``sigwaitinfo``, which does (blocked signals are queued whatever their handler, so no handler is changed).
    Where it is missing (macOS) the signals are simply ignored.
    """
    if not hasattr(signal, "sigwaitinfo"):
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # threads started later inherit the mask
    threading.Thread(target=_take_stop_signals, args=(parent,), name="stop-signals", daemon=True).start()


def _take_stop_signals(parent: int) -> None:
    while True:
        info = signal.sigwaitinfo(STOP_SIGNALS)
        if info.si_pid == parent:
            # An orderly end the parent asked for, as torch's own worker handler treats it: exit status 0, so that
            # the parent's check of its workers does not report a failure.
            os._exit(0)


def die_with_parent(parent: int) -> None:
    """End this process when ``parent`` (the process that started it) dies, even by SIGKILL.

    Neither ``concurrent.futures`` nor ``multiprocessing`` nor torch's DataLoader offers this: pool workers wait on
    their task queue forever once the parent is gone (they hold its write end themselves), and DataLoader workers
    only poll ``getppid`` every few seconds between batches. Linux's parent-death signal is one ``prctl`` call, made
    through ctypes rather than a compiled dependency (python-prctl) for it. The signal follows the *thread* that
    started the worker; pools and loaders here start theirs from the main thread. Checking ``getppid`` after the
    call covers a parent that died before it, and is all other systems get.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0), ctypes.c_ulong(0),
                   ctypes.c_ulong(0))
    if os.getppid() != parent:
        os._exit(1)  # the parent is already gone: nobody would collect this worker's results

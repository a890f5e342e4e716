"""Stop signals as schedulers send them: the command stops with one line and 128 + N, its workers take no signal
from the process group but do end with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from lama.cli import main
from lama.masks.eval_set import JOURNAL, MANIFEST, _Job
from lama.signals import Interrupted, stop_requests, stop_signals_raise, worker_initializer
from tests.conftest import REPO


def _signal_from_elsewhere(pid: int, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` from another process, as ``timeout`` or a scheduler does (not from the worker's parent)."""
    subprocess.run(["kill", f"-{int(sig)}", str(pid)], check=True)


def _pid() -> int:
    return os.getpid()


def test_pool_workers_ignore_a_stop_signal_from_outside_and_keep_working() -> None:
    with ProcessPoolExecutor(max_workers=1, initializer=worker_initializer()) as pool:
        worker = pool.submit(_pid).result()
        for sig in (signal.SIGTERM, signal.SIGINT):
            _signal_from_elsewhere(worker, sig)
        time.sleep(0.3)
        assert pool.submit(_pid).result() == worker  # the same worker, alive, still taking work


class _Numbers(Dataset):
    def __len__(self) -> int:
        return 40

    def __getitem__(self, index: int) -> torch.Tensor:
        time.sleep(0.01)
        return torch.tensor(index)


def test_loader_workers_survive_a_group_sigterm_that_used_to_end_the_loader() -> None:
    loader = DataLoader(_Numbers(), batch_size=4, num_workers=2, worker_init_fn=worker_initializer())
    batches = iter(loader)
    seen = next(batches).tolist() + next(batches).tolist()  # one batch from each worker: both have started
    for worker in batches._workers:  # the pids are nowhere else
        _signal_from_elsewhere(worker.pid)
    time.sleep(0.3)
    for batch in batches:
        seen += batch.tolist()
    assert seen == list(range(40))


def test_a_process_with_live_loader_workers_exits_promptly_and_quietly() -> None:
    """At exit ``multiprocessing`` stops daemonic workers with SIGTERM: a worker must obey its own parent."""
    child = (
        "import torch\n"
        "from torch.utils.data import DataLoader\n"
        "from lama.signals import worker_initializer\n"
        "loader = DataLoader(list(range(64)), batch_size=4, num_workers=2, persistent_workers=True,\n"
        "                    worker_init_fn=worker_initializer())\n"
        "batches = iter(loader)\n"
        "next(batches)\n"
        "print('exiting', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", child], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "exiting\n", done.stderr
    assert "Traceback" not in done.stderr and "killed by signal" not in done.stderr


def test_stop_requests_note_the_signal_and_restore_the_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with stop_requests() as received:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
    assert received == {"signal": signal.SIGTERM}
    assert signal.getsignal(signal.SIGTERM) is before
    with pytest.raises(Interrupted) as stopped, stop_signals_raise():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    assert (stopped.value.name, stopped.value.exit_code) == ("SIGTERM", 143)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_a_command_with_one_line_keeping_its_work(
    sig: int, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for index in range(4):
        Image.fromarray(np.full((256, 256, 3), index * 40, np.uint8)).save(images / f"{index}.png")
    arguments = ["masks", "thin_256", str(images), str(tmp_path / "out"), "-q"]
    original = _Job.__call__
    calls = []

    def signalled_on_the_third(job: _Job, source: Path) -> object:
        calls.append(source)
        if len(calls) == 3:
            os.kill(os.getpid(), sig)
        return original(job, source)

    monkeypatch.setattr(_Job, "__call__", signalled_on_the_third)
    assert main(arguments) == 128 + sig
    err = capsys.readouterr().err
    assert err.splitlines() == [f"lama masks: interrupted by {signal.Signals(sig).name}; finished images are "
                                f"journaled in {tmp_path / 'out'}; rerun the same command to continue"]
    assert len((tmp_path / "out" / JOURNAL).read_text().splitlines()) >= 3  # identity + the finished images
    assert not (tmp_path / "out" / MANIFEST).exists()
    monkeypatch.setattr(_Job, "__call__", original)
    assert main(arguments) == 0
    assert "4 pairs from 4 images" in capsys.readouterr().err

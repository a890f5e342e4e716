"""Training as users launch it: two CPU processes under ``accelerate launch``, a real SIGKILL and resume, and a
SIGTERM to the process group that saves before exiting. Slow: each case starts fresh Python processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from lama.models.discriminator import NLayerDiscriminator
from lama.models.generators import build_generator
from lama.models.model_dir import InpaintingModel, save_model_dir
from tests.train.conftest import REPO, TINY_GENERATOR, tiny_config

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _write_config(path: Path, config: dict) -> Path:
    OmegaConf.save(OmegaConf.create(config), path)
    return path


def _train(config_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lama.train", str(config_path)], env=_env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines() if line.strip()]


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the run ended (rc {process.returncode}) before {what}: {process.stdout.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _latest(run: Path) -> str | None:
    pointer = run / "state" / "latest"
    return pointer.read_text().strip() if pointer.is_file() else None


def _init_model_dir(path: Path) -> Path:
    """A model dir of seeded weights (generator and discriminator) for a fine-tuning to start from."""
    torch.manual_seed(7)
    generator = InpaintingModel(build_generator(TINY_GENERATOR), TINY_GENERATOR)
    discriminator = NLayerDiscriminator(3, ndf=8, n_layers=3)
    save_model_dir(generator, path, discriminator=discriminator,
                   discriminator_config={"kind": "pix2pixhd_nlayer", "input_nc": 3, "ndf": 8, "n_layers": 3})
    return path


@pytest.mark.parametrize("kind", ["from-scratch", "fine-tuning"])
def test_a_run_killed_with_sigkill_resumes_and_its_curve_continues_exactly(
    tmp_path: Path, embedded_data: Path, kind: str
) -> None:
    """A fine-tuning (init, 2 micro-batches, warm-up and cosine, frozen encoder) resumes its state: a resumed run
    that re-initialised from the init model, or restarted the schedule, would leave the whole run's curve."""
    tuning = {}
    if kind == "fine-tuning":
        tuning = {"init": str(_init_model_dir(tmp_path / "init")), "accumulate": 2, "freeze": ["encoder"]}

    def config(name: str) -> Path:
        body = tiny_config(embedded_data, tmp_path / name, data={"val": None},
                           train={"steps": 12, "save_every": 3, "log_every": 1, "sample_every": 100, **tuning},
                           tracking={"enabled": False})
        if tuning:
            body["optim"] = {"schedule": "cosine", "warmup_steps": 3}
        return _write_config(tmp_path / f"{name}.yaml", body)

    whole = _train(config("whole"))
    killed = _train(config("killed"))
    _wait_for(lambda: _latest(tmp_path / "killed") is not None, killed, "the first saved state")
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    kill_state = _latest(tmp_path / "killed")
    assert kill_state is not None and kill_state < "step-000000012"  # killed mid-run, not after it
    resumed = _train(config("killed"))
    output = resumed.communicate()[0]
    assert resumed.returncode == 0, output
    assert whole.wait() == 0, whole.stdout.read()
    assert "finished at step 12" in output

    expected, got = _log(tmp_path / "whole"), _log(tmp_path / "killed")
    assert [r["step"] for r in got] == list(range(1, 13))  # each step once: the killed stretch was replaced
    for one, two in zip(expected, got, strict=True):
        for key in ("train/gen/total", "train/discr/total", "train/gen/l1", "train/discr/r1", "train/lr_factor"):
            assert two[key] == pytest.approx(one[key], rel=1e-6), (one["step"], key)
    final = [torch.load(path / "models" / "last.ckpt", weights_only=True)["state_dict"]
             for path in (tmp_path / "whole", tmp_path / "killed")]
    for key, value in final[0].items():
        assert torch.allclose(value.float(), final[1][key].float(), rtol=1e-5, atol=1e-6), key


def test_sigterm_to_the_process_group_saves_a_final_state_and_the_run_continues_from_it(
    tmp_path: Path, embedded_data: Path
) -> None:
    """As ``timeout``, Slurm and Kubernetes stop a job: SIGTERM to the whole group, DataLoader workers included."""
    body = tiny_config(embedded_data, tmp_path / "run", data={"val": None},
                       train={"steps": 400, "save_every": 1000, "log_every": 1, "sample_every": 1000},
                       tracking={"enabled": False})
    body["data"]["loader"]["num_workers"] = 2
    path = _write_config(tmp_path / "run.yaml", body)
    process = subprocess.Popen([sys.executable, "-m", "lama", "train", str(path)], env=_env(), cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    _wait_for(lambda: (tmp_path / "run" / "train_log.jsonl").is_file() and len(_log(tmp_path / "run")) >= 2,
              process, "two logged steps")
    os.killpg(process.pid, signal.SIGTERM)
    output = process.communicate(timeout=240)[0]
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "Traceback" not in output and "killed by signal" not in output, output
    stopped = _log(tmp_path / "run")[-1]["step"]
    assert 2 <= stopped < 400 and _latest(tmp_path / "run") == f"step-{stopped:09d}"
    assert f"interrupted at step {stopped}" in output
    assert torch.load(tmp_path / "run" / "models" / "last.ckpt", weights_only=True)["global_step"] == stopped
    _write_config(path, {**body, "train": {**body["train"], "steps": stopped + 2}})
    resumed = _train(path)
    assert resumed.wait() == 0, resumed.stdout.read()
    assert [r["step"] for r in _log(tmp_path / "run")] == list(range(1, stopped + 3))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_cpu_processes_train_one_model(tmp_path: Path, embedded_data: Path) -> None:
    body = tiny_config(embedded_data, tmp_path / "run", train={"steps": 3, "save_every": 3, "val_every": 3},
                       tracking={"enabled": False})
    path = _write_config(tmp_path / "run.yaml", body)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               str(_free_port()), str(REPO / "tests" / "train" / "ddp_worker.py"), str(path)]
    done = subprocess.run(command, env=_env(), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [json.loads((tmp_path / "run" / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["step"] for r in ranks] == [3, 3]
    # One model: every parameter identical on both ranks, and trained (not the seeded initial values).
    assert ranks[0]["generator"] == ranks[1]["generator"]
    assert ranks[0]["discriminator"] == ranks[1]["discriminator"]  # BatchNorm D with two forwards under DDP
    changed = [name for name, value in ranks[0]["generator"].items() if value != ranks[0]["untrained"][name]]
    assert len(changed) == len(ranks[0]["generator"])
    # Each rank read its own share of the data (consumer 0 on rank 0, consumer 1 on rank 1).
    assert ranks[0]["keys"] == [0] and ranks[1]["keys"] == [1]
    val = [r for r in _log(tmp_path / "run") if "val/ssim" in r]
    assert len(val) == 1 and 0 < val[0]["val/ssim"] <= 1

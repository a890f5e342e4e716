"""Training speed of the trainer's GAN step (`GanStep` on Accelerate) against a plain eager fp32 loop.

The workload is one full LaMa iteration, as `lama train` runs it: the `lama-fourier` generator (27M parameters),
the official discriminator (`NLayerDiscriminator(3, 64, 4)`) and the full loss with the HRF perceptual encoder
(its seeded stand-in: the same architecture and cost as the ADE20k encoder), Adam, gradient clipping 1.0.

CPU (always): `GanStep` on `make_accelerator()` with prepared models and optimizers, float32 as the trainer uses on
CPU, against `plain_step` (benchmarks/plain_loop.py), 256², batch 4. Both sides start from the same weights and
get the same batches (uniform random images, `wide` training masks), so they do the same arithmetic; the loss totals
of each step are compared to show it. Sides alternate step by step (A B, then B A, ...) after two warm-up steps each;
medians over the rounds, and the spread of the per-round ratio so that noise can be told from cost.

GPU (when CUDA is available): images/s per GPU at batch 10, 256², for `GanStep` in bf16 (`autocast_dtype`) and in
float32 and for the plain fp32 loop, interleaved the same way (synchronised around every timed block); peak memory
of each configuration measured alone on the GPU. On a GPU machine the CPU part runs in a child process that sees no
GPU, so that `make_accelerator()` picks the CPU exactly as on a CPU-only machine.

    python benchmarks/train_speed.py                  # about 4.5 minutes on the 2-core machine
    python benchmarks/train_speed.py --quick          # smoke run: 64², batch 2, nothing written
    python benchmarks/train_speed.py --threads 1 --rounds 4
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from plain_loop import plain_step  # this folder: a script's own folder is importable
from torch import nn

from lama.losses.total import LamaLoss, LossConfig
from lama.masks import MaskGenerator
from lama.models import InpaintingModel, NLayerDiscriminator, build_generator, count_parameters, generator_config
from lama.train.loop import make_accelerator
from lama.train.step import GanStep

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
GENERATOR = "lama-fourier"
GRAD_CLIP = 1.0  # the official recipe (OptimConfig)
LEARNING_RATES = (1e-3, 1e-4)  # generator, discriminator
DISTINCT_BATCHES = 8  # batches are reused cyclically beyond this
CPU_WARMUP = 2  # steps per side before timing; the first steps after start-up run up to 25 % slower

Networks = tuple[nn.Module, nn.Module, LamaLoss]
Step = Callable[[torch.Tensor, torch.Tensor], tuple[float, float]]


def networks(seed: int = 0) -> Networks:
    torch.manual_seed(seed)
    generator = InpaintingModel(build_generator(GENERATOR), generator_config(GENERATOR))
    discriminator = NLayerDiscriminator(3, 64, 4)
    return generator, discriminator, LamaLoss(LossConfig(hrf_weights="stand-in"))


def batches(count: int, batch: int, size: int, device: torch.device, masks: MaskGenerator | None = None
            ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Seeded uniform images and ``masks`` (default: the wide training masks) drawn for ``size``."""
    random = torch.Generator().manual_seed(1)
    masks = masks or MaskGenerator.from_config("wide")
    result = []
    for index in range(count):
        image = torch.rand(batch, 3, size, size, generator=random)
        mask = np.stack([masks.sample(f"{index}/{item}", size, size) for item in range(batch)])
        result.append((image.to(device), torch.from_numpy(mask)[:, None].float().to(device)))
    return result


def adam(generator: nn.Module, discriminator: nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    return (torch.optim.Adam(generator.parameters(), lr=LEARNING_RATES[0]),
            torch.optim.Adam(discriminator.parameters(), lr=LEARNING_RATES[1]))


def ours(accelerator: Accelerator, nets: Networks, autocast_dtype: torch.dtype | None) -> Step:
    """What `TrainingRun` builds: Adam on the plain modules, then `accelerator.prepare`, then `GanStep`."""
    generator, discriminator, loss = (copy.deepcopy(module) for module in nets)
    loss = loss.to(accelerator.device)
    prepared = accelerator.prepare(generator, discriminator, *adam(generator, discriminator))
    step = GanStep(accelerator, prepared[0], prepared[1], loss, prepared[2], prepared[3], GRAD_CLIP, autocast_dtype)

    def run(image: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
        terms, _ = step(image, mask)
        return terms["gen/total"].item(), terms["discr/total"].item()  # plain_step returns floats too

    return run


def plain(device: torch.device, nets: Networks) -> Step:
    generator, discriminator, loss = (copy.deepcopy(module).to(device) for module in nets)
    optimizers = adam(generator, discriminator)
    return lambda image, mask: plain_step(generator, discriminator, loss, *optimizers, image, mask, GRAD_CLIP)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_clock() -> tuple[float, float, float, float]:
    """(wall, CPU-seconds of this process, of all processes, stolen by the hypervisor); /proc/stat is Linux only."""
    own = os.times()
    busy = steal = float("nan")
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        tick = os.sysconf("SC_CLK_TCK")
        busy, steal = (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / tick, fields[7] / tick
    except (OSError, ValueError):
        pass
    return time.perf_counter(), own.user + own.system, busy, steal


def competition(before: tuple[float, ...], after: tuple[float, ...]) -> dict:
    """Cores used by other processes (and stolen from this VM) while timing: how disturbed the figures are."""
    wall, own, busy, steal = (b - a for a, b in zip(before, after, strict=True))
    return {"seconds": wall, "own_cores": own / wall, "other_processes_cores": max(busy - own, 0.0) / wall,
            "stolen_cores": steal / wall}


def interleaved(steps: dict[str, Step], data: list, device: torch.device, rounds: int, per_round: int,
                warmup: int) -> tuple[dict[str, list[float]], dict[str, list[tuple[float, float]]], dict[str, list]]:
    """Seconds per step of each side, one value per round; every side sees the same batches in the same order.
    Also the loss totals of every timed step, and the CPU cores other processes used during each round."""
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    totals: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    others: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():  # warm-up: allocator, oneDNN/cuDNN primitives, Adam state
        for index in range(warmup):
            step(*data[index % len(data)])
    synchronize(device)
    names = list(steps)
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            elapsed, clock = 0.0, cpu_clock()
            for index in range(per_round):
                image, mask = data[(warmup + round_index * per_round + index) % len(data)]
                synchronize(device)
                start = time.perf_counter()
                totals[name].append(steps[name](image, mask))
                synchronize(device)
                elapsed += time.perf_counter() - start
            seconds[name].append(elapsed / per_round)
            others[name].append(competition(clock, cpu_clock())["other_processes_cores"])
    return seconds, totals, others


def loss_agreement(first: list[tuple[float, float]], second: list[tuple[float, float]]) -> float:
    """Largest relative difference between the G and D totals of the same steps on two sides."""
    return max(abs(a - b) / max(abs(b), 1e-12) for pair in zip(first, second, strict=True)
               for a, b in zip(*pair, strict=True))


def summary(seconds: list[float], others: list[float], batch: int) -> dict:
    median = statistics.median(seconds)
    return {"seconds_per_step": median, "steps_per_s": 1 / median, "images_per_s": batch / median,
            "rounds_seconds": seconds, "spread": (max(seconds) - min(seconds)) / median,
            "rounds_other_processes_cores": others}


def ratio(seconds: dict[str, list[float]], faster: str, slower: str) -> dict:
    """Speed of `faster` over `slower` (>1 means faster): of the medians, and per round."""
    per_round = [b / a for a, b in zip(seconds[faster], seconds[slower], strict=True)]
    quartiles = statistics.quantiles(per_round, n=4, method="inclusive") if len(per_round) > 1 else per_round * 3
    return {"median": statistics.median(seconds[slower]) / statistics.median(seconds[faster]),
            "rounds": per_round, "rounds_median": quartiles[1], "rounds_middle_half": [quartiles[0], quartiles[2]],
            "min": min(per_round), "max": max(per_round)}


def cpu_part(args: argparse.Namespace) -> dict:
    device = torch.device("cpu")
    accelerator = make_accelerator()
    assert accelerator.device.type == "cpu", accelerator.device
    nets = networks()
    data = batches(min(DISTINCT_BATCHES, CPU_WARMUP + args.rounds), args.batch, args.size, device)
    steps = {"plain fp32": plain(device, nets), "GanStep fp32": ours(accelerator, nets, None)}
    before = cpu_clock()
    seconds, totals, others = interleaved(steps, data, device, args.rounds, per_round=1, warmup=CPU_WARMUP)
    load = competition(before, cpu_clock())
    return {
        "size": args.size, "batch": args.batch, "threads": args.threads, "rounds": args.rounds,
        "warmup_steps": CPU_WARMUP,
        "configs": {name: summary(values, others[name], args.batch) for name, values in seconds.items()},
        "ratio_ours_over_plain": ratio(seconds, "GanStep fp32", "plain fp32"),
        "loss_totals_max_relative_difference": loss_agreement(totals["GanStep fp32"], totals["plain fp32"]),
        "while_timing": load,
    }


def cpu_part_without_gpu(args: argparse.Namespace) -> dict:
    """The CPU part in a child process that sees no GPU, as `lama train` runs on a CPU-only machine."""
    with tempfile.TemporaryDirectory() as workdir:
        output = Path(workdir) / "cpu.json"
        command = [sys.executable, __file__, "--parts", "cpu", "--threads", str(args.threads), "--rounds",
                   str(args.rounds), "--output", str(output)] + (["--quick"] if args.quick else [])
        subprocess.run(command, check=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
        return json.loads(output.read_text())["cpu"]


def release(accelerator: Accelerator) -> None:
    accelerator.free_memory()
    gc.collect()
    torch.cuda.empty_cache()


def gpu_part(args: argparse.Namespace) -> dict:
    accelerator = make_accelerator()
    device = accelerator.device
    batch, size = (2, 64) if args.quick else (10, 256)
    rounds, per_round, warmup = (2, 2, 1) if args.quick else (args.gpu_rounds, 10, 3)
    nets = networks()
    builders: dict[str, Callable[[], Step]] = {
        "plain fp32": lambda: plain(device, nets),
        "GanStep fp32": lambda: ours(accelerator, nets, None),
    }
    if torch.cuda.is_bf16_supported():
        builders["GanStep bf16"] = lambda: ours(accelerator, nets, torch.bfloat16)
    data = batches(DISTINCT_BATCHES, batch, size, device)

    peaks = {}  # each configuration alone on the GPU: weights, Adam states, HRF encoder, activations (input excluded)
    for name, build in builders.items():
        release(accelerator)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step = build()
        for index in range(2):
            step(*data[index])
        synchronize(device)
        peaks[name] = torch.cuda.max_memory_allocated(device) - before
        del step
    release(accelerator)

    seconds, totals, others = interleaved({name: build() for name, build in builders.items()}, data, device, rounds,
                                          per_round, warmup)
    configs = {name: {**summary(values, others[name], batch), "peak_memory_bytes": peaks[name]}
               for name, values in seconds.items()}
    result = {
        "gpu": torch.cuda.get_device_name(device), "size": size, "batch": batch, "rounds": rounds,
        "steps_per_round": per_round, "warmup_steps": warmup, "configs": configs,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "ratio_ours_fp32_over_plain_fp32": ratio(seconds, "GanStep fp32", "plain fp32"),
        "loss_totals_max_relative_difference_fp32": loss_agreement(totals["GanStep fp32"], totals["plain fp32"]),
    }
    if "GanStep bf16" in seconds:
        result["ratio_bf16_over_fp32"] = ratio(seconds, "GanStep bf16", "GanStep fp32")
    return result


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def print_part(title: str, part: dict, ratios: dict[str, str]) -> None:
    print(f"\n{title}")
    print(f"{'config':14} {'s/step':>8} {'steps/s':>8} {'img/s':>7} {'rounds min-max s':>18} "
          f"{'others max':>10} {'peak GiB':>9}")
    for name, row in part["configs"].items():
        rounds = row["rounds_seconds"]
        peak = f"{row['peak_memory_bytes'] / 2**30:9.2f}" if "peak_memory_bytes" in row else ""
        print(f"{name:14} {row['seconds_per_step']:8.3f} {row['steps_per_s']:8.3f} {row['images_per_s']:7.2f} "
              f"{min(rounds):8.3f}-{max(rounds):<9.3f} {max(row['rounds_other_processes_cores']):10.2f} {peak}")
    print("(others max: CPU cores used by other processes during the most disturbed round)")
    for key, label in ratios.items():
        if key in part:
            value = part[key]
            low, high = value["rounds_middle_half"]
            print(f"{label}: {value['median']:.3f}x of the medians; per round: median {value['rounds_median']:.3f}x, "
                  f"middle half {low:.3f}-{high:.3f}x, all {value['min']:.3f}-{value['max']:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch CPU threads (default: the cores available)")
    parser.add_argument("--rounds", type=int, default=12, help="CPU rounds of one step per side (default 12)")
    parser.add_argument("--gpu-rounds", type=int, default=5, help="GPU rounds of 10 steps per config (default 5)")
    parser.add_argument("--parts", nargs="+", choices=["cpu", "gpu"], default=["cpu", "gpu"])
    parser.add_argument("--quick", action="store_true", help="smoke run: 64², batch 2, 2 rounds; writes nothing "
                        "unless --output is given")
    parser.add_argument("--output", type=Path, help="results JSON (default results/train_cpu.json, or "
                        "results/train_gpu.json where a GPU is present)")
    args = parser.parse_args()
    args.size, args.batch = (64, 2) if args.quick else (256, 4)
    if args.quick:
        args.rounds = min(args.rounds, 2)
    torch.set_num_threads(args.threads)
    gpu = torch.cuda.is_available()
    started = time.perf_counter()
    meta = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "threads": args.threads, "torch": torch.__version__,
            "platform": platform.platform(), "generator": GENERATOR,
            "parameters": {name: count_parameters(module) for name, module in zip(
                ("generator", "discriminator", "hrf_stand_in"), networks(), strict=True)},
            "load_average_before": os.getloadavg()}
    print(f"torch {torch.__version__}, {meta['cpu']}, {args.threads} threads, load average before "
          f"{meta['load_average_before'][0]:.2f}")
    results: dict = {"meta": meta}
    if "cpu" in args.parts:
        results["cpu"] = cpu_part_without_gpu(args) if gpu else cpu_part(args)
        cpu = results["cpu"]
        print_part(f"CPU: {GENERATOR} {cpu['size']}², batch {cpu['batch']}, {cpu['threads']} threads, "
                   f"{cpu['rounds']} rounds", cpu, {"ratio_ours_over_plain": "GanStep fp32 / plain fp32"})
        load = cpu["while_timing"]
        print(f"loss totals, max relative difference between the sides: "
              f"{cpu['loss_totals_max_relative_difference']:.1e}")
        print(f"while timing ({load['seconds']:.0f} s): this process {load['own_cores']:.2f} cores, other processes "
              f"{load['other_processes_cores']:.2f}, stolen by the hypervisor {load['stolen_cores']:.2f}")
    if "gpu" in args.parts:
        if gpu:
            results["gpu"] = gpu_part(args)
            part = results["gpu"]
            print_part(f"GPU: {part['gpu']}, {GENERATOR} {part['size']}², batch {part['batch']}", part,
                       {"ratio_bf16_over_fp32": "GanStep bf16 / fp32",
                        "ratio_ours_fp32_over_plain_fp32": "GanStep fp32 / plain fp32"})
        else:
            print("\nGPU part skipped: torch.cuda.is_available() is False")
    output = args.output or (None if args.quick else RESULTS / ("train_gpu.json" if gpu else "train_cpu.json"))
    finish(results, meta, started, output)


def finish(results: dict, meta: dict, started: float, output: Path | None) -> None:
    """Record the load after the run and the wall time in ``meta``, and write ``results`` to ``output`` (None: a
    quick run, nothing written)."""
    meta["load_average_after"] = os.getloadavg()
    meta["wall_seconds"] = time.perf_counter() - started
    print(f"\nload average after {meta['load_average_after'][0]:.2f}; wall time {meta['wall_seconds']:.0f} s")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {output}")


if __name__ == "__main__":
    main()

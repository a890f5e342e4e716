"""Fine-tuning speed of Big LaMa: images/s of the trainer's GAN step, with and without a frozen encoder.

Fine-tuning Big LaMa on one's own images runs on one machine, often a CPU or a single GPU, and the cost of a step
decides what such a run takes; freezing the encoder (`train.freeze=[encoder]`) is the usual way to make it smaller.
This measures what a step costs and what freezing saves, on the workload `lama train` runs: `GanStep.build` on
`make_accelerator()` from a `RunConfig` (the `big-lama` generator with random weights, the `pix2pixhd_nlayer`
discriminator Big LaMa was trained with, ndf 64, n_layers 4, the paper's losses with the HRF perceptual term on its
seeded stand-in network), one G step and one D step per call. Inputs are uniform random images in [0, 1] and `wide`
training masks drawn for the crop size, as the training loader draws them.

Every variant starts from the same weights and gets the same batches; the variants of one size and batch run in
this process, interleaved (A B, then B A, ...), after one warm-up step each; figures are medians over the rounds.
On CPU, one more untimed step per variant gives the peak resident memory (/proc) and its increase over the
resident set before the step: what the step itself holds at its peak; the peak includes both variants' networks
and optimizer states, the same for both.

GPU (`--device cuda`, not run yet): fp32 and bf16 (`train.mixed_precision`, resolved by `resolve_precision`); before
the timing, each variant runs alone on the GPU to record its peak memory (`torch.cuda.max_memory_allocated`) per
batch size and the largest batch that fits (doubling, then bisection).

    python benchmarks/finetune_speed.py                         # CPU, 256² and 512², batch 1, 7 rounds
    python benchmarks/finetune_speed.py --quick                 # smoke run: 256², 1 round, writes nothing
    python benchmarks/finetune_speed.py --device cuda --batch-size 1 4 10
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import accelerate
import torch
from accelerate import Accelerator
from torch import Tensor, nn
from train_speed import (  # this folder: a script's own folder is importable
    batches,
    competition,
    cpu_clock,
    cpu_model,
    finish,
)

from lama.masks import MaskGenerator
from lama.models.parts import generator_parts
from lama.train.config import RunConfig, load_config
from lama.train.loop import make_accelerator, resolve_precision
from lama.train.step import GanStep

RESULTS = Path(__file__).parent / "results"
SEED = 0
DISTINCT_BATCHES = 4  # batches are reused cyclically beyond this
PRECISION_LABELS = {"no": "fp32", "bf16": "bf16"}

Batches = list[tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class Variant:
    precision: str  # train.mixed_precision: no | bf16
    frozen: bool  # train.freeze=[encoder]

    @property
    def name(self) -> str:
        return PRECISION_LABELS[self.precision] + (" frozen encoder" if self.frozen else "")


def run_config(size: int, batch: int, variant: Variant) -> RunConfig:
    return load_config(base={
        "generator": "big-lama",
        "discriminator": {"kind": "pix2pixhd_nlayer", "ndf": 64, "n_layers": 4},
        "loss": {"hrf_weights": "stand-in"},
        "data": {"loader": {"crop_size": size, "batch_size": batch}},
        "train": {"freeze": ["encoder"] if variant.frozen else [], "mixed_precision": variant.precision},
    })


def build_step(accelerator: Accelerator, size: int, batch: int, variant: Variant) -> GanStep:
    config = run_config(size, batch, variant)
    torch.manual_seed(SEED)  # the same initial weights for every variant
    return GanStep.build(config, accelerator, resolve_precision(config.train.mixed_precision, accelerator.device))


def parameter_counts(step: GanStep) -> dict[str, int]:
    generator = step.accelerator.unwrap_model(step.generator)
    encoder = [parameter for layer in generator_parts(generator)["encoder"] for parameter in layer.parameters()]
    return {
        "generator": sum(parameter.numel() for parameter in generator.parameters()),
        "generator_trainable": sum(parameter.numel() for parameter in generator.parameters()
                                   if parameter.requires_grad),
        "encoder": sum(parameter.numel() for parameter in encoder),
        "discriminator": sum(parameter.numel() for parameter in step.plain_discriminator.parameters()),
    }


def encoder_gradients(step: GanStep, image: Tensor, mask: Tensor) -> dict[str, bool]:
    """Whether a backward runs through the encoder: its output requires grad (autograd records it), and whether
    its parameters got a gradient in the last step. Runs the encoder once more, so call it after the timing."""
    generator = step.accelerator.unwrap_model(step.generator)
    encoder = generator_parts(generator)["encoder"]
    output = nn.Sequential(*encoder)(generator.make_input(image, mask))
    outputs = output if isinstance(output, tuple) else (output,)
    return {"output_requires_grad": any(isinstance(item, Tensor) and item.requires_grad for item in outputs),
            "parameters_with_gradient": any(parameter.grad is not None
                                            for layer in encoder for parameter in layer.parameters())}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- peak memory: resident set on CPU (Linux /proc), allocated memory on a GPU --

def status_bytes(key: str) -> int | None:
    """A size from /proc/self/status (VmRSS, VmHWM) in bytes; None where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss(call: Callable[[], object]) -> dict[str, int | None]:
    """Resident memory before one more, untimed call and at its peak. Freed heap memory is first handed back to the
    system (glibc's malloc_trim) and the peak reset (/proc/self/clear_refs), so that the increase is what the call
    itself holds at its peak (activations, gradients, temporaries), not what earlier calls left in malloc's pools."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    before = status_bytes("VmRSS")
    call()
    return {"rss_before_step_bytes": before, "peak_memory_bytes": status_bytes("VmHWM")}


# -- timing --

def interleaved(steps: dict[str, GanStep], data: Batches, device: torch.device, rounds: int,
                warmup: int) -> dict[str, dict[str, list]]:
    """Seconds per step of each variant, one per round, alternating the order; with the peak memory during each
    step and the CPU cores other processes used meanwhile."""
    for step in steps.values():
        for index in range(warmup):
            step(*data[index % len(data)])
    synchronize(device)
    record: dict[str, dict[str, list]] = {name: {"seconds": [], "peak_memory_bytes": [], "other_processes_cores": []}
                                          for name in steps}
    names = list(steps)
    for round_index in range(rounds):
        image, mask = data[(warmup + round_index) % len(data)]
        for name in names if round_index % 2 == 0 else names[::-1]:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            clock = cpu_clock()
            synchronize(device)
            start = time.perf_counter()
            terms, _ = steps[name](image, mask)
            terms["gen/total"].item()
            synchronize(device)
            record[name]["seconds"].append(time.perf_counter() - start)
            record[name]["peak_memory_bytes"].append(
                torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None)
            record[name]["other_processes_cores"].append(competition(clock, cpu_clock())["other_processes_cores"])
    return record


def summary(record: dict[str, list], batch: int) -> dict:
    median = statistics.median(record["seconds"])
    peaks = [peak for peak in record["peak_memory_bytes"] if peak is not None]
    return {"seconds_per_step": median, "images_per_s": batch / median, "rounds_seconds": record["seconds"],
            "peak_memory_bytes": max(peaks) if peaks else None,
            "rounds_other_processes_cores": record["other_processes_cores"]}


def speedup(record: dict[str, dict[str, list]], faster: str, slower: str) -> dict:
    """Speed of `faster` over `slower` (>1: faster): of the medians, and per round (same round, same batch)."""
    per_round = [b / a for a, b in zip(record[faster]["seconds"], record[slower]["seconds"], strict=True)]
    return {"median": statistics.median(record[slower]["seconds"]) / statistics.median(record[faster]["seconds"]),
            "rounds": per_round, "rounds_median": statistics.median(per_round), "min": min(per_round),
            "max": max(per_round)}


def measure(accelerator: Accelerator, variants: list[Variant], size: int, batch: int, rounds: int,
            warmup: int) -> dict:
    device = accelerator.device
    data = batches(DISTINCT_BATCHES, batch, size, device, MaskGenerator.for_size("wide", size))
    steps = {variant.name: build_step(accelerator, size, batch, variant) for variant in variants}
    before = cpu_clock()
    record = interleaved(steps, data, device, rounds, warmup)
    rows = {name: summary(values, batch) for name, values in record.items()}
    if device.type == "cpu":
        for name, step in steps.items():
            rows[name].update(peak_rss(functools.partial(step, *data[0])))
    result = {
        "size": size, "batch": batch, "rounds": rounds, "warmup_steps": warmup, "variants": rows,
        "while_timing": competition(before, cpu_clock()),  # the timed rounds and the two memory steps
        "encoder_gradients": {name: encoder_gradients(step, *data[0]) for name, step in steps.items()},
        "ratios_frozen_over_unfrozen": {},
    }
    for precision in PRECISION_LABELS:
        pair = [Variant(precision, frozen).name for frozen in (True, False)]
        if all(name in steps for name in pair):
            result["ratios_frozen_over_unfrozen"][PRECISION_LABELS[precision]] = speedup(record, *pair)
    if "fp32" in steps and "bf16" in steps:
        result["ratio_bf16_over_fp32"] = speedup(record, "bf16", "fp32")
    del steps
    accelerator.free_memory()
    gc.collect()
    return result


# -- GPU only: each variant alone, peak memory per batch size and the largest batch that fits --

def release(accelerator: Accelerator) -> None:
    accelerator.free_memory()
    gc.collect()
    torch.cuda.empty_cache()


def alone_peak(accelerator: Accelerator, variant: Variant, size: int, batch: int) -> int | None:
    """Peak GPU memory of two steps of one variant alone (weights, Adam states, HRF network, activations; the
    input batches excluded), or None when it runs out of memory."""
    device = accelerator.device
    release(accelerator)
    data = batches(2, batch, size, device, MaskGenerator.for_size("wide", size))
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    try:
        step = build_step(accelerator, size, batch, variant)
        for image, mask in data:
            step(image, mask)
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    except torch.cuda.OutOfMemoryError:
        return None
    finally:
        step = None
        release(accelerator)


def largest_batch(accelerator: Accelerator, variant: Variant, size: int, limit: int) -> dict:
    """The largest batch (up to `limit`) whose steps fit: doubling from 1, then bisection."""
    peaks: dict[int, int] = {}
    fits, fails, batch = 0, None, 1
    while batch <= limit:
        peak = alone_peak(accelerator, variant, size, batch)
        if peak is None:
            fails = batch
            break
        fits, peaks[batch] = batch, peak
        batch *= 2
    while fails is not None and fails - fits > 1:
        middle = (fits + fails) // 2
        peak = alone_peak(accelerator, variant, size, middle)
        if peak is None:
            fails = middle
        else:
            fits, peaks[middle] = middle, peak
    return {"largest_batch": fits, "smallest_failed": fails, "limit": limit,
            "peak_memory_bytes": {str(batch): peaks[batch] for batch in sorted(peaks)}}


def gpu_memory(accelerator: Accelerator, variants: list[Variant], size: int, batch_sizes: list[int],
               limit: int) -> dict:
    result: dict = {"alone_peak_memory_bytes": {
        variant.name: {str(batch): alone_peak(accelerator, variant, size, batch) for batch in batch_sizes}
        for variant in variants}}
    if limit > 0:
        result["largest_batch"] = {variant.name: largest_batch(accelerator, variant, size, limit)
                                   for variant in variants}
    return result


# -- report --

def gib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**30:.2f}"


def print_measurement(part: dict, device: torch.device) -> None:
    memory = "peak GiB" if device.type == "cuda" else "peak RSS (+step) GiB"
    print(f"\n{part['size']}², batch {part['batch']}, {part['rounds']} rounds")
    print(f"{'variant':22} {'s/step':>8} {'img/s':>7} {'rounds min-max s':>18} {memory:>20} {'others max':>10}")
    for name, row in part["variants"].items():
        rounds, peak, before = row["rounds_seconds"], row["peak_memory_bytes"], row.get("rss_before_step_bytes")
        peak_text = gib(peak) if peak is None or before is None else f"{gib(peak)} (+{gib(peak - before)})"
        print(f"{name:22} {row['seconds_per_step']:8.2f} {row['images_per_s']:7.3f} "
              f"{min(rounds):8.2f}-{max(rounds):<9.2f} {peak_text:>20} "
              f"{max(row['rounds_other_processes_cores']):10.2f}")
    ratios = {f"frozen / unfrozen ({label})": value for label, value in part["ratios_frozen_over_unfrozen"].items()}
    if "ratio_bf16_over_fp32" in part:
        ratios["bf16 / fp32"] = part["ratio_bf16_over_fp32"]
    for label, value in ratios.items():
        print(f"{label}: {value['median']:.3f}x of the medians; per round: median {value['rounds_median']:.3f}x, "
              f"all {value['min']:.3f}-{value['max']:.3f}x")
    load = part["while_timing"]
    print(f"while timing ({load['seconds']:.0f} s): this process {load['own_cores']:.2f} cores, other processes "
          f"{load['other_processes_cores']:.2f}")


def print_gpu_memory(part: dict) -> None:
    print(f"\n{part['size']}², each variant alone: peak GiB per batch size; largest batch that fits")
    for name, peaks in part["alone_peak_memory_bytes"].items():
        found = part.get("largest_batch", {}).get(name)
        largest = "" if found is None else f"; largest batch {found['largest_batch']} (limit {found['limit']})"
        print(f"{name:22} " + ", ".join(f"{batch}: {gib(peak)}" for batch, peak in peaks.items()) + largest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="crop sizes (default 256 512)")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1], help="images per step (default 1)")
    parser.add_argument("--steps", type=int, default=7, help="timed rounds of one step per variant (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant first (default 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--precisions", nargs="+", choices=list(PRECISION_LABELS),
                        help="train.mixed_precision values (default: no on CPU, no and bf16 on a GPU)")
    parser.add_argument("--max-batch", type=int, default=64,
                        help="GPU: search the largest batch that fits up to this (default 64; 0: skip)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 256², 1 round; writes nothing unless "
                        "--output is given")
    parser.add_argument("--output", type=Path, help="results JSON (default results/finetune_<device>.json)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.steps = [256], 1
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # make_accelerator() then picks the CPU, as on a CPU-only machine
    torch.set_num_threads(args.threads)
    accelerator = make_accelerator()
    device = accelerator.device
    if device.type != args.device:
        raise SystemExit(f"--device {args.device}: the accelerator runs on {device.type}")
    precisions = args.precisions or (["no", "bf16"] if device.type == "cuda" else ["no"])
    variants = [Variant(precision, frozen) for precision in precisions for frozen in (False, True)]

    started = time.perf_counter()
    meta = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
            "cpu": cpu_model(), "cpu_count": os.cpu_count(), "threads": args.threads, "torch": torch.__version__,
            "accelerate": accelerate.__version__, "platform": platform.platform(), "generator": "big-lama",
            "discriminator": {"ndf": 64, "n_layers": 4}, "hrf_weights": "stand-in", "seed": SEED,
            "load_average_before": os.getloadavg()}
    if device.type == "cuda":
        meta.update(cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                    matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    print(f"torch {torch.__version__}, {meta['device']}, {args.threads} threads, load average before "
          f"{meta['load_average_before'][0]:.2f}")
    meta["parameters"] = {}
    for frozen in (False, True):
        step = build_step(accelerator, min(args.sizes), 1, Variant("no", frozen))
        meta["parameters"]["frozen encoder" if frozen else "unfrozen"] = parameter_counts(step)
    del step
    accelerator.free_memory()
    for name, counts in meta["parameters"].items():
        print(f"{name}: generator {counts['generator']:,} parameters, {counts['generator_trainable']:,} trainable "
              f"(encoder {counts['encoder']:,}); discriminator {counts['discriminator']:,}")

    results: dict = {"meta": meta, "measurements": []}
    if device.type == "cuda":
        results["gpu_memory"] = []
        for size in sorted(args.sizes):
            results["gpu_memory"].append({"size": size, **gpu_memory(accelerator, variants, size, args.batch_size,
                                                                     args.max_batch)})
            print_gpu_memory(results["gpu_memory"][-1])
    for size in sorted(args.sizes):
        for batch in args.batch_size:
            part = measure(accelerator, variants, size, batch, args.steps, args.warmup)
            results["measurements"].append(part)
            print_measurement(part, device)

    finish(results, meta, started, args.output or (None if args.quick else RESULTS / f"finetune_{device.type}.json"))


if __name__ == "__main__":
    main()

"""Evaluation speed of SSIM + LPIPS + FID at 512²: `lama.eval` against torchmetrics, in the same process.

What one evaluation does, on both sides, for N image pairs (predicted, target) in batches: SSIM per image, LPIPS per
image, Inception pool3 features of the predicted and of the target images; then, once at the end, the means and one
Fréchet distance between the two feature sets.

- ours: `lama.eval.ssim.ssim` (the official zero-padded Gaussian SSIM), `lama.eval.lpips.LPIPSVGG`,
  `lama.eval.fid.FIDInceptionV3` features collected on the CPU and `lama.eval.fid.frechet_distance` (``sqrtm``, the
  official computation, unless ``--fid-method svd``), as `lama.eval.metrics.ValidationMetrics` runs them.
- torchmetrics: `StructuralSimilarityIndexMeasure` (Gaussian kernel 11, σ 1.5, data range 1),
  `LearnedPerceptualImagePatchSimilarity` (vgg) and `FrechetInceptionDistance`, all through their `update`/`compute`.

Both sides run identical networks, so that only the metric code differs: torchmetrics' LPIPS gets our VGG16 backbone
and linear heads copied conv by conv, and its FID gets our Inception itself as a custom ``feature`` module. No weights
are downloaded: the networks are the seeded stand-ins (`LPIPSVGG.stand_in`, `FIDInceptionV3.stand_in`); the speed of
a network does not depend on its weight values. Before the figures are trusted, the script asserts that both sides
compute the same numbers: LPIPS means within 1e-5 and FID within 1e-3 relative in every round, and SSIM within 1e-5
over the interior pixels (torchmetrics pads by reflection, the official SSIM with zeros, so only the 5-pixel borders
differ by design; the full-image means are reported).

Sides alternate round by round (A B, then B A, ...) after one warm-up batch each; every round evaluates the same
pairs. Reported: median seconds per image of each part, images/s of the per-image work alone and of the whole
evaluation (per-image work + the final Fréchet distance, a fixed cost per evaluation whose share shrinks as N grows),
the ratio ours / torchmetrics of the medians and the spread of the per-round ratios.

    python benchmarks/eval_speed.py                   # about 5.5 minutes on the 2-core machine
    python benchmarks/eval_speed.py --device cuda --images 64 --rounds 5
    python benchmarks/eval_speed.py --size 128 --images 4 --batch 2 --rounds 2 --json /tmp/eval_smoke.json
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from unittest import mock

import torch
import torch.nn.functional as F  # noqa: N812 (the conventional alias)
import torchmetrics
from torch import nn
from torchmetrics.functional.image import structural_similarity_index_measure
from torchmetrics.functional.image.lpips import _NoTrainLpips
from torchmetrics.image import StructuralSimilarityIndexMeasure
from torchmetrics.image import lpip as torchmetrics_lpip_module
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

from lama.eval.fid import FEATURE_DIM, FIDInceptionV3, FIDMethod, frechet_distance
from lama.eval.lpips import LPIPSVGG
from lama.eval.ssim import WINDOW_SIZE, ssim, ssim_map

RESULTS = Path(__file__).parent / "results"
SIDES = ("ours", "torchmetrics")
PARTS = ("ssim", "lpips", "fid_features", "final")  # "final": means + one Fréchet distance, once per evaluation
LPIPS_RTOL = 1e-5
FID_RTOL = 1e-3
SSIM_INTERIOR_RTOL = 1e-5
STAND_IN_NOTE = ("networks: seeded stand-ins (random weights, the real architectures); speed does not depend on the "
                 "weight values, and both sides run the same weights")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Seconds per named part, synchronised with the device around every part."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        synchronize(self.device)
        start = time.perf_counter()
        yield
        synchronize(self.device)
        self.seconds[part] += time.perf_counter() - start


def image_pairs(count: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted, target) in [0, 1]: smooth random targets with some texture, and copies perturbed at several scales.

    Smooth content keeps SSIM away from 0 and the perturbation keeps LPIPS and FID well above rounding noise, so the
    agreement checks mean something.
    """
    generator = torch.Generator().manual_seed(seed)

    def noise(cells: int, scale: float) -> torch.Tensor:
        coarse = torch.randn(count, 3, cells, cells, generator=generator)
        return scale * F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)

    target = (0.5 + noise(6, 0.25) + noise(32, 0.08) + 0.03 * torch.randn(count, 3, size, size, generator=generator))
    predicted = target + noise(16, 0.06) + 0.04 * torch.randn(count, 3, size, size, generator=generator)
    return predicted.clamp(0, 1).contiguous(), target.clamp(0, 1).contiguous()


class InceptionFeatures(nn.Module):
    """Our FID Inception as torchmetrics' custom ``feature`` extractor: [0, 1] float images → (N, 2048) pool3."""

    num_features = FEATURE_DIM  # read by torchmetrics instead of running a dummy image through the network

    def __init__(self, inception: FIDInceptionV3) -> None:
        super().__init__()
        self.inception = inception

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.inception(images)


def torchmetrics_lpips(ours: LPIPSVGG) -> LearnedPerceptualImagePatchSimilarity:
    """torchmetrics' LPIPS(vgg) built offline with our backbone and heads, checked tensor by tensor.

    Its constructor would download torchvision's VGG16; a random backbone (``pnet_rand``) is built instead, from a
    forked global RNG, and overwritten conv by conv in order (the two packages name the layers differently).
    """
    offline = functools.partial(_NoTrainLpips, pnet_rand=True)
    with torch.random.fork_rng(), mock.patch.object(torchmetrics_lpip_module, "_NoTrainLpips", offline):
        metric = LearnedPerceptualImagePatchSimilarity(net_type="vgg", reduction="mean", normalize=True)
    theirs_convs = [module for module in metric.net.net.modules() if isinstance(module, nn.Conv2d)]
    ours_convs = [module for module in ours.model.net.modules() if isinstance(module, nn.Conv2d)]
    theirs_heads = [module for module in metric.net.lins.modules() if isinstance(module, nn.Conv2d)]
    ours_heads = [module for module in ours.model.lins.modules() if isinstance(module, nn.Conv2d)]
    assert len(theirs_convs) == len(ours_convs) == 13 and len(theirs_heads) == len(ours_heads) == 5
    with torch.no_grad():
        for theirs, own in zip(theirs_convs + theirs_heads, ours_convs + ours_heads, strict=True):
            for name, tensor in own.named_parameters():
                getattr(theirs, name).copy_(tensor)
    for theirs, own in zip(theirs_convs + theirs_heads, ours_convs + ours_heads, strict=True):
        for name, tensor in own.named_parameters():
            assert torch.equal(getattr(theirs, name), tensor), f"LPIPS {name} differs after the copy"
    for name in ("shift", "scale"):
        assert torch.equal(getattr(metric.net.scaling_layer, name), getattr(ours.model.scaling_layer, name)), name
    return metric


class Side(Protocol):
    def reset(self) -> None: ...

    def update(self, predicted: torch.Tensor, target: torch.Tensor, watch: Stopwatch) -> None: ...

    def compute(self, watch: Stopwatch) -> dict[str, float]: ...


class Ours:
    """What `ValidationMetrics` does per batch (values and features kept on the CPU) and in `compute()`, less PSNR."""

    def __init__(self, lpips_net: LPIPSVGG, inception: FIDInceptionV3, fid_method: FIDMethod) -> None:
        self.lpips_net, self.inception, self.fid_method = lpips_net, inception, fid_method
        self.reset()

    def reset(self) -> None:
        self.ssim: list[torch.Tensor] = []
        self.lpips: list[torch.Tensor] = []
        self.features: dict[str, list[torch.Tensor]] = {"predicted": [], "target": []}

    @torch.no_grad()
    def update(self, predicted: torch.Tensor, target: torch.Tensor, watch: Stopwatch) -> None:
        with watch("ssim"):
            self.ssim.append(ssim(predicted, target).cpu())
        with watch("lpips"):
            self.lpips.append(self.lpips_net(predicted, target).cpu())
        with watch("fid_features"):
            self.features["predicted"].append(self.inception(predicted).cpu())
            self.features["target"].append(self.inception(target).cpu())

    def compute(self, watch: Stopwatch) -> dict[str, float]:
        with watch("final"):
            values = {"ssim": torch.cat(self.ssim).double().mean().item(),
                      "lpips": torch.cat(self.lpips).double().mean().item(),
                      "fid": frechet_distance(torch.cat(self.features["predicted"]),
                                              torch.cat(self.features["target"]), method=self.fid_method)}
        return values


class Torchmetrics:
    """torchmetrics' three metric objects, fed the same batches through `update`, read through `compute`."""

    def __init__(self, lpips_net: LPIPSVGG, inception: FIDInceptionV3, device: torch.device) -> None:
        self.ssim = StructuralSimilarityIndexMeasure(gaussian_kernel=True, kernel_size=WINDOW_SIZE, sigma=1.5,
                                                     data_range=1.0).to(device)
        self.lpips = torchmetrics_lpips(lpips_net).to(device)
        # The same Inception object as ours: torchmetrics runs it on each update, for the real and the fake images.
        self.fid = FrechetInceptionDistance(feature=InceptionFeatures(inception), normalize=False).to(device)

    def reset(self) -> None:
        for metric in (self.ssim, self.lpips, self.fid):
            metric.reset()

    def update(self, predicted: torch.Tensor, target: torch.Tensor, watch: Stopwatch) -> None:
        with watch("ssim"):
            self.ssim.update(predicted, target)
        with watch("lpips"):
            self.lpips.update(predicted, target)
        with watch("fid_features"):
            self.fid.update(target, real=True)
            self.fid.update(predicted, real=False)

    def compute(self, watch: Stopwatch) -> dict[str, float]:
        with watch("final"):
            values = {"ssim": float(self.ssim.compute()), "lpips": float(self.lpips.compute()),
                      "fid": float(self.fid.compute())}
        return values


def cpu_clock() -> tuple[float, float, float]:
    """(wall, CPU-seconds of this process, CPU-seconds of all processes); /proc/stat is Linux only (else NaN)."""
    own = os.times()
    busy = float("nan")
    with contextlib.suppress(OSError, ValueError):
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
        busy = (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / os.sysconf("SC_CLK_TCK")
    return time.perf_counter(), own.user + own.system, busy


def other_cores(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """Cores used by other processes between two clocks: how disturbed a round was."""
    wall, own, busy = (b - a for a, b in zip(before, after, strict=True))
    return max(busy - own, 0.0) / wall


def ssim_interior_check(predicted: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Mean SSIM over the pixels whose window lies inside the image, where zero and reflection padding coincide."""
    inner = (..., slice(WINDOW_SIZE // 2, -(WINDOW_SIZE // 2)), slice(WINDOW_SIZE // 2, -(WINDOW_SIZE // 2)))
    with torch.no_grad():
        ours = ssim_map(predicted, target)[inner].double().mean().item()
        _, full = structural_similarity_index_measure(predicted, target, gaussian_kernel=True, sigma=1.5,
                                                      kernel_size=WINDOW_SIZE, data_range=1.0,
                                                      return_full_image=True)
    theirs = full[inner].double().mean().item()
    relative = abs(ours - theirs) / abs(theirs)
    assert relative <= SSIM_INTERIOR_RTOL, (
        f"SSIM over the interior differs: ours {ours:.8f}, torchmetrics {theirs:.8f} ({relative:.1e} relative > "
        f"{SSIM_INTERIOR_RTOL:g}); the comparison would not be like for like")
    return {"ours": ours, "torchmetrics": theirs, "relative_difference": relative}


def check_agreement(values: dict[str, dict[str, float]], round_index: int) -> dict[str, float]:
    """LPIPS and FID of the two sides in one round; SSIM differs by design at the borders and is only reported."""
    ours, theirs = values["ours"], values["torchmetrics"]
    lpips_rel = abs(ours["lpips"] - theirs["lpips"]) / abs(theirs["lpips"])
    fid_rel = abs(ours["fid"] - theirs["fid"]) / abs(theirs["fid"])
    assert lpips_rel <= LPIPS_RTOL, (
        f"round {round_index}: LPIPS means differ, ours {ours['lpips']:.8f} vs torchmetrics {theirs['lpips']:.8f} "
        f"({lpips_rel:.1e} relative > {LPIPS_RTOL:g}): the sides do not run the same network")
    assert fid_rel <= FID_RTOL, (
        f"round {round_index}: FID differs, ours {ours['fid']:.6f} vs torchmetrics {theirs['fid']:.6f} "
        f"({fid_rel:.1e} relative > {FID_RTOL:g}): the sides do not compute the same distance")
    return {"lpips": lpips_rel, "fid": fid_rel, "ssim_full_image_difference": ours["ssim"] - theirs["ssim"]}


def batches(predicted: torch.Tensor, target: torch.Tensor, batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(predicted[start:start + batch], target[start:start + batch]) for start in range(0, len(target), batch)]


def evaluate(side: Side, data: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device
             ) -> tuple[dict[str, float], dict[str, float], float]:
    """One whole evaluation: seconds per part (also ``per_image`` and ``total``), the values, other processes' load."""
    side.reset()
    watch = Stopwatch(device)
    clock = cpu_clock()
    synchronize(device)
    start = time.perf_counter()
    for predicted, target in data:
        side.update(predicted, target, watch)
    synchronize(device)
    per_image = time.perf_counter() - start
    values = side.compute(watch)
    total = time.perf_counter() - start
    seconds = {**{part: watch.seconds[part] for part in PARTS}, "per_image": per_image, "total": total}
    return seconds, values, other_cores(clock, cpu_clock())


def spread(per_round: list[float]) -> dict:
    quartiles = statistics.quantiles(per_round, n=4, method="inclusive") if len(per_round) > 1 else per_round * 3
    return {"rounds": per_round, "rounds_median": quartiles[1], "rounds_middle_half": [quartiles[0], quartiles[2]],
            "min": min(per_round), "max": max(per_round)}


def ratios(seconds: dict[str, list[dict[str, float]]]) -> dict[str, dict]:
    """Speed of ours over torchmetrics (>1: ours faster) per part: of the medians, and per round."""
    result = {}
    for part in (*PARTS, "per_image", "total"):
        ours = [row[part] for row in seconds["ours"]]
        theirs = [row[part] for row in seconds["torchmetrics"]]
        result[part] = {"median": statistics.median(theirs) / statistics.median(ours),
                        **spread([b / a for a, b in zip(ours, theirs, strict=True)])}
    return result


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def blas_threads(threads: int) -> contextlib.AbstractContextManager:
    """Hold numpy/scipy's BLAS (the sqrtm of ours) to the same thread count as torch (torchmetrics' eigvals)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("note: threadpoolctl is not installed; numpy/scipy BLAS threads are left at their default")
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    lpips_net, inception = LPIPSVGG.stand_in(args.seed), FIDInceptionV3.stand_in(args.seed)
    theirs = Torchmetrics(lpips_net, inception, device)  # copies the LPIPS weights on the CPU, then moves itself
    lpips_net, inception = lpips_net.to(device), inception.to(device)
    sides: dict[str, Side] = {"ours": Ours(lpips_net, inception, args.fid_method), "torchmetrics": theirs}
    predicted, target = image_pairs(args.images, args.size, args.seed)  # generated once, outside any timing
    predicted, target = predicted.to(device), target.to(device)
    data = batches(predicted, target, args.batch)
    # On the CPU also for a GPU run: it checks the two formulas, which TF32 convolutions would blur differently.
    ssim_check = ssim_interior_check(predicted[: args.batch].cpu(), target[: args.batch].cpu())

    for name in SIDES:  # warm-up: allocator, oneDNN/cuDNN primitives for this batch shape
        side = sides[name]
        side.reset()
        side.update(*data[0], Stopwatch(device))
    seconds: dict[str, list[dict[str, float]]] = {name: [] for name in SIDES}
    others: dict[str, list[float]] = {name: [] for name in SIDES}
    values: dict[str, list[dict[str, float]]] = {name: [] for name in SIDES}
    agreement = []
    for round_index in range(args.rounds):
        for name in SIDES if round_index % 2 == 0 else SIDES[::-1]:
            part_seconds, round_values, load = evaluate(sides[name], data, device)
            seconds[name].append(part_seconds)
            values[name].append(round_values)
            others[name].append(load)
        agreement.append(check_agreement({name: values[name][-1] for name in SIDES}, round_index))
        print(f"round {round_index + 1}/{args.rounds}: " + ", ".join(
            f"{name} {seconds[name][-1]['total']:.1f} s" for name in SIDES), flush=True)

    configs = {}
    for name in SIDES:
        median = {part: statistics.median(row[part] for row in seconds[name]) for part in (*PARTS, "per_image",
                                                                                            "total")}
        configs[name] = {
            "median_seconds": median,
            "median_ms_per_image": {part: 1e3 * median[part] / args.images for part in (*PARTS[:3], "per_image")},
            "per_image_images_per_s": args.images / median["per_image"],
            "evaluation_images_per_s": args.images / median["total"],
            "rounds_seconds": seconds[name], "rounds_values": values[name],
            "rounds_other_processes_cores": others[name],
        }
    return {
        "device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32 if device.type == "cuda" else None,
        "size": args.size, "batch": args.batch, "images_per_round": args.images, "rounds": args.rounds,
        "warmup_batches": 1, "fid_method_ours": args.fid_method, "seed": args.seed, "networks": STAND_IN_NOTE,
        "lpips_weights": lpips_net.weights_label, "inception_weights": inception.weights_label,
        "configs": configs, "ratio_ours_over_torchmetrics": ratios(seconds),
        "agreement": {"ssim_interior": ssim_check, "rounds": agreement,
                      "max_lpips_relative": max(row["lpips"] for row in agreement),
                      "max_fid_relative": max(row["fid"] for row in agreement)},
    }


def print_report(result: dict, threads: int) -> None:
    where = result["gpu"] or f"cpu, {threads} threads"
    print(f"\nEvaluation of {result['images_per_round']} pairs at {result['size']}², batch {result['batch']}, "
          f"{result['rounds']} rounds, {where}; ours' Fréchet distance: {result['fid_method_ours']}")
    print(STAND_IN_NOTE)
    print(f"{'side':13} {'SSIM':>9} {'LPIPS':>9} {'FID feat':>9} {'per-image':>10} {'final FID':>10} "
          f"{'evaluation':>11} {'others':>7}")
    print(f"{'':13} {'ms/img':>9} {'ms/img':>9} {'ms/img':>9} {'img/s':>10} {'s':>10} {'img/s':>11} {'cores':>7}")
    for name in SIDES:
        row = result["configs"][name]
        ms = row["median_ms_per_image"]
        print(f"{name:13} {ms['ssim']:9.1f} {ms['lpips']:9.1f} {ms['fid_features']:9.1f} "
              f"{row['per_image_images_per_s']:10.3f} {row['median_seconds']['final']:10.2f} "
              f"{row['evaluation_images_per_s']:11.3f} {max(row['rounds_other_processes_cores']):7.2f}")
    print("(medians over the rounds; final FID: means + one Fréchet distance per evaluation; evaluation img/s "
          "includes it; others: CPU cores used by other processes in the most disturbed round)")
    labels = {"total": "evaluation", "per_image": "per-image work", "ssim": "SSIM", "lpips": "LPIPS",
              "fid_features": "FID features", "final": "final FID"}
    print("\nours / torchmetrics, speed (>1: ours faster)")
    for part, label in labels.items():
        value = result["ratio_ours_over_torchmetrics"][part]
        low, high = value["rounds_middle_half"]
        print(f"  {label:15} {value['median']:.3f}x of the medians; per round: median {value['rounds_median']:.3f}x, "
              f"middle half {low:.3f}-{high:.3f}x, all {value['min']:.3f}-{value['max']:.3f}x")
    agreement = result["agreement"]
    last = {name: result["configs"][name]["rounds_values"][-1] for name in SIDES}
    print(f"\nagreement: LPIPS max {agreement['max_lpips_relative']:.1e} relative, FID max "
          f"{agreement['max_fid_relative']:.1e} relative (last round: FID {last['ours']['fid']:.6g} vs "
          f"{last['torchmetrics']['fid']:.6g}), SSIM interior {agreement['ssim_interior']['relative_difference']:.1e} "
          f"relative; full-image SSIM {last['ours']['ssim']:.5f} (zero-padded borders) vs "
          f"{last['torchmetrics']['ssim']:.5f} (reflection-padded)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch and BLAS CPU threads (default: the cores available)")
    parser.add_argument("--batch", type=int, default=8, help="pairs per update (default 8, the official evaluator's)")
    parser.add_argument("--images", type=int, default=8, help="image pairs per evaluation, i.e. per round (default 8)")
    parser.add_argument("--rounds", type=int, default=4, help="timed evaluations per side (default 4)")
    parser.add_argument("--size", type=int, default=512, help="image side (default 512)")
    parser.add_argument("--fid-method", choices=["sqrtm", "svd"], default="sqrtm",
                        help="ours' Fréchet distance (default sqrtm, the official computation)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the stand-in networks and of the images")
    parser.add_argument("--json", type=Path, help="results JSON (default results/eval_cpu.json or eval_cuda.json)")
    args = parser.parse_args()
    if args.images < 2 or args.batch < 1 or args.rounds < 1:
        parser.error("need --images ≥ 2 (FID needs two samples per set), --batch ≥ 1 and --rounds ≥ 1")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch.cuda.is_available() is False")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    meta = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "threads": args.threads, "torch": torch.__version__,
            "torchmetrics": torchmetrics.__version__, "platform": platform.platform(),
            "load_average_before": os.getloadavg()}
    print(f"torch {torch.__version__}, torchmetrics {torchmetrics.__version__}, {meta['cpu']}, {args.threads} threads, "
          f"load average before {meta['load_average_before'][0]:.2f}", flush=True)
    with blas_threads(args.threads):
        result = run(args)
    meta["load_average_after"] = os.getloadavg()
    meta["wall_seconds"] = time.perf_counter() - started
    print_report(result, args.threads)
    print(f"\nload average after {meta['load_average_after'][0]:.2f}; wall time {meta['wall_seconds']:.0f} s")
    output = args.json or RESULTS / f"eval_{device.type}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"meta": meta, "eval": result}, indent=1) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()

"""What `lama predict`'s refinement, high-resolution strategies and batches cost, as ratios in one run.

Three parts, each through the library's `Inpainter` (what `lama predict` runs), on Big LaMa's architecture with
random weights whose BatchNorm statistics are calibrated on photos (`inference_speed.calibrated_generator`), the
shipped example photo and a wide-stroke mask:

1. refinement (`refine=true`, official settings except `min_side` = size / 2, so every size gets one optimised
   level as a 1.8 MP photo does with the defaults), with and without `refiner.checkpoint_blocks`, against the
   plain forward: seconds and peak memory per megapixel;
2. `hd_strategy=crop` and `resize` against `original` at 2048² and 4096² (holes: three objects, 6 % of the image):
   seconds, peak memory, mean |Δ| inside the hole against `original` and against the photo's own pixels (8-bit
   levels); `original` is skipped where its measured memory per megapixel says it would not fit;
3. batch 8 against batch 1 at 512²: images per second.

CPU peak memory is the resident set's growth during one call (`finetune_speed.peak_rss`); on a GPU, the peak of
allocated memory. `--device cuda` adds bf16 beside fp32.

With random weights the hole's content says nothing about quality, so the strategies' |Δ| is also measured with a
trained model (`--model-dir`, e.g. the shipped sample model); a run of some parts keeps the other parts' figures
in the results file.

    python benchmarks/predict_speed.py                     # about 25 minutes on the 2-core machine
    python benchmarks/predict_speed.py --parts hd --model-dir examples/models/sample-narrow \
        --output benchmarks/results/predict_cpu_sample.json
    python benchmarks/predict_speed.py --device cuda       # fp32 and bf16
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from finetune_speed import peak_rss, synchronize  # this folder: a script's own folder is importable
from inference_speed import calibrated_generator, large_mask, sample_photo
from PIL import Image, ImageDraw

from lama.models import InpaintingModel, load_model
from lama.models.inference_options import PRECISIONS, InferenceOptions, RefinerOptions
from lama.predict import Inpainter

PARTS = ("refine", "hd", "batch")
GIB = 2**30


def stroke_mask(size: int) -> np.ndarray:
    """``inference_speed``'s wide strokes and box, about a third of the image: [1,H,W] float32."""
    return large_mask(size)[0].numpy()


def object_mask(size: int) -> np.ndarray:
    """Three objects to remove (ellipses, 6 % of the image), the case high-resolution strategies are for."""
    mask = Image.new("L", (size, size))
    draw = ImageDraw.Draw(mask)
    for left, top, width, height in [(0.1, 0.15, 0.16, 0.2), (0.55, 0.5, 0.18, 0.14), (0.3, 0.72, 0.12, 0.18)]:
        draw.ellipse([left * size, top * size, (left + width) * size, (top + height) * size], fill=255)
    return (np.asarray(mask, dtype=np.float32) / 255)[None]


def photo(size: int) -> np.ndarray:
    """The shipped photo at size², quantised to 8 bits as a read PNG is: float32 CHW."""
    return np.round(sample_photo(size)[0].numpy() * 255) / 255


def measure(call: Callable[[], object], device: torch.device) -> dict:
    """Seconds of one call and its peak memory growth (bytes)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    start = time.perf_counter()
    if device.type == "cuda":
        output = call()
        synchronize(device)
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "peak_bytes": torch.cuda.max_memory_allocated(device) - before, "output": output}
    holder = {}
    memory = peak_rss(lambda: holder.setdefault("output", call()))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_bytes": memory["peak_memory_bytes"] - memory["rss_before_step_bytes"],
            "output": holder["output"]}


def inpainter(generator: torch.nn.Module, device: torch.device, precision: str, **options) -> Inpainter:
    batch_size = options.pop("batch_size", 1)
    return Inpainter(InpaintingModel(generator, {}), device, precision, inference=InferenceOptions(**options),
                     batch_size=batch_size)


def refinement(generator: torch.nn.Module, device: torch.device, precision: str, sizes: list[int]) -> list[dict]:
    """The plain forward, the refinement, and the refinement recomputing its blocks (``refiner.checkpoint_blocks``)."""
    rows = []
    for size in sizes:
        image, mask = photo(size), stroke_mask(size)
        runners = {"plain": inpainter(generator, device, precision)}
        for name, recompute in (("refine", False), ("refine_checkpoint_blocks", True)):
            options = RefinerOptions(min_side=size // 2, checkpoint_blocks=recompute)
            runners[name] = inpainter(generator, device, precision, refine=True, refiner=options)
        runners["plain"].predict(image, mask)  # warm-up
        measured = {name: measure(lambda runner=runner, image=image, mask=mask: runner.predict(image, mask), device)
                    for name, runner in runners.items()}
        megapixels = size * size / 1e6
        hole = mask[0] > 0
        plain = measured["plain"]
        row = {"size": size, "precision": precision, "megapixels": megapixels}
        for name, result in measured.items():
            row[name] = {"seconds": result["seconds"], "peak_gib": result["peak_bytes"] / GIB,
                         "seconds_per_mp": result["seconds"] / megapixels,
                         "peak_gib_per_mp": result["peak_bytes"] / GIB / megapixels,
                         "time_ratio": result["seconds"] / plain["seconds"],
                         "memory_ratio": result["peak_bytes"] / max(plain["peak_bytes"], 1),
                         "hole_change_levels": float(np.abs(result["output"].astype(int) - plain["output"])[hole]
                                                     .mean())}
        print(f"refine {precision} {size}²: " + "; ".join(
            f"{name} {values['seconds']:.1f} s ({values['time_ratio']:.1f}×) {values['peak_gib']:.2f} GiB "
            f"({values['memory_ratio']:.1f}×, {values['peak_gib_per_mp']:.2f} GiB/MP), hole moved "
            f"{values['hole_change_levels']:.1f} levels" for name, values in row.items() if isinstance(values, dict)),
            flush=True)
        rows.append(row)
    return rows


def strategies(generator: torch.nn.Module, device: torch.device, precision: str, sizes: list[int],
               memory_limit_gib: float) -> list[dict]:
    rows, original_gib_per_mp = [], None
    for size in sizes:
        image, mask = photo(size), object_mask(size)
        hole = mask[0] > 0
        results = {}
        megapixels = size * size / 1e6
        for strategy in ("original", "crop", "resize"):
            if strategy == "original" and original_gib_per_mp and original_gib_per_mp * megapixels > memory_limit_gib:
                print(f"hd {precision} {size}²: original skipped, about {original_gib_per_mp * megapixels:.0f} GiB "
                      f"(over --memory-limit {memory_limit_gib:g})", flush=True)
                continue
            runner = inpainter(generator, device, precision, hd_strategy=strategy)
            results[strategy] = measure(lambda runner=runner, image=image, mask=mask: runner.predict(image, mask),
                                        device)
            if strategy == "original":
                original_gib_per_mp = results[strategy]["peak_bytes"] / GIB / megapixels
        row = {"size": size, "precision": precision, "hole_fraction": float(hole.mean())}
        for strategy, result in results.items():
            truth = np.clip(image.transpose(1, 2, 0) * 255, 0, 255).astype(np.uint8)
            error = np.abs(result["output"].astype(int) - truth)[hole].mean()  # the photo's own hole pixels
            row[strategy] = {"seconds": result["seconds"], "peak_gib": result["peak_bytes"] / GIB,
                             "mean_abs_error_to_photo_levels": float(error)}
            assert (result["output"][~hole] == truth[~hole]).all(), f"{strategy}: known pixels changed"
            if "original" in results and strategy != "original":
                delta = np.abs(result["output"].astype(int) - results["original"]["output"])[hole]
                row[strategy].update(mean_abs_diff_in_hole_levels=float(delta.mean()),
                                     speedup=results["original"]["seconds"] / result["seconds"],
                                     memory_ratio=result["peak_bytes"] / results["original"]["peak_bytes"])
        print(f"hd {precision} {size}²: " + "; ".join(
            f"{name} {values['seconds']:.1f} s {values['peak_gib']:.2f} GiB"
            + (f" ({values['speedup']:.1f}×, |Δ| {values['mean_abs_diff_in_hole_levels']:.1f})"
               if "speedup" in values else "") + f", error {values['mean_abs_error_to_photo_levels']:.1f}"
            for name, values in row.items() if isinstance(values, dict)),
              flush=True)
        rows.append(row)
    return rows


def batches(generator: torch.nn.Module, device: torch.device, precision: str, size: int, count: int,
            rounds: int) -> dict:
    items = [(photo(size), np.roll(stroke_mask(size), 40 * index, axis=-1)) for index in range(count)]
    runners = {batch: inpainter(generator, device, precision, batch_size=batch) for batch in (1, count)}
    times: dict[int, list[float]] = {batch: [] for batch in runners}
    outputs = {}
    for batch, runner in runners.items():  # warm-up
        outputs[batch] = runner.predict_many(items)
    for _ in range(rounds):
        for batch, runner in runners.items():
            times[batch].append(measure(lambda runner=runner: runner.predict_many(items), device)["seconds"])
    throughput = {batch: count / statistics.median(values) for batch, values in times.items()}
    difference = max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(outputs[1], outputs[count], strict=True))
    row = {"size": size, "precision": precision, "images": count, "rounds": rounds,
           "images_per_s": {str(batch): value for batch, value in throughput.items()},
           "speedup": throughput[count] / throughput[1], "max_abs_diff_levels": difference}
    print(f"batch {precision} {size}²: batch 1 {throughput[1]:.2f} img/s, batch {count} {throughput[count]:.2f} "
          f"img/s ({row['speedup']:.2f}×), outputs within {difference} levels", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--model", default="big-lama", help="architecture, random weights (default big-lama)")
    parser.add_argument("--model-dir", type=Path, help="a trained model dir instead of --model")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--refine-sizes", type=int, nargs="+", default=[512, 768])
    parser.add_argument("--hd-sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of the batch part (default 3)")
    parser.add_argument("--memory-limit", type=float, default=16.0,
                        help="GiB: skip `original` where its projected peak is above (default 16)")
    parser.add_argument("--precisions", nargs="+", choices=list(PRECISIONS),
                        help="default: fp32 on CPU, fp32 and bf16 on a GPU")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, help="results JSON (default results/predict_<device>.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    precisions = args.precisions or (["fp32", "bf16"] if device.type == "cuda" else ["fp32"])
    generator = load_model(args.model_dir).generator if args.model_dir else calibrated_generator(args.model)
    model_name = str(args.model_dir or args.model)
    print(f"torch {torch.__version__}, {device}, {args.threads} threads, {model_name}", flush=True)
    results: dict[str, list] = {part: [] for part in args.parts}
    for precision in precisions:
        if "refine" in args.parts:
            results["refine"] += refinement(generator, device, precision, args.refine_sizes)
        if "hd" in args.parts:
            results["hd"] += strategies(generator, device, precision, args.hd_sizes, args.memory_limit)
        if "batch" in args.parts:
            results["batch"].append(batches(generator, device, precision, 512, args.batch, args.rounds))
    output = args.output or Path(__file__).parent / "results" / f"predict_{device.type}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "threads": args.threads, "device": str(device), "model": model_name,
            "platform": platform.platform(),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    if output.is_file():  # a run of some parts keeps the others' figures
        results = {**json.loads(output.read_text())["results"], **results}
    output.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()

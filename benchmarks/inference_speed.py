"""Generator forward speed of `lama predict` against a plain eager fp32 run of the same network.

Every variant runs in this process on the same weights and input, interleaved (variant A, B, C, A, B, C ...)
so that clock and load drift hit them alike; the median time per variant is reported as a ratio to the plain
run. Weights are randomly initialised, then BatchNorm statistics are calibrated on image batches so activations
have the scale of a trained net; accuracy (mean |Δ| inside the hole, in 0-255 levels) is measured against the
plain fp32 output on a real photograph with a large mask.

    python benchmarks/inference_speed.py                       # lama-fourier, big-lama at 512² and 1024²
    python benchmarks/inference_speed.py --models big-lama --sizes 512 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from lama.models import InpaintingModel, build_generator, prepare_for_inference

VARIANTS = {  # name: (precision, fold_norms, channels_last)
    "fp32 folded": ("fp32", True, False),
    "fp32 channels_last": ("fp32", False, True),
    "fp32 folded+channels_last": ("fp32", True, True),
    "bf16 folded": ("bf16", True, False),
    "bf16 folded+channels_last": ("bf16", True, True),
}


PHOTO = Path(__file__).resolve().parents[1] / "examples" / "input" / "astronaut.png"


def sample_photo(size: int) -> torch.Tensor:
    """The shipped example photograph (public domain, see examples/README.md), resized to size²."""
    photo = Image.open(PHOTO).convert("RGB").resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.asarray(photo, dtype=np.float32) / 255).permute(2, 0, 1)[None]


def large_mask(size: int) -> torch.Tensor:
    """Thick strokes and a box covering about a third of the image, like the paper's wide masks."""
    mask = Image.new("L", (size, size))
    draw = ImageDraw.Draw(mask)
    s = size / 512
    draw.line([(60 * s, 80 * s), (300 * s, 200 * s), (420 * s, 90 * s)], fill=255, width=int(50 * s))
    draw.line([(100 * s, 420 * s), (380 * s, 330 * s)], fill=255, width=int(70 * s))
    draw.rectangle([200 * s, 250 * s, 330 * s, 360 * s], fill=255)
    return torch.from_numpy(np.asarray(mask) > 0).float()[None, None]


@torch.no_grad()
def calibrated_generator(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    generator = build_generator(name)
    for module in generator.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the calibration batches
    generator.train()
    photo = sample_photo(256)
    for _ in range(2):
        mask = (torch.rand(1, 1, 32, 32) > 0.6).float()
        mask = torch.nn.functional.interpolate(mask, size=256)
        generator(torch.cat([photo * (1 - mask), mask], dim=1))
    return generator.eval()


def time_variants(models: dict[str, torch.nn.Module], inputs: dict[str, torch.Tensor], repeats: int
                  ) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for name, model in models.items():  # warm-up: oneDNN primitive creation, allocator
            model(inputs[name])
        for _ in range(repeats):
            for name, model in models.items():
                start = time.perf_counter()
                model(inputs[name])
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def run(model_name: str, size: int, repeats: int) -> dict:
    generator = calibrated_generator(model_name)
    image, mask = sample_photo(size), large_mask(size)
    batch = InpaintingModel(generator, {}).make_input(image, mask)
    models, inputs = {"plain fp32": generator}, {"plain fp32": batch}
    for variant, (precision, fold, channels_last) in VARIANTS.items():
        models[variant] = prepare_for_inference(generator, "cpu", precision, fold, channels_last)
        x = batch.to(torch.bfloat16 if precision == "bf16" else torch.float32)
        inputs[variant] = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    seconds = time_variants(models, inputs, repeats)
    with torch.inference_mode():
        reference = generator(batch)
        hole = mask.expand_as(reference) > 0
        errors = {name: ((m(inputs[name]).float() - reference).abs()[hole].mean() * 255).item()
                  for name, m in models.items()}
    base = seconds["plain fp32"]
    return {
        "model": model_name, "size": size, "repeats": repeats,
        "variants": {name: {"seconds": round(t, 4), "speedup": round(base / t, 3),
                            "mean_abs_diff_in_hole_levels": round(errors[name], 4)} for name, t in seconds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["lama-fourier", "big-lama"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[512, 1024])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "inference_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    print(f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}")
    print(f"{'model':14} {'size':>5} {'variant':27} {'seconds':>8} {'speedup':>8} {'|Δ| hole':>9}")
    for model_name in args.models:
        for size in args.sizes:
            result = run(model_name, size, args.repeats)
            results.append(result)
            for variant, row in result["variants"].items():
                print(f"{model_name:14} {size:>5} {variant:27} {row['seconds']:8.3f} {row['speedup']:7.2f}x "
                      f"{row['mean_abs_diff_in_hole_levels']:9.3f}", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "threads": args.threads, "device": "cpu",
            "cpu_count": torch.get_num_threads(), "platform": platform.platform()}
    args.output.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

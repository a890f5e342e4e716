"""What an exported file costs and gives against `lama predict`, as ratios in one run.

For each architecture (lama-fourier, Big LaMa; random weights with BatchNorm statistics calibrated on photos,
`inference_speed.calibrated_generator`): the export time of each file, then, at each size, interleaved rounds of
one forward each through

- ONNX Runtime on the fp32 files (`fourier=matmul`: DFT-basis products, the default; `fourier=dft`: ONNX's DFT
  operator) and on the fp16 file (Fourier units in fp32),
- `lama predict`'s `Inpainter` in fp32 and bf16 (norms folded, channels-last: its defaults),

on the shipped photo with a wide-stroke mask. Printed: median seconds, the ratio to `predict fp32` (above 1 =
faster), and each output's mean and max |Δ| (8-bit levels) to `predict fp32`'s over the whole image.
`--device cuda` uses ONNX Runtime's CUDA provider (where onnxruntime-gpu is installed) and torch on the GPU.

    python benchmarks/export_speed.py                      # about 15 minutes on the 2-core machine
    python benchmarks/export_speed.py --device cuda --sizes 512 1024 2048
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from finetune_speed import synchronize  # this folder: a script's own folder is importable
from inference_speed import calibrated_generator, large_mask, sample_photo

from lama.export import ExportOptions, export_model
from lama.models import InpaintingModel, generator_config, save_model_dir
from lama.models.model_dir import load_model
from lama.predict import Inpainter, OnnxInpainter

ARCHITECTURES = ("lama-fourier", "big-lama")
# name -> export options of each file timed
FILES = {"onnx matmul fp32": ExportOptions(fourier="matmul"), "onnx dft fp32": ExportOptions(fourier="dft"),
         "onnx matmul fp16": ExportOptions(fourier="matmul", precision="fp16")}


def exported(model_dir: Path, folder: Path, device: torch.device) -> tuple[dict[str, OnnxInpainter], dict[str, float]]:
    """Each file of ``FILES`` in a session, and the seconds its export took; a file the runtime cannot run on this
    device is reported and left out."""
    runners, seconds = {}, {}
    for name, options in FILES.items():
        result = export_model(model_dir, folder / (name.replace(" ", "_") + ".onnx"), options)
        seconds[name] = round(result.seconds, 1)
        try:
            runners[name] = OnnxInpainter(result.path, device)
        except ValueError as error:
            print(f"  {name}: not run ({error})")
    return runners, seconds


def run_architecture(name: str, sizes: list[int], rounds: int, device: torch.device) -> dict:
    config = generator_config(name)
    model = InpaintingModel(calibrated_generator(name), config)
    with tempfile.TemporaryDirectory() as folder:
        model_dir = Path(folder) / name
        save_model_dir(model, model_dir)
        model = load_model(model_dir)
        runners, export_seconds = exported(model_dir, Path(folder), device)
        print(f"{name} export: " + ", ".join(f"{key} {value} s" for key, value in export_seconds.items()))
        inpainters = {**{f"predict {precision}": Inpainter(model, device, precision) for precision in ("fp32", "bf16")},
                      **runners}
        result = {"export_seconds": export_seconds, "sizes": {}}
        for size in sizes:
            image = np.round(sample_photo(size)[0].numpy() * 255) / 255
            mask = large_mask(size)[0].numpy()
            calls = {key: partial(inpainter.predict, image, mask) for key, inpainter in inpainters.items()}
            result["sizes"][size] = time_calls(calls, rounds, device)
            report(name, size, result["sizes"][size])
    return result


def time_calls(calls: dict, rounds: int, device: torch.device) -> dict:
    outputs = {key: call().astype(np.float32) for key, call in calls.items()}  # warm-up; uint8 outputs compared
    seconds: dict[str, list[float]] = {key: [] for key in calls}
    for index in range(rounds):
        order = list(calls) if index % 2 == 0 else list(reversed(calls))
        for key in order:
            start = time.perf_counter()
            calls[key]()
            synchronize(device)
            seconds[key].append(time.perf_counter() - start)
    baseline = statistics.median(seconds["predict fp32"])
    rows = {}
    for key, values in seconds.items():
        difference = np.abs(outputs[key] - outputs["predict fp32"])
        rows[key] = {"seconds": round(statistics.median(values), 3),
                     "speedup": round(baseline / statistics.median(values), 2),
                     "mean_abs_diff_levels": round(float(difference.mean()), 4),
                     "max_abs_diff_levels": round(float(difference.max()), 3)}
    return rows


def report(name: str, size: int, rows: dict) -> None:
    print(f"{name} {size}²")
    for key, row in rows.items():
        print(f"  {key:18s} {row['seconds']:8.3f} s  {row['speedup']:5.2f}×  |Δ| mean {row['mean_abs_diff_levels']:.4f}"
              f" max {row['max_abs_diff_levels']:.3f} levels")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES), choices=ARCHITECTURES)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "export_cpu.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    machine = {"platform": platform.platform(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
               "threads": torch.get_num_threads(), "device": str(device)}
    results = {"machine": machine,
               "architectures": {name: run_architecture(name, args.sizes, args.rounds, device)
                                 for name in args.architectures}}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

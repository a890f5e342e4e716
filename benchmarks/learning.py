"""Does training learn on this device, and what does it cost? The checks behind the sample profile's recipe.

1. Overfitting one fixed batch (`lama.train.diagnose.overfit_batch`: 4 crops of 64² of the embedded set with wide
   masks drawn for the crop, the sample profile's generator): the hole error after 100 steps against before, with
   the sample profile's loss and, as the control, with the paper's loss on the stand-in HRF encoder (40 steps).
2. The sample profile's training as `dvc repro` runs it (params.yaml's run `lama`, its whole budget): wall time,
   steps/s, peak memory, the largest gradient norm before clipping and the largest per-term gradient on the output;
   then `lama predict` and `lama evaluate` on its test mask sets (params.yaml), with the hole SSIM/PSNR of the
   classical baselines (mean-colour fill, Telea, Navier–Stokes) predicted and evaluated the same way as the
   baseline of the ratios.

On a GPU both run in fp32 and in bf16 (`train.mixed_precision`), on a CPU in fp32.

    python benchmarks/learning.py                      # CPU: about 8 minutes on the 2-core machine
    python benchmarks/learning.py --data data/prepared # an already prepared embedded set (skips `lama prepare`)
    python benchmarks/learning.py --quick              # smoke run: 20 training steps, writes nothing
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lama.baselines import METHODS, classical_model  # noqa: E402
from lama.data.loader import TrainLoader  # noqa: E402
from lama.data.prepare import PrepareConfig, prepare  # noqa: E402
from lama.eval.evaluator import EvaluateOptions, evaluate_predictions  # noqa: E402
from lama.masks import build_eval_mask_set  # noqa: E402
from lama.masks.configs import eval_set_config  # noqa: E402
from lama.pipeline.params import load_params, run_config  # noqa: E402
from lama.predict import ModelOptions, PredictOptions, predict_folder  # noqa: E402
from lama.train import train  # noqa: E402
from lama.train.diagnose import overfit_batch  # noqa: E402

RESULTS = Path(__file__).parent / "results"
OVERFIT_STEPS, CONTROL_STEPS = 100, 40
PARAMS = load_params(REPO / "params.yaml")
MASK_SETS, VAL_MASK_SET = tuple(PARAMS.eval.mask_sets), PARAMS.data.val_mask_set  # the sample profile's


def prepare_inputs(work: Path, data: Path | None) -> Path:
    sets = [("val", VAL_MASK_SET), *(("test", name) for name in MASK_SETS)]
    sizes = {name: eval_set_config(name).out_min_size for _, name in sets}
    if data is None:
        data = work / "data"
        prepare(PrepareConfig(source="embedded", eval_sizes=sorted(set(sizes.values()))), data, progress=False)
    for split, name in sets:
        build_eval_mask_set(name, data / split / str(sizes[name]), work / "masks" / split / name, progress=False)
    return data


def peak_memory(device: torch.device) -> float:
    """MiB: the CUDA allocator's peak since the last reset, or the process's peak resident set on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def overfit(data: Path, work: Path, precision: str, device: torch.device) -> dict:
    common = ["data.loader.crop_size=64", "data.loader.num_workers=0", f"train.mixed_precision={precision}"]
    sample = run_config(PARAMS, "lama", data, None, work / "overfit", common)
    batch = next(iter(TrainLoader(sample.data.train, sample.data.loader, rank=0, world_size=1)))
    control = run_config(PARAMS, "lama", data, None, work / "overfit", [
        *common, "loss.alpha=30", "loss.l1_missing=0", "loss.hrf_weights=stand-in"])
    found = {}
    for name, config, steps in (("sample", sample, OVERFIT_STEPS), ("paper_loss_stand_in", control, CONTROL_STEPS)):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        result = overfit_batch(config, batch["image"], batch["mask"], steps)
        found[name] = {"steps": steps, "hole_error_before": result.hole_error_before,
                       "hole_error_after": result.hole_error_after, "factor": result.factor,
                       "seconds_per_step": result.seconds / steps, "grad_norm_max": result.grad_norm_max,
                       "output_gradients": result.output_gradients, "peak_mib": peak_memory(device)}
    return found


def hole_scores(work: Path, model: str, tag: str, device: str, precision: str) -> dict:
    scores = {}
    for name in MASK_SETS:
        out = work / "predictions" / tag / name
        options = PredictOptions(model=ModelOptions(path=model), indir=str(work / "masks" / "test" / name),
                                 outdir=str(out), device=device, precision="fp32")
        predict_folder(options, progress=False)
        result = work / "results" / tag / f"{name}.json"
        evaluate_predictions(EvaluateOptions(str(work / "masks" / "test" / name), str(out), str(result),
                                             device=device, weights="stand-in", fid_method="svd", num_workers=0),
                             progress=False)
        metrics = json.loads(result.read_text())["metrics"]
        scores[name] = {"hole_psnr": metrics["hole_psnr"], "hole_ssim": metrics["hole_ssim"]}
    return scores


def sample_run(data: Path, work: Path, precision: str, device: torch.device, steps: int | None) -> dict:
    tag = f"lama-{device.type}-{precision}"
    overrides = [f"train.mixed_precision={precision}", "train.progress=false", "tracking.enabled=false"]
    if steps is not None:
        overrides += [f"train.steps={steps}", f"train.val_every={steps}", f"train.save_every={steps}"]
    config = run_config(PARAMS, "lama", data, work / "masks" / "val" / VAL_MASK_SET, work / "runs" / tag, overrides)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    result = train(config)
    wall = time.perf_counter() - started
    log = [json.loads(line) for line in (Path(config.train.out_dir) / "train_log.jsonl").read_text().splitlines()]
    output = {key.rsplit("/", 1)[1]: max(record[key] for record in log if key in record)
              for key in {key for record in log for key in record if "grad_wrt_output" in key}}
    return {"steps": result.step, "wall_s": wall, "steps_per_s": result.step / wall,
            "peak_mib": peak_memory(device), "crop": config.data.loader.crop_size,
            "batch": config.data.loader.batch_size,
            "grad_norm_max": max(record.get("train/gen/grad_norm_max", 0.0) for record in log),
            "output_gradients_max": output,
            "test": hole_scores(work, str(config.train.out_dir), tag, device.type, precision)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a prepared embedded set (default: prepare one)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 training steps, nothing written")
    parser.add_argument("--output", type=Path, help="results JSON (default results/learning_<cpu|cuda>.json)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precisions = ["no", "bf16"] if device.type == "cuda" and torch.cuda.is_bf16_supported() else ["no"]
    report: dict = {"machine": {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else
                                platform.processor() or platform.machine(), "torch": torch.__version__}}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        data = prepare_inputs(work, args.data)
        report["baselines"] = {method: hole_scores(work, classical_model(method), method, "cpu", "fp32")
                               for method in METHODS}
        for precision in precisions:
            report[f"{device.type}-{precision}"] = {
                "overfit": overfit(data, work, precision, device),
                "sample_run": sample_run(data, work, precision, device, 20 if args.quick else None)}
    print_report(report, precisions, device)
    if not args.quick:
        output = args.output or RESULTS / f"learning_{device.type}.json"
        output.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written to {output}")


def print_report(report: dict, precisions: list[str], device: torch.device) -> None:
    print(f"device: {report['machine']['device']}, torch {report['machine']['torch']}")
    for precision in precisions:
        part = report[f"{device.type}-{precision}"]
        for name, found in part["overfit"].items():
            print(f"[{precision}] overfit one batch, {name}: hole error {found['hole_error_before']:.4f} -> "
                  f"{found['hole_error_after']:.4f} ({found['factor']:.1f}x smaller) in {found['steps']} steps, "
                  f"{found['seconds_per_step'] * 1000:.0f} ms/step, grad norm max {found['grad_norm_max']:.3g}, "
                  f"on the output {json.dumps({k: round(v, 4) for k, v in found['output_gradients'].items()})}")
        run = part["sample_run"]
        print(f"[{precision}] sample run: {run['steps']} steps of {run['batch']}x{run['crop']}² in "
              f"{run['wall_s']:.1f} s ({run['steps_per_s']:.2f} steps/s), peak {run['peak_mib']:.0f} MiB, "
              f"grad norm max {run['grad_norm_max']:.3g}")
        for name in MASK_SETS:
            ours = run["test"][name]
            line = f"   {name}: lama hole PSNR {ours['hole_psnr']:.2f} dB, SSIM {ours['hole_ssim']:.3f}"
            for method in METHODS:
                base = report["baselines"][method][name]
                line += (f" | {method} {base['hole_psnr']:.2f} / {base['hole_ssim']:.3f} "
                         f"({ours['hole_psnr'] - base['hole_psnr']:+.2f} dB, "
                         f"{ours['hole_ssim'] / base['hole_ssim']:.2f}x)")
            print(line)


if __name__ == "__main__":
    main()

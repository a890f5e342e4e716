"""ValidationMetrics: the official evaluation numbers end to end, stand-in labelling, and agreement across ranks."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lama import weights
from lama.eval import metrics as metrics_module
from lama.eval.metrics import HOLE_METRICS, METRIC_NAMES, ValidationMetrics, affected_by_stand_ins, fid100_f1
from lama.eval.ssim import hole_psnr, hole_ssim, psnr, ssim
from tests.eval import eval_protocol, single_thread


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    with single_thread():
        yield


def image_batch(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets with some structure and predictions that differ inside a box, like inpainting outputs."""
    generator = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=generator)
    target = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    target = (target + 0.05 * torch.rand(n, 3, size, size, generator=generator)).clamp(0, 1)
    predicted = target.clone()
    box = slice(size // 4, size // 2)
    noise = torch.rand(n, 3, size // 4, size // 4, generator=generator)
    predicted[:, :, box, box] = 0.5 * predicted[:, :, box, box] + 0.5 * noise
    return predicted, target


def test_official_evaluation_through_the_registry_files(fixtures: Path, formula_weights_home: Path) -> None:
    """The real-weights path (files in $LAMA_HOME) on the eval-protocol set in batches of 8, as the official run.

    FID uses the closed form here: the official sqrtm of a 2048² product takes ~13 s on one CPU core; the sqrtm
    route is checked in test_fid on smaller dimensions (the fixture's vectors, rank-deficient sets vs torchmetrics).
    """
    metrics = ValidationMetrics("cpu", "pretrained", fid_method="svd")
    assert metrics.stand_in_networks == ()
    assert not any("stand-in" in label for label in metrics.labels.values())
    predicted, images, results = eval_protocol(fixtures)
    for start in range(0, len(images), 8):
        metrics.update(predicted[start:start + 8], images[start:start + 8])
    assert metrics.num_samples == 32
    values = metrics.compute()
    official = results["results"]
    assert set(values) == set(METRIC_NAMES) - set(HOLE_METRICS)  # no masks given, no hole scores
    assert abs(values["ssim"] - official["ssim"]["total"]["mean"]) <= 1e-6
    assert abs(values["lpips"] - official["lpips"]["total"]["mean"]) <= 1e-5 * official["lpips"]["total"]["mean"]
    fid_ref = official["fid"]["total"]["mean"]
    trace_sum = results["precision_study"]["fid"]["total"]["trace_sigma_sum"]
    assert abs(values["fid"] - fid_ref) <= 1e-3 * fid_ref + 5e-6 * trace_sum
    # The f1 scores move with FID (about 1e-2 per FID unit), so they get the FID tolerance carried through.
    f1_tolerance = 1e-2 * (1e-3 * fid_ref + 5e-6 * trace_sum)
    assert abs(values["lpips_fid100_f1"] - official["lpips_fid100_f1"]["total"]["mean"]) <= f1_tolerance
    assert abs(values["ssim_fid100_f1"] - results["ssim_fid100_f1"]) <= f1_tolerance
    assert values["psnr"] == pytest.approx(psnr(predicted, images).mean().item(), rel=1e-12)


def test_fid100_f1_reproduces_the_official_integral_scores(fixtures: Path) -> None:
    results = json.loads((fixtures / "eval-protocol" / "results.json").read_text())["results"]
    fid = results["fid"]["total"]["mean"]
    lpips_f1 = fid100_f1(1 - results["lpips"]["total"]["mean"], fid)
    assert abs(lpips_f1 - results["lpips_fid100_f1"]["total"]["mean"]) <= 1e-5
    fid_rel = (100 - fid) / 100
    ssim_value = results["ssim"]["total"]["mean"]
    assert fid100_f1(ssim_value, fid) == pytest.approx(2 * ssim_value * fid_rel / (ssim_value + fid_rel + 1e-3))
    assert fid100_f1(0.9, 150.0) == 0.0  # FID above 100 clamps fid_rel to 0
    assert math.isnan(fid100_f1(0.9, math.nan))


def test_stand_in_labels_and_the_metrics_they_affect() -> None:
    assert affected_by_stand_ins(("fid",)) == ("fid", "ssim_fid100_f1", "lpips_fid100_f1")
    assert affected_by_stand_ins(("lpips",)) == ("lpips", "lpips_fid100_f1")
    assert affected_by_stand_ins(()) == ()
    with pytest.raises(ValueError, match="unknown networks"):
        affected_by_stand_ins(("ssim",))
    metrics = ValidationMetrics(weights="stand-in", seed=2)
    assert metrics.stand_in_networks == ("lpips", "fid")
    labels = metrics.labels
    assert set(labels) == set(METRIC_NAMES)
    marked = {name for name, label in labels.items() if "stand-in" in label}
    assert marked == set(affected_by_stand_ins(metrics.stand_in_networks))
    assert "seed 2" in labels["fid"] and "not the pytorch-fid Inception" in labels["fid"]
    assert "stand-in" not in labels["ssim"] + labels["psnr"]
    with pytest.raises(ValueError, match="weights must be"):
        ValidationMetrics(weights="random")  # type: ignore[arg-type]


def test_pretrained_without_files_names_the_fetch_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMA_HOME", str(tmp_path))
    with pytest.raises(weights.MissingWeightsError, match="lama weights fetch torchvision-vgg16"):
        ValidationMetrics(weights="pretrained")


def test_stand_in_validation_of_eight_256_images() -> None:
    predicted, target = image_batch(8, 256, seed=0)
    mask = torch.zeros(8, 1, 256, 256)
    mask[:, :, 64:128, 64:128] = 1  # the box image_batch changed
    metrics = ValidationMetrics("cpu", "stand-in", seed=0, fid_method="svd")
    metrics.update(predicted[:5], target[:5], mask[:5])
    metrics.update(predicted[5:], target[5:], mask[5:])
    values = metrics.compute()
    assert set(values) == set(METRIC_NAMES) and all(math.isfinite(value) for value in values.values())
    assert values["ssim"] == pytest.approx(ssim(predicted, target).double().mean().item(), abs=1e-7)
    assert values["psnr"] == pytest.approx(psnr(predicted, target).mean().item(), rel=1e-12)
    assert values["hole_ssim"] == pytest.approx(hole_ssim(predicted, target, mask).double().mean().item(), abs=1e-7)
    assert values["hole_psnr"] == pytest.approx(hole_psnr(predicted, target, mask).mean().item(), rel=1e-12)
    assert values["hole_psnr"] < values["psnr"] and values["hole_ssim"] < values["ssim"]  # the error is in the hole
    metrics.reset()
    metrics.update(predicted, target)  # without masks there is no hole score
    assert set(metrics.compute()) == set(METRIC_NAMES) - {"hole_ssim", "hole_psnr"}
    assert values["lpips"] > 0 and values["fid"] > 0
    assert values["lpips_fid100_f1"] == pytest.approx(fid100_f1(1 - values["lpips"], values["fid"]))
    assert values["ssim_fid100_f1"] == pytest.approx(fid100_f1(values["ssim"], values["fid"]))
    metrics.reset()
    assert metrics.num_samples == 0
    with pytest.raises(RuntimeError, match="before any update"):
        metrics.compute()


def test_update_ignores_autocast_and_checks_shapes() -> None:
    predicted, target = image_batch(2, 32, seed=1)
    metrics = ValidationMetrics(weights="stand-in", fid_method="svd")
    metrics.update(predicted, target)
    reference = metrics.compute()
    assert math.isfinite(reference["fid"])
    metrics.reset()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a trainer may validate inside its mixed-precision context
        metrics.update(predicted, target)
    assert metrics.compute() == reference
    metrics.reset()
    metrics.update(predicted[:1], target[:1])
    values = metrics.compute()
    assert math.isnan(values["fid"]) and math.isnan(values["lpips_fid100_f1"]) and math.isfinite(values["ssim"])
    with pytest.raises(ValueError, match="same shape"):
        metrics.update(predicted, target[:, :, :16])


def _rank_worker(rank: int, world_size: int, init_file: str, data_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=120))  # a crashed peer fails the test instead of hanging it
    try:
        data = torch.load(data_file, weights_only=True)
        metrics = ValidationMetrics("cpu", "stand-in", seed=1, fid_method="svd")
        share = slice(0, 2) if rank == 0 else slice(2, 3)  # uneven shares
        metrics.update(data["predicted"][share], data["target"][share], data["mask"][share])
        record: dict = {"values": metrics.compute()}

        def failing(*args: object, **kwargs: object) -> float:
            raise ValueError("FID failed on rank 0")

        metrics_module.frechet_distance = failing  # only rank 0 computes; every rank must see its failure
        try:
            metrics.compute()
        except ValueError as error:
            record["error"] = str(error)
        metrics.reset()
        try:
            metrics.compute()
        except RuntimeError as error:
            record["empty"] = str(error)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(record))
    finally:
        dist.destroy_process_group()


def test_every_rank_returns_the_numbers_of_the_whole_set(tmp_path: Path) -> None:
    predicted, target = image_batch(3, 32, seed=2)
    mask = torch.zeros(3, 1, 32, 32)
    mask[:, :, 8:16, 8:16] = 1
    data_file = tmp_path / "data.pt"
    torch.save({"predicted": predicted, "target": target, "mask": mask}, data_file)
    # fork: the workers inherit the imported modules instead of importing torch, torchvision and lpips again
    mp.start_processes(_rank_worker, args=(2, str(tmp_path / "init"), str(data_file), str(tmp_path)), nprocs=2,
                       join=True, start_method="fork")
    records = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert records[0] == records[1]
    assert records[0]["error"] == "FID failed on rank 0" and "before any update" in records[0]["empty"]
    ranks = [record["values"] for record in records]
    single = ValidationMetrics("cpu", "stand-in", seed=1, fid_method="svd")
    single.update(predicted, target, mask)
    expected = single.compute()
    for name in METRIC_NAMES:
        assert ranks[0][name] == pytest.approx(expected[name], rel=1e-6, abs=1e-6), name

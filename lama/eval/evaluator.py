"""``lama evaluate``: score a folder of predictions against an eval mask set, like LaMa's ``evaluate_predicts.py``.

Pairing follows the official layout (masks ``**/*mask*.png`` sorted, the image is the mask path cut at its last
``_mask``, the prediction sits under the mask's relative path), images and masks are read as float32 in [0, 1] with
no binarisation, and batches hold images of one size. The result is one JSON (the DVC metrics file: totals under
``metrics``, every bin under ``bins``, plus what was evaluated) and the official TSV.

Finished batches are journalled with their per-image values and Inception features, so an interrupted evaluation
of a large set continues where it stopped; the journal is discarded when its inputs or settings changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lama.devices import resolve_device
from lama.eval.bins import (
    TOTAL,
    area_bin_indices,
    format_tsv,
    group_scores,
    labelled_scores,
    mask_areas,
)
from lama.eval.fid import FEATURE_DIM
from lama.eval.metrics import PER_IMAGE_METRICS, ValidationMetrics
from lama.eval.options import EvaluateOptions
from lama.eval.provenance import apply_overrides, describe_mask_set, describe_model_dir
from lama.eval.schema import EVAL_FORMAT as FORMAT
from lama.eval.schema import EvaluationFile, MaskSetInfo, ModelInfo, to_json
from lama.files import atomic_write
from lama.imageio.eval_layout import MaskImagePair, find_pairs, read_image, read_mask
from lama.imageio.images import UnusableImageError, image_size
from lama.journal import Journal
from lama.progress import progress_bar
from lama.signals import worker_initializer

logger = logging.getLogger(__name__)

JOURNAL = "journal.jsonl"


@dataclass
class EvaluationSummary:
    n: int
    resumed: int
    metrics: dict[str, float | None]

    def __str__(self) -> str:
        shown = ", ".join(f"{name} {value:.4f}" for name, value in self.metrics.items()
                          if value is not None and "f1" not in name)
        resumed = f" ({self.resumed} from an interrupted run)" if self.resumed else ""
        return f"{self.n} predictions scored{resumed}: {shown}"


class PairDataset(Dataset):
    """(image, mask, prediction) of each pair as float32 CHW in [0, 1]."""

    def __init__(self, pairs: Sequence[MaskImagePair]) -> None:
        self.pairs = list(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pair = self.pairs[index]
        return (torch.from_numpy(read_image(pair.image)), torch.from_numpy(read_mask(pair.mask)),
                torch.from_numpy(read_image(pair.output)))


def checked_pairs(options: EvaluateOptions) -> tuple[list[MaskImagePair], list[tuple[int, int]]]:
    """The official pairs and each one's (width, height); a missing or mismatched file is an error naming it."""
    datadir, predictdir = Path(options.datadir), Path(options.predictdir)
    for folder, what in ((datadir, "eval mask set"), (predictdir, "predictions folder")):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: {what} not found")
    pairs = find_pairs(datadir, predictdir, options.img_suffix, options.inpainted_suffix)
    if not pairs:
        raise ValueError(f"{datadir}: no masks (*mask*.png) found")
    for attribute, what in (("image", "image"), ("output", "prediction")):
        missing = [getattr(pair, attribute) for pair in pairs if not getattr(pair, attribute).is_file()]
        if missing:
            raise FileNotFoundError(f"{missing[0]}: {what} of {len(missing)} of {len(pairs)} masks missing"
                                    f"{' (this is the first)' if len(missing) > 1 else ''}")
    sizes = []
    for pair in pairs:
        size = _image_size(pair.image)
        for other in (pair.mask, pair.output):
            if _image_size(other) != size:
                raise ValueError(f"{other}: size {_image_size(other)} differs from its image {pair.image} {size}")
        sizes.append(size)
    return pairs, sizes


def _image_size(path: Path) -> tuple[int, int]:
    try:
        return image_size(path)
    except UnusableImageError as error:
        raise ValueError(f"{path}: not a readable image ({error})") from None


def size_batches(sizes: Sequence[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Consecutive indices in batches of at most ``batch_size`` images of one size (a size change starts a batch)."""
    batches: list[list[int]] = []
    for index, size in enumerate(sizes):
        if batches and len(batches[-1]) < batch_size and sizes[batches[-1][0]] == size:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def evaluate_predictions(options: EvaluateOptions, progress: bool = True) -> EvaluationSummary:
    """Score ``predictdir`` against ``datadir``; writes the JSON and the TSV and returns the totals."""
    if options.batch_size < 1 or options.num_workers < 0:
        raise ValueError(f"batch_size={options.batch_size}, num_workers={options.num_workers}: expected >= 1, >= 0")
    pairs, sizes = checked_pairs(options)
    mask_set = describe_mask_set(options.datadir, sizes)
    model = describe_model_dir(options.model_dir)
    apply_overrides(model, mask_set, options.overrides)
    device = resolve_device(options.device)
    metrics = ValidationMetrics(device, options.weights, options.seed,  # type: ignore[arg-type]
                                fid_method=options.fid_method)  # type: ignore[arg-type]
    batches = size_batches(sizes, options.batch_size)
    identity = _identity(options, pairs, metrics)
    records, features = _measure(pairs, batches, metrics, options, identity, progress)
    per_image = {name: np.array([value for record in records for value in record[name]]) for name in
                 (*PER_IMAGE_METRICS, "area")}
    bins = area_bin_indices(per_image["area"].astype(np.float32))
    scores = group_scores(per_image, bins, features["predicted"], features["target"], options.fid_method)  # type: ignore[arg-type]
    stand_ins = metrics.stand_in_networks
    labelled = labelled_scores(scores, stand_ins)
    totals = {key: value for key, value in labelled[TOTAL].items() if key != "n"}
    flat = {key: (value["mean"] if isinstance(value, dict) else value) for key, value in totals.items()}
    result = EvaluationFile(
        format=FORMAT,
        mask_set=MaskSetInfo(**mask_set),
        predictions=options.predictdir,
        model=ModelInfo(**model),
        networks={"lpips": metrics.lpips_net.weights_label, "fid": metrics.inception.weights_label},
        stand_in=list(stand_ins),
        fid_method=options.fid_method,
        n=len(pairs),
        metrics=flat,
        bins=labelled,
    )
    atomic_write(options.tsv_path, lambda handle: handle.write(format_tsv(scores, stand_ins).encode()))
    atomic_write(Path(options.out), lambda handle: handle.write(json.dumps(to_json(result), indent=1).encode()
                                                                + b"\n"))
    shutil.rmtree(options.partial_dir, ignore_errors=True)
    resumed = sum(len(record["ssim"]) for record in records if record.get("resumed"))
    return EvaluationSummary(len(pairs), resumed, flat)


def _identity(options: EvaluateOptions, pairs: Sequence[MaskImagePair], metrics: ValidationMetrics) -> dict:
    """What the journalled values depend on: every input file (path, size, mtime), the networks, the batching."""
    digest = hashlib.sha256()
    for pair in pairs:
        for path in (pair.mask, pair.image, pair.output):
            stat = path.stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return {"inputs": digest.hexdigest(), "batch_size": options.batch_size, "metrics": list(PER_IMAGE_METRICS),
            "networks": [metrics.lpips_net.weights_label, metrics.inception.weights_label]}


def _measure(
    pairs: Sequence[MaskImagePair],
    batches: list[list[int]],
    metrics: ValidationMetrics,
    options: EvaluateOptions,
    identity: dict,
    progress: bool,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Per-batch records (per-image values) and the Inception features of all pairs, reusing journalled batches."""
    partial = options.partial_dir
    journal = Journal(partial / JOURNAL, identity, "evaluation")
    try:
        done = {record["batch"]: record for record in journal.records()}
    except ValueError as error:
        logger.warning("%s; starting the evaluation over", error)
        shutil.rmtree(partial)
        done = {}
    features = {"predicted": np.zeros((len(pairs), FEATURE_DIM), np.float32),
                "target": np.zeros((len(pairs), FEATURE_DIM), np.float32)}
    for number, record in done.items():
        stored = np.load(partial / f"batch-{number:06d}.npz")
        for name in features:
            features[name][batches[number]] = stored[name]
        record["resumed"] = True
    todo = [number for number in range(len(batches)) if number not in done]
    bar = progress_bar(total=len(pairs), initial=sum(len(batches[number]) for number in done), unit="img",
                       desc="evaluate", disable=not progress)
    with journal, bar:
        for number, (image, mask, predicted) in zip(todo, _batches(pairs, batches, todo, options.num_workers),
                                                    strict=True):
            measured = metrics.measure(predicted, image, mask)
            record = {"batch": number, **{name: measured[name].tolist() for name in PER_IMAGE_METRICS},
                      "area": mask_areas(mask).tolist()}
            stored = {name: measured[f"features_{name}"].numpy() for name in features}
            atomic_write(partial / f"batch-{number:06d}.npz", lambda handle, s=stored: np.savez(handle, **s))
            journal.append(record)
            done[number] = record
            for name in features:
                features[name][batches[number]] = stored[name]
            bar.update(len(batches[number]))
    return [done[number] for number in range(len(batches))], features


def _batches(pairs: Sequence[MaskImagePair], batches: list[list[int]], todo: list[int],
             num_workers: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    workers = num_workers if todo else 0
    loader = DataLoader(PairDataset(pairs), batch_sampler=[batches[number] for number in todo], num_workers=workers,
                        worker_init_fn=worker_initializer() if workers else None)
    yield from loader


"""Evaluation files (``lama-eval/1``, written by ``lama evaluate``) as the report reads them: through the schema
``lama.eval.schema``, then as the ``Evaluation`` records the tables select from.

A file that claims the format but has a wrong field is an error naming the file and the key; other JSON found under a
results folder is not ours and is skipped. When several evaluations fit one table cell, the workspace's is used
before a saved experiment's, then the first by path, and the others are named in a warning.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lama.eval.metrics import STAND_IN_SUFFIX, affected_by_stand_ins
from lama.eval.schema import EVAL_FORMAT, EvaluationFile, SchemaError, from_json
from lama.losses.feature_matching import UNMASKED

logger = logging.getLogger(__name__)

PREFERRED_SIZE = 512  # the paper's Places resolution


@dataclass(frozen=True)
class Measured:
    """A metric as an evaluation reports it: the value (None when NaN or null) and whether a stand-in made it."""

    value: float | None
    stand_in: bool


@dataclass(frozen=True)
class Evaluation:
    """One ``lama-eval/1`` file: which model, which eval mask set, and its metrics."""

    source: Path
    mask_set: str
    mask_kind: str | None
    mask_size: int | None
    mask_dir: Path
    predictions_dir: Path
    model_label: str
    architecture: str | None
    train_masks: str  # null in the file counts as "wide", the default training masks
    mask_interp: str  # null counts as UNMASKED, the paper's behaviour
    parameters: int | None
    stand_in_networks: tuple[str, ...]
    n: int
    metrics: Mapping[str, float | None]
    classical: str | None = None  # the classical method (lama.baselines) for a baseline, None for a trained model
    # How the model's training loss departs from the paper's recipe; empty: the paper's; None: not recorded.
    recipe: tuple[str, ...] | None = None
    # Area bin ("0-10%", ...) -> metric -> mean over the bin's images (None: NaN or not computed).
    bins: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    # The saved DVC experiment it was read from (``lama.pipeline.experiments``); None: the workspace's results.
    experiment: str | None = None

    @property
    def deviates(self) -> bool:
        """Whether the model was trained with a recipe other than the paper's (then it is not compared with it)."""
        return bool(self.recipe)

    def metric(self, name: str) -> Measured | None:
        """Look up ``name`` or ``name_stand-in``; None when the evaluation did not compute it.

        The value counts as a stand-in's if its key says so or if ``stand_in`` lists a network it depends on, so an
        inconsistent file can never pass a stand-in number off as a real LPIPS or FID.
        """
        affected = name in affected_by_stand_ins(self.stand_in_networks)
        for key, labelled in ((name + STAND_IN_SUFFIX, True), (name, False)):
            if key in self.metrics:
                value = self.metrics[key]
                finite = value is not None and math.isfinite(value)
                return Measured(float(value) if finite else None, labelled or affected)
        return None


def load_evaluations(results: Iterable[str | Path]) -> list[Evaluation]:
    """Evaluation files named directly or found under directories, each once, sorted by path.

    Hidden folders and files under a searched directory (``.dvc``, ``.git``, temporary files) are skipped.
    """
    found: dict[Path, Evaluation] = {}
    for item in results:
        path = Path(item)
        if path.is_dir():
            candidates = [(file, False) for file in sorted(path.rglob("*.json"))
                          if not any(part.startswith(".") for part in file.relative_to(path).parts)]
        elif path.is_file():
            candidates = [(path, True)]
        else:
            raise FileNotFoundError(f"{path}: no such evaluation file or directory")
        for file, named in candidates:
            evaluation = _read_evaluation(file, named)
            if evaluation is not None:
                found.setdefault(file.resolve(), evaluation)
    return sorted(found.values(), key=lambda evaluation: str(evaluation.source))


def _read_evaluation(path: Path, named: bool) -> Evaluation | None:
    """Parse a file that claims ``lama-eval/1``; other JSON under a directory is not ours and is skipped."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        if named:
            raise ValueError(f"{path}: not a readable JSON file ({error})") from error
        logger.warning("skipping %s: not a readable JSON file (%s)", path, error)
        return None
    if not isinstance(data, dict) or data.get("format") != EVAL_FORMAT:
        if named:
            raise ValueError(f"{path}: key 'format' must be {EVAL_FORMAT!r}")
        return None
    return parse_evaluation(data, path)


def parse_evaluation(data: Mapping, path: Path) -> Evaluation:
    """Read ``data`` through the schema and turn it into an ``Evaluation``; ValueError names the file and the key."""
    try:
        document = from_json(EvaluationFile, data)
    except SchemaError as error:
        raise ValueError(f"{path}: {error}") from None
    model, mask_set = document.model, document.mask_set
    return Evaluation(
        source=path,
        mask_set=mask_set.name,
        mask_kind=mask_set.kind,
        mask_size=mask_set.size,
        mask_dir=_data_path(mask_set.path, path),
        predictions_dir=_data_path(document.predictions, path),
        model_label=model.name or (Path(model.path).name if model.path else None) or model.architecture or path.stem,
        architecture=model.architecture,
        # Any training-mask config or interpolation is a valid record; only the paper's ones fill table rows.
        train_masks=model.train_masks or "wide",
        mask_interp=model.mask_interp or UNMASKED,
        parameters=model.parameters,
        stand_in_networks=tuple(document.stand_in),
        n=document.n,
        metrics=dict(document.metrics),
        classical=model.classical,
        recipe=None if model.recipe is None else tuple(model.recipe),
        bins={name: _bin_means(scores) for name, scores in document.bins.items() if name != "total"},
    )


def _bin_means(scores: Mapping) -> dict[str, float | None]:
    """A bin's metrics as numbers: the mean of those stored with their spread, NaN and null as None."""
    means = {}
    for key, value in scores.items():
        value = value.get("mean") if isinstance(value, Mapping) else value
        if isinstance(value, int | float) and not isinstance(value, bool) and key != "n":
            means[key] = float(value) if math.isfinite(value) else None
    return means


def _data_path(text: str, source: Path) -> Path:
    """Paths in an evaluation are relative to where ``lama evaluate`` ran: try here, then the file's ancestors."""
    path = Path(text)
    if path.is_absolute():
        return path
    for base in (Path.cwd(), *source.resolve().parents):
        if (base / path).exists():
            return base / path
    return path


def choose_size(evaluations: Sequence[Evaluation], table_size: int | None) -> int | None:
    """The eval resolution of a table: the one asked for, else 512 when present, else the largest present."""
    if table_size is not None:
        return table_size
    sizes = {evaluation.mask_size for evaluation in evaluations if evaluation.mask_size is not None}
    if not sizes:  # nothing evaluated yet: name the paper's size; only unsized sets: use those
        return None if evaluations else PREFERRED_SIZE
    return PREFERRED_SIZE if PREFERRED_SIZE in sizes else max(sizes)


def preference(evaluation: Evaluation) -> tuple[bool, str, str]:
    """The order in which evaluations fill a cell: the workspace's first, then by experiment name and path."""
    return evaluation.experiment is not None, evaluation.experiment or "", str(evaluation.source)


class Picker:
    """Chooses one evaluation per cell (the workspace's, then the first by experiment and path) and warns once about
    each set of duplicates."""

    def __init__(self) -> None:
        self._warned: set[tuple[str, ...]] = set()

    def pick(self, matches: Sequence[Evaluation], what: str) -> Evaluation | None:
        if not matches:
            return None
        ordered = sorted(matches, key=preference)
        names = tuple(str(evaluation.source) for evaluation in ordered)
        if len(ordered) > 1 and names not in self._warned:
            self._warned.add(names)
            logger.warning("%d evaluations match %s: using %s, ignoring %s", len(names), what, names[0],
                           ", ".join(names[1:]))
        return ordered[0]



"""Evaluation files (``lama-eval/1``, written by ``lama evaluate``) as the report reads them, checked field by field.

A file that claims the format but has a wrong field is an error naming the file and the key; other JSON found under a
results folder is not ours and is skipped. When several evaluations fit one table cell, the first by path is used
and the others are named in a warning.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lama.eval.evaluator import FORMAT as EVAL_FORMAT
from lama.eval.metrics import STAND_IN_SUFFIX, affected_by_stand_ins
from lama.eval.provenance import MASK_SET_KINDS

logger = logging.getLogger(__name__)

PREFERRED_SIZE = 512  # the paper's Places resolution
STAND_IN_NETWORKS = ("lpips", "fid")


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
    mask_interp: str  # null counts as "none", the paper's behaviour
    parameters: int | None
    stand_in_networks: tuple[str, ...]
    n: int
    metrics: Mapping[str, float | None]
    classical: str | None = None  # the classical method (lama.baselines) for a baseline, None for a trained model
    # How the model's training loss departs from the paper's recipe; empty: the paper's; None: not recorded.
    recipe: tuple[str, ...] | None = None

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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _one_of(*allowed: object) -> Callable[[Any], bool]:
    return lambda value: value in allowed


def _str_or_null(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _strings_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(item, str) for item in value))


def _require(path: Path, data: Mapping, key: str, accept: Callable[[Any], bool], expected: str) -> Any:
    """The value at a dotted key, or a one-line ValueError naming the file and the key that is wrong."""
    node: Any = data
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, dict):
            raise ValueError(f"{path}: key '{'.'.join(parts[:depth])}' must be an object, got {node!r:.60}")
        if part not in node:
            raise ValueError(f"{path}: key '{key}' is missing (expected {expected})")
        node = node[part]
    if not accept(node):
        raise ValueError(f"{path}: key '{key}' must be {expected}, got {node!r:.60}")
    return node


def parse_evaluation(data: Mapping, path: Path) -> Evaluation:
    """Check the fields the report uses and turn them into an ``Evaluation``; ValueError names the wrong key."""
    def need(key: str, accept: Callable[[Any], bool], expected: str) -> Any:
        return _require(path, data, key, accept, expected)

    kinds = f"one of {[*MASK_SET_KINDS, None]}"
    metrics = need("metrics", lambda value: isinstance(value, dict), "an object of metric values")
    for name in metrics:
        need(f"metrics.{name}", _is_number_or_null, "a number or null")
    stand_in = need("stand_in", lambda value: isinstance(value, list), f"a list of {list(STAND_IN_NETWORKS)}")
    for index, network in enumerate(stand_in):
        if network not in STAND_IN_NETWORKS:
            raise ValueError(f"{path}: key 'stand_in[{index}]' must be one of {list(STAND_IN_NETWORKS)}, "
                             f"got {network!r:.60}")
    def may(key: str, accept: Callable[[Any], bool], expected: str) -> Any:
        """A key that files written before it existed lack: absent reads as null."""
        parent, _, leaf = key.rpartition(".")
        return need(key, accept, expected) if leaf in (data.get(parent) or {}) else None

    model_path = need("model.path", _str_or_null, "a string or null")
    model_name = need("model.name", _str_or_null, "a string or null")
    architecture = need("model.architecture", _str_or_null, "a string or null")
    return Evaluation(
        source=path,
        mask_set=need("mask_set.name", lambda value: isinstance(value, str) and value != "", "a non-empty string"),
        mask_kind=need("mask_set.kind", _one_of(*MASK_SET_KINDS, None), kinds),
        mask_size=need("mask_set.size", lambda value: value is None or (_is_int(value) and value > 0),
                       "a positive integer or null"),
        mask_dir=_data_path(need("mask_set.path", lambda value: isinstance(value, str), "a string"), path),
        predictions_dir=_data_path(need("predictions", lambda value: isinstance(value, str), "a string"), path),
        model_label=model_name or (Path(model_path).name if model_path else None) or architecture or path.stem,
        architecture=architecture,
        # Any training-mask config or interpolation is a valid record; only the paper's ones fill table rows.
        train_masks=need("model.train_masks", _str_or_null, "a string or null") or "wide",
        mask_interp=need("model.mask_interp", _str_or_null, "a string or null") or "none",
        parameters=need("model.parameters", lambda value: value is None or _is_int(value), "an integer or null"),
        stand_in_networks=tuple(stand_in),
        n=need("n", lambda value: _is_int(value) and value >= 0, "a non-negative integer"),
        metrics=dict(metrics),
        classical=may("model.classical", _str_or_null, "a string or null"),
        recipe=None if (recipe := may("model.recipe", _strings_or_null, "a list of strings or null")) is None
        else tuple(recipe),
    )


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


class Picker:
    """Chooses one evaluation per cell (the first by path) and warns once about each set of duplicates."""

    def __init__(self) -> None:
        self._warned: set[tuple[str, ...]] = set()

    def pick(self, matches: Sequence[Evaluation], what: str) -> Evaluation | None:
        if not matches:
            return None
        ordered = sorted(matches, key=lambda evaluation: str(evaluation.source))
        names = tuple(str(evaluation.source) for evaluation in ordered)
        if len(ordered) > 1 and names not in self._warned:
            self._warned.add(names)
            logger.warning("%d evaluations match %s: using %s, ignoring %s", len(names), what, names[0],
                           ", ".join(names[1:]))
        return ordered[0]



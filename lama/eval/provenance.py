"""What an evaluation evaluated: the eval mask set and the model, recorded beside the numbers.

The report builds the paper's tables from these fields (architecture, training masks, ``mask_interp``, mask-set
kind and size), so they are derived from the files where possible (the mask set's ``maskset.json``, the model dir's
``config.yaml`` and ``train_config.yaml``) and can be set explicitly where they cannot, e.g. a small sample-profile
generator that stands for a paper architecture.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lama.baselines import classical_method
from lama.losses.total import recipe_deviations
from lama.masks.eval_set import MANIFEST
from lama.models.generators import PRESET_FILES, architecture_of
from lama.safe_yaml import read_yaml

logger = logging.getLogger(__name__)

MASK_SET_KINDS = ("thin", "medium", "thick")
ARCHITECTURES = tuple(PRESET_FILES.values())
MODEL_FIELDS = ("name", "path", "architecture", "train_masks", "mask_interp", "parameters")
# Derived from the files only: the classical method of a baseline, and the recipe deviations of a trained model.
DERIVED_MODEL_FIELDS = ("classical", "recipe")
MASK_SET_FIELDS = ("name", "kind", "size", "path")


class ProvenanceError(ValueError):
    """A provenance override names an unknown field or has a bad value."""


def describe_mask_set(folder: str | Path, image_sizes: Iterable[tuple[int, int]]) -> dict[str, Any]:
    """``name``, ``kind`` (thin / medium / thick or None), ``size`` (the side when every image is the same square,
    else None) and ``path`` of an eval mask set; ``image_sizes`` are the (width, height) of its images."""
    folder = Path(folder)
    config_name = None
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            config_name = json.loads(manifest.read_text()).get("config_name")
        except (ValueError, AttributeError):
            logger.warning("%s: unreadable manifest; the mask set's kind is taken from its folder name", manifest)
    name = folder.resolve().name
    kind = kind_from_name(config_name or "") or kind_from_name(name)
    sizes = set(image_sizes)
    size = None
    if len(sizes) == 1:
        width, height = sizes.pop()
        size = width if width == height else None
    return {"name": name, "kind": kind, "size": size, "path": str(folder)}


def kind_from_name(name: str) -> str | None:
    """The mask kind a mask set's (or its config's) name starts with: ``thick_512``, ``random_thin_256``."""
    match = re.match(rf"^(?:random_)?({'|'.join(MASK_SET_KINDS)})(?:_|$)", name)
    return match.group(1) if match else None


def describe_model_dir(model_dir: str | Path | None) -> dict[str, Any]:
    """``name``, ``path``, ``architecture``, ``train_masks``, ``mask_interp``, ``parameters``, ``classical`` and
    ``recipe`` of a model dir, from its ``config.yaml`` and, for runs trained here, ``train_config.yaml`` (the
    recipe: how its loss departs from the paper's, empty when it does not); None where a file does not say.
    ``classical:NAME`` (a classical baseline) is described by its method alone."""
    info: dict[str, Any] = dict.fromkeys((*MODEL_FIELDS, *DERIVED_MODEL_FIELDS))
    if model_dir is None:
        return info
    method = classical_method(str(model_dir))
    if method is not None:
        info.update(name=method, path=str(model_dir), classical=method)
        return info
    model_dir = Path(model_dir)
    info.update(name=model_dir.resolve().name, path=str(model_dir))
    config = _read_yaml(model_dir / "config.yaml")
    generator = config.get("generator") or {}
    if generator:
        recorded = (config.get("lama") or {}).get("architecture")  # model dirs written before it was recorded: derived
        info["architecture"] = recorded if recorded in ARCHITECTURES else architecture_of(generator)
        info["parameters"] = _parameter_count(generator)
    train = _read_yaml(model_dir / "train_config.yaml")
    masks = ((train.get("data") or {}).get("loader") or {}).get("masks")
    info["train_masks"] = masks if isinstance(masks, str) else None
    loss = train.get("loss")
    interp = (loss or {}).get("mask_interp")
    info["mask_interp"] = interp if isinstance(interp, str) else None
    info["recipe"] = recipe_deviations(loss) if isinstance(loss, dict) else None
    return info


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    loaded = read_yaml(path)
    return loaded if isinstance(loaded, dict) else {}


def _parameter_count(generator: Mapping[str, Any]) -> int | None:
    """Parameters of the generator the config describes (built on the meta device: no memory, no weights)."""
    import torch

    from lama.models import build_generator

    try:
        with torch.device("meta"):
            network = build_generator(dict(generator))
    except (ValueError, TypeError, KeyError) as error:
        logger.warning("generator config not understood (%s); parameter count left out", error)
        return None
    return sum(parameter.numel() for parameter in network.parameters())


def apply_overrides(model: dict[str, Any], mask_set: dict[str, Any], overrides: Iterable[str]) -> None:
    """Apply ``model.FIELD=VALUE`` / ``mask_set.FIELD=VALUE`` overrides in place (``size`` and ``parameters``
    are integers; ``null`` clears a field)."""
    targets = {"model": (model, MODEL_FIELDS), "mask_set": (mask_set, MASK_SET_FIELDS)}
    for override in overrides:
        key, sep, value = override.partition("=")
        section, _, field = key.partition(".")
        if not sep or section not in targets or field not in targets[section][1]:
            fields = [f"{name}.{item}" for name, (_, items) in targets.items() for item in items]
            raise ProvenanceError(f"{override!r}: expected KEY=VALUE with KEY one of {', '.join(fields)}")
        parsed: Any = None if value in ("", "null") else value
        if parsed is not None and field in ("size", "parameters"):
            if not value.isdigit() or int(value) < 1:
                raise ProvenanceError(f"{key}={value!r}: expected a positive integer")
            parsed = int(value)
        if parsed is not None and key == "mask_set.kind" and parsed not in MASK_SET_KINDS:
            raise ProvenanceError(f"{key}={value!r}: expected one of {', '.join(MASK_SET_KINDS)}")
        if parsed is not None and key == "model.architecture" and parsed not in ARCHITECTURES:
            raise ProvenanceError(f"{key}={value!r}: expected one of {', '.join(ARCHITECTURES)}")
        targets[section][0][field] = parsed

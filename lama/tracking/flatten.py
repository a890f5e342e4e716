"""Nested configs as MLflow params: dotted keys (``loss.kappa``), values cut to MLflow's limits with a marker."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

import numpy as np

# MLflow's limits (mlflow.utils.validation): longer values are rejected unless MLFLOW_TRUNCATE_LONG_VALUES is set.
PARAM_VALUE_LIMIT = 6000
TAG_VALUE_LIMIT = 8000
# The whole config, logged beside the params, where a cut value can be read in full.
CONFIG_ARTIFACT = "config.yaml"


def to_plain(value: Any) -> Any:
    """Plain dicts, lists and scalars from OmegaConf configs, dataclasses, paths and enums."""
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return to_plain(OmegaConf.to_container(value, resolve=True))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: to_plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def truncate(text: str, limit: int | None, where: str) -> str:
    """``text`` cut to ``limit`` characters, ending in a marker that says it was cut and where the rest is."""
    if limit is None or len(text) <= limit:
        return text
    marker = f" ...[truncated from {len(text)} chars{where}]"
    return text[: max(limit - len(marker), 0)] + marker


def flatten_config(mapping: Any, max_length: int | None = PARAM_VALUE_LIMIT) -> dict[str, str]:
    """Dotted-key string params (``loss.kappa``, ``masks.kinds.0``) from a nested config, as MLflow needs them.

    Values longer than ``max_length`` end in a visible truncation marker (never dropped); ``None`` keeps them whole.
    Empty containers stay as ``{}`` / ``[]`` so that their keys are not lost.
    """
    plain = to_plain(mapping)
    if not isinstance(plain, dict):
        raise TypeError(f"flatten_config needs a mapping, dataclass or OmegaConf config, got {type(mapping).__name__}")
    flat: dict[str, str] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict) and value:
            for name, item in value.items():
                walk(item, f"{key}.{name}" if key else name)
        elif isinstance(value, list) and value:
            for index, item in enumerate(value):
                walk(item, f"{key}.{index}" if key else str(index))
        else:
            flat[key] = "{}" if value == {} else "[]" if value == [] else str(value)

    walk(plain, "")
    return {key: truncate(value, max_length, f"; full value in {CONFIG_ARTIFACT}") for key, value in flat.items()}

"""The config spine: one error, one layered loader and one validation convention for every command and stage.

A config section is a dataclass that checks its own values in ``__post_init__`` and raises :class:`ConfigError`
naming the dotted key and what is allowed. :func:`build` stacks the section's defaults, mappings, YAML files and
``key=value`` overrides with OmegaConf, and turns whatever goes wrong (a typo'd key, a wrong type, a bad value, a
missing required value) into that one line, so a command fails before any work, never hours in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lama.safe_yaml import YamlFileError, read_omegaconf

Section = TypeVar("Section")


class ConfigError(ValueError):
    """A config key, type or value is wrong; the message is one line that names the key."""


def parse_overrides(overrides: Sequence[str]) -> DictConfig:
    """``key=value`` strings as a config layer; a string without ``=`` is a one-line error naming it."""
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"{override!r}: expected key=value")
    return OmegaConf.from_dotlist(list(overrides))


def read_layer(path: str | Path, missing: str = "config file not found", label: str | None = None) -> DictConfig:
    """A YAML file as a config layer, read within ``lama.safe_yaml``'s bounds; ``missing`` says what to do when it
    is not there. Errors start with ``label`` (default: the path)."""
    path = Path(path)
    try:
        if path.is_file():
            return read_omegaconf(path)
    except YamlFileError as error:
        raise ConfigError(f"{label or path}: {error.problem}") from None
    raise ConfigError(f"{path}: {missing}")


def build(schema: type[Section], layers: Sequence[Mapping[str, Any] | DictConfig] = (),
          overrides: Sequence[str] = (), label: str | None = None) -> Section:
    """``schema``'s defaults, then each layer, then ``key=value`` overrides, as a validated ``schema`` instance.

    Every failure is a :class:`ConfigError` of one line, prefixed with ``label`` (the file or command) if given.
    """
    prefix = f"{label}: " if label else ""
    try:
        stacked = [OmegaConf.structured(schema), *(layer if isinstance(layer, DictConfig)
                                                  else OmegaConf.create(dict(layer)) for layer in layers)]
        merged = OmegaConf.merge(*stacked, parse_overrides(overrides))
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise ConfigError(f"missing {', '.join(missing)}")
        built = OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None)
        message = str(getattr(error, "msg", None) or error).splitlines()[0]
        raise ConfigError(f"{prefix}{key + ': ' if key else ''}{message}") from None
    except ValueError as error:  # a section's own check: ConfigError, or a library's ValueError
        raise ConfigError(f"{prefix}{str(error).splitlines()[0]}") from None
    assert isinstance(built, schema)
    return built


def dotted(section: str, key: str) -> str:
    """``section.key``, or ``key`` alone for a top-level option (``section`` empty)."""
    return f"{section}.{key}" if section else key


def check_choices(section: str, values: object, choices: Mapping[str, Sequence[str]]) -> None:
    """Each named field of ``values`` among its allowed values, else one line naming ``section.key``."""
    for key, allowed in choices.items():
        value = getattr(values, key)
        if value not in allowed:
            raise ConfigError(f"{dotted(section, key)}={value!r}: expected one of {', '.join(map(str, allowed))}")


def check_positive(section: str, values: object, keys: Sequence[str], minimum: int = 1) -> None:
    """Each named field of ``values`` an integer of at least ``minimum``, else one line naming ``section.key``."""
    for key in keys:
        value = getattr(values, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise ConfigError(f"{dotted(section, key)}={value!r}: expected {expected}")


def first_difference(old: Mapping[str, Any], new: Mapping[str, Any], ignore: Sequence[str] = (),
                     prefix: str = "") -> tuple[str, Any, Any] | None:
    """The first dotted key (in sorted order) whose value differs between two nested mappings, with both values;
    keys named in ``ignore`` (dotted, a section or a leaf) are skipped."""
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}{key}"
        if name in ignore:
            continue
        before, after = old.get(key), new.get(key)
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            found = first_difference(before, after, ignore, f"{name}.")
            if found is not None:
                return found
        elif before != after:
            return name, before, after
    return None

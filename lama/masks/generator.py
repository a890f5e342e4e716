"""Mask generators: the official mixture of shapes, made a pure function of (config, seed, key, size)."""

from __future__ import annotations

import hashlib
import json
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import PurePath
from typing import Any

import numpy as np

from lama.masks.configs import TRAIN_CONFIGS, eval_set_config, generator_config_for_size, known_config_names
from lama.masks.shapes import (
    BoxDrawer,
    BoxParams,
    OutpaintingDrawer,
    OutpaintingParams,
    StrokeDrawer,
    StrokeParams,
)

# Official MixedMaskGenerator kinds, in the official order (the order decides which index np.random.choice picks).
KINDS = {
    "irregular": (StrokeParams, StrokeDrawer),
    "box": (BoxParams, BoxDrawer),
    "outpainting": (OutpaintingParams, OutpaintingDrawer),
}
# Official kinds that no LaMa config enables; accepted only switched off so official configs load unchanged.
DISABLED_KINDS = ("segm", "squares", "superres")


class MaskGenerator:
    """A mixture of mask shapes; one shape kind is chosen per mask, as the official ``MixedMaskGenerator`` does.

    ``sample`` derives a private ``RandomState`` from (config, seed, key, height, width), so a mask never depends
    on the process, the worker or the order in which masks are requested.
    """

    def __init__(self, config: Mapping[str, Any], name: str | None = None) -> None:
        self.name = name
        self.config = _normalise(config, name or "mask config")
        kinds = [(self.config[f"{kind}_proba"], kind) for kind in KINDS if self.config[f"{kind}_proba"] > 0]
        if not kinds:
            raise ValueError(f"{name or 'mask config'}: every *_proba is 0; enable at least one mask kind")
        self.kinds = tuple(kind for _, kind in kinds)
        self._drawers = tuple(KINDS[kind][1](KINDS[kind][0](**self.config[f"{kind}_kwargs"])) for kind in self.kinds)
        # The official code normalises the probabilities in float32; np.random.choice then sees these exact values.
        probas = np.array([proba for proba, _ in kinds], dtype=np.float32)
        self._probas = probas / probas.sum()
        self._identity = json.dumps(self.config, sort_keys=True).encode()
        self._local = threading.local()

    @classmethod
    def from_config(cls, name_or_config: str | Mapping[str, Any]) -> MaskGenerator:
        """A named config (``wide``, ``narrow``, ``outpainting``, ``thin_256`` … ``thick_512``) or official kwargs."""
        if not isinstance(name_or_config, str):
            return cls(name_or_config)
        if name_or_config in TRAIN_CONFIGS:
            return cls(TRAIN_CONFIGS[name_or_config], name=name_or_config)
        try:
            return cls(eval_set_config(name_or_config).generator, name=name_or_config)
        except KeyError:
            raise _unknown(name_or_config) from None

    @classmethod
    def for_size(cls, name: str, size: int) -> MaskGenerator:
        """The named config drawn for ``size``² images: its stroke and box lengths scaled from the size it was made
        for (256 for the training configs), so that a hole covers the same share of a smaller or larger crop. At
        the config's own size the masks are exactly those of ``from_config``."""
        try:
            return cls(generator_config_for_size(name, size), name=f"{name} scaled to {size}")
        except KeyError:
            raise _unknown(name) from None

    def check_size(self, height: int, width: int) -> None:
        """ValueError, naming the config and the limit, if masks of this size cannot be drawn. Each drawer refuses a
        size it has no room for before it draws anything (``lama.masks.shapes`` holds the limits), so one mask of
        each kind on a throwaway state checks them all."""
        if height < 1 or width < 1:
            raise ValueError(f"mask size must be positive, got {height}x{width}")
        for drawer in self._drawers:
            try:
                drawer.draw(np.random.RandomState(0), np.zeros((height, width), dtype=np.uint8))
            except ValueError as error:
                raise ValueError(f"{self.name or 'mask config'}: {error}") from None

    def generate(self, rng: np.random.RandomState, height: int, width: int) -> np.ndarray:
        """One mask from ``rng``, drawing exactly what the official generator draws from numpy's global state."""
        mask = np.zeros((height, width), dtype=np.uint8)
        kind = rng.choice(len(self._probas), p=self._probas)  # drawn even for one kind, as officially
        self._drawers[kind].draw(rng, mask)
        return mask

    def _seed_words(self, key: object, height: int, width: int, seed: int) -> np.ndarray:
        parts = [self._identity, str(seed).encode(), _key_text(key).encode(), f"{height}x{width}".encode()]
        return np.frombuffer(hashlib.sha256(b"\x1f".join(parts)).digest(), dtype="<u4")

    def rng_for(self, key: object, height: int, width: int, seed: int) -> np.random.RandomState:
        """The random state of one (key, size, seed): a hash, so any process computes the same one."""
        return np.random.RandomState(self._seed_words(key, height, width, seed))

    def sample(self, key: object, height: int, width: int, seed: int = 0) -> np.ndarray:
        """The mask of image ``key`` at ``height`` x ``width``: (H, W) uint8 in {0, 1}, 1 = hole."""
        if height < 1 or width < 1:
            raise ValueError(f"mask size must be positive, got {height}x{width}")
        # Re-seeding one state per thread costs a tenth of building a RandomState, which would dominate here.
        rng = getattr(self._local, "rng", None)
        if rng is None:
            rng = self._local.rng = np.random.RandomState()
        rng.seed(self._seed_words(key, height, width, seed))
        return self.generate(rng, height, width)

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_local"}  # thread-locals don't pickle

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _local=threading.local())

    def __repr__(self) -> str:
        return f"MaskGenerator({self.name or self.config!r})"


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown mask config {name!r}; expected one of {', '.join(known_config_names())}")


def _integral(value: Any, where: str, params_type: type, key: str) -> Any:
    """200.0 where an int is expected becomes 200, so equal configs hash (and so sample) equally."""
    default = getattr(params_type, key, None)
    if isinstance(default, int) and isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{where} must be a whole number, got {value}")
        return int(value)
    return value


def _key_text(key: object) -> str:
    """Paths as POSIX text and names in NFC, so a key means the same image on every OS and file system."""
    text = key.as_posix() if isinstance(key, PurePath) else str(key)
    return unicodedata.normalize("NFC", text)


def _normalise(config: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Official MixedMaskGenerator kwargs → a complete, validated, JSON-able dict (unknown keys fail by name)."""
    config = dict(config)
    allowed = {f"{kind}_{suffix}" for kind in (*KINDS, *DISABLED_KINDS) for suffix in ("proba", "kwargs")}
    allowed.add("invert_proba")
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; expected keys among {sorted(allowed)}")
    for key in (*(f"{kind}_proba" for kind in DISABLED_KINDS), "invert_proba"):
        if config.get(key, 0):
            raise ValueError(f"{where}: {key} must be 0 (LaMa never enables it), got {config[key]}")
    normalised: dict[str, Any] = {}
    for kind, (params_type, _) in KINDS.items():
        proba = config.get(f"{kind}_proba", 0)
        if not isinstance(proba, int | float) or proba < 0:
            raise ValueError(f"{where}: {kind}_proba must be a number >= 0, got {proba!r}")
        kwargs = {key: _integral(value, f"{where}: {kind}_kwargs.{key}", params_type, key)
                  for key, value in dict(config.get(f"{kind}_kwargs") or {}).items()}
        try:
            params = params_type(**kwargs)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: {kind}_kwargs: {error}") from None
        normalised[f"{kind}_proba"] = float(proba)
        normalised[f"{kind}_kwargs"] = asdict(params)
    return normalised

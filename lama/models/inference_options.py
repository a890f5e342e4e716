"""What inference can be asked for by name: the number format a generator runs in, and which output is written.

This module imports no torch, so that the command line can list the choices (``lama predict --help``) without
loading it; ``lama.models.inference`` turns a precision into its torch dtype and ``lama.predict`` writes the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lama.config import ConfigError, check_choices, check_positive, dotted

# Each precision inference runs in, with the name of the torch dtype the generator is cast to.
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16"}
DEFAULT_PRECISION = "fp32"
# The official model's outputs: ``inpainted`` (the known pixels of the input, the prediction in the holes) and
# ``predicted_image`` (the generator's raw output everywhere).
OUT_KEYS = ("inpainted", "predicted_image")


def check_precision(precision: str, key: str = "precision") -> None:
    """One line naming ``key`` unless ``precision`` is one that inference runs in."""
    if precision not in PRECISIONS:
        raise ConfigError(f"{key}={precision!r}: expected one of {', '.join(PRECISIONS)}")


# High-resolution strategies, with IOPaint's names and defaults: ``original`` runs the whole image (the official
# path), ``resize`` inpaints a copy whose long side is at most ``hd_strategy_resize_limit`` and pastes the hole back
# at full size, ``crop`` inpaints each connected hole region's box plus ``hd_strategy_crop_margin`` on every side.
# ``resize`` and ``crop`` act only on images whose long side exceeds the limit or ``hd_strategy_crop_trigger_size``.
HD_STRATEGIES = ("original", "resize", "crop")
DEFAULT_HD_STRATEGY = "original"
DEFAULT_RESIZE_LIMIT = 1280
DEFAULT_CROP_TRIGGER_SIZE = 800
DEFAULT_CROP_MARGIN = 128


@dataclass
class RefinerOptions:
    """The official refiner's settings (``configs/prediction/default.yaml``, ``refiner:``), with its defaults.

    ``gpu_ids`` is the official key too: empty runs the refinement on the inference device; ``"0,1"`` puts the
    generator's front on ``cuda:0`` and shares its residual blocks and decoder out over ``cuda:0`` and ``cuda:1``,
    so a large image's activations are spread over both cards."""

    n_iters: int = 15  # forwards per level; every one but the last is followed by an Adam step
    lr: float = 0.002
    min_side: int = 512  # a level is added per doubling of the short side above this
    max_scales: int = 3
    px_budget: int = 1_800_000  # larger images are refined at this many pixels
    modulo: int = 8
    gpu_ids: str = ""
    # Not an official key: keep only each residual block's input for the backward pass and recompute the rest,
    # trading one more forward of the blocks per step for a fraction of the memory (benchmarks/README.md).
    checkpoint_blocks: bool = False

    def check(self, prefix: str = "refiner") -> None:
        """One line naming ``prefix.key`` for a value the refiner cannot run with."""
        check_positive(prefix, self, ("n_iters", "min_side", "max_scales", "px_budget", "modulo"))
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or not self.lr > 0:
            raise ConfigError(f"{prefix}.lr={self.lr!r}: expected a positive number")
        gpu_ids(self.gpu_ids, f"{prefix}.gpu_ids")


def gpu_ids(value: str | int, key: str = "refiner.gpu_ids") -> list[int]:
    """The card numbers of an official ``gpu_ids`` value (``"0,1"``; an int from YAML is one card)."""
    text = str(value).strip()
    parts = [part.strip() for part in text.split(",")] if text else []
    if not all(part.isdigit() for part in parts) or len(set(parts)) != len(parts):
        raise ConfigError(f"{key}={value!r}: expected GPU numbers separated by commas (e.g. 0,1) or empty")
    return [int(part) for part in parts]


@dataclass
class InferenceOptions:
    """How each image goes through the model beyond the official plain path: the official refinement and the
    high-resolution strategies. ``lama predict`` takes these keys at the top level, the pipeline under ``eval``;
    the defaults give the official plain output, bit for bit."""

    refine: bool = False
    refiner: RefinerOptions = field(default_factory=RefinerOptions)
    hd_strategy: str = DEFAULT_HD_STRATEGY
    hd_strategy_resize_limit: int = DEFAULT_RESIZE_LIMIT
    hd_strategy_crop_trigger_size: int = DEFAULT_CROP_TRIGGER_SIZE
    hd_strategy_crop_margin: int = DEFAULT_CROP_MARGIN

    def check_inference(self, prefix: str = "") -> None:
        """One line naming the key (under ``prefix``, e.g. ``eval.``) for a value inference cannot run with."""
        section = prefix.rstrip(".")
        check_choices(section, self, {"hd_strategy": HD_STRATEGIES})
        check_positive(section, self, ("hd_strategy_resize_limit", "hd_strategy_crop_trigger_size"))
        check_positive(section, self, ("hd_strategy_crop_margin",), minimum=0)
        self.refiner.check(dotted(section, "refiner"))

"""What inference can be asked for by name: the number format a generator runs in, and which output is written.

This module imports no torch, so that the command line can list the choices (``lama predict --help``) without
loading it; ``lama.models.inference`` turns a precision into its torch dtype and ``lama.predict`` writes the output.
"""

from __future__ import annotations

from lama.config import ConfigError

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

"""Classical inpainting that needs no training: OpenCV's Telea and Navier–Stokes, and a mean-colour fill.

They are the sanity anchors of the tables. A trained model that does not beat a flat fill with the mean colour of
the known pixels has not learned to inpaint; one that beats Telea (fast marching, Telea 2004) and Navier–Stokes
(Bertalmío et al. 2001), which propagate the edges and colours around a hole into it, has learned more than
diffusion. ``lama predict classical:telea INPUT OUTPUT`` runs one with the input layout, outputs and error handling
of a trained model, and the pipeline predicts and evaluates them with the same stages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lama.config import ConfigError

if TYPE_CHECKING:
    import numpy as np

CLASSICAL_PREFIX = "classical:"
TELEA, NAVIER_STOKES, MEAN_FILL = "telea", "navier-stokes", "mean-fill"
METHODS = (MEAN_FILL, TELEA, NAVIER_STOKES)
LABELS = {MEAN_FILL: "Mean-colour fill", TELEA: "Telea (OpenCV)", NAVIER_STOKES: "Navier–Stokes (OpenCV)"}
# OpenCV's flag of each of its methods, by name: OpenCV (and numpy) load when a fill runs, not when the command line
# lists the methods.
_OPENCV_FLAGS = {TELEA: "INPAINT_TELEA", NAVIER_STOKES: "INPAINT_NS"}
# The neighbourhood (in pixels) each hole pixel is inpainted from: OpenCV's documented example value.
DEFAULT_RADIUS = 3
# What a hole with no known pixel around it is filled with (mid grey, as a generator's sigmoid starts).
EMPTY_FILL = 0.5


def classical_method(model: str) -> str | None:
    """The method named by ``classical:NAME``; None for anything else (a model dir). An unknown NAME is an error."""
    if not model.startswith(CLASSICAL_PREFIX):
        return None
    method = model.removeprefix(CLASSICAL_PREFIX)
    if method not in METHODS:
        raise ValueError(f"model {model!r}: unknown classical method {method!r}; expected one of "
                         f"{', '.join(CLASSICAL_PREFIX + name for name in METHODS)}")
    return method


def classical_model(method: str) -> str:
    """The model name that stands for ``method`` where a model dir is expected (``classical:telea``)."""
    return CLASSICAL_PREFIX + method


def check_radius(radius: int) -> None:
    """A one-line error for a neighbourhood that is not a positive number of pixels."""
    if radius < 1:
        raise ConfigError(f"classical_radius={radius}: expected a positive number of pixels")


def classical_fill(image: np.ndarray, hole: np.ndarray, method: str, radius: int = DEFAULT_RADIUS) -> np.ndarray:
    """The raw prediction of ``method`` (float32 CHW in [0, 1]) for an image (float32 CHW in [0, 1], an 8-bit image
    divided by 255) and a boolean (H, W) hole; pixels outside the hole are the image's own."""
    import cv2
    import numpy as np

    if method == MEAN_FILL:
        known = ~hole
        colour = image[:, known].mean(axis=1) if known.any() else np.full(image.shape[0], EMPTY_FILL)
        return np.broadcast_to(colour.astype(np.float32)[:, None, None], image.shape).copy()
    if method not in _OPENCV_FLAGS:
        raise ValueError(f"unknown classical method {method!r}; expected one of {', '.join(METHODS)}")
    check_radius(radius)
    pixels = np.ascontiguousarray(np.rint(image.transpose(1, 2, 0) * 255).astype(np.uint8))
    filled = cv2.inpaint(pixels, hole.astype(np.uint8) * 255, radius, getattr(cv2, _OPENCV_FLAGS[method]))
    return filled.transpose(2, 0, 1).astype(np.float32) / 255

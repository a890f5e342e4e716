"""Inpaint a folder of images exactly as the official ``bin/predict.py`` does, on CPU or GPU.

Input layout: every ``**/*mask*.png`` file under the input dir is a mask; its image is the mask's path relative to
the input dir cut at the last ``_mask``, plus ``img_suffix``. Output: ``outdir/<mask path relative to indir>`` with
``out_ext``. A bad input file or an output that cannot be written fails that mask only, named on stderr.
One image per forward pass, so images of any size mix freely. The model is a model dir, or ``classical:NAME`` for
a classical baseline (``lama.baselines``) that goes through the same reading, blending and writing.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lama.baselines import DEFAULT_RADIUS, check_radius, classical_fill, classical_method
from lama.config import ConfigError
from lama.devices import AUTO, check_device, resolve_device
from lama.files import write_image
from lama.imageio.eval_layout import (
    MASK_GLOB,
    MASK_SUFFIX,
    InputError,
    MaskImagePair,
    pair_masks,
    read_pair,
)
from lama.models.inference import precision_dtype, prepare_for_inference
from lama.models.inference_options import DEFAULT_PRECISION, OUT_KEYS, check_precision
from lama.models.model_dir import DEFAULT_CHECKPOINT, InpaintingModel, generator_input, load_model
from lama.progress import progress_bar, write_line

log = logging.getLogger(__name__)


@dataclass
class ModelOptions:
    path: str = "???"
    checkpoint: str = DEFAULT_CHECKPOINT


@dataclass
class DatasetOptions:
    img_suffix: str = ".png"
    pad_out_to_modulo: int = 8


@dataclass
class PredictOptions:
    """Everything ``lama predict`` takes; the keys are the official prediction config's where one exists."""

    model: ModelOptions = field(default_factory=ModelOptions)
    indir: str = "???"
    outdir: str = "???"
    dataset: DatasetOptions = field(default_factory=DatasetOptions)
    device: str = AUTO  # auto: cuda when present, else cpu
    precision: str = DEFAULT_PRECISION  # fp32 | bf16 (the FFTs stay in float32)
    out_key: str = "inpainted"  # inpainted (blended) | predicted_image (raw generator output)
    out_ext: str = ".png"
    fold_norms: bool = True  # fold BatchNorm into the convolutions (same result within float noise)
    channels_last: bool = True  # NHWC activations: faster oneDNN/cuDNN convolutions (benchmarks/README.md)
    classical_radius: int = DEFAULT_RADIUS  # classical:telea and classical:navier-stokes: neighbourhood in pixels

    def __post_init__(self) -> None:
        check_precision(self.precision)
        check_device(self.device)
        if self.out_key not in OUT_KEYS:
            raise ConfigError(f"out_key={self.out_key!r}: expected one of {', '.join(OUT_KEYS)}")
        if self.dataset.pad_out_to_modulo < 1:
            raise ConfigError(f"dataset.pad_out_to_modulo={self.dataset.pad_out_to_modulo}: expected a positive int")
        check_radius(self.classical_radius)
        classical_method(self.model.path)  # an unknown classical:NAME fails here, before any work


@dataclass
class PredictSummary:
    written: list[Path] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{len(self.written)} written, {len(self.failures)} failed"


def pad_bottom_right(array: np.ndarray, modulo: int) -> np.ndarray:
    """Pad the last two axes up to a multiple of ``modulo`` with numpy 'symmetric' (edge row repeated first)."""
    height, width = array.shape[-2:]
    pad_h, pad_w = -height % modulo, -width % modulo
    if not pad_h and not pad_w:
        return array
    return np.pad(array, [(0, 0)] * (array.ndim - 2) + [(0, pad_h), (0, pad_w)], mode="symmetric")


def prepare_outdir(outdir: Path, indir: Path, out_ext: str) -> None:
    """Create the output folder and check that a file can be written in it, before any model is loaded."""
    if outdir.resolve() == indir.resolve() and out_ext.lower() == MASK_SUFFIX:
        raise InputError(f"outdir={outdir}: is the input folder, so every result would overwrite its mask; "
                         "choose another folder or out_ext")
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"outdir={outdir}: not a folder")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=outdir):
            pass
    except OSError as error:
        raise InputError(f"outdir={outdir}: cannot write there ({error.strerror or error})") from None


def write_output(path: Path, pixels: np.ndarray) -> None:
    """Write one result; a failure (a folder in the way, no permission, a full disk) is an ``InputError``."""
    try:
        write_image(path, pixels)
    except OSError as error:
        raise InputError(f"{path}: cannot write the result ({error.strerror or error})") from None


def to_uint8(result: np.ndarray) -> np.ndarray:
    """HWC uint8 from a float CHW result in [0, 1]. The cast truncates, as the official writer does: a known pixel
    (an 8-bit value divided by 255) comes back bit-identical."""
    return np.clip(result.transpose(1, 2, 0) * 255, 0, 255).astype(np.uint8)


class Inpainter:
    """A loaded model ready to inpaint single images in the official way."""

    def __init__(self, model: InpaintingModel, device: str | torch.device = "cpu", precision: str = DEFAULT_PRECISION,
                 fold_norms: bool = True, channels_last: bool = True, pad_out_to_modulo: int = 8) -> None:
        self.device = torch.device(device)
        self.dtype = precision_dtype(precision)
        self.concat_mask = model.concat_mask
        self.generator = prepare_for_inference(model.generator, self.device, precision, fold_norms, channels_last)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.modulo = pad_out_to_modulo

    @torch.inference_mode()
    def predict(self, image: np.ndarray, mask: np.ndarray, out_key: str = "inpainted") -> np.ndarray:
        """uint8 HWC result for a float32 CHW image and [1,H,W] mask (values > 0 are holes)."""
        height, width = image.shape[-2:]
        image_t = torch.from_numpy(pad_bottom_right(image, self.modulo))[None].to(self.device)
        mask_t = torch.from_numpy(pad_bottom_right(mask, self.modulo) > 0)[None].to(self.device, torch.float32)
        batch = generator_input(image_t, mask_t, self.concat_mask).to(self.dtype, memory_format=self.memory_format)
        predicted = self.generator(batch).float()
        result = mask_t * predicted + (1 - mask_t) * image_t if out_key == "inpainted" else predicted
        return to_uint8(result[0, :, :height, :width].cpu().numpy())

    def predict_pair(self, pair: MaskImagePair, out_key: str = "inpainted") -> np.ndarray:
        image, mask = read_pair(pair)
        try:
            return self.predict(image, mask, out_key)
        except torch.OutOfMemoryError as error:
            size = f"{image.shape[1]}x{image.shape[2]}"
            raise InputError(f"{pair.mask}: out of memory on {self.device} at {size}") from error


class ClassicalInpainter:
    """A classical baseline (``lama.baselines``) behind the same calls as :class:`Inpainter`; CPU only."""

    def __init__(self, method: str, radius: int = DEFAULT_RADIUS) -> None:
        self.method = method
        self.radius = radius

    def predict(self, image: np.ndarray, mask: np.ndarray, out_key: str = "inpainted") -> np.ndarray:
        """uint8 HWC result for a float32 CHW image and [1,H,W] mask (values > 0 are holes)."""
        hole = mask[0] > 0
        predicted = classical_fill(image, hole, self.method, self.radius)
        return to_uint8(np.where(hole, predicted, image) if out_key == "inpainted" else predicted)

    def predict_pair(self, pair: MaskImagePair, out_key: str = "inpainted") -> np.ndarray:
        return self.predict(*read_pair(pair), out_key)


def predict_folder(options: PredictOptions, progress: bool = True) -> PredictSummary:
    """Inpaint every mask under ``options.indir``; failures are reported per file and do not stop the run."""
    indir = Path(options.indir)
    if not indir.is_dir():
        raise InputError(f"indir={indir}: not a directory")
    outdir = Path(options.outdir)
    pairing = pair_masks(indir, outdir, options.dataset.img_suffix, options.out_ext)
    if not pairing.pairs and not pairing.unpaired:
        raise InputError(f"indir={indir}: no '{Path(MASK_GLOB).name}' files found (searched recursively)")
    prepare_outdir(outdir, indir, options.out_ext)
    summary = PredictSummary()
    for path, reason in pairing.unpaired:
        _report_failure(summary, path, f"{path}: {reason}")
    if not pairing.pairs:
        return summary
    inpainter = _load_inpainter(options, len(pairing.pairs))
    for pair in progress_bar(pairing.pairs, desc="predict", unit="img", disable=not progress):
        try:
            write_output(pair.output, inpainter.predict_pair(pair, options.out_key))
        except InputError as error:
            _report_failure(summary, pair.mask, str(error))
            continue
        summary.written.append(pair.output)
    return summary


def _load_inpainter(options: PredictOptions, count: int) -> Inpainter | ClassicalInpainter:
    method = classical_method(options.model.path)
    if method is not None:
        log.info("inpainting %d masks with the classical %s method", count, method)
        return ClassicalInpainter(method, options.classical_radius)
    device = resolve_device(options.device)
    model = load_model(options.model.path, options.model.checkpoint, map_location=device)
    log.info("inpainting %d masks with %s on %s (%s)", count, options.model.path, device, options.precision)
    # the inpainter holds its own prepared copy of the weights; the loaded model is dropped on return
    return Inpainter(model, device, options.precision, options.fold_norms, options.channels_last,
                     options.dataset.pad_out_to_modulo)


def _report_failure(summary: PredictSummary, path: Path, message: str) -> None:
    write_line(f"error: {message}")
    summary.failures.append((path, message))

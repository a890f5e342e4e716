"""Inpaint a folder of images exactly as the official ``bin/predict.py`` does, on CPU or GPU, and beyond it: the
official refinement, high-resolution strategies and batches (``lama.models.inference_options``), all off by default.

Input layout: every ``**/*mask*.png`` file under the input dir is a mask; its image is the mask's path relative to
the input dir cut at the last ``_mask``, plus ``img_suffix``. Output: ``outdir/<mask path relative to indir>`` with
``out_ext``. A bad input file or an output that cannot be written fails that mask only, named on stderr.
Images of any size mix freely: ``batch_size`` groups only those of equal padded size. The model is a model dir,
or ``classical:NAME`` for a classical baseline (``lama.baselines``) that goes through the same reading, blending
and writing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lama.baselines import DEFAULT_RADIUS, check_radius, classical_fill, classical_method
from lama.config import ConfigError, check_choices, check_positive
from lama.devices import AUTO, check_device, resolve_device
from lama.export.options import BACKENDS, DEFAULT_BACKEND, format_of
from lama.export.runtime import OnnxRunner
from lama.files import try_writing_in, write_image
from lama.imageio.eval_layout import (
    MASK_GLOB,
    MASK_SUFFIX,
    InputError,
    MaskImagePair,
    pair_masks,
    read_pair,
)
from lama.imageio.images import UnusableImageError, image_size
from lama.models.hd_strategy import HDStrategy, Tile
from lama.models.inference import BatchRunner, precision_dtype, prepare_for_inference
from lama.models.inference_options import DEFAULT_PRECISION, OUT_KEYS, InferenceOptions, check_precision, gpu_ids
from lama.models.model_dir import DEFAULT_CHECKPOINT, InpaintingModel, generator_input, load_model
from lama.models.refinement import Refiner
from lama.progress import progress_bar, write_line

log = logging.getLogger(__name__)
REFINE_NEEDS_TORCH = "refine=true: the refinement optimises features through the PyTorch generator; use backend=torch"


@dataclass
class ModelOptions:
    path: str = "???"
    checkpoint: str = DEFAULT_CHECKPOINT


@dataclass
class DatasetOptions:
    img_suffix: str = ".png"
    pad_out_to_modulo: int = 8


@dataclass
class PredictOptions(InferenceOptions):
    """Everything ``lama predict`` takes; the keys are the official prediction config's where one exists (the
    refinement's too), IOPaint's for the high-resolution strategies."""

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
    batch_size: int = 1  # images (or crops) of equal padded size per generator pass; 1 is the official path
    backend: str = DEFAULT_BACKEND  # torch (a model dir) | onnxruntime (a file written by `lama export --format onnx`)

    def __post_init__(self) -> None:
        self.check_inference()
        check_positive("", self, ("batch_size",))
        if self.out_key != "inpainted" and (self.refine or self.hd_strategy != "original"):
            raise ConfigError(f"out_key={self.out_key}: only the blended result exists with refine=true or "
                              f"hd_strategy={self.hd_strategy}; use out_key=inpainted")
        check_precision(self.precision)
        check_device(self.device)
        self._check_backend()
        if self.out_key not in OUT_KEYS:
            raise ConfigError(f"out_key={self.out_key!r}: expected one of {', '.join(OUT_KEYS)}")
        if self.dataset.pad_out_to_modulo < 1:
            raise ConfigError(f"dataset.pad_out_to_modulo={self.dataset.pad_out_to_modulo}: expected a positive int")
        check_radius(self.classical_radius)
        if classical_method(self.model.path) is not None and self.refine:  # an unknown NAME fails here too
            raise ConfigError(f"refine=true: {self.model.path} has no generator to refine; use a model dir")
        if gpu_ids(self.refiner.gpu_ids) and self.device == "cpu":
            raise ConfigError(f"refiner.gpu_ids={self.refiner.gpu_ids}: names GPUs, but device=cpu")

    def _check_backend(self) -> None:
        check_choices("", self, {"backend": BACKENDS})
        onnx_file = format_of(self.model.path) == "onnx"
        if self.backend == "torch" and onnx_file:
            raise ConfigError(f"model.path={self.model.path}: an ONNX file; run it with backend=onnxruntime")
        if self.backend != "onnxruntime":
            return
        if not onnx_file:
            raise ConfigError(f"backend=onnxruntime: model.path={self.model.path}; expected a .onnx file written by "
                              "'lama export'")
        if self.refine:
            raise ConfigError(REFINE_NEEDS_TORCH)
        if self.precision != DEFAULT_PRECISION:
            raise ConfigError(f"precision={self.precision}: an ONNX file's precision is set when it is exported "
                              "(lama export --precision)")


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
        try_writing_in(outdir)
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
    """A loaded model ready to inpaint images: the official plain forward by default, the official refinement
    with ``refine``, a high-resolution strategy, and tiles of equal padded size batched ``batch_size`` at a time
    (a batch that runs out of memory is split and retried, see :class:`lama.models.inference.BatchRunner`)."""

    def __init__(self, model: InpaintingModel, device: str | torch.device = "cpu", precision: str = DEFAULT_PRECISION,
                 fold_norms: bool = True, channels_last: bool = True, pad_out_to_modulo: int = 8,
                 inference: InferenceOptions | None = None, batch_size: int = 1) -> None:
        inference = inference or InferenceOptions()
        self._set_up(device, pad_out_to_modulo, inference, batch_size)
        self.dtype = precision_dtype(precision)
        self.concat_mask = model.concat_mask
        self.generator = prepare_for_inference(model.generator, self.device, precision, fold_norms, channels_last)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if inference.refine:
            devices = [torch.device(f"cuda:{index}") for index in gpu_ids(inference.refiner.gpu_ids)]
            self.refiner = Refiner(self.generator, inference.refiner, devices or [self.device], self.dtype,
                                   self.memory_format, self.concat_mask)

    def _set_up(self, device: str | torch.device, modulo: int, inference: InferenceOptions, batch_size: int) -> None:
        """What every backend shares: the device, the padding, the strategy and the batches."""
        inference.check_inference()
        self.device = torch.device(device)
        self.modulo = modulo
        self.strategy = HDStrategy.from_options(inference)
        self.refiner: Refiner | None = None
        self.batches = BatchRunner(batch_size)

    def predict(self, image: np.ndarray, mask: np.ndarray, out_key: str = "inpainted") -> np.ndarray:
        """uint8 HWC result for a float32 CHW image and [1,H,W] mask (values > 0 are holes)."""
        result = self.predict_many([(image, mask)], out_key)[0]
        if result is None:
            raise torch.OutOfMemoryError(f"out of memory on {self.device} at {image.shape[1]}x{image.shape[2]}")
        return result

    def predict_many(self, items: Sequence[tuple[np.ndarray, np.ndarray]], out_key: str = "inpainted"
                     ) -> list[np.ndarray | None]:
        """uint8 HWC results of :meth:`predict` for several images at once (their tiles batched by size); None for
        an image that did not fit in memory even alone."""
        plans = [self.strategy.plan(image, mask) for image, mask in items]
        tiles = [tile for plan in plans for tile in plan.tiles]
        done = iter(self._inpaint_tiles(tiles, out_key))
        results = []
        for (image, mask), plan in zip(items, plans, strict=True):
            pieces = [next(done) for _ in plan.tiles]
            failed = any(piece is None for piece in pieces)
            results.append(None if failed else to_uint8(self.strategy.compose(image, mask, plan, pieces)))
        return results

    def _inpaint_tiles(self, tiles: list[Tile], out_key: str) -> list[np.ndarray | None]:
        """Float CHW results in the tiles' order: refined one by one, or forwarded in batches of equal padded size."""
        if self.refiner is not None:
            return self.batches.run(self._refine, tiles, batch_size=1)
        results: list[np.ndarray | None] = [None] * len(tiles)
        by_shape: dict[tuple[int, int], list[int]] = {}
        for index, tile in enumerate(tiles):
            by_shape.setdefault(padded_shape(tile.image.shape[-2:], self.modulo), []).append(index)
        for indices in by_shape.values():
            group = self.batches.run(lambda batch: self._forward(batch, out_key), [tiles[i] for i in indices])
            for index, result in zip(indices, group, strict=True):
                results[index] = result
        return results

    def _forward(self, tiles: list[Tile], out_key: str) -> list[np.ndarray]:
        """One generator pass over tiles of equal padded size, each padded as the official dataset pads."""
        images = np.stack([pad_bottom_right(tile.image, self.modulo) for tile in tiles])
        masks = np.stack([pad_bottom_right(tile.mask, self.modulo) > 0 for tile in tiles]).astype(np.float32)
        result = self._run(images, masks, out_key)
        return [result[index, :, :tile.image.shape[1], :tile.image.shape[2]] for index, tile in enumerate(tiles)]

    @torch.inference_mode()
    def _run(self, images: np.ndarray, masks: np.ndarray, out_key: str) -> np.ndarray:
        """``out_key`` for a padded batch: float32 [B,3,H,W] images and [B,1,H,W] binary masks."""
        image_t = torch.from_numpy(images).to(self.device)
        mask_t = torch.from_numpy(masks).to(self.device)
        batch = generator_input(image_t, mask_t, self.concat_mask).to(self.dtype, memory_format=self.memory_format)
        predicted = self.generator(batch).float()
        result = mask_t * predicted + (1 - mask_t) * image_t if out_key == "inpainted" else predicted
        return result.cpu().numpy()

    def _refine(self, tiles: list[Tile]) -> list[np.ndarray]:
        (tile,) = tiles
        refined = self.refiner.refine(torch.from_numpy(tile.image)[None], torch.from_numpy(tile.mask)[None])
        return [refined[0].detach().cpu().numpy()]


def padded_shape(shape: Sequence[int], modulo: int) -> tuple[int, int]:
    """(height, width) after :func:`pad_bottom_right`."""
    height, width = shape
    return height + -height % modulo, width + -width % modulo


class OnnxInpainter(Inpainter):
    """An exported ONNX file (``lama export``) in ONNX Runtime behind :class:`Inpainter`'s calls: the same padding,
    strategies, batches and outputs; the graph blends (or not) as its ``out_key`` was exported."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", pad_out_to_modulo: int = 8,
                 inference: InferenceOptions | None = None, batch_size: int = 1, out_key: str = OUT_KEYS[0]) -> None:
        inference = inference or InferenceOptions()
        if inference.refine:
            raise ConfigError(REFINE_NEEDS_TORCH)
        self.runner = OnnxRunner(path, device)
        self._check_out_key(out_key)
        # The file's sides must be multiples of its own rule too (16 for a generator with a local Fourier unit).
        self._set_up(device, math.lcm(pad_out_to_modulo, self.runner.multiple), inference, batch_size)

    def _check_out_key(self, out_key: str) -> None:
        """The graph computes one output, chosen at export."""
        if out_key != self.runner.out_key:
            raise ConfigError(f"out_key={out_key}: {self.runner.path} was exported with out_key={self.runner.out_key};"
                              f" export it again with --out-key {out_key}")

    def _run(self, images: np.ndarray, masks: np.ndarray, out_key: str) -> np.ndarray:
        self._check_out_key(out_key)
        return self.runner(images, masks)


class ClassicalInpainter:
    """A classical baseline (``lama.baselines``) behind the same calls as :class:`Inpainter`; CPU only."""

    device = torch.device("cpu")

    def __init__(self, method: str, radius: int = DEFAULT_RADIUS) -> None:
        self.method = method
        self.radius = radius

    def predict(self, image: np.ndarray, mask: np.ndarray, out_key: str = "inpainted") -> np.ndarray:
        """uint8 HWC result for a float32 CHW image and [1,H,W] mask (values > 0 are holes)."""
        hole = mask[0] > 0
        predicted = classical_fill(image, hole, self.method, self.radius)
        return to_uint8(np.where(hole, predicted, image) if out_key == "inpainted" else predicted)

    def predict_many(self, items: Sequence[tuple[np.ndarray, np.ndarray]], out_key: str = "inpainted"
                     ) -> list[np.ndarray]:
        return [self.predict(image, mask, out_key) for image, mask in items]


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
    with progress_bar(desc="predict", total=len(pairing.pairs), unit="img", disable=not progress) as bar:
        for chunk in _batches(pairing.pairs, options.batch_size, options.dataset.pad_out_to_modulo):
            _predict_chunk(inpainter, chunk, options.out_key, summary)
            bar.update(len(chunk))
    return summary


def _batches(pairs: list[MaskImagePair], batch_size: int, modulo: int) -> list[list[MaskImagePair]]:
    """``batch_size`` pairs at a time; above one, ordered by padded image size (read from the headers) so that
    images of equal size share the generator's batches."""
    if batch_size > 1:
        pairs = sorted(pairs, key=lambda pair: _padded_size(pair.image, modulo))
    return [pairs[start:start + batch_size] for start in range(0, len(pairs), batch_size)]


def _padded_size(path: Path, modulo: int) -> tuple[int, int]:
    try:
        width, height = image_size(path)
    except UnusableImageError:
        return 0, 0  # it fails, named, when it is read
    return padded_shape((height, width), modulo)


def _predict_chunk(inpainter: Inpainter | ClassicalInpainter, chunk: list[MaskImagePair], out_key: str,
                   summary: PredictSummary) -> None:
    """Read, inpaint and write one batch of pairs; a pair that cannot be read, does not fit in memory or cannot be
    written is reported and the others go on."""
    loaded = []
    for pair in chunk:
        try:
            loaded.append((pair, read_pair(pair)))
        except InputError as error:
            _report_failure(summary, pair.mask, str(error))
    results = inpainter.predict_many([images for _, images in loaded], out_key)
    for (pair, (image, _)), result in zip(loaded, results, strict=True):
        try:
            if result is None:
                raise InputError(f"{pair.mask}: out of memory on {inpainter.device} at "
                                 f"{image.shape[1]}x{image.shape[2]}, even alone")
            write_output(pair.output, result)
        except InputError as error:
            _report_failure(summary, pair.mask, str(error))
            continue
        summary.written.append(pair.output)


def _load_inpainter(options: PredictOptions, count: int) -> Inpainter | ClassicalInpainter:
    method = classical_method(options.model.path)
    if method is not None:
        log.info("inpainting %d masks with the classical %s method", count, method)
        return ClassicalInpainter(method, options.classical_radius)
    device = resolve_device(options.device)
    if options.backend == "onnxruntime":
        log.info("inpainting %d masks with %s in ONNX Runtime on %s", count, options.model.path, device)
        return OnnxInpainter(options.model.path, device, options.dataset.pad_out_to_modulo, options,
                             options.batch_size, options.out_key)
    model = load_model(options.model.path, options.model.checkpoint, map_location=device)
    log.info("inpainting %d masks with %s on %s (%s)", count, options.model.path, device, options.precision)
    cards = gpu_ids(options.refiner.gpu_ids)
    if options.refine and cards and max(cards) >= torch.cuda.device_count():
        raise ConfigError(f"refiner.gpu_ids={options.refiner.gpu_ids}: this machine has "
                          f"{torch.cuda.device_count()} CUDA devices")
    if options.refine:
        log.info("refining: %s", options.refiner)
    # the inpainter holds its own prepared copy of the weights; the loaded model is dropped on return
    return Inpainter(model, device, options.precision, options.fold_norms, options.channels_last,
                     options.dataset.pad_out_to_modulo, options, options.batch_size)


def _report_failure(summary: PredictSummary, path: Path, message: str) -> None:
    write_line(f"error: {message}")
    summary.failures.append((path, message))

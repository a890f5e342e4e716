"""Fixed eval mask sets, built like the official ``bin/gen_mask_dataset.py`` but seeded, parallel and accounted for.

For every image: resize the short side to the config's size, draw ``variants_n`` candidate masks, crop each to a
square that contains the far end of the mask, reject masks covering more than ``max_tamper_area``, and keep one
of the accepted ones at random; retry with fresh candidates (``attempts`` in all, 10 like the official builder)
before dropping the image. Everything random comes from a state derived from (config, seed, image path), so the
set is the same byte for byte whatever ``n_jobs`` is. Unlike the official builder, dropped images are listed
with their reason in ``maskset.json``, and so is every other file of the input folder (other extensions, broken
links).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from lama.files import atomic_write, remove_temporaries, write_image
from lama.imageio.images import resize_short_side, to_rgb
from lama.imageio.listing import list_files
from lama.journal import Journal
from lama.masks.configs import DEFAULT_EXTENSIONS, EVAL_CONFIGS, EvalSetConfig, eval_set_config
from lama.masks.generator import MaskGenerator
from lama.progress import progress_bar
from lama.signals import worker_initializer

log = logging.getLogger(__name__)

MANIFEST = "maskset.json"
JOURNAL = ".maskset.journal.jsonl"


class EmptyMaskError(ValueError):
    """A candidate mask has no hole; the official crop raises here and the attempt is abandoned."""


@dataclass(frozen=True)
class Selection:
    """The outcome of the protocol for one image: the kept masks with their crops, or why there are none."""

    masks: list[np.ndarray]
    crops: list[tuple[int, int, int, int]]  # left, top, right, bottom
    candidates: int
    rejected_area: int
    reason: str = ""


def propose_square_crop(mask: np.ndarray, rng: np.random.RandomState, min_overlap: float) -> tuple[int, int, int, int]:
    """The official square crop of side min(H, W) along the long axis, keeping the far end of the mask inside.

    One ``randint`` is drawn even for a square image, where the crop is the whole image.
    """
    height, width = mask.shape
    if not mask.any():
        raise EmptyMaskError("candidate mask is empty")
    side = min(height, width)
    if height == width:
        low, high = 0, 1
    else:
        length, axis = (width, 0) if height < width else (height, 1)
        covered = np.flatnonzero(mask.any(axis=axis))
        first, last = int(covered[0]), int(covered[-1])
        reach = first + (last - first) * min_overlap
        low = max(0, min(length - side - 1, int(reach - side)))
        high = max(low + 1, min(length - side, int(reach)))
    start = int(rng.randint(low, high))
    if height < width:
        return start, 0, start + side, height
    return 0, start, width, start + side


def select_masks(
    generator: MaskGenerator, config: EvalSetConfig, rng: np.random.RandomState, height: int, width: int
) -> Selection:
    """Run the official selection protocol for one resized image, drawing everything from ``rng``."""
    candidates = rejected = 0
    reason = ""
    for _ in range(config.attempts):
        masks = [generator.generate(rng, height, width) for _ in range(config.variants_n)]
        candidates += len(masks)
        accepted: list[tuple[np.ndarray, tuple[int, int, int, int]]] = []
        try:
            for mask in masks:
                crop = (0, 0, width, height)
                if config.out_square_crop:
                    crop = propose_square_crop(mask, rng, config.crop_min_overlap)
                    mask = mask[crop[1] : crop[3], crop[0] : crop[2]]
                if mask.mean() > config.max_tamper_area:
                    rejected += 1
                    continue
                accepted.append((mask, crop))
        except EmptyMaskError:
            reason = "a candidate mask was empty"
            continue
        if accepted:
            keep = rng.choice(len(accepted), size=min(len(accepted), config.max_masks_per_image), replace=False)
            chosen = [accepted[i] for i in keep]
            return Selection([m for m, _ in chosen], [c for _, c in chosen], candidates, rejected)
        reason = f"every candidate covered more than {config.max_tamper_area:g} of the image"
    return Selection([], [], candidates, rejected, reason=f"no acceptable mask: {reason} ({config.attempts} attempts)")


def read_rgb(path: Path) -> Image.Image:
    """Any image file as 8-bit RGB."""
    with Image.open(path) as opened:
        opened.load()
        return to_rgb(opened)


@dataclass
class ImageResult:
    source: str
    written: list[str] = field(default_factory=list)
    dropped: str = ""
    candidates: int = 0
    rejected_area: int = 0


@dataclass
class MaskSetSummary:
    """What a build did; written to ``maskset.json`` beside the pairs."""

    config: str
    seed: int
    images: int = 0
    pairs: int = 0
    dropped: dict[str, str] = field(default_factory=dict)  # source → "category: detail"
    candidates: int = 0
    rejected_area: int = 0

    def __str__(self) -> str:
        text = f"{self.pairs} pairs from {self.images} images"
        if self.dropped:
            reasons = Counter(reason.split(":")[0] for reason in self.dropped.values())
            text += f"; dropped {len(self.dropped)}: " + "; ".join(f"{n} {r}" for r, n in reasons.most_common())
        return text


class _Job:
    """Everything a worker needs for one image; picklable so process pools can run it."""

    def __init__(self, config_name: str, config: EvalSetConfig, seed: int, indir: Path, outdir: Path) -> None:
        self.config, self.seed, self.indir, self.outdir = config, seed, indir, outdir
        self.generator = MaskGenerator(config.generator, name=config_name)

    def __call__(self, source: Path) -> ImageResult:
        relative = source.relative_to(self.indir)
        result = ImageResult(source=relative.as_posix())
        try:
            image = read_rgb(source)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
            result.dropped = f"unreadable: {error}"
            return result
        if min(image.size) < self.config.out_min_size and self.config.handle_small_mode == "drop":
            result.dropped = f"too small: short side under {self.config.out_min_size} px (handle_small_mode=drop)"
            return result
        image = resize_short_side(image, self.config.out_min_size)
        rng = self.generator.rng_for(relative.as_posix(), image.height, image.width, self.seed)
        selection = select_masks(self.generator, self.config, rng, image.height, image.width)
        result.candidates, result.rejected_area = selection.candidates, selection.rejected_area
        if not selection.masks:
            result.dropped = selection.reason
            return result
        stem = self.outdir / relative.with_suffix("")
        pixels = np.asarray(image)
        for index, (mask, (left, top, right, bottom)) in enumerate(zip(selection.masks, selection.crops, strict=True)):
            image_path = stem.with_name(f"{stem.name}_crop{index:03d}.png")
            mask_path = stem.with_name(f"{stem.name}_crop{index:03d}_mask{index:03d}.png")
            write_image(image_path, np.ascontiguousarray(pixels[top:bottom, left:right]))
            write_image(mask_path, mask * np.uint8(255), mode="L")
            result.written += [path.relative_to(self.outdir).as_posix() for path in (image_path, mask_path)]
        return result


def build_eval_mask_set(
    config: str | EvalSetConfig,
    indir: Path,
    outdir: Path,
    seed: int = 0,
    n_jobs: int = 1,
    extensions: Iterable[str] = DEFAULT_EXTENSIONS,
    progress: bool = True,
) -> MaskSetSummary:
    """Build the eval set ``config`` (a name such as ``thick_512``, or a custom config) from ``indir`` into ``outdir``.

    Finished images are journaled as they complete, so an interrupted build resumes where it stopped.
    """
    config_name, config = _resolve_config(config)
    indir, outdir = Path(indir), Path(outdir)
    if not indir.is_dir():
        raise FileNotFoundError(f"{indir}: input image folder not found")
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1, got {n_jobs}")
    extensions = tuple(extensions)
    listing = list_files(indir, extensions, exclude=outdir)  # a rebuild never reads its own outputs
    sources = listing.images
    if not sources:
        raise ValueError(f"{indir}: no images with extensions {', '.join(extensions)}")
    _refuse_colliding_outputs(sources, indir)
    identity = {"config_name": config_name, "config": asdict(config), "seed": seed, "extensions": list(extensions)}
    _check_outdir(outdir, identity)
    remove_temporaries(outdir)
    keys = {source.relative_to(indir).as_posix(): source for source in sources}
    journal = Journal(outdir / JOURNAL, identity, "mask set build")
    done = {}
    for record in journal.records():
        result = ImageResult(**record)
        if result.source in keys:
            done[result.source] = result
    summary = MaskSetSummary(config=config_name, seed=seed, images=len(sources))
    summary.dropped.update({path.relative_to(indir).as_posix(): reason for path, reason in listing.unused})
    for result in done.values():
        _account(summary, result)
    todo = [source for key, source in keys.items() if key not in done]
    job = _Job(config_name, config, seed, indir, outdir)
    bar = progress_bar(total=len(sources), initial=len(done), desc=f"masks {config_name}", unit="img",
                       disable=not progress)
    outdir.mkdir(parents=True, exist_ok=True)
    with bar, journal:
        pool = ProcessPoolExecutor(max_workers=n_jobs, initializer=worker_initializer()) if n_jobs > 1 else None
        chunksize = max(1, min(16, len(todo) // (8 * n_jobs)))
        results: Iterable[ImageResult] = pool.map(job, todo, chunksize=chunksize) if pool else map(job, todo)
        try:
            for result in results:
                _account(summary, result)
                journal.append(asdict(result))
                bar.update()
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    record = {**identity, "summary": asdict(summary)}
    atomic_write(outdir / MANIFEST, lambda handle: handle.write(json.dumps(record, indent=1).encode() + b"\n"))
    journal.remove()
    for source, reason in sorted(summary.dropped.items()):
        log.warning("dropped %s: %s", source, reason)
    return summary


def _resolve_config(config: str | EvalSetConfig) -> tuple[str, EvalSetConfig]:
    if isinstance(config, EvalSetConfig):
        return "custom", config
    try:
        return config, eval_set_config(config)
    except KeyError:
        expected = ", ".join(EVAL_CONFIGS)
        raise ValueError(f"unknown eval mask config {config!r}; expected one of {expected}, or a scaled "
                         "<thin|medium|thick>_<size> such as thick_1024") from None


def _refuse_colliding_outputs(sources: list[Path], indir: Path) -> None:
    """``a.jpg`` and ``a.png`` would both write ``a_crop000.png``: refuse rather than keep whichever came last."""
    seen: dict[str, Path] = {}
    for source in sources:
        stem = source.relative_to(indir).with_suffix("").as_posix()
        if stem in seen:
            raise ValueError(f"{seen[stem]} and {source} would write the same outputs ({stem}_crop000.png); "
                             "rename one or narrow --ext")
        seen[stem] = source


def _load_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error}); delete it to start over") from None


def _check_outdir(outdir: Path, identity: dict) -> None:
    """Refuse to mix two different mask sets in one folder."""
    manifest = outdir / MANIFEST
    if manifest.is_file():
        previous = _load_json(manifest)
        previous = previous if isinstance(previous, dict) else {}
        if {key: previous.get(key) for key in identity} != identity:
            raise ValueError(
                f"{outdir}: already holds mask set {previous.get('config_name')!r} (seed {previous.get('seed')}) "
                "with other settings; "
                "use an empty folder or delete it"
            )


def _account(summary: MaskSetSummary, result: ImageResult) -> None:
    summary.pairs += len(result.written) // 2
    summary.candidates += result.candidates
    summary.rejected_area += result.rejected_area
    if result.dropped:
        summary.dropped[result.source] = result.dropped

"""Images per second per core of the training loader against reading the same images from a folder of PNG files.

Both sides deliver the same thing: batches of 10 random 256² windows (uint8, CHW) with a `wide` training mask
each, drawn by the same `cut_window` and `MaskGenerator.sample`, so the ratio measures storage and decoding:
sequential JPEG shards read by WebDataset against one PNG file per image through a map-style `DataLoader`
(shuffled, the usual folder loader). The images are crops of the embedded sample photos at Places365 "large"
resolution (short side 512) and at the sample profile's 256. The loader runs without augmentation here: on a GPU
machine the kornia augmentation runs on the GPU, not in the loader (a separate row times it in the loader on CPU).
One core: the main process with `num_workers=0`, one torch/OpenCV thread; rounds interleave the two sides.

    python benchmarks/loader_speed.py             # about 2 minutes
    python benchmarks/loader_speed.py --images 200 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from lama.data.embedded import embedded_splits
from lama.data.loader import LoaderConfig, TrainLoader, cut_window
from lama.data.prepare import PrepareConfig, prepare
from lama.imageio.images import resize_short_side
from lama.masks import MaskGenerator

BATCH = 10
CROP = 256


class PngFolder(Dataset):
    """The baseline: one PNG file per image, decoded with Pillow, the same window and mask as the loader."""

    def __init__(self, folder: Path) -> None:
        self.files = sorted(folder.glob("*.png"))
        self.masks = MaskGenerator.from_config("wide")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        path = self.files[index]
        with Image.open(path) as opened:
            image = np.asarray(opened.convert("RGB"))
        window = cut_window(image, CROP, random.Random(f"0/0/{path.stem}"))
        mask = self.masks.sample(f"{path.stem}@0", CROP, CROP, seed=0)
        return {"image": torch.from_numpy(np.ascontiguousarray(window.transpose(2, 0, 1))),
                "mask": torch.from_numpy(mask[None])}


def make_inputs(workdir: Path, images: int, short_side: int) -> tuple[Path, Path]:
    """A PNG folder and the same images prepared as JPEG (quality 95) shards."""
    folder = workdir / f"png{short_side}"
    folder.mkdir()
    for image in embedded_splits(seed=1, counts={"train": images}).train:
        resize_short_side(image.ref.read(), short_side).save(folder / f"{image.key}.png")
    config = PrepareConfig(source="folder", root=str(folder), size=short_side, min_size=CROP, shard_size=100,
                           eval_sizes=[CROP])
    prepare(config, workdir / f"shards{short_side}", progress=False)
    return folder, workdir / f"shards{short_side}"


def images_per_second(batches: Iterator[dict], images: int) -> float:
    next(batches)  # start-up (workers, first shard) is not throughput
    start, seen = time.perf_counter(), 0
    while seen < images:
        seen += len(next(batches)["mask"])
    return seen / (time.perf_counter() - start)


def time_folder(folder: Path, images: int, workers: int) -> float:
    loader = DataLoader(PngFolder(folder), batch_size=BATCH, shuffle=True, num_workers=workers, drop_last=True,
                        persistent_workers=workers > 0)

    def endless() -> Iterator[dict]:
        while True:
            yield from loader

    return images_per_second(endless(), images)


def time_shards(shards: Path, images: int, workers: int, augment: str = "no_augs") -> float:
    config = LoaderConfig(batch_size=BATCH, num_workers=workers, crop_size=CROP, augment=augment,
                          augment_on="loader", masks="wide")
    return images_per_second(iter(TrainLoader(shards, config, rank=0, world_size=1)), images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400, help="images per source (default 400)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "loader_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for short_side in (512, 256):
            folder, shards = make_inputs(Path(workdir), args.images, short_side)
            rounds: dict[str, list[float]] = {"png_folder": [], "shards": []}
            for _ in range(args.rounds):
                rounds["png_folder"].append(time_folder(folder, args.images, workers=0))
                rounds["shards"].append(time_shards(shards, args.images, workers=0))
            augmented = time_shards(shards, min(args.images, 100), workers=0, augment="distortions")
            medians = {name: statistics.median(values) for name, values in rounds.items()}
            result = {"short_side": short_side, "images": args.images, **{f"{k}_per_s": v for k, v in medians.items()},
                      "ratio": medians["shards"] / medians["png_folder"], "shards_with_kornia_augment_per_s": augmented}
            results.append(result)
            print(f"short side {short_side}: PNG folder {medians['png_folder']:.0f} img/s/core, shards "
                  f"{medians['shards']:.0f} img/s/core ({result['ratio']:.2f}x); with the kornia augmentation in the "
                  f"loader on CPU {augmented:.0f} img/s/core", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "cases": results},
                                      indent=1) + "\n")


if __name__ == "__main__":
    main()

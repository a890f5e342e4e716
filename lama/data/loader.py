"""The training loader: an endless stream of (image, mask) batches from WebDataset shards, split over ranks and workers.

Every epoch the shards are permuted with a seed that all ranks share and dealt out to the N ranks × M workers
("consumers"), so within an epoch no two consumers read the same shard and every sample is read once. With fewer
shards than consumers, the consumers that share a shard take alternate samples of it. Epochs follow each other
without end, so the stream never runs dry and no rank waits for another at an epoch boundary (the DDP hang of
uneven splits). ``wds.ResampledShards`` would also never run dry, but it draws shards with replacement, so two
workers can read the same shard in one epoch, and ``wds.split_by_worker`` leaves workers idle when shards are
fewer than workers; hence the dealing is ours, and reading, grouping, shuffling and batching are WebDataset's.

Workers decode, cut a random window and draw the hole mask (``lama.masks``) on the fly; every random choice for a
sample derives from (seed, epoch, key), so it does not depend on how many workers there are. The official
augmentations run batched with kornia on the training device when it is a GPU, in the workers otherwise.

Each consumer shuffles each epoch on its own, so ``TrainLoader.state_dict()`` (batches taken; per consumer the epoch
and how many of its samples were consumed) lets a resumed run continue the stream exactly, skipping the consumed
samples without decoding them.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from lama.config import ConfigError
from lama.data.augment import AugmentConfig, LamaAugmentation
from lama.data.prepare import MANIFEST
from lama.masks.generator import MaskGenerator
from lama.signals import worker_initializer

log = logging.getLogger(__name__)

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")
AUGMENT_ON = ("auto", "loader", "device")


@dataclass
class LoaderConfig:
    """The official Places setup: batch 10 per GPU, 3 workers, 256 crops, wide masks, shuffle buffer 200."""

    batch_size: int = 10
    num_workers: int = 3
    crop_size: int = 256
    window_size: int | None = None  # the window cut in the worker; None: 2 × crop when augmenting geometry
    shuffle_buffer: int = 200
    masks: str = "wide"
    # Draw the masks for the crop: stroke and box lengths scaled by crop_size / 256 (the size the official configs
    # were made for), so a hole covers the same share of any crop; at 256 the official masks exactly. false: the
    # official lengths at every crop size (a 64² crop is then often entirely hole).
    scale_masks: bool = True
    augment: str = "distortions"  # distortions | flip | no_augs
    augment_on: str = "auto"  # auto (device when it is a GPU) | loader | device
    seed: int = 0

    def __post_init__(self) -> None:
        try:
            self._check()
        except ValueError as error:
            raise ConfigError(f"data.loader.{error}") from None

    def _check(self) -> None:
        for key in ("batch_size", "crop_size", "shuffle_buffer"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}={value!r}: expected a positive integer")
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"num_workers={self.num_workers!r}: expected an integer >= 0")
        if self.window_size is not None and self.window_size < self.crop_size:
            raise ValueError(f"window_size={self.window_size}: expected >= crop_size ({self.crop_size})")
        if self.augment_on not in AUGMENT_ON:
            raise ValueError(f"augment_on={self.augment_on!r}: expected one of {', '.join(AUGMENT_ON)}")
        augment = self.augment_config
        if 1 <= self.crop_size < augment.min_crop_size:  # named by the loader's keys, not AugmentConfig's
            raise ValueError(f"crop_size={self.crop_size}: expected >= {augment.min_crop_size} with "
                             f"data.loader.augment={self.augment}: its CLAHE cuts the crop into "
                             f"{augment.clahe_grid}x{augment.clahe_grid} tiles")
        augment.validate()
        masks = self.mask_generator()
        try:
            masks.check_size(self.crop_size, self.crop_size)
        except ValueError as error:
            raise ValueError(f"crop_size={self.crop_size}: too small for data.loader.masks={self.masks} "
                             f"(scale_masks={str(self.scale_masks).lower()}): {error}") from None

    def mask_generator(self) -> MaskGenerator:
        """The training masks for ``crop_size`` crops."""
        if self.scale_masks:
            return MaskGenerator.for_size(self.masks, self.crop_size)
        return MaskGenerator.from_config(self.masks)

    @property
    def augment_config(self) -> AugmentConfig:
        return AugmentConfig(variant=self.augment, crop_size=self.crop_size)

    @property
    def window(self) -> int:
        if self.window_size is not None:
            return self.window_size
        # At scale 0.7 and 40° the crop's corners come from 1.01 × crop off its centre: a 2 × crop window holds
        # them, so the geometric ops pull in real content where the official full-image ops would.
        return self.crop_size * 2 if self.augment == "distortions" else self.crop_size


@dataclass(frozen=True)
class Assignment:
    """Read ``url`` and keep the samples whose index in it is ``offset`` modulo ``stride``."""

    url: str
    stride: int = 1
    offset: int = 0


@dataclass
class LoaderPosition:
    """How far one rank's stream has gone: batches taken, and per consumer (epoch, samples of it consumed).

    It is all a resumed run needs to continue the stream exactly where it stopped, provided the ranks, workers and
    shards are the same; ``TrainLoader.state_dict`` gives it and ``TrainLoader(position=...)`` takes it back.
    """

    consumers_total: int
    batches: int = 0
    consumers: dict[int, tuple[int, int]] = field(default_factory=dict)

    def advance(self, batch: dict) -> None:
        self.batches += 1
        for epoch, consumer in zip(batch["epoch"], batch["consumer"], strict=True):
            seen_epoch, count = self.consumers.get(consumer, (epoch, 0))
            self.consumers[consumer] = (epoch, count + 1) if epoch == seen_epoch else (epoch, 1)

    def to_dict(self) -> dict:
        return {"consumers_total": self.consumers_total, "batches": self.batches,
                "consumers": {str(c): list(p) for c, p in sorted(self.consumers.items())}}

    @classmethod
    def from_dict(cls, data: dict) -> LoaderPosition:
        return cls(int(data["consumers_total"]), int(data["batches"]),
                   {int(c): (int(p[0]), int(p[1])) for c, p in data["consumers"].items()})


def deal_shards(shards: Sequence[str], epoch: int, consumer: int, consumers: int, seed: int) -> list[Assignment]:
    """What consumer ``consumer`` of ``consumers`` reads in ``epoch``; all consumers together read each sample once."""
    if not 0 <= consumer < consumers:
        raise ValueError(f"consumer {consumer} out of range for {consumers} consumers")
    order = random.Random(f"{seed}/epoch/{epoch}").sample(sorted(shards), len(shards))
    if len(order) >= consumers:
        return [Assignment(url) for url in order[consumer::consumers]]
    shard = consumer % len(order)
    return [Assignment(order[shard], len(range(shard, consumers, len(order))), consumer // len(order))]


def find_shards(location: str | Path | Sequence[str | Path]) -> list[str]:
    """Shard paths from a prepared dataset folder (its manifest), a folder of ``.tar`` files, or a list."""
    if isinstance(location, (str, Path)):
        path = Path(location)
        if (path / MANIFEST).is_file():
            manifest = json.loads((path / MANIFEST).read_text())
            shards = [str(path / "train" / shard["name"]) for shard in manifest["shards"] if shard["count"]]
        elif path.is_dir():
            shards = sorted(str(shard) for shard in path.glob("*.tar"))
        else:
            shards = [str(path)]
    else:
        shards = [str(shard) for shard in location]
    missing = [shard for shard in shards if not Path(shard).is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: shard not found" + (f" (and {len(missing) - 1} more)"
                                                                     if len(missing) > 1 else ""))
    if not shards:
        raise ValueError(f"{location}: no training shards")
    return shards


def distributed_position() -> tuple[int, int]:
    """(rank, world size) of this process: from torch.distributed when initialised, else the launcher's env."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def decode_image(data: bytes) -> np.ndarray:
    """HWC uint8 RGB; OpenCV decodes JPEG about twice as fast as Pillow."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
    if image is None:
        raise ValueError("undecodable image")
    return image


def cut_window(image: np.ndarray, window: int, rng: random.Random) -> np.ndarray:
    """A random ``window``² region; smaller images are first padded by reflection (official PadIfNeeded)."""
    height, width = image.shape[:2]
    pad_y, pad_x = max(0, window - height), max(0, window - width)
    if pad_y or pad_x:
        image = cv2.copyMakeBorder(image, pad_y // 2, pad_y - pad_y // 2, pad_x // 2, pad_x - pad_x // 2,
                                   cv2.BORDER_REFLECT_101)
        height, width = image.shape[:2]
    top, left = rng.randint(0, height - window), rng.randint(0, width - window)
    return image[top : top + window, left : left + window]


class TrainSamples(IterableDataset):
    """The per-rank stream of collated batches: ``image`` (B, 3, W, W) uint8, ``mask`` (B, 1, C, C) uint8,
    ``key``/``epoch``/``url``/``consumer`` lists; with loader-side augmentation ``image`` is (B, 3, C, C) float
    in [0, 1].
    """

    def __init__(self, shards: Sequence[str], config: LoaderConfig, rank: int, world_size: int,
                 augment_here: bool, start_epoch: int = 0, position: LoaderPosition | None = None) -> None:
        super().__init__()
        self.shards = list(shards)
        self.config = config
        self.rank = rank
        self.world_size = world_size
        self.augment_here = augment_here
        self.start_epoch = start_epoch
        self.position = position
        self.masks = config.mask_generator()

    def consumer(self) -> tuple[int, int]:
        """(logical consumer, consumers). Worker ids are rotated on resume so that the DataLoader, which restarts
        its round-robin at worker 0, hands out the batches in the same order as the uninterrupted run would."""
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        rotation = self.position.batches % workers if self.position is not None else 0
        return self.rank * workers + (worker + rotation) % workers, self.world_size * workers

    def epochs(self, consumer: int, consumers: int) -> Iterator[tuple[int, int, list[Assignment]]]:
        """(epoch, samples of it already consumed, what to read) for this consumer, endlessly."""
        epoch, skip = self.start_epoch, 0
        if self.position is not None:
            epoch, skip = self.position.consumers.get(consumer, (self.start_epoch, 0))
        for number in itertools.count(epoch):
            yield number, skip if number == epoch else 0, deal_shards(self.shards, number, consumer, consumers,
                                                                         self.config.seed)

    def read(self, consumer: int, consumers: int) -> Iterator[dict]:
        """Raw samples in training order. Each epoch is shuffled on its own (seeded by consumer and epoch), so a
        position (epoch, samples consumed) is enough to continue exactly, skipping without decoding."""
        buffer = self.config.shuffle_buffer
        for epoch, skip, assignments in self.epochs(consumer, consumers):
            samples = self.read_epoch(epoch, assignments, consumer)
            shuffled = wds.shuffle(buffer, min(100, buffer), seed=f"{self.config.seed}/{consumer}/{epoch}")(samples)
            yield from itertools.islice(shuffled, skip, None)

    @staticmethod
    def read_epoch(epoch: int, assignments: list[Assignment], consumer: int) -> Iterator[dict]:
        for assignment in assignments:
            for index, sample in enumerate(wds.tarfile_samples([{"url": assignment.url}])):
                if index % assignment.stride == assignment.offset:
                    sample["__epoch__"], sample["__consumer__"] = epoch, consumer
                    yield sample

    def make_sample(self, sample: dict) -> dict:
        key, epoch = sample["__key__"], sample["__epoch__"]
        try:
            data = next(sample[name] for name in IMAGE_KEYS if name in sample)
            image = decode_image(data)
        except (StopIteration, ValueError):
            raise ValueError(f"{sample['__url__']}: sample {key!r} has no decodable image") from None
        rng = random.Random(f"{self.config.seed}/{epoch}/{key}")
        window = cut_window(image, self.config.window, rng)
        crop = self.config.crop_size
        mask = self.masks.sample(f"{key}@{epoch}", crop, crop, seed=self.config.seed)
        return {"image": torch.from_numpy(np.ascontiguousarray(window.transpose(2, 0, 1))),
                "mask": torch.from_numpy(mask[None]), "key": key, "epoch": epoch, "url": sample["__url__"],
                "consumer": sample["__consumer__"]}

    @staticmethod
    def collate(samples: list[dict]) -> dict:
        return {"image": torch.stack([sample["image"] for sample in samples]),
                "mask": torch.stack([sample["mask"] for sample in samples]),
                **{name: [sample[name] for sample in samples] for name in ("key", "epoch", "url", "consumer")}}

    def __iter__(self) -> Iterator[dict]:
        consumer, consumers = self.consumer()
        batches = wds.batched(self.config.batch_size, collation_fn=self.collate, partial=False)(
            map(self.make_sample, self.read(consumer, consumers)))
        if not self.augment_here:
            yield from batches
            return
        augment = LamaAugmentation(self.config.augment_config)
        for batch in batches:
            batch["image"] = augment(batch["image"], batch_generator(self.config.seed, batch))
            yield batch


def batch_generator(seed: int, batch: dict) -> torch.Generator:
    """The augmentation's random stream for one batch, from its first sample's (epoch, key): it depends neither on
    where the batch was made (worker or device) nor on how far the run has gone, so a resumed run draws the same."""
    return torch.Generator().manual_seed(hash_seed(seed, "augment", batch["epoch"][0], batch["key"][0]))


def hash_seed(*parts: object) -> int:
    """A 63-bit seed from parts, the same in every process (Python's ``hash`` of a str is salted per process)."""
    return random.Random("/".join(map(str, parts))).getrandbits(63)


class TrainLoader:
    """Batches ready for the training step: ``image`` (B, 3, C, C) float in [0, 1] and ``mask`` (B, 1, C, C) float
    on ``device``, plus ``key``/``epoch``/``url``/``consumer`` lists (where each sample came from). Iterating never
    ends; take as many steps as planned.
    """

    def __init__(self, shards: str | Path | Sequence[str | Path], config: LoaderConfig, device: str | torch.device =
                 "cpu", rank: int | None = None, world_size: int | None = None, start_epoch: int = 0,
                 position: LoaderPosition | dict | None = None) -> None:
        self.config = config
        self.device = torch.device(device)
        if (rank is None) != (world_size is None):
            raise ValueError(f"rank={rank}, world_size={world_size}: give both or neither")
        if rank is None or world_size is None:
            rank, world_size = distributed_position()
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank}: expected 0 <= rank < world_size ({world_size})")
        consumers = world_size * max(1, config.num_workers)
        if isinstance(position, dict):
            position = LoaderPosition.from_dict(position)
        if position is not None and position.consumers_total != consumers:
            # Another split of the shards: the saved per-consumer positions mean nothing here. Start the epoch
            # after the last one begun, so no sample of the interrupted epoch is read twice before its turn.
            start_epoch = max((epoch for epoch, _ in position.consumers.values()), default=start_epoch) + 1
            log.warning("the loader position was saved for %d consumers, this run has %d (ranks x workers): "
                        "continuing at the start of epoch %d", position.consumers_total, consumers, start_epoch)
            position = None
        self.position = position or LoaderPosition(consumers)
        on_device = config.augment_on == "device" or (config.augment_on == "auto" and self.device.type == "cuda")
        self.augment = LamaAugmentation(config.augment_config) if on_device else None
        self.dataset = TrainSamples(find_shards(shards), config, rank, world_size, augment_here=not on_device,
                                    start_epoch=start_epoch, position=position)
        self._batches: Iterator[dict] | None = None
        workers = config.num_workers
        self.loader = wds.WebLoader(
            self.dataset, batch_size=None, num_workers=workers, persistent_workers=workers > 0,
            pin_memory=self.device.type == "cuda", prefetch_factor=4 if workers else None,
            # The DataLoader draws its base seed from this generator, not from the process's global RNG.
            generator=torch.Generator().manual_seed(hash_seed(config.seed, rank)),
            # Workers leave stop signals to the training loop (it saves first) and die with it.
            worker_init_fn=worker_initializer() if workers else None,
        )

    def __iter__(self) -> Iterator[dict]:
        """The one endless stream: iterating again continues it rather than replaying the first batches."""
        if self._batches is None:
            self._batches = self._stream()
        return self._batches

    def state_dict(self) -> dict:
        """The position after the last batch handed out (JSON-friendly)."""
        return self.position.to_dict()

    def _stream(self) -> Iterator[dict]:
        for batch in self.loader:
            image = batch["image"].to(self.device, non_blocking=True)
            if self.augment is not None:
                image = self.augment(image, batch_generator(self.config.seed, batch))
            batch["image"] = image.float() / 255 if image.dtype == torch.uint8 else image
            batch["mask"] = batch["mask"].to(self.device, non_blocking=True).float()
            self.position.advance(batch)
            yield batch

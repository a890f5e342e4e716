"""The training loader: every sample once per epoch across ranks × workers, masks and crops keyed, batches ready."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from lama.data.loader import LoaderConfig, TrainLoader, cut_window, deal_shards, find_shards
from lama.data.prepare import PrepareConfig, prepare
from lama.masks.generator import MaskGenerator

SMALL = {"batch_size": 2, "crop_size": 32, "window_size": 40, "shuffle_buffer": 4, "augment": "no_augs",
         "masks": "narrow"}


def _dataset(root: Path, images: int, shard_size: int) -> Path:
    """A prepared dataset of small images (folder source), ``images`` of them in shards of ``shard_size``."""
    source = root / "source"
    source.mkdir(parents=True)
    rng = np.random.RandomState(images)
    for index in range(images):
        height, width = rng.randint(36, 60, size=2)
        Image.fromarray(rng.randint(0, 256, (height, width, 3), dtype=np.uint8)).save(source / f"im{index:03d}.png")
    config = PrepareConfig(source="folder", root=str(source), size=48, min_size=32, image_format="png",
                           shard_size=shard_size, eval_sizes=[32])
    prepare(config, root / "data", progress=False)
    return root / "data"


def _keys_by_shard(data: Path) -> dict[str, list[str]]:
    return {shard: [sample["__key__"] for sample in wds.WebDataset(shard, shardshuffle=False, empty_check=False)]
            for shard in find_shards(data)}


@pytest.mark.parametrize("shards", [1, 2, 3, 4, 5, 7, 12])
@pytest.mark.parametrize("consumers", [1, 2, 3, 4, 6])
def test_dealing_reads_every_sample_once_per_epoch(shards: int, consumers: int) -> None:
    sizes = {f"s{index}.tar": 3 + index % 4 for index in range(shards)}
    for epoch in range(3):
        read = Counter()
        shards_by_consumer = []
        for consumer in range(consumers):
            assignments = deal_shards(list(sizes), epoch, consumer, consumers, seed=5)
            shards_by_consumer.append({assignment.url for assignment in assignments})
            for assignment in assignments:
                read.update((assignment.url, index) for index in range(sizes[assignment.url])
                            if index % assignment.stride == assignment.offset)
        assert read == Counter({(url, index): 1 for url, size in sizes.items() for index in range(size)})
        if shards >= consumers:  # then no shard is opened by two consumers in one epoch
            assert sum(len(found) for found in shards_by_consumer) == shards
            assert all(found for found in shards_by_consumer)


def test_dealing_is_seeded_and_reshuffles_each_epoch() -> None:
    shards = [f"s{index}.tar" for index in range(16)]
    first = [deal_shards(shards, 0, consumer, 4, seed=1) for consumer in range(4)]
    assert first == [deal_shards(list(reversed(shards)), 0, consumer, 4, seed=1) for consumer in range(4)]
    assert first != [deal_shards(shards, 1, consumer, 4, seed=1) for consumer in range(4)]
    assert first != [deal_shards(shards, 0, consumer, 4, seed=2) for consumer in range(4)]
    with pytest.raises(ValueError, match="consumer 4 out of range for 4 consumers"):
        deal_shards(shards, 0, 4, 4, seed=1)


CHILD = """
import json, sys
import torch
from lama.data.loader import LoaderConfig, TrainLoader
config = LoaderConfig(num_workers=2, **json.loads(sys.argv[2]))
seen = []
per_consumer_epoch = {}
for batch in TrainLoader(sys.argv[1], config):  # rank and world size come from the launcher's environment
    assert batch["image"].shape[1:] == (3, 32, 32) and batch["mask"].shape[1:] == (1, 32, 32)
    for key, epoch, url, consumer in zip(batch["key"], batch["epoch"], batch["url"], batch["consumer"]):
        seen.append([key, epoch, url, consumer])
        per_consumer_epoch[consumer] = max(per_consumer_epoch.get(consumer, 0), epoch)
    if len(per_consumer_epoch) == 2 and min(per_consumer_epoch.values()) >= 3:
        break
print(json.dumps(seen))
"""


def _run_ranks(data: Path, world_size: int = 2) -> list[list]:
    """``world_size`` real processes with 2 workers each, as a launcher starts them (RANK / WORLD_SIZE)."""
    children = []
    for rank in range(world_size):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(world_size), "OMP_NUM_THREADS": "1"}
        # No shuffle buffer here: a sample may linger in one for any number of epochs, so the stream could not
        # be cut at an epoch boundary to compare whole epochs.
        params = json.dumps({**SMALL, "shuffle_buffer": 1})
        children.append(subprocess.Popen([sys.executable, "-c", CHILD, str(data), params], env=env,
                                         stdout=subprocess.PIPE, text=True))
    seen = []
    for child in children:
        output, _ = child.communicate(timeout=300)
        assert child.returncode == 0
        seen += json.loads(output)
    return seen


@pytest.mark.parametrize(("images", "shard_size", "shards"), [(24, 3, 8), (21, 8, 3)])
def test_two_processes_by_two_workers_read_each_sample_once_per_epoch(
        tmp_path: Path, images: int, shard_size: int, shards: int) -> None:
    data = _dataset(tmp_path, images, shard_size)
    keys_by_shard = _keys_by_shard(data)
    assert len(keys_by_shard) == shards  # 8 shards for 4 consumers, then fewer shards (3) than consumers
    seen = _run_ranks(data)
    assert {consumer for _, _, _, consumer in seen} == {0, 1, 2, 3}
    for epoch in (0, 1, 2):
        samples = Counter((url, key) for key, seen_epoch, url, _ in seen if seen_epoch == epoch)
        assert samples == Counter({(url, key): 1 for url, keys in keys_by_shard.items() for key in keys})
        consumers_of_shard = defaultdict(set)
        for _, seen_epoch, url, consumer in seen:
            if seen_epoch == epoch:
                consumers_of_shard[url].add(consumer)
        if shards >= 4:
            assert all(len(consumers) == 1 for consumers in consumers_of_shard.values())


def test_masks_and_windows_do_not_depend_on_the_worker_count(tmp_path: Path) -> None:
    data = _dataset(tmp_path, 12, 3)

    def first_epoch(workers: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        loader = iter(TrainLoader(data, LoaderConfig(num_workers=workers, **SMALL), rank=0, world_size=1))
        found = {}
        while len(found) < 12:
            batch = next(loader)
            for index, (key, epoch) in enumerate(zip(batch["key"], batch["epoch"], strict=True)):
                if epoch == 0:
                    found[key] = (batch["image"][index].numpy(), batch["mask"][index].numpy())
        return found

    serial, parallel = first_epoch(0), first_epoch(2)
    assert serial.keys() == parallel.keys()
    narrow = MaskGenerator.for_size("narrow", 32)  # drawn for the 32² crop
    for key, (image, mask) in serial.items():
        assert np.array_equal(image, parallel[key][0]) and np.array_equal(mask, parallel[key][1])
        assert np.array_equal(mask[0], narrow.sample(f"{key}@0", 32, 32, seed=0))
        assert image.dtype == np.float32 and image.min() >= 0 and image.max() <= 1


def test_batches_are_reproducible_and_augmented_in_the_loader_on_cpu(tmp_path: Path) -> None:
    data = _dataset(tmp_path, 8, 4)
    config = LoaderConfig(num_workers=0, **{**SMALL, "augment": "distortions"})

    def batches() -> list[dict]:
        loader = iter(TrainLoader(data, config, rank=0, world_size=1))
        return [next(loader) for _ in range(3)]

    global_rng = torch.get_rng_state()
    first, second = batches(), batches()
    assert torch.equal(torch.get_rng_state(), global_rng)  # the training process's random stream is left alone
    for one, two in zip(first, second, strict=True):
        assert one["key"] == two["key"] and torch.equal(one["image"], two["image"])
        assert one["image"].shape == (2, 3, 32, 32) and set(one["mask"].unique().tolist()) <= {0.0, 1.0}
    other = iter(TrainLoader(data, LoaderConfig(num_workers=0, **{**SMALL, "seed": 1}), rank=0, world_size=1))
    assert [next(other)["key"] for _ in range(3)] != [batch["key"] for batch in first]


def test_the_window_pads_small_images_by_reflection_like_the_official_pad() -> None:
    import random

    image = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    window = cut_window(image, 9, random.Random(0))
    padded = np.pad(image, ((2, 2), (1, 1), (0, 0)), mode="reflect")  # numpy's reflect is OpenCV's REFLECT_101
    assert np.array_equal(window, padded)


def test_bad_loader_input_fails_with_the_name(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.tar: shard not found"):
        find_shards([tmp_path / "missing.tar"])
    with pytest.raises(ValueError, match="no training shards"):
        find_shards([])
    with pytest.raises(ValueError, match="window_size=16: expected >= crop_size"):
        LoaderConfig(crop_size=32, window_size=16)
    with pytest.raises(ValueError, match="augment_on='gpu': expected one of auto, loader, device"):
        LoaderConfig(augment_on="gpu")
    with pytest.raises(ValueError, match="batch_size=0"):
        LoaderConfig(batch_size=0)
    data = _dataset(tmp_path, 4, 4)
    with pytest.raises(ValueError, match="rank=1, world_size=None: give both or neither"):
        TrainLoader(data, LoaderConfig(**SMALL), rank=1)
    with pytest.raises(ValueError, match=r"rank=2: expected 0 <= rank < world_size \(2\)"):
        TrainLoader(data, LoaderConfig(**SMALL), rank=2, world_size=2)


def test_iterating_again_continues_the_stream(tmp_path: Path) -> None:
    data = _dataset(tmp_path, 8, 4)
    loader = TrainLoader(data, LoaderConfig(num_workers=0, **SMALL), rank=0, world_size=1)
    first = [(batch["key"], batch["epoch"]) for batch, _ in zip(loader, range(4), strict=False)]
    second = [(batch["key"], batch["epoch"]) for batch, _ in zip(loader, range(4), strict=False)]
    assert first != second  # a replay would repeat the first four batches exactly
    assert max(epoch for _, epochs in second for epoch in epochs) >= 1  # 8 samples: the stream moved past epoch 0


@pytest.mark.parametrize("augment_on", ["loader", "device"])
def test_the_augmentation_changes_pixels_where_it_runs(tmp_path: Path, augment_on: str) -> None:
    data = _dataset(tmp_path, 8, 4)

    def first_batch(augment: str) -> dict:
        config = LoaderConfig(num_workers=0, **{**SMALL, "augment": augment, "window_size": 40,
                                                "augment_on": augment_on})
        return next(iter(TrainLoader(data, config, rank=0, world_size=1)))

    plain, augmented = first_batch("no_augs"), first_batch("distortions")
    assert plain["key"] == augmented["key"] and torch.equal(plain["mask"], augmented["mask"])
    assert augmented["image"].shape == plain["image"].shape == (2, 3, 32, 32)
    assert (augmented["image"] - plain["image"]).abs().mean() > 0.01


@pytest.mark.parametrize(("workers", "taken"), [(0, 3), (2, 3), (2, 4)])
def test_a_loader_resumed_from_its_position_continues_the_stream_exactly(
    tmp_path: Path, workers: int, taken: int
) -> None:
    data = _dataset(tmp_path, 8, 4)
    config = LoaderConfig(num_workers=workers, **{**SMALL, "augment": "distortions"})
    whole = list(islice(TrainLoader(data, config, rank=0, world_size=1), 9))
    first = TrainLoader(data, config, rank=0, world_size=1)
    _ = list(islice(first, taken))
    position = json.loads(json.dumps(first.state_dict()))  # it is saved as JSON
    resumed = TrainLoader(data, config, rank=0, world_size=1, position=position)
    rest = list(islice(resumed, 9 - taken))  # zip() would take one batch more
    assert max(epoch for batch in rest for epoch in batch["epoch"]) >= 1  # the continuation crosses an epoch
    for expected, got in zip(whole[taken:], rest, strict=True):
        assert expected["key"] == got["key"] and expected["epoch"] == got["epoch"]
        assert torch.equal(expected["image"], got["image"]) and torch.equal(expected["mask"], got["mask"])


def test_a_position_from_another_split_starts_the_next_epoch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = _dataset(tmp_path, 8, 4)
    first = TrainLoader(data, LoaderConfig(num_workers=0, **SMALL), rank=0, world_size=1)
    _ = list(islice(first, 3))
    assert first.state_dict()["consumers"] == {"0": [0, 6]}
    resumed = TrainLoader(data, LoaderConfig(num_workers=2, **SMALL), rank=0, world_size=1,
                          position=first.state_dict())
    assert "saved for 1 consumers, this run has 2" in caplog.text
    assert set(next(iter(resumed))["epoch"]) == {1}

"""Masks per second of `lama.masks` against a plain reference implementation of the same algorithm.

The reference is the algorithm written the straightforward way, as the official code runs it: a float32 canvas,
numpy's global random state, `np.sin`/`np.cos`/`np.clip` on scalars for every segment. Both sides produce the same
masks from the same seed (checked before timing), so the ratio is about implementation cost only. Ours is timed
twice: `generate` on one shared random state (same work as the reference) and `sample`, the keyed public API,
which also hashes (config, seed, key, size) into a fresh random state per mask. One process, one core.

    python benchmarks/mask_speed.py                 # about 1 minute
    python benchmarks/mask_speed.py --masks 500 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from lama.masks import MaskGenerator

CASES = (("wide", 256), ("thin_512", 512), ("medium_512", 512), ("thick_512", 512))


class ReferenceMixedGenerator:
    """The algorithm with no care for speed; draws from numpy's global random state."""

    def __init__(self, config: dict) -> None:
        self.kinds = [kind for kind in ("irregular", "box") if config.get(f"{kind}_proba", 0) > 0]
        self.kwargs = {kind: config[f"{kind}_kwargs"] for kind in self.kinds}
        probas = np.array([config[f"{kind}_proba"] for kind in self.kinds], dtype="float32")
        self.probas = probas / probas.sum()

    def __call__(self, height: int, width: int) -> np.ndarray:
        kind = self.kinds[np.random.choice(len(self.probas), p=self.probas)]
        canvas = np.zeros((height, width), np.float32)
        (self.strokes if kind == "irregular" else self.boxes)(canvas, **self.kwargs[kind])
        return canvas

    @staticmethod
    def strokes(canvas: np.ndarray, max_angle: int, max_len: int, max_width: int, min_times: int,
                max_times: int) -> None:
        height, width = canvas.shape
        for stroke in range(np.random.randint(min_times, max_times + 2)):
            x, y = np.random.randint(width), np.random.randint(height)
            for _ in range(1 + np.random.randint(5)):
                angle = 0.01 + np.random.randint(max_angle)
                if stroke % 2 == 0:
                    angle = 2 * 3.1415926 - angle
                length = 10 + np.random.randint(max_len)
                thickness = 5 + np.random.randint(max_width)
                end_x = np.clip((x + length * np.sin(angle)).astype(np.int32), 0, width)
                end_y = np.clip((y + length * np.cos(angle)).astype(np.int32), 0, height)
                cv2.line(canvas, (int(x), int(y)), (int(end_x), int(end_y)), 1.0, int(thickness))
                x, y = end_x, end_y

    @staticmethod
    def boxes(canvas: np.ndarray, margin: int, bbox_min_size: int, bbox_max_size: int, min_times: int,
              max_times: int) -> None:
        height, width = canvas.shape
        side_limit = min(bbox_max_size + 1, height - 2 * margin, width - 2 * margin)
        for _ in range(np.random.randint(min_times, max_times + 1)):
            box_w = np.random.randint(bbox_min_size, side_limit)
            box_h = np.random.randint(bbox_min_size, side_limit)
            x = np.random.randint(margin, width - margin - box_w + 1)
            y = np.random.randint(margin, height - margin - box_h + 1)
            canvas[y : y + box_h, x : x + box_w] = 1


def check_same_masks(ours: MaskGenerator, reference: ReferenceMixedGenerator, size: int, count: int = 50) -> None:
    rng = np.random.RandomState(1234)
    np.random.seed(1234)
    for _ in range(count):
        if not np.array_equal(ours.generate(rng, size, size), reference(size, size).astype(np.uint8)):
            raise SystemExit("the reference and lama.masks disagree; the comparison would be meaningless")


def masks_per_second(make_one: Callable[[int], object], count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        make_one(i)
    return count / (time.perf_counter() - start)


def run_case(name: str, size: int, count: int, rounds: int) -> dict:
    ours = MaskGenerator.from_config(name)
    reference = ReferenceMixedGenerator(ours.config)
    check_same_masks(ours, reference, size)
    rng = np.random.RandomState(0)
    np.random.seed(0)
    variants = {
        "reference": lambda i: reference(size, size),
        "generate": lambda i: ours.generate(rng, size, size),
        "sample": lambda i: ours.sample(f"image-{i}", size, size, seed=0),
    }
    rates: dict[str, list[float]] = {variant: [] for variant in variants}
    for _ in range(rounds):  # interleaved, so that load drift hits every variant alike
        for variant, make_one in variants.items():
            rates[variant].append(masks_per_second(make_one, count))
    median = {variant: statistics.median(values) for variant, values in rates.items()}
    return {
        "config": name, "size": size, "masks_per_round": count, "rounds": rounds,
        "masks_per_s": median,
        "ratio_generate": median["generate"] / median["reference"],
        "ratio_sample": median["sample"] / median["reference"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masks", type=int, default=1000, help="masks per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "masks_cpu.json")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    results = []
    print(f"{'config':<12}{'size':>6}{'reference/s':>13}{'generate/s':>12}{'sample/s':>10}{'generate':>10}"
          f"{'sample':>8}")
    for name, size in CASES:
        result = run_case(name, size, args.masks, args.rounds)
        rate = result["masks_per_s"]
        print(f"{name:<12}{size:>6}{rate['reference']:>13.0f}{rate['generate']:>12.0f}{rate['sample']:>10.0f}"
              f"{result['ratio_generate']:>9.2f}x{result['ratio_sample']:>7.2f}x", flush=True)
        results.append(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "cases": results},
                                      indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

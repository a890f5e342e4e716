"""Batches that run out of memory are split and retried; an item that does not fit alone is the only one lost."""

from __future__ import annotations

import pytest
import torch

from lama.models.inference import BatchRunner, is_out_of_memory


def _doubling(limit: int, calls: list[int], too_big: int | None = None):
    def run(batch: list[int]) -> list[int]:
        calls.append(len(batch))
        if len(batch) > limit or too_big in batch:
            raise torch.OutOfMemoryError("simulated")
        return [2 * item for item in batch]
    return run


def test_a_batch_is_halved_until_it_fits_and_later_batches_start_there() -> None:
    runner, calls = BatchRunner(8), []
    assert runner.run(_doubling(3, calls), list(range(11))) == [2 * item for item in range(11)]
    assert calls == [8, 4, 2, 2, 2, 2, 2, 1]
    assert runner.batch_size == 2


def test_an_item_too_big_alone_gives_none_and_the_others_go_on() -> None:
    runner, calls = BatchRunner(4), []
    assert runner.run(_doubling(4, calls, too_big=2), [0, 1, 2, 3, 4]) == [0, 2, None, 6, 8]


def test_a_fixed_batch_size_is_not_lowered_for_later_calls() -> None:
    runner, calls = BatchRunner(4), []
    assert runner.run(_doubling(4, calls, too_big=1), [0, 1], batch_size=1) == [0, None]
    assert runner.batch_size == 4


def test_only_allocation_failures_count() -> None:
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 GB"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        BatchRunner(2).run(lambda batch: (_ for _ in ()).throw(RuntimeError("shape mismatch")), [1, 2])
    with pytest.raises(ValueError, match="batch_size=0"):
        BatchRunner(0)

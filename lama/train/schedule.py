"""The learning-rate schedule: a factor of the base rates, a pure function of the optimiser step.

Torch's schedulers hold a step counter that would have to be checkpointed beside the optimizers (Accelerate also
steps a prepared scheduler once per process per call); a function of the step alone is exact after any resume, and
a resumed run with a longer ``train.steps`` stretches its cosine to the new end.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")


def lr_factor(step: int, total: int, schedule: str = "constant", warmup_steps: int = 0) -> float:
    """The factor for optimiser step ``step`` (0-based) of ``total``: a linear warm-up from 1/warmup_steps to 1,
    then 1 (constant) or a half cosine from 1 down to 0 at ``total`` (cosine)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r}: expected one of {', '.join(SCHEDULES)}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total - warmup_steps))
    return 0.5 * (1.0 + math.cos(math.pi * progress))

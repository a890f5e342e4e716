"""Run by ``accelerate launch`` in the two-process test: train, then record what each rank ended with."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
from accelerate.utils import set_seed

from lama.models.generators import build_generator
from lama.train import load_config
from lama.train.loop import TrainingRun


def digest(module: torch.nn.Module) -> dict[str, str]:
    return {name: hashlib.sha256(p.detach().cpu().numpy().tobytes()).hexdigest()
            for name, p in module.named_parameters()}


if __name__ == "__main__":
    config = load_config(sys.argv[1])
    run = TrainingRun(config)
    result = run.run()
    accelerator = run.accelerator
    set_seed(config.train.seed)
    untrained = build_generator(config.generator)
    record = {
        "rank": accelerator.process_index, "world": accelerator.num_processes, "step": result.step,
        "generator": digest(accelerator.unwrap_model(run.generator).generator),
        "untrained": digest(untrained),
        "discriminator": digest(accelerator.unwrap_model(run.discriminator)),
        "keys": sorted(run.loader.position.consumers),
    }
    path = Path(config.train.out_dir) / f"rank{accelerator.process_index}.json"
    path.write_text(json.dumps(record))

"""A training run seen before it starts: ``lama train --print-config`` and ``lama train --dry-run``.

Both compose the config exactly as a run does (defaults, ``CONFIG.yaml``, ``key=value``, every section's checks),
so a bad key or value fails here with the run's one-line error. The dry run then builds what the run's setup
builds (networks, loss and optimizers, the data, the state it would continue from) and reads one batch, to catch
what would stop the run in its first minute, and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lama.config import ConfigError
from lama.train.config import RunConfig, config_difference, load_config

if TYPE_CHECKING:
    from accelerate import Accelerator


def split_arguments(arguments: Sequence[str]) -> tuple[str | None, list[str]]:
    """``[CONFIG.yaml] key=value ...`` as the config file (None when the first argument is an override) and the
    overrides, as ``lama train`` and ``python -m lama.train`` take them."""
    arguments = list(arguments)
    path = arguments.pop(0) if arguments and "=" not in arguments[0] else None
    return path, arguments


def compose(arguments: Sequence[str]) -> RunConfig:
    """The checked config of ``lama train ARGUMENTS``: the very object the trainer would run."""
    return load_config(*split_arguments(arguments))


@dataclass
class DryRun:
    """What a dry run found; ``str()`` is the summary ``lama train --dry-run`` prints."""

    generator: str
    generator_parameters: int
    discriminator_parameters: int
    train_data: str
    shards: int
    batch: str
    val_data: str
    steps: str
    start: str
    out_dir: Path
    tracking: str

    def __str__(self) -> str:
        rows = {
            "generator": f"{self.generator}, {self.generator_parameters:,} parameters",
            "discriminator": f"{self.discriminator_parameters:,} parameters",
            "train data": f"{self.train_data}: {self.shards} shard(s); first batch {self.batch}",
            "val data": self.val_data,
            "steps": self.steps,
            "start": self.start,
            "would write": f"{self.out_dir} (model dir, state/, train_config.yaml, train_log.jsonl, samples/)",
            "tracking": self.tracking,
        }
        return "\n".join(f"{name:14} {value}" for name, value in rows.items())


def dry_run(config: RunConfig) -> DryRun:
    """Build the run of ``config`` up to its first step without taking it; nothing is written anywhere.

    Fails as the run would (``ConfigError``, ``FileNotFoundError``, ``ValueError``: missing data, pretrained weights
    not fetched, a state that does not fit)."""
    from accelerate.utils import set_seed

    from lama.data.loader import TrainLoader, find_shards
    from lama.eval.metrics import ValidationMetrics
    from lama.models.generators import architecture_of, count_parameters
    from lama.train.loop import make_accelerator, resolve_precision
    from lama.train.step import GanStep
    from lama.train.validation import ValidationSet

    accelerator = make_accelerator()
    dtype = resolve_precision(config.train.mixed_precision, accelerator.device)
    set_seed(config.train.seed)
    step = GanStep.build(config, accelerator, dtype)
    data = config.data
    if data.val is None:
        val = "none (data.val is null: no validation, the last model is the best)"
    else:
        pairs = len(ValidationSet(data.val, limit=data.val_limit))
        # The scoring networks too: pretrained weights that were never fetched stop a run at its setup.
        ValidationMetrics(accelerator.device, weights=config.train.eval_weights, seed=config.train.seed,
                          fid_method=config.train.fid_method)
        limit = f" (data.val_limit={data.val_limit})" if data.val_limit else ""
        val = f"{data.val}: {pairs} image/mask pairs{limit}, scored with {config.train.eval_weights} networks"
    start = _start(config, accelerator)
    shards = find_shards(data.train)
    loader = TrainLoader(shards, data.loader, device=accelerator.device, rank=accelerator.process_index,
                         world_size=accelerator.num_processes)
    batch = next(iter(loader))
    image, mask = batch["image"], batch["mask"]
    shapes = f"image {'x'.join(map(str, image.shape))}, mask {'x'.join(map(str, mask.shape))}, holes " \
        f"{mask.float().mean().item():.0%} of it"
    train = config.train
    images = config.effective_batch * accelerator.num_processes
    accumulated = f", {train.accumulate} micro-batches each" if train.accumulate > 1 else ""
    precision = "bf16" if dtype is not None else "fp32"
    validates = f", validated every {train.val_every}" if data.val is not None else ""
    steps = (f"{train.steps} steps of {images} images{accumulated} ({accelerator.num_processes} process(es), "
             f"{accelerator.device}, {precision}); saved every {train.save_every}{validates} and at the last step")
    tracking = config.tracking
    tracked = (f"MLflow experiment {tracking.experiment!r} at {tracking.uri or '$MLFLOW_TRACKING_URI or the default'}"
               if tracking.enabled else "off")
    generator = accelerator.unwrap_model(step.generator)
    return DryRun(
        generator=f"{architecture_of(config.generator) or 'custom'} ({config.generator['kind']})",
        generator_parameters=count_parameters(generator),
        discriminator_parameters=count_parameters(accelerator.unwrap_model(step.discriminator)),
        train_data=data.train, shards=len(shards), batch=shapes, val_data=val, steps=steps, start=start,
        out_dir=Path(train.out_dir).resolve(), tracking=tracked)


def _start(config: RunConfig, accelerator: Accelerator) -> str:
    """Where the run would start, by ``train.resume``; a state it would continue is loaded (read only), so one that
    does not fit the networks fails here as it would in the run."""
    from lama.safe_yaml import read_yaml
    from lama.train.state import StateStore, TrainProgress

    out_dir = Path(config.train.out_dir)
    setting, latest = config.train.resume, StateStore(out_dir / "state").latest()
    if setting == "same-config":
        saved = out_dir / "train_config.yaml"
        difference = config_difference(read_yaml(saved) or {}, config.to_dict()) if saved.is_file() else None
        if difference is not None:
            return f"step 0: {out_dir} holds a run of another config ({difference}); the run would empty it first"
        setting = "auto"
    fresh = "step 0" if config.train.init is None else f"step 0 from the model dir {config.train.init}"
    if setting == "never":
        if latest is not None:
            raise ConfigError(f"train.resume=never: {out_dir} already holds a state ({latest.name}); the run would "
                              "refuse to start")
        return fresh
    source = latest if setting == "auto" else Path(setting)
    if source is None:
        return f"{fresh} (no state yet)"
    progress = TrainProgress()
    StateStore.load(accelerator, source, progress)
    return f"step {progress.step}, continuing {source}"

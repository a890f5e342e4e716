"""The training run: from a validated config to a model dir in the official layout, resumable at any point.

``out_dir`` holds ``config.yaml`` + ``models/{best,last}.ckpt`` (the official model dir, loadable by
``lama predict`` and official tools), ``state/`` (see ``lama.train.state``), ``train_config.yaml`` (the full run
config), ``train_log.jsonl`` (losses and validation scores per logged step), ``metrics.json`` (the final and best
scores) and ``samples/`` (the sample grids as PNG).

One process per device (``accelerate launch``) or a plain ``python``/``lama train`` for one. Every rank runs the
same loop; all of them agree, once per step, on whether a loss went non-finite or a stop signal arrived, so they
stop together and never hang in a collective that another rank left.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import gather_object, set_seed

from lama.config import ConfigError
from lama.data.loader import TrainLoader
from lama.eval.metrics import ValidationMetrics, labelled_name
from lama.files import atomic_write, write_image
from lama.models.model_dir import CONFIG_NAME, DEFAULT_CHECKPOINT, save_model_dir
from lama.progress import progress_bar
from lama.safe_yaml import read_yaml
from lama.signals import stop_requests
from lama.tracking import TRACKING_REFERENCE, Tracker, publish_model, run_tags
from lama.train.config import MAXIMISED, RunConfig, config_difference
from lama.train.schedule import lr_factor
from lama.train.state import StateStore, TrainProgress
from lama.train.step import GanStep
from lama.train.validation import ValidationSet, sample_grid, validate

log = logging.getLogger(__name__)


# The official maintainers' rule of thumb for fine-tuning big-lama: a total batch under about 20 trains badly.
SMALL_FINETUNING_BATCH = 20


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; the message names the losses and the step."""


# Called after every validation with the step and the scores; True stops the run there (a sweep prunes a trial).
ValidationHook = Callable[[int, dict[str, float]], bool]


@dataclass
class TrainResult:
    status: str  # finished | interrupted | stopped (by the validation hook)
    step: int
    out_dir: Path
    best_value: float | None
    best_step: int | None
    exit_code: int = 0


def resolve_precision(setting: str, device: torch.device) -> torch.dtype | None:
    """bf16 or None (float32). ``auto`` follows ``accelerate launch --mixed_precision`` when given, else bf16 on a
    GPU that has it. fp16 is refused: its FFTs need power-of-two sizes and its loss scaler would update twice per
    GAN step."""
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "")
    if setting == "auto" and launcher in ("no", "bf16"):
        setting = launcher
    if setting == "auto" or launcher == "fp16":
        if launcher == "fp16":
            raise ConfigError("mixed precision fp16 is not supported (FFT sizes, GradScaler); use bf16 or no")
        setting = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "no"
    return torch.bfloat16 if setting == "bf16" else None


def make_accelerator() -> Accelerator:
    """One process per device. Without ``cpu=True`` a multi-process CPU launch runs unsynchronised copies, so CPU
    is explicit; ``broadcast_buffers=False`` lets the BatchNorm discriminator take two forwards before a backward
    (the generator's running statistics are averaged over ranks instead, see ``average_batchnorm_statistics``).
    Mixed precision is applied by ``GanStep``, not by Accelerate, so the D step and R1 stay float32."""
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="no",
                       kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)])


def average_batchnorm_statistics(accelerator: Accelerator, module: torch.nn.Module) -> None:
    """Make the BatchNorm running statistics the mean over ranks (they are used in eval mode only)."""
    if accelerator.num_processes == 1:
        return
    for layer in module.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm) and layer.running_mean is not None:
            for buffer in (layer.running_mean, layer.running_var):
                buffer.copy_(accelerator.reduce(buffer.clone(), "mean"))


def check_replicas(accelerator: Accelerator, module: torch.nn.Module, what: str) -> None:
    """Fail loudly when data-parallel copies drifted apart (an unsynchronised launch would train N models)."""
    if accelerator.num_processes == 1:
        return
    with torch.no_grad():
        vector = torch.cat([p.detach().double().flatten() for p in module.parameters()])
        digest = torch.stack([vector.sum(), (vector * vector).sum(), vector[::97].sum()])
    digests = accelerator.gather(digest[None].to(accelerator.device)).cpu()
    if not torch.equal(digests, digests[:1].expand_as(digests)):
        raise RuntimeError(f"the {what} parameters differ between processes: the launch does not synchronise "
                           "gradients (on CPU it needs Accelerator(cpu=True) or ACCELERATE_USE_CPU=true)")


class LogWindow:
    """The loss terms of the steps since the last log line: their means (each over the steps that had it: the
    per-term output gradients are measured on logged steps only) and, for the gradient norms before clipping, also
    the largest of the window (``*_max``), so that one exploding step shows even in a long window."""

    def __init__(self) -> None:
        self.steps = 0
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self._maxima: dict[str, torch.Tensor] = {}

    def add(self, terms: Mapping[str, torch.Tensor]) -> None:
        self.steps += 1
        for name, value in terms.items():
            self._sums[name] = self._sums.get(name, 0) + value
            self._counts[name] = self._counts.get(name, 0) + 1
            if name.endswith("/grad_norm"):
                self._maxima[name] = torch.maximum(self._maxima[name], value) if name in self._maxima else value

    def values(self) -> dict[str, torch.Tensor]:
        means = {f"train/{name}": total / self._counts[name] for name, total in self._sums.items()}
        return {**means, **{f"train/{name}_max": value for name, value in self._maxima.items()}}


class TrainingRun:
    """The state of one training process; ``run()`` trains until ``train.steps`` or a stop signal."""

    def __init__(self, config: RunConfig, accelerator: Accelerator | None = None,
                 tags: Mapping[str, str] | None = None, on_validation: ValidationHook | None = None) -> None:
        self.config = config
        self.extra_tags = dict(tags or {})
        self.on_validation = on_validation
        self.accelerator = accelerator or make_accelerator()
        self.device = self.accelerator.device
        self.out_dir = Path(config.train.out_dir)
        self.store = StateStore(self.out_dir / "state", keep=config.train.keep_states)
        self.progress = TrainProgress()
        self.autocast_dtype = resolve_precision(config.train.mixed_precision, self.device)
        self._build()

    # -- setup: everything that can fail on a bad config or missing file happens here, before the first step --

    def _build(self) -> None:
        config, accelerator = self.config, self.accelerator
        set_seed(config.train.seed)
        source = self._resume_source()
        self.step_fn = GanStep.build(config, accelerator, self.autocast_dtype, initialise=source is None)
        self.loss, self.generator, self.discriminator = self.step_fn.loss, self.step_fn.generator, \
            self.step_fn.discriminator
        self.val_set = None
        self.metrics = None
        if config.data.val is not None:
            self.val_set = ValidationSet(config.data.val, accelerator.process_index, accelerator.num_processes,
                                         config.data.val_limit)
            self.metrics = ValidationMetrics(self.device, weights=config.train.eval_weights, seed=config.train.seed,
                                             fid_method=config.train.fid_method)
        if source is not None:
            self.store.load(accelerator, source, self.progress)
            log.info("resumed from %s at step %d", source, self.progress.step)
        positions = self.progress.loader_positions
        position = positions[min(accelerator.process_index, len(positions) - 1)] if positions else None
        self.loader = TrainLoader(config.data.train, config.data.loader, device=self.device,
                                  rank=accelerator.process_index, world_size=accelerator.num_processes,
                                  position=position)
        self.labels = {**self.loss.labels, **(self.metrics.labels if self.metrics is not None else {})}

    def _resume_source(self) -> Path | None:
        """The state this run continues from, None for a new run (which starts from ``train.init`` if set)."""
        setting = self.config.train.resume
        if setting == "same-config":
            self._clear_if_config_changed()
            setting = "auto"
        latest = self.store.latest()
        if setting == "never":
            if latest is not None:
                raise ConfigError(f"train.resume=never: {self.out_dir} already holds a state ({latest.name}); "
                                  "use train.resume=auto to continue it or another train.out_dir")
            return None
        return latest if setting == "auto" else Path(setting)

    def _clear_if_config_changed(self) -> None:
        """Empty ``out_dir`` when it holds another config's run, so that only a state of this config is continued.

        Keys that may change across a resume (the length, the logging cadence, tracking) do not count."""
        saved = self.out_dir / "train_config.yaml"
        if self.accelerator.is_main_process and saved.is_file():
            difference = config_difference(read_yaml(saved) or {}, self.config.to_dict())
            if difference is not None:
                log.warning("%s holds a run of another config (%s); starting over", self.out_dir, difference)
                shutil.rmtree(self.out_dir)
        self.accelerator.wait_for_everyone()

    # -- the loop --

    def run(self) -> TrainResult:
        config, accelerator = self.config, self.accelerator
        main = accelerator.is_main_process
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.out_dir / "train_config.yaml",
                         lambda f: f.write(config.to_yaml().encode()))
            self.store.root.mkdir(parents=True, exist_ok=True)
            self.store.prune()
            self._trim_log(self.progress.step)
        self.tracker = self._start_tracking() if main else None
        total, step = config.train.steps, self.progress.step
        bar = progress_bar(total=total, initial=step, desc="train", unit="step", dynamic_ncols=True,
                           disable=not (main and config.train.progress))
        window = LogWindow()
        started, status, exit_code = time.perf_counter(), "finished", 0
        batches = iter(self.loader)
        self._announce_batch()
        try:
            if total == 0 and step == 0:
                self._start_from_init()
            with stop_requests() as received:
                while step < total:
                    batch = self._next_batch(batches)
                    factor = lr_factor(step, total, config.optim.schedule, config.optim.warmup_steps)
                    self.step_fn.scale_learning_rates(factor)
                    logs_next = (step + 1) % config.train.log_every == 0 or step + 1 == total
                    terms, predicted = self.step_fn(batch["image"], batch["mask"], measure=logs_next)
                    step = self.progress.step = step + 1
                    stop = self._agree(terms, step, bool(received))
                    window.add(terms)
                    bar.update(1)
                    if step % config.train.log_every == 0 or step == total or stop:
                        elapsed = time.perf_counter() - started
                        images = window.steps * self.effective_batch
                        speed = {"train/steps_per_s": window.steps / elapsed, "train/images_per_s": images / elapsed,
                                 "train/lr_factor": factor}
                        logged = self._log({**window.values(), **speed}, step)
                        bar.set_postfix({"G": f"{logged['train/gen/total']:.3g}",
                                         "D": f"{logged['train/discr/total']:.3g}"}, refresh=False)
                        window, started = LogWindow(), time.perf_counter()
                    if main and config.train.sample_count and (step % config.train.sample_every == 0 or step == 1):
                        self._sample(batch, predicted, step)
                    validating = self.val_set is not None and (step % config.train.val_every == 0 or step == total)
                    halt, better = self._validate(step) if validating else (False, False)
                    halt = halt and step < total
                    if not halt and (step % config.train.save_every == 0 or step == total or stop):
                        self._save(step, better)
                    elif better and main:
                        self._write_model(["best.ckpt"], step)
                    if halt:
                        status = "stopped"
                        break
                    if stop:
                        status = "interrupted"
                        exit_code = 128 + received.get("signal", signal.SIGTERM)
                        break
        except BaseException as error:
            self._end_tracking("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
            raise
        finally:
            bar.close()
        if status == "finished" and main:
            self._write_metrics(step)
        self._end_tracking("FINISHED" if status == "finished" else "KILLED")
        if status == "finished" and main and config.tracking.enabled and config.tracking.log_model:
            self._publish_model()
        return TrainResult(status, step, self.out_dir, self.progress.best_value, self.progress.best_step, exit_code)

    @property
    def effective_batch(self) -> int:
        """Images per optimiser step over all processes."""
        return self.config.effective_batch * self.accelerator.num_processes

    def _next_batch(self, batches: Any) -> dict:
        """The step's batch: ``train.accumulate`` loader batches, concatenated (the step cuts them again)."""
        parts = [next(batches) for _ in range(self.config.train.accumulate)]
        if len(parts) == 1:
            return parts[0]
        return {key: torch.cat([part[key] for part in parts]) for key in ("image", "mask")}

    def _announce_batch(self) -> None:
        """Say the effective batch; warn when a fine-tuning's is small: the official maintainers name a total
        batch under about 20 as a cause of bad fine-tuning results (BatchNorm statistics)."""
        if not self.accelerator.is_main_process:
            return
        config, processes, effective = self.config, self.accelerator.num_processes, self.effective_batch
        text = (f"effective batch {effective} = data.loader.batch_size {config.data.loader.batch_size} x "
                f"train.accumulate {config.train.accumulate} x {processes} process{'es' if processes > 1 else ''}")
        if config.train.init is not None and effective < SMALL_FINETUNING_BATCH:
            log.warning("%s: below %d, BatchNorm statistics of a fine-tuning get noisy; raise train.accumulate or "
                        "freeze the parts whose statistics should stay (train.freeze)", text, SMALL_FINETUNING_BATCH)
        else:
            log.info(text)

    def _start_from_init(self) -> None:
        """``train.steps=0``: the init model as it is, validated and written as the run's model dir at step 0."""
        better = self._validate(0)[1] if self.val_set is not None else False
        self._save(0, better)

    def _agree(self, terms: dict[str, torch.Tensor], step: int, stop: bool) -> bool:
        """One collective per step: which losses are non-finite on any rank, and whether any rank must stop."""
        names = list(terms)
        flags = torch.stack([~torch.isfinite(terms[name]) for name in names] + [torch.tensor(stop, device=
                            self.device)]).float()
        flags = self.accelerator.reduce(flags, "sum").tolist()
        bad = [name for name, flag in zip(names, flags[:-1], strict=True) if flag]
        if bad:
            latest = self.store.latest()
            raise NonFiniteLossError(
                f"non-finite loss {', '.join(bad)} at step {step}; stopped without saving, the last good state is "
                f"{latest if latest is not None else 'none (no state was saved yet)'}")
        return flags[-1] > 0

    # -- what happens every N steps --

    def _log(self, values: dict[str, torch.Tensor | float], step: int) -> dict[str, float]:
        """Means over ranks (a collective: every rank calls it), written by rank 0 to the log and MLflow."""
        reduced = {}
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                value = self.accelerator.reduce(value.detach().clone(), "mean").item()
            reduced[name] = float(value)
        if self.accelerator.is_main_process:
            self._append_log({"step": step, **reduced})
            if self.tracker is not None:
                self.tracker.log_metrics(reduced, step)
        return reduced

    def _append_log(self, record: dict[str, Any]) -> None:
        with open(self.out_dir / "train_log.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def _trim_log(self, step: int) -> None:
        """Drop log lines after the resumed step: the curve continues from the state, without a replayed stretch."""
        path = self.out_dir / "train_log.jsonl"
        if not path.is_file():
            return
        kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        atomic_write(path, lambda f: f.write("".join(line + "\n" for line in kept).encode()))

    def _sample(self, batch: dict, predicted: torch.Tensor, step: int) -> None:
        grid = sample_grid(batch["image"], batch["mask"], predicted, self.config.train.sample_count)
        path = self.out_dir / "samples" / f"step-{step:09d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, grid)
        if self.tracker is not None:
            self.tracker.log_image(grid, key="samples/train", step=step)

    def _validate(self, step: int) -> tuple[bool, bool]:
        """Score the generator on the val set; returns whether the validation hook asks to stop and whether the
        score is a new best (its checkpoint is written by the caller, with ``last.ckpt`` when that is due too)."""
        model = self.accelerator.unwrap_model(self.generator)
        average_batchnorm_statistics(self.accelerator, model)
        scores = validate(model, self.val_set, self.metrics, self.config.data.val_batch_size, self.device)
        metric = self.config.train.best_metric
        value = scores[metric]
        best = self.progress.best_value
        better = best is None or (value > best if metric in MAXIMISED else value < best)
        stand_ins = self.metrics.stand_in_networks
        named = {f"val/{labelled_name(name, stand_ins)}": v for name, v in scores.items()}
        self._log(named, step)
        better = better and math.isfinite(value)
        if better:
            self.progress.best_value, self.progress.best_step = value, step
            if self.accelerator.is_main_process:
                log.info("step %d: new best %s = %.4f", step, metric, value)
        return self.on_validation is not None and bool(self.on_validation(step, scores)), better

    def _save(self, step: int, best: bool) -> None:
        """The state, then the model dir: ``last.ckpt``, and ``best.ckpt`` when this step is the best (or, without
        a val set, the newest) in the same write."""
        accelerator = self.accelerator
        average_batchnorm_statistics(accelerator, accelerator.unwrap_model(self.generator))
        check_replicas(accelerator, self.generator, "generator")
        check_replicas(accelerator, self.discriminator, "discriminator")
        self.progress.loader_positions = gather_object([self.loader.state_dict()])
        self.store.save(accelerator, step, self.progress)
        if accelerator.is_main_process:
            # without a val set there are no scores to choose by: the newest model is the one to use
            self._write_model(["last.ckpt", "best.ckpt"] if best or self.val_set is None else ["last.ckpt"], step)

    def _write_model(self, checkpoints: list[str], step: int) -> None:
        extra = {"lama": {"run": self.config.to_dict(), "labels": self.labels, "best_metric":
                          self.config.train.best_metric, "best_value": self.progress.best_value}}
        save_model_dir(self.accelerator.unwrap_model(self.generator), self.out_dir, checkpoint=checkpoints,
                       discriminator=self.accelerator.unwrap_model(self.discriminator),
                       discriminator_config=asdict(self.config.discriminator),
                       global_step=step, extra_config=extra)

    def _write_metrics(self, step: int) -> None:
        # Read back from the log, not kept in memory: a resumed run that had nothing left to do still reports.
        path = self.out_dir / "train_log.jsonl"  # absent after train.steps=0 without a val set
        records = [json.loads(line) for line in (path.read_text().splitlines() if path.is_file() else [])
                   if line.strip()]
        last_val = next((r for r in reversed(records) if any(k.startswith("val/") for k in r)), {})
        summary = {"step": step, "effective_batch": self.effective_batch,
                   "best_metric": self.config.train.best_metric,
                   "best_value": self.progress.best_value, "best_step": self.progress.best_step,
                   "labels": self.labels,
                   "val": {k.removeprefix("val/"): v for k, v in last_val.items() if k.startswith("val/")}}
        atomic_write(self.out_dir / "metrics.json", lambda f: f.write(json.dumps(summary, indent=2).encode()))

    # -- MLflow (rank 0 only) --

    def _start_tracking(self) -> Tracker | None:
        tracking = self.config.tracking
        if not tracking.enabled:
            return None
        tracker = Tracker(tracking_uri=tracking.uri, record_root=self.out_dir / "mlflow-offline")
        tags = {**run_tags(tracking.stage), **{f"label.{k}": v for k, v in self.labels.items()},
                "lama.effective_batch": str(self.effective_batch),
                **self.extra_tags}
        run_id = tracker.start(tracking.experiment, tracking.run_name or self.out_dir.name,
                               self.config.to_dict(), tags,
                               resume_run_id=self.progress.tracking_run_id, system_metrics=tracking.system_metrics)
        self.progress.tracking_run_id = run_id
        tracker.log_model_dir_reference(self.out_dir)
        # Where later stages (evaluate) add their numbers, so one MLflow run holds a model's params and final scores.
        reference = {"run_id": run_id, "tracking_uri": tracker.tracking_uri, "experiment": tracking.experiment,
                     "offline": tracker.offline}
        atomic_write(self.out_dir / TRACKING_REFERENCE,
                     lambda f: f.write(json.dumps(reference, indent=2).encode()))
        return tracker

    def _publish_model(self) -> None:
        """The model dir's config and best checkpoint as an artifact of the run and a registered model version: a
        name that stays true when the workspace's model dir is retrained (``lama.tracking.publish_model``)."""
        tracking = self.config.tracking
        files = {CONFIG_NAME: self.out_dir / CONFIG_NAME,
                 f"models/{DEFAULT_CHECKPOINT}": self.out_dir / "models" / DEFAULT_CHECKPOINT}
        if not all(path.is_file() for path in files.values()):
            log.warning("%s has no %s yet: no model logged to MLflow", self.out_dir, DEFAULT_CHECKPOINT)
            return
        experiment = os.environ.get("DVC_EXP_NAME")
        publish_model(self.out_dir, files, tracking.registered_model or f"{tracking.experiment}.{self.out_dir.name}",
                      {"dvc.exp_name": experiment} if experiment else {})

    def _end_tracking(self, status: str) -> None:
        if getattr(self, "tracker", None) is not None:
            self.tracker.end(status)
            self.tracker = None


def train(config: RunConfig, accelerator: Accelerator | None = None, tags: Mapping[str, str] | None = None,
          on_validation: ValidationHook | None = None) -> TrainResult:
    """Train per ``config``; returns when ``train.steps`` are done, a stop signal was handled or ``on_validation``
    returned True. ``tags`` are added to the MLflow run (a sweep names the parent run there)."""
    return TrainingRun(config, accelerator, tags, on_validation).run()

"""A worker's progress through the search: one short line per event on this module's logger, at INFO (WARNING for
failures), which ``lama sweep`` and the sweep stage show.

A line names the stage (round and coordinate) and the trial's place in it, ``trial k/N #number``: N is the number of
settings the stage evaluates (the plan knows no more: later stages depend on this one's outcome, and a round that
does not improve ends the search), k counts the stage's settings taken so far by any worker, read from the storage,
and ``#number`` is the Optuna trial, as in the MLflow run's name. Each worker reports its own trials. The line of a
trial that ended with a value, or was pruned, carries the best value of the search so far; an ended trial's line
the stage's ETA, from the mean duration of the trials that ended. Lines are short and single (they end up in CI
logs): free text such as an error is flattened and cut.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState

from lama.progress import MAX_LINE, format_duration
from lama.sweep.config import SweepConfig, objective_name
from lama.sweep.plan import Plan, Stage, StageId, setting_key
from lama.sweep.storage import DUPLICATE, SearchStorage

log = logging.getLogger(__name__)

PREFIX = "sweep:"
DETAIL_CHARS = 60  # the most of an error's (or a pruning's) text that a line carries
ENDED = (TrialState.COMPLETE, TrialState.PRUNED)  # the trials whose durations make the ETA


def one_line(text: str, limit: int = DETAIL_CHARS) -> str:
    """``text`` on a single line (no CR or LF), cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def mean_seconds(trials: Iterable[FrozenTrial]) -> float | None:
    """The mean duration of the trials that ended with a value or were pruned; None before the first."""
    spans = [(trial.datetime_complete - trial.datetime_start).total_seconds() for trial in trials
             if trial.state in ENDED and trial.datetime_start and trial.datetime_complete
             and not trial.user_attrs.get(DUPLICATE)]
    return sum(spans) / len(spans) if spans else None


def best_trial(trials: Iterable[tuple[StageId, FrozenTrial]], maximize: bool) -> tuple[float, str] | None:
    """The best value of the completed trials and which trial it is ('r1-kappa #2'); None before the first."""
    complete = [(trial.value, f"{stage.label} #{trial.number}") for stage, trial in trials
                if trial.state == TrialState.COMPLETE and not trial.user_attrs.get(DUPLICATE)]
    if not complete:
        return None
    return (max if maximize else min)(complete, key=lambda item: item[0])


@dataclass(frozen=True)
class TrialLine:
    """A trial's place in the plan, as its lines name it."""

    stage: Stage
    number: int  # the Optuna trial number in the stage's study
    key: str
    taken: int  # k: the stage's settings taken by any worker, this one included
    settings: int  # N: the settings the stage evaluates


class Progress:
    """The progress lines of one worker on one search."""

    def __init__(self, storage: SearchStorage, config: SweepConfig, maximize: bool, worker: str) -> None:
        self.storage, self.config, self.maximize, self.worker = storage, config, maximize, worker
        self.began = time.monotonic()
        self.stages: list[StageId] = []  # the plan's stages so far: where the best so far is looked for
        self.reported: StageId | None = None

    def stage_prefix(self, stage: StageId) -> str:
        return f"{PREFIX} round {stage.round}/{self.config.max_rounds} {stage.coordinate}"

    def trial_prefix(self, line: TrialLine) -> str:
        return f"{self.stage_prefix(line.stage.id)}, trial {line.taken}/{line.settings} #{line.number}"

    def elapsed(self) -> str:
        return f" · {format_duration(time.monotonic() - self.began)} elapsed"

    def stage(self, plan: Plan) -> None:
        """Say once which stage the plan has reached, and how many settings it evaluates."""
        self.stages = [stage.id for stage in plan.stages]
        stage = plan.current
        if stage is None or stage.id == self.reported:
            return
        self.reported = stage.id
        say(logging.INFO, f"{self.stage_prefix(stage.id)}: {len(stage.todo)} setting(s) to evaluate around a beam "
                          f"of {len(stage.beam)}")

    def waiting(self, stage: StageId, running: int) -> None:
        say(logging.INFO, f"{self.stage_prefix(stage)}: waiting for {running} running trial(s) of other workers")

    def finished(self, plan: Plan) -> None:
        say(logging.INFO, f"{PREFIX} search ended: {plan.reason}{self.elapsed()}")

    def started(self, stage: Stage, number: int, weights: Mapping[str, float]) -> TrialLine:
        """Say that this worker started a trial; its place is counted from the storage, where it is running."""
        key = setting_key(dict(weights))
        shown = " ".join(f"{name}={weights[name]:g}" for name in self.config.coordinates)
        try:
            tally = self.storage.tally(stage.id)
        except Exception as error:  # the storage's own error is what the search reports
            line = TrialLine(stage, number, key, 0, len(stage.todo))
            say(logging.WARNING, f"{self.trial_prefix(line)} {shown}: started; its place is unknown: {error}")
            return line
        taken_keys = tally.ended.keys() | tally.running | tally.given_up(self.storage.max_retries).keys()
        taken = sum(1 for setting in stage.todo if setting_key(setting) in taken_keys)
        line = TrialLine(stage, number, key, max(taken, 1), len(stage.todo))
        failures = tally.failures.get(key, 0)
        retry = f" (retry {failures}/{self.storage.max_retries})" if failures else ""
        say(logging.INFO, f"{self.trial_prefix(line)} {shown}: started{retry}")
        return line

    def ended(self, line: TrialLine, outcome: str, value: float | None, detail: str) -> None:
        """Say how a trial ended: its value with the best so far, or why it has none; then the stage's ETA (none
        for an interrupted trial: this worker stops). It runs while the outcome is recorded, so it never raises."""
        if outcome == "interrupted":
            say(logging.WARNING, f"{self.trial_prefix(line)} interrupted ({one_line(detail)}); it runs again when "
                                 f"the search resumes{self.elapsed()}")
            return
        try:
            level, what = self._outcome(line, outcome, value, detail)
            eta = self._eta(line)
        except Exception as error:  # the storage's own error is what the search reports
            say(logging.WARNING, f"{self.trial_prefix(line)} {outcome}; its progress line failed: {error}")
            return
        say(level, f"{self.trial_prefix(line)} {what}{self.elapsed()}{eta}")

    def _outcome(self, line: TrialLine, outcome: str, value: float | None, detail: str) -> tuple[int, str]:
        if outcome == "complete":
            return logging.INFO, f"done {objective_name(self.config)}={value:.4g}{self._best()}"
        if outcome == "pruned":
            return logging.INFO, one_line(detail if detail.startswith("pruned") else f"pruned: {detail}") + \
                self._best()
        tally = self.storage.tally(line.stage.id)
        given_up = tally.given_up(self.storage.max_retries).get(line.key)
        if given_up is not None:
            return logging.ERROR, f"failed ({one_line(detail)}); given up after {given_up.failures} failures"
        retry = f"retry {tally.failures.get(line.key, 0)}/{self.storage.max_retries} next"
        return logging.WARNING, f"failed ({one_line(detail)}); {retry}"

    def _best(self) -> str:
        best = best_trial(self.storage.all_trials(self.stages), self.maximize)
        return "" if best is None else f" (best {best[0]:.4g}, {best[1]})"

    def _eta(self, line: TrialLine) -> str:
        """The stage's remaining settings, shared by the workers running its trials, at the mean trial duration."""
        mean = mean_seconds(trial for _, trial in self.storage.all_trials(self.stages))
        if mean is None:
            return ""
        tally = self.storage.tally(line.stage.id)
        done = tally.ended.keys() | tally.given_up(self.storage.max_retries).keys()
        remaining = sum(1 for setting in line.stage.todo if setting_key(setting) not in done)
        if remaining == 0:
            return ", stage done"
        rounds = math.ceil(remaining / len(tally.running_workers | {self.worker}))
        return f", stage ETA {format_duration(rounds * mean)}"


def say(level: int, text: str) -> None:
    """Log one progress line: single, and cut to ``MAX_LINE`` should a part be longer than planned (the longest
    planned line, a failure's with its error cut to ``DETAIL_CHARS``, has about 185 characters)."""
    log.log(level, "%s", one_line(text, MAX_LINE))

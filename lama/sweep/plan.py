"""The coordinate-wise beam search as a pure function of the outcomes recorded so far.

Every worker derives the same plan from the storage: the finished stages fix the beam entering the next one, so
no process holds state that others need and any of them may die. A stage is one coordinate of one round: for each
setting in the beam, a log-spaced grid along that coordinate with the other weights fixed; the ``beam_width`` best
settings of the stage (its grid centres included) enter the next stage. A setting evaluated once is never
evaluated again. The search ends when a full round does not beat the previous round's best, or after
``max_rounds``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lama.sweep.config import COORDINATES

Weights = dict[str, float]


@dataclass(frozen=True)
class SearchSpec:
    coordinates: tuple[str, ...]
    initial: tuple[tuple[str, float], ...]  # the four weights, as items (hashable)
    grid_points: int
    grid_factor: float
    beam_width: int
    max_rounds: int
    min_improvement: float
    maximize: bool

    @property
    def start(self) -> Weights:
        return dict(self.initial)

    def better(self, value: float, than: float | None, margin: float = 0.0) -> bool:
        if than is None:
            return True
        return value > than + margin if self.maximize else value < than - margin


@dataclass(frozen=True)
class StageId:
    round: int  # from 1
    coordinate: str

    @property
    def label(self) -> str:
        return f"r{self.round}-{self.coordinate}"


@dataclass
class Stage:
    """One coordinate of one round: the beam entering it and the settings it must evaluate."""

    id: StageId
    beam: list[Weights]
    candidates: list[Weights]  # every grid point of every beam member, the centres included
    todo: list[Weights]  # the candidates never evaluated before
    values: dict[str, float | None] = field(default_factory=dict)  # key -> value (None: pruned or given up)
    beam_after: list[tuple[Weights, float]] = field(default_factory=list)


@dataclass
class Plan:
    stages: list[Stage]  # finished ones, then the open one if any
    finished: bool
    reason: str
    best: tuple[Weights, float] | None
    round_best: list[float | None]  # index 0: the starting setting's value

    @property
    def current(self) -> Stage | None:
        return None if self.finished else self.stages[-1]


def setting_key(weights: Weights) -> str:
    """A setting's identity: the four weights to 10 significant digits."""
    return ",".join(f"{name}={weights[name]:.10g}" for name in COORDINATES)


def grid_values(center: float, points: int, factor: float) -> list[float]:
    """``points`` log-spaced values from center/factor to center·factor; the centre exact, the others rounded to 4
    significant digits so that grids of later rounds land on the same values."""
    half = points // 2
    return [center if i == 0 else float(f"{center * factor ** (i / half):.4g}") for i in range(-half, half + 1)]


def stage_candidates(beam: list[Weights], coordinate: str, spec: SearchSpec) -> list[Weights]:
    seen: dict[str, Weights] = {}
    for member in beam:
        for value in grid_values(member[coordinate], spec.grid_points, spec.grid_factor):
            setting = {**member, coordinate: value}
            seen.setdefault(setting_key(setting), setting)
    return list(seen.values())


# key -> value (a float), None (ended without one: pruned, given up), or missing (not finished yet)
Outcomes = dict[str, float | None]


def make_plan(spec: SearchSpec, outcomes_of: Callable[[StageId], Outcomes]) -> Plan:
    """Walk the stages from the start, reading each one's outcomes, up to the first open stage or the end."""
    known: dict[str, float | None] = {}
    beam: list[Weights] = [spec.start]
    stages: list[Stage] = []
    round_best: list[float | None] = []
    for round_number in range(1, spec.max_rounds + 1):
        for coordinate in spec.coordinates:
            stage_id = StageId(round_number, coordinate)
            candidates = stage_candidates(beam, coordinate, spec)
            todo = [c for c in candidates if setting_key(c) not in known]
            stage = Stage(stage_id, beam, candidates, todo)
            stages.append(stage)
            outcomes = outcomes_of(stage_id) if todo else {}
            if any(setting_key(c) not in outcomes for c in todo):
                return Plan(stages, False, f"stage {stage_id.label} is open", _best(beam, known), round_best)
            known.update({setting_key(c): outcomes[setting_key(c)] for c in todo})
            if not round_best:  # the starting setting is the centre of the very first stage
                round_best.append(known.get(setting_key(spec.start)))
            stage.values = {setting_key(c): known[setting_key(c)] for c in candidates}
            ranked = _rank(candidates, known, spec)
            stage.beam_after = ranked[: spec.beam_width]
            if ranked:
                beam = [weights for weights, _ in stage.beam_after]
        best = _best(beam, known)
        value = best[1] if best else None
        previous = round_best[-1]
        round_best.append(value)
        if value is None or not spec.better(value, previous, spec.min_improvement):
            return Plan(stages, True, f"round {round_number} brought no improvement", best, round_best)
    return Plan(stages, True, f"max_rounds={spec.max_rounds} reached", _best(beam, known), round_best)


def _rank(candidates: list[Weights], known: dict[str, float | None], spec: SearchSpec) -> list[tuple[Weights, float]]:
    """Settings with a value, best first; ties keep the grid order, so every worker ranks alike."""
    scored = [(c, known[setting_key(c)]) for c in candidates if known.get(setting_key(c)) is not None]
    return sorted(scored, key=lambda item: -item[1] if spec.maximize else item[1])


def _best(beam: list[Weights], known: dict[str, float | None]) -> tuple[Weights, float] | None:
    for weights in beam:  # the beam is ranked best first
        value = known.get(setting_key(weights))
        if value is not None:
            return weights, value
    return None

"""The coordinate-wise beam search on objectives with a known optimum, apart from Optuna and training noise."""

from __future__ import annotations

import itertools
import math

import pytest

from lama.sweep.config import COORDINATES, PAPER_WEIGHTS
from lama.sweep.plan import SearchSpec, grid_values, make_plan, setting_key


def spec(start: dict, coordinates=COORDINATES, points=3, factor=10.0, beam=1, rounds=5, margin=0.0,
         maximize=False) -> SearchSpec:
    full = {name: 1.0 for name in COORDINATES} | start
    return SearchSpec(tuple(coordinates), tuple((n, full[n]) for n in COORDINATES), points, factor, beam, rounds,
                      margin, maximize)


def search(spec: SearchSpec, objective) -> tuple:
    """Run the plan to its end, evaluating every open stage's settings at once; returns (plan, evaluated keys)."""
    recorded: dict = {}
    evaluated: list[str] = []
    while True:
        plan = make_plan(spec, lambda stage: recorded.get(stage, {}))
        if plan.finished:
            return plan, evaluated
        stage = plan.current
        for weights in stage.todo:
            evaluated.append(setting_key(weights))
            recorded.setdefault(stage.id, {})[setting_key(weights)] = objective(weights)


def log_distance(optimum: dict):
    return lambda w: sum((math.log10(w[n]) - math.log10(optimum[n])) ** 2 for n in COORDINATES)


def test_grid_is_log_spaced_around_an_exact_centre():
    assert grid_values(30.0, 5, 10.0) == [3.0, 9.487, 30.0, 94.87, 300.0]
    assert grid_values(0.001, 3, 10.0) == [0.0001, 0.001, 0.01]
    values = grid_values(1 / 3, 5, 100.0)
    assert values[2] == 1 / 3  # the centre is the incumbent itself, not a rounded copy
    ratios = [b / a for a, b in itertools.pairwise(values)]
    assert ratios == pytest.approx([10.0] * 4, rel=1e-3)


def test_finds_the_papers_weights_from_a_decade_away_and_stops_after_a_round_without_gain():
    start = {"kappa": 1.0, "alpha": 3.0, "beta": 10.0, "gamma": 0.1}  # gamma two decades off
    plan, evaluated = search(spec(start), log_distance(PAPER_WEIGHTS))
    weights, value = plan.best
    assert weights == PAPER_WEIGHTS and value == 0.0
    # Round 1 moves every weight one grid step (gamma 0.1 -> 0.01), round 2 brings gamma to 0.001, round 3 finds
    # nothing better and ends the search.
    assert plan.reason == "round 3 brought no improvement"
    assert plan.round_best == pytest.approx([7.0, 1.0, 0.0, 0.0])  # 1 + 1 + 1 + 2²
    assert len(evaluated) == len(set(evaluated))  # no setting is trained twice
    # Round 1: 3 settings for kappa (its centre is the start), 2 new ones per other coordinate; later stages 2 each
    # minus the settings already known.
    assert len(evaluated) == 3 + 2 * 3 + 2 * 4 + 2 * 4 - 2


def test_order_of_coordinates_is_the_configured_one():
    plan, _ = search(spec({}, coordinates=("gamma", "kappa"), rounds=1), log_distance(PAPER_WEIGHTS))
    assert [stage.id.label for stage in plan.stages] == ["r1-gamma", "r1-kappa"]
    assert plan.reason == "max_rounds=1 reached"
    assert plan.best[0]["gamma"] == 0.1 and plan.best[0]["kappa"] == 10.0


# A non-separable objective on the log10 lattice of (kappa, alpha): greedy search along kappa goes to kappa=10
# (value 3), whose alpha line holds at best 2.5; the runner-up kappa=0.1 (value 4) leads to the optimum 0 at
# alpha=10. Only a beam that keeps the runner-up finds it.
LATTICE = {(0, 0): 5.0, (1, 0): 3.0, (-1, 0): 4.0, (1, 1): 2.5, (1, -1): 6.0, (-1, 1): 0.0, (-1, -1): 7.0}


def lattice(weights: dict) -> float:
    point = (round(math.log10(weights["kappa"])), round(math.log10(weights["alpha"])))
    return LATTICE.get(point, 9.0)


@pytest.mark.parametrize(("beam", "best"), [(1, 2.5), (2, 0.0)])
def test_a_wider_beam_escapes_what_greedy_search_gets_stuck_in(beam, best):
    plan, evaluated = search(spec({}, coordinates=("kappa", "alpha"), beam=beam), lattice)
    assert plan.best[1] == best
    assert len(evaluated) == len(set(evaluated))
    if beam == 2:
        assert plan.best[0]["kappa"] == pytest.approx(0.1) and plan.best[0]["alpha"] == 10.0
        first = plan.stages[0]
        assert [value for _, value in first.beam_after] == [3.0, 4.0]  # kept the runner-up


def test_pruned_settings_never_enter_the_beam_and_min_improvement_ends_early():
    def pruned_when_kappa_is_large(weights):
        return None if weights["kappa"] > 5 else log_distance(PAPER_WEIGHTS)(weights)

    plan, _ = search(spec({}, coordinates=("kappa",)), pruned_when_kappa_is_large)
    assert plan.best[0]["kappa"] == 1.0  # 10 was the better setting, but it has no value
    assert plan.stages[0].values[setting_key({**plan.best[0], "kappa": 10.0})] is None

    def slow_gain(weights):
        return -math.log10(weights["kappa"])  # every step up gains 1; a margin of 1 ends the search at round 1

    plan, _ = search(spec({}, coordinates=("kappa",), margin=1.0), slow_gain)
    assert plan.reason == "round 1 brought no improvement" and plan.best[0]["kappa"] == 10.0

"""What a finished search leaves: ``best.json``, a Markdown summary, the trajectory plot, and the best weights as
a ``loss`` config option (``configs/loss/swept.yaml``) that the train stage composes with ``-S loss=swept``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from optuna.trial import FrozenTrial, TrialState

from lama.files import atomic_write
from lama.sweep.config import COORDINATES, objective_name
from lama.sweep.plan import Plan, Stage, StageId, setting_key
from lama.sweep.search import Search
from lama.sweep.storage import DUPLICATE, ERROR, KEY, TRANSIENT, WORKER, GivenUp

FORMAT = "lama-sweep/1"


def trial_state(trial: FrozenTrial) -> str:
    """complete, pruned, fail, or interrupted (stopped by its environment: it did not count against its setting)."""
    return "interrupted" if trial.user_attrs.get(TRANSIENT) else trial.state.name.lower()


def summarize(search: Search, plan: Plan) -> dict[str, Any]:
    """The search as data: the best setting, each round's best, each stage's beam and the settings it gave up
    (with their last error), every trial in the order the trials ended."""
    trials = []
    for stage_id, trial in search.storage.all_trials([stage.id for stage in plan.stages]):
        if trial.user_attrs.get(DUPLICATE) or trial.state == TrialState.RUNNING:
            continue
        trials.append({
            "stage": stage_id.label, "number": trial.number, "setting": trial.user_attrs.get(KEY),
            "weights": {name: trial.params[name] for name in COORDINATES}, "state": trial_state(trial),
            "value": trial.value, "error": trial.user_attrs.get(ERROR), "worker": trial.user_attrs.get(WORKER),
            "completed": trial.datetime_complete.isoformat() if trial.datetime_complete else None,
            "seconds": (trial.datetime_complete - trial.datetime_start).total_seconds()
            if trial.datetime_complete and trial.datetime_start else None})
    trials.sort(key=lambda t: (t["completed"] or "", t["stage"], t["number"]))
    best = plan.best
    config = search.config
    given_up = {stage.id: search.storage.given_up(stage.id) for stage in plan.stages}
    return {
        "format": FORMAT, "search": search.name, "finished": plan.finished, "reason": plan.reason,
        "objective": objective_name(config),
        "direction": "maximize" if search.spec.maximize else "minimize",
        "initial": search.spec.start,
        "base_loss": search.base.get("loss", {}),  # the whole loss section the trials start from
        "best": None if best is None else {"weights": best[0], "value": best[1], "setting": setting_key(best[0])},
        "round_best": plan.round_best,
        "stages": [stage_summary(stage, given_up) for stage in plan.stages],
        "trials": trials,
        "settings": {"coordinates": config.coordinates, "grid_points": config.grid_points,
                     "grid_factor": config.grid_factor, "beam_width": config.beam_width,
                     "max_rounds": config.max_rounds, "steps": config.steps, "pruner": config.pruner},
    }


def stage_summary(stage: Stage, given_up: dict[StageId, dict[str, GivenUp]]) -> dict[str, Any]:
    """A stage's beam, the settings it evaluated with their values, and the ones it gave up with their last error:
    a setting given up has no value, and is not listed among the evaluated ones (nor in later stages' values)."""
    anywhere = {key for stage_given_up in given_up.values() for key in stage_given_up}
    own = given_up.get(stage.id, {})
    return {"stage": stage.id.label, "beam": [setting_key(w) for w in stage.beam],
            "evaluated": [setting_key(w) for w in stage.todo if setting_key(w) not in own],
            "values": {key: value for key, value in stage.values.items() if key not in anywhere},
            "given_up": [{"setting": key, "failures": own[key].failures, "error": own[key].error}
                         for key in (setting_key(w) for w in stage.todo) if key in own],
            "beam_after": [{"setting": setting_key(w), "value": v} for w, v in stage.beam_after]}


def trajectory(summary: dict[str, Any]) -> list[tuple[float, float]]:
    """(objective, best so far) for each completed trial in order of completion."""
    maximize = summary["direction"] == "maximize"
    points, best = [], None
    for trial in summary["trials"]:
        if trial["state"] != "complete":
            continue
        value = trial["value"]
        best = value if best is None else (max(best, value) if maximize else min(best, value))
        points.append((value, best))
    return points


def write_results(summary: dict[str, Any], out_dir: str | Path, loss_config: str | Path | None) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "best.json", out_dir / "sweep.md", out_dir / "trajectory.png"]
    atomic_write(written[0], lambda f: f.write((json.dumps(summary, indent=2) + "\n").encode()))
    atomic_write(written[1], lambda f: f.write(render_markdown(summary).encode()))
    plot_trajectory(summary, written[2])
    if loss_config is not None and summary["best"] is not None:
        path = Path(loss_config)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: f.write(render_loss_config(summary).encode()))
        written.append(path)
    return written


def render_loss_config(summary: dict[str, Any]) -> str:
    """The searched run's whole loss section with the best weights: every key is written, so the option means
    the same whichever loss option the run started from (the paper's, or the sample profile's offline one)."""
    best = summary["best"]
    lines = [f"# The loss weights found by `lama sweep` (search {summary['search']}: {summary['objective']} = "
             f"{best['value']:.6g}, {summary['reason']}).",
             "# Train with them: `dvc exp run -S loss=swept`, or `lama params loss=swept` then `dvc repro`.",
             "defaults:", "  - lama", "  - _self_", ""]
    lines += [f"{name}: {best['weights'][name]!r}" for name in COORDINATES]
    others = {key: value for key, value in (summary.get("base_loss") or {}).items() if key not in COORDINATES}
    if others:
        lines.append(yaml.safe_dump(others, sort_keys=False).rstrip())
    return "\n".join(lines) + "\n"


def render_markdown(summary: dict[str, Any]) -> str:
    best = summary["best"]
    settings = summary["settings"]
    lines = [f"# Loss-weight search `{summary['search']}`", "",
             f"Coordinate-wise beam search over {', '.join(settings['coordinates'])} ({settings['grid_points']} "
             f"points per coordinate, factor {settings['grid_factor']:g}, beam {settings['beam_width']}); objective: "
             f"{summary['objective']} ({summary['direction']}), {summary['reason']}.", ""]
    lines += ["| | " + " | ".join(f"{name}" for name in COORDINATES) + " | objective |",
              "|---|" + "---:|" * (len(COORDINATES) + 1)]
    first = summary["round_best"][0] if summary["round_best"] else None
    rows = [("start", summary["initial"], first)]
    if best is not None:
        rows.append(("**best**", best["weights"], best["value"]))
    rows.append(("paper", {"kappa": 10, "alpha": 30, "beta": 100, "gamma": 0.001}, None))
    for label, weights, value in rows:
        cells = " | ".join(f"{weights[name]:g}" for name in COORDINATES)
        lines.append(f"| {label} | {cells} | {'' if value is None else f'{value:.6g}'} |")
    lines += ["", "![search trajectory](trajectory.png)", "",
              "| stage | evaluated | pruned | given up | beam after |", "|---|---:|---:|---:|---|"]
    for stage in summary["stages"]:
        pruned = sum(1 for key in stage["evaluated"] if stage["values"].get(key) is None)
        beam = "; ".join(f"{b['setting']} ({b['value']:.4g})" for b in stage["beam_after"])
        lines.append(f"| {stage['stage']} | {len(stage['evaluated'])} | {pruned} | {len(stage['given_up'])} | "
                     f"{beam} |")
    abandoned = [(stage["stage"], item) for stage in summary["stages"] for item in stage["given_up"]]
    if abandoned:
        lines += ["", "Settings given up (they failed more than max_retries times; the search went on without them):",
                  ""]
        lines += [f"- {label} `{item['setting']}`: {item['failures']} failures, the last: {item['error']}"
                  for label, item in abandoned]
    counts = {}
    for trial in summary["trials"]:
        counts[trial["state"]] = counts.get(trial["state"], 0) + 1
    lines += ["", "Trials: " + ", ".join(f"{count} {state}" for state, count in sorted(counts.items())) + "."]
    return "\n".join(lines) + "\n"


def plot_trajectory(summary: dict[str, Any], path: Path) -> None:
    """Objective of every completed trial with the running best; the incumbent's weights per stage below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), constrained_layout=True)
    points = trajectory(summary)
    stages = [trial["stage"] for trial in summary["trials"] if trial["state"] == "complete"]
    for label in dict.fromkeys(stages):
        xs = [i for i, stage in enumerate(stages) if stage == label]
        top.scatter(xs, [points[i][0] for i in xs], s=18, label=label)
    top.plot(range(len(points)), [best for _, best in points], color="black", linewidth=1.5, label="best so far")
    top.set_xlabel("completed trial")
    top.set_ylabel(f"{summary['objective']} ({summary['direction']})")
    top.set_title(f"search {summary['search']}")
    top.legend(fontsize=7, ncol=4)
    labels = ["start"] + [stage["stage"] for stage in summary["stages"] if stage["beam_after"]]
    incumbents = [summary["initial"]] + [weights_of(stage["beam_after"][0]["setting"])
                                         for stage in summary["stages"] if stage["beam_after"]]
    for name in COORDINATES:
        bottom.plot(range(len(labels)), [weights[name] for weights in incumbents], marker="o", label=name)
    bottom.set_yscale("log")
    bottom.set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
    bottom.set_ylabel("best weights")
    bottom.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def weights_of(setting: str) -> dict[str, float]:
    """The weights a setting key names (the inverse of ``setting_key``)."""
    return {name: float(value) for name, value in (item.split("=") for item in setting.split(","))}


def finish(search: Search, plan: Plan, out_dir: str | Path | None, loss_config: str | Path | None) -> dict[str, Any]:
    """Write the results and close the MLflow parent run with the best weights and the trajectory."""
    summary = summarize(search, plan)
    if out_dir is not None:
        write_results(summary, out_dir, loss_config)
    parent = search.storage.parent_run() if search.tracking is not None else None
    if parent is not None:
        best = summary["best"]
        params = {f"best.{name}": value for name, value in best["weights"].items()} if best else {}
        given_up = sum(len(stage["given_up"]) for stage in summary["stages"])
        tags = {"sweep.reason": plan.reason, "sweep.given_up": str(given_up),
                **({"sweep.best_setting": best["setting"]} if best else {})}
        search.tracking.finish_parent(parent, params, trajectory(summary), tags,
                                      None if out_dir is None else str(out_dir))
    return summary

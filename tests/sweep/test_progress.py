"""The sweep's progress lines: each stage, each trial's place in it (k/N from the storage), how the trial ended,
the best value so far and the stage's ETA; failures, retries, pruning and interruptions say so; every line short
and single."""

from __future__ import annotations

import logging
import re

import pytest
from optuna.trial import TrialState

from lama.progress import MAX_LINE
from lama.sweep.objective import TrialInterruptedError, closed_form
from lama.sweep.progress import DETAIL_CHARS, one_line, say
from lama.sweep.search import start_search, work
from tests.sweep.conftest import ended_trials, quick_base, quick_config, storage_url

LOGGER = "lama.sweep.progress"
TRIAL = re.compile(r"^sweep: round (\d+)/\d+ (\w+), trial (\d+)/(\d+) #(\d+) (.*)$")
DONE = re.compile(r"^done closed-form=(\S+) \(best (\S+), (r\d+-\w+ #\d+)\) · .* elapsed, stage (ETA .+|done)$")


def progress_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == LOGGER]


def trial_events(records: list[logging.LogRecord]) -> list[tuple[str, int, int, int, str]]:
    """(stage label, k, N, trial number, the rest) of every trial line, in order."""
    events = []
    for record in records:
        match = TRIAL.match(record.getMessage())
        if match:
            round_number, coordinate, taken, settings, number, rest = match.groups()
            events.append((f"r{round_number}-{coordinate}", int(taken), int(settings), int(number), rest))
    return events


def assert_short_single_lines(records: list[logging.LogRecord]) -> None:
    for record in records:
        text = record.getMessage()
        assert len(text) <= MAX_LINE < 200 and "\r" not in text and "\n" not in text, text


def test_a_small_sweep_counts_its_trials_per_stage_with_the_best_so_far_and_an_eta(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="lama.sweep")
    search = start_search(quick_config(tmp_path), quick_base(tmp_path), "lama", storage_url(tmp_path))
    plan = work(search, worker="w1")
    records = progress_lines(caplog)
    assert_short_single_lines(records)
    events = trial_events(records)

    settings = {stage.id.label: len(stage.todo) for stage in plan.stages if stage.todo}
    started = [(label, k, n) for label, k, n, _, rest in events if rest.endswith(": started")]
    assert started == [(label, k, n) for label, n in settings.items() for k in range(1, n + 1)]
    stage_lines = [r.getMessage() for r in records if "setting(s) to evaluate" in r.getMessage()]
    assert len(stage_lines) == len(settings)

    done = [(label, number, DONE.match(rest)) for label, _, _, number, rest in events if rest.startswith("done")]
    assert len(done) == sum(settings.values()) and all(match for _, _, match in done)
    values: dict[str, float] = {}
    for label, number, match in done:  # the best so far is the best of the trials that ended before, this one in
        values[f"{label} #{number}"] = float(match.group(1))
        best = min(values.values())
        assert float(match.group(2)) == pytest.approx(best, abs=1e-4)
        assert values[match.group(3)] == best
    by_trial = {f"{t.user_attrs['lama.stage']} #{t.number}": t.value for t in ended_trials(search)}
    assert values == pytest.approx(by_trial, abs=1e-3)  # the lines' values are the stored ones (to 4 digits)
    assert min(by_trial.values()) == plan.best[1]

    messages = [record.getMessage() for record in records]
    first_done = next(i for i, text in enumerate(messages) if " done " in text)
    assert not any("ETA" in text for text in messages[:first_done])
    for label in settings:
        ends = [match.group(4) for stage, _, match in done if stage == label]
        assert ends[-1] == "done" and all(end.startswith("ETA ") for end in ends[:-1]), (label, ends)
    assert messages[-1].startswith(f"sweep: search ended: {plan.reason} · ")


def test_failures_retries_and_pruning_show_as_such_in_short_lines(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="lama.sweep")
    config = quick_config(tmp_path, max_retries=1, pruner="median", pruner_startup_trials=1, steps=6)
    objective = closed_form(config)
    doomed = "kappa=0.1,alpha=30,beta=100,gamma=0.01"

    def diverging_at_doomed(context):
        if context.key == doomed:  # a multi-line message, longer than any line may be
            raise RuntimeError("the generator\r\ndiverged " + "at every step " * 20)
        return objective(context)

    search = start_search(config, quick_base(tmp_path), "lama", storage_url(tmp_path))
    work(search, diverging_at_doomed, worker="w1")
    records = progress_lines(caplog)
    assert_short_single_lines(records)
    first = [rest for label, k, _, _, rest in trial_events(records) if label == "r1-kappa" and k == 1]
    assert len(first) == 4 and first[0] == "kappa=0.1 gamma=0.01: started"
    assert first[2] == "kappa=0.1 gamma=0.01: started (retry 1/1)"
    failed = [r for r in records if " failed (RuntimeError: the generator diverged at every step" in r.getMessage()]
    assert [r.levelno for r in failed] == [logging.WARNING, logging.ERROR]
    assert "; retry 1/1 next" in failed[0].getMessage()
    assert "; given up after 2 failures" in failed[1].getMessage()

    pruned = [t for t in ended_trials(search) if t.state == TrialState.PRUNED]
    pruned_lines = [rest for *_, rest in trial_events(records) if rest.startswith("pruned")]
    assert pruned and len(pruned_lines) == len(pruned)
    assert all(re.match(r"pruned at step \d+ \(best \S+, r\d+-\w+ #\d+\) · ", rest) for rest in pruned_lines)


def test_an_interrupted_trial_says_so_and_that_it_runs_again(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="lama.sweep")
    config = quick_config(tmp_path)
    objective = closed_form(config)
    calls: list[str] = []

    def interrupted_in_the_second(context):
        calls.append(context.key)
        if len(calls) == 2:
            raise TrialInterruptedError(143)
        return objective(context)

    search = start_search(config, quick_base(tmp_path), "lama", storage_url(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        work(search, interrupted_in_the_second, worker="w1")
    records = progress_lines(caplog)
    assert_short_single_lines(records)
    last = records[-1]
    assert last.levelno == logging.WARNING
    assert re.match(r"sweep: round 1/3 kappa, trial 2/3 #1 interrupted \(TrialInterruptedError: interrupted by "
                    r"SIGTERM\); it runs again when the search resumes · \d+ s elapsed$", last.getMessage())


def test_free_text_fits_a_log_line(caplog):
    assert one_line("a\r\nb\t c") == "a b c"
    cut = one_line("x" * 500)
    assert len(cut) == DETAIL_CHARS and cut.endswith("…")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        say(logging.INFO, "sweep: " + "a very long line\r\n" * 40)
    assert_short_single_lines(progress_lines(caplog))

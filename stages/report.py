"""Stage report: the paper's tables, Fig. 6, the scores by hole area and sample grids from every evaluation under
results/ and, with ``report.experiments``, of every saved DVC experiment of this commit, headed by the before / after
table of ``report.before_after``; the headline scores, DVC's metrics; and the report's files attached to each run's
MLflow training run."""

from lama.pipeline.experiments import experiment_evaluations
from lama.pipeline.layout import REPORTS, RESULTS, SUMMARY_METRICS, model_dir
from lama.pipeline.stage import run_stage, write_json
from lama.pipeline.summary import headline_scores
from lama.report import build_report
from lama.report.samples import SAMPLES_DIR
from lama.tracking import attach_report


def main(params) -> None:
    experiments = experiment_evaluations() if params.report.experiments else []
    summary = build_report([RESULTS], REPORTS, table_size=params.report.table_size, samples=params.report.samples,
                           progress=True, experiments=experiments, before_after=params.report.before_after)
    print(f"report: {summary}")
    write_json(SUMMARY_METRICS, headline_scores(params))
    if params.tracking.enabled:
        files = {path.relative_to(REPORTS).as_posix(): path for path in (
            summary.markdown, *sorted(REPORTS.glob("*.png")), *sorted((REPORTS / SAMPLES_DIR).glob("*.png")))}
        for run in params.run_names:
            attach_report(model_dir(run), files)


run_stage("report", main)

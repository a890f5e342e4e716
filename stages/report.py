"""Stage report: the paper's tables, Fig. 6 and sample grids from every evaluation under results/."""

from layout import REPORTS, RESULTS, run_stage

from lama.eval.report import build_report


def main(params, raw) -> None:
    print(build_report([RESULTS], REPORTS, table_size=params.report.table_size, samples=params.report.samples,
                       progress=True))


run_stage("report", main)

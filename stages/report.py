"""Stage report: the paper's tables, Fig. 6 and sample grids from every evaluation under results/."""

from lama.pipeline.layout import REPORTS, RESULTS
from lama.pipeline.stage import run_stage
from lama.report import build_report


def main(params) -> None:
    print(build_report([RESULTS], REPORTS, table_size=params.report.table_size, samples=params.report.samples,
                       progress=True))


run_stage("report", main)

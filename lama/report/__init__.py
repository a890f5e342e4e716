"""Rebuild the paper's tables (1, 2, 4, the mask_interp follow-up) and Fig. 6 from ``lama evaluate`` results, after
the sanity anchors (``lama.report.anchors``): every model against the classical baselines by hole SSIM and PSNR; on
request, a before / after table of two runs heads them (``lama.report.before_after``: did fine-tuning help?).

Input: evaluation JSON files (format ``lama-eval/1``, the schema ``lama.eval.schema``, one per model × eval mask set,
read by ``lama.report.evaluations``). Output, in ``out_dir``: ``tables.md`` (the tables with the paper's numbers
beside ours), ``report.json`` (every cell, machine-readable), ``fig6_resolution.png`` and ``samples/<mask set>.png``
(masked input | mask | every model of that set side by side | ground truth).

The parts, each on the ones before it: ``paper`` (the paper's numbers), ``evaluations`` (the files as records),
``figures`` (drawing), ``anchors``, ``before_after``, ``tables`` (which tables, rows and models; cells and relative
changes), ``samples`` (the sample grids), ``markdown`` (rendering) and ``build`` (``build_report``). The report sits
above ``lama.eval``: it imports from there, never the other way round.
"""

from lama.report.build import ReportSummary, build_report

__all__ = ["ReportSummary", "build_report"]

"""Reports from a results directory: leaderboard with intervals, paired tests and seeds needed, sources
of variance, budget curves, workloads (IQM, performance profiles), provenance, marginals, time to
target, diagnosis, throughput, figures and one self-contained HTML page.

    from harness.report import write_report
    write_report("results/quickstart")              # -> Path("results/quickstart/report")

    python -m harness.report results/quickstart [--metric test_acc] [--target 0.9] [--compare OTHER]
        [--compare A B] [--budget-axis AXIS] [--out DIR]

Pure table code (results, stats, ranking, leaderboard, variance, budget, workloads, provenance,
marginals, targets, diagnosis, throughput, compare)
is separate from rendering (tables, plots, html); build.py puts them together.
"""

from harness.report.build import write_report
from harness.report.results import ReportError

__all__ = ["write_report", "ReportError"]

"""`python -m harness.report RESULTS_DIR`: write RESULTS_DIR/report/ (exit 0), or one line and exit 2 on bad input."""

from __future__ import annotations

import argparse
import sys

from harness.report.build import TOP, write_report
from harness.report.results import ReportError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness.report", description=__doc__)
    parser.add_argument("results_dir", help="a sweep's results directory (trials.parquet/, epochs.parquet/, ...)")
    parser.add_argument("--metric", help="trials column to rank by (default: best_val_acc; segmentation: best_val_iou)")
    parser.add_argument("--target", type=float, default=0.9,
                        help="validation accuracy for time-to-target (default: 0.9)")
    parser.add_argument("--compare", nargs="+", metavar="X",
                        help="OTHER_DIR: a second results directory to compare against; or A B: two configurations "
                             "of this sweep (labels or key=value words, e.g. 'optimizer=adam lr=0.01') whose seeds "
                             "needed to separate are reported beside the top two's (repeatable)", action="append")
    parser.add_argument("--budget-axis", metavar="AXIS",
                        help="grid axis of the expected-best-vs-budget curves (default: up to three varying axes)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: RESULTS_DIR/report)")
    parser.add_argument("--top", type=int, default=TOP, help=f"configurations whose curves are drawn (default: {TOP})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    directories = [c[0] for c in args.compare or [] if len(c) == 1]
    pairs = [tuple(c) for c in args.compare or [] if len(c) == 2]
    wrong = [c for c in args.compare or [] if len(c) > 2]
    if wrong or len(directories) > 1:
        print("error: --compare takes one results directory (once) or two configurations A B", file=sys.stderr)
        return 2
    try:
        out = write_report(args.results_dir, metric=args.metric, target=args.target,
                           compare=directories[0] if directories else None, out=args.out, top=args.top,
                           pairs=pairs, budget_axis=args.budget_axis)
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report: {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
    parser.add_argument("--compare", metavar="OTHER_DIR", help="a second results directory to compare against")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: RESULTS_DIR/report)")
    parser.add_argument("--top", type=int, default=TOP, help=f"configurations whose curves are drawn (default: {TOP})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        out = write_report(args.results_dir, metric=args.metric, target=args.target, compare=args.compare,
                           out=args.out, top=args.top)
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report: {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

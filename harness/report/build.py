"""`write_report`: one results directory -> report/ with Markdown and CSV tables, PNG figures and index.html.

    report/leaderboard.md    provenance, ranking with intervals and tests, PBT lineages, seeds needed, sources of
                             variance, budget curves, workloads (IQM, profiles), marginals, hyperparameter
                             importance, Pareto fronts (metric vs training time, vs parameter count),
                             time to target
    report/diagnosis.md      overfitting trials, generalization gap, diverged/stalled/failed trials
    report/throughput.md     images/s, step time, memory, FLOPs, % of peak
    report/compare.md        (with compare=OTHER_DIR) both leaderboards side by side
    report/*.csv             the same tables, raw numbers
    report/plots/*.png       curves, heatmaps, bars with CIs, confusion matrix, per-class F1, throughput
    report/index.html        everything on one self-contained page, plus interactive views (parallel
                             coordinates, metric vs each hyperparameter: inline SVG drawn by an inline script)

A figure that fails to draw is reported (a warning and a line on the page), never fatal: the sweep
calls this at its end and must not lose its results to a plotting problem.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Callable, Optional

import pandas as pd

from harness import files
from harness.report import plots
from harness.report.budget import budget_axes, budget_curves, budget_table
from harness.report.compare import compare as compare_boards
from harness.report.compare import compare_table
from harness.report.diagnosis import diagnosis_tables
from harness.report.html import Figure, Section, write_page
from harness.report.importance import importance_table
from harness.report.interactive import render_views, view_data
from harness.report.leaderboard import (
    best_trial,
    check_metric,
    find_configuration,
    leaderboard,
    leaderboard_table,
    replicate_values,
    separations,
    separations_table,
    verdict,
)
from harness.report.marginals import grid2d, heatmap_pairs, marginal, marginal_tables, marginals
from harness.report.pareto import COSTS, config_means, pareto_table, plot_pareto
from harness.report.pbt import pbt_table
from harness.report.provenance import provenance_line, provenance_table, provenance_warnings
from harness.report.results import ReportError, Results, load_results
from harness.report.snapshots import default_metric, is_segmentation, snapshot_figures
from harness.report.stats import RANGE_METHOD, T_METHOD
from harness.report.tables import Table, fmt, fmt_interval, markdown, write_csv
from harness.report.targets import time_to_target, time_to_target_table
from harness.report.throughput import throughput, throughput_table
from harness.report.variance import (
    sampling_error,
    sampling_error_table,
    variance_note,
    variance_sources,
    variance_table,
)
from harness.report.workloads import iqm_table, performance_profile, workloads_note
from harness.vocabulary import Status, direction

TOP = 3  # configurations whose curves are drawn


class Figures:
    """Draws figures into one folder, remembering which ones failed."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.failed: list[str] = []

    def draw(self, name: str, caption: str, plot: Callable[..., Optional[Path]], *args, **kwargs) -> list[Figure]:
        try:
            path = plot(*args, path=self.folder / f"{name}.png", **kwargs)
        except Exception as err:  # noqa: BLE001 - a figure never fails the report
            warnings.warn(f"report: figure '{name}' could not be drawn: {type(err).__name__}: {err}", stacklevel=2)
            self.failed.append(name)
            return []
        return [Figure(caption, path)] if path else []


def _clear(out: Path) -> None:
    """Make `out` and drop what an earlier report wrote there (its figures, compare.*), nothing else."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*(out / "plots").glob("*.png"), out / "compare.md", out / "compare.csv"]:
        stale.unlink(missing_ok=True)


def _status_line(results: Results) -> str:
    counts = Counter(results.trials["status"])
    order = [Status.COMPLETED, Status.EARLY_STOPPED, Status.STALLED, Status.DIVERGED, Status.FAILED]
    parts = [f"{counts[s]} {s}" for s in order if counts[s]] + [f"{n} {s}" for s, n in counts.items() if s not in order]
    configs = results.trials["config_key"].nunique()
    plural = "configuration" if configs == 1 else "configurations"
    return f"{len(results.trials)} trials, {configs} {plural}: {', '.join(parts)}"


def _leader_line(board: pd.DataFrame, metric: str) -> str:
    if board.empty or board["n"].iloc[0] == 0:
        return f"No configuration has a value for `{metric}` (see the diagnosis)."
    top = board.iloc[0]
    if top["interval"] == T_METHOD:
        spread = f"95% t interval {fmt_interval(top['ci_low'], top['ci_high'])}, n={top['n']}"
    elif top["n"] > 1:
        spread = f"n={top['n']}: too few seeds for an interval, range {fmt(top['min'])}–{fmt(top['max'])}"
    else:
        spread = "one seed, no interval"
    return f"Best mean: **{top['label']}** with {metric} {fmt(top['mean'])} ({spread}). {verdict(board, metric)}"


def _needs_line(pairs: pd.DataFrame) -> str:
    """'To separate the top two: needs about 9 seeds.' from the first separation row."""
    if pairs.empty:
        return ""
    first = pairs.iloc[0]
    return f"Top two ({first['a']} vs {first['b']}): {first['verdict']} (80% power, paired t-test)."


def _names(a: Results, b: Results) -> tuple[str, str]:
    for name_a, name_b in ((a.name, b.name), (a.path.name, b.path.name), (str(a.path), str(b.path))):
        if name_a != name_b:
            return name_a, name_b
    return "A", "B"


def write_report(results_dir: str | Path, metric: str | None = None, target: float = 0.9,
                 compare: str | Path | None = None, out: str | Path | None = None, top: int = TOP,
                 pairs: list[tuple[str, str]] = (), budget_axis: str | None = None) -> Path:
    """Write the report of `results_dir` (into `out`, default results_dir/report) and return that folder.
    `metric` None: best_val_iou for a segmentation sweep, else best_val_acc. `pairs`: configurations (labels
    or key=value words) whose seeds needed are reported beside the top two's. `budget_axis`: the axis of
    the expected-best-vs-budget curves (default: up to three varying axes).

    Raises ReportError (a one-line message) for a missing directory, no trial rows or an unknown metric.
    """
    results = load_results(results_dir)
    segmentation = is_segmentation(results)
    metric = metric or default_metric(results)
    check_metric(results, metric)
    asked = [(find_configuration(results, a), find_configuration(results, b)) for a, b in pairs]
    if budget_axis is not None and budget_axis not in results.axes:
        raise ReportError(f"--budget-axis '{budget_axis}' is not a grid axis of {results.path}; "
                          f"axes: {', '.join(results.axes) or '(none)'}")
    other = load_results(compare) if compare is not None else None
    if other is not None:
        check_metric(other, metric)
    out = Path(out) if out is not None else results.path / "report"
    _clear(out)
    figures = Figures(out / "plots")
    better = direction(metric) == "max"

    # Tables
    board = leaderboard(results, metric)
    ranking = leaderboard_table(board, metric)
    stacked = marginals(results, metric)
    by_axis = marginal_tables(stacked, metric)
    times = time_to_target(results, target)
    timing = time_to_target_table(times, target)
    diagnosis = diagnosis_tables(results)
    speed = throughput(results)
    speed_table = throughput_table(speed)
    pair_frame = separations(results, board, metric, asked)
    uncertainty = [separations_table(pair_frame, metric)]
    errors = sampling_error(results, board)
    if not errors.empty:
        uncertainty.append(sampling_error_table(errors))
    split_frames = {m: variance_sources(results, m, board) for m in dict.fromkeys([metric, "test_acc"])}
    sources = [variance_table(frame, m) for m, frame in split_frames.items() if not frame.empty]
    uncertainty += sources
    axes = [budget_axis] if budget_axis else budget_axes(results)
    budgets = [(axis, budget_curves(results, metric, axis)) for axis in axes]
    budget_tables = [budget_table(curve, metric, axis) for axis, curve in budgets]
    iqm = iqm_table(results, metric)
    workloads_text = workloads_note(results)
    origin = provenance_table(results)
    warnings_ = provenance_warnings(results)
    importance, importance_note = importance_table(results, metric)
    importances = [importance] if importance else []
    means = config_means(results, metric)
    fronts = [(x, table) for x in COSTS if (table := pareto_table(means, x, metric)) is not None]
    pareto_tables = [table for _, table in fronts]
    views = render_views(view_data(results, metric))
    lineages = [table] if (table := pbt_table(results, metric)) is not None else []

    # Figures
    ranked = board[board["n"] > 0]
    tied = list(ranked["tied_with_top"])
    shown_range = ranked["interval"] == RANGE_METHOD  # two seeds: whiskers show their range, not an interval
    whiskers = ranked.assign(ci_low=ranked["ci_low"].where(~shown_range, ranked["min"]),
                             ci_high=ranked["ci_high"].where(~shown_range, ranked["max"]))
    bars = figures.draw("leaderboard", f"{metric} per configuration: mean with its 95% t interval (the seeds' range "
                        "with two seeds; red: tied with the leader by the Holm-corrected paired test)",
                        plots.plot_intervals, whiskers, title=f"Leaderboard: {metric}", xlabel=metric, highlight=tied)
    marginal_figs = []
    for rows, cols in heatmap_pairs(results):
        grid = grid2d(results, metric, rows, cols).rename_axis(index=rows, columns=cols)
        marginal_figs += figures.draw(f"heatmap_{rows}_x_{cols}".replace(".", "-"),
                                      f"mean {metric} over seeds and other axes: {rows} x {cols}",
                                      plots.plot_heatmap, grid, title=f"{metric}: {rows} x {cols}",
                                      higher_is_better=better)
    archs = results.included()["model.arch"].nunique() if "model.arch" in results.trials else 0
    if archs > 1:
        arch = marginal(results, metric, "model.arch").rename(columns={"value": "label"})
        marginal_figs += figures.draw("architectures", f"{metric} per architecture, mean with 95% CI",
                                      plots.plot_intervals, arch, title=f"Architectures: {metric}", xlabel=metric)
    labels = list(ranked["label"].head(top))
    curves = figures.draw("curves", f"train (solid) vs validation (dashed) of the top {len(labels)}, "
                                    "mean over seeds with min-max band; red dotted: overfit epochs",
                          plots.plot_curves, results.epochs, results.trials, labels,
                          kinds=("loss", "iou") if segmentation else ("loss", "acc"))
    snapshot_figs = snapshot_figures(results, board, metric, top) if segmentation else []
    best = best_trial(results, board, metric)
    best_figs: list[Figure] = []
    if best is not None:
        tid = best["trial_id"]
        classes = results.classes[results.classes["trial_id"] == tid]
        names = list(classes.sort_values("class_index")["class_name"]) if "class_name" in classes else []
        confusion = results.confusion[results.confusion["trial_id"] == tid]
        best_figs += figures.draw("confusion", f"confusion matrix of the best trial `{tid}` (test set)",
                                  plots.plot_confusion, confusion, names, title=f"Confusion: {tid}")
        best_figs += figures.draw("class_f1", f"per-class F1 of the best trial `{tid}` (weakest in red)",
                                  plots.plot_class_f1, classes, title=f"Per-class F1: {tid}")
    speed_figs = figures.draw("throughput", "training images/s per arch x precision x batch size",
                              plots.plot_throughput, speed)
    budget_figs = []
    for axis, curve in budgets:
        budget_figs += figures.draw(f"budget_{axis}".replace(".", "-"),
                                    f"expected best {metric} of n trials, by {axis} (±1 std)",
                                    plots.plot_budget, curve, axis, metric)
    profile_figs = figures.draw("performance_profile", f"performance profile: share of runs with normalized "
                                f"{metric} ≥ τ", plots.plot_performance_profile, performance_profile(results, metric),
                                metric) if iqm is not None else []

    pareto_figs = []
    for x, _ in fronts:
        pareto_figs += figures.draw(f"pareto_{x}", f"mean {metric} vs {COSTS[x]} per configuration; red: the "
                                    "Pareto front (no other configuration is better on both)",
                                    plot_pareto, means, x, metric)

    # Comparison
    comparison: list[Table] = []
    compare_figs: list[Figure] = []
    if other is not None:
        name_a, name_b = _names(results, other)
        frame = compare_boards(board, leaderboard(other, metric), replicate_values(results, metric),
                               replicate_values(other, metric))
        comparison = [compare_table(frame, name_a, name_b, metric)]
        compare_figs = figures.draw("compare", f"{metric}: {name_a} vs {name_b}, mean with 95% CI",
                                    plots.plot_compare, frame, name_a, name_b, metric=metric)

    # Files
    status, leader = _status_line(results), _leader_line(board, metric)
    needs, origin_line = _needs_line(pair_frame), provenance_line(results)
    warned = "".join(f"\n\n**Warning:** {w}" for w in warnings_)
    intro = f"Sweep `{results.name}` ({results.path}). {status}. {origin_line}{warned}\n\n{leader} {needs}\n"
    notes = [variance_note(results)] if not sources else []
    if iqm is None:
        notes.append(workloads_text)
    leaderboard_md = markdown(f"Leaderboard: {metric}", [ranking, *lineages, *uncertainty, *budget_tables,
                                                           *([iqm] if iqm else []), *by_axis, *importances,
                                                           *pareto_tables, timing, origin], intro)
    leaderboard_md += "".join(f"\n{n}\n" for n in [*notes, importance_note] if n)
    documents = {
        "leaderboard.md": leaderboard_md,
        "diagnosis.md": markdown("Diagnosis", diagnosis, intro),
        "throughput.md": markdown("Throughput", [speed_table]),
    }
    if comparison:
        documents["compare.md"] = markdown(comparison[0].title, comparison)
    for name, text in documents.items():
        files.write_text(out / name, text)
    csv_tables = [ranking, *lineages, *uncertainty, *budget_tables, *([iqm] if iqm else []), *importances, *pareto_tables,
                  origin, timing, *diagnosis, speed_table, *comparison]
    for table in csv_tables:
        write_csv(table, out)
    files.write_text(out / "marginals.csv", stacked.to_csv(index=False))

    sections = [
        Section("leaderboard", "Leaderboard", [ranking], bars),
        Section("pbt", "Population based training", lineages),
        Section("uncertainty", "Seeds needed and sources of variance", uncertainty, [],
                " ".join(notes[:1]) if not sources else ""),
        Section("budget", "Expected best vs budget", budget_tables, budget_figs),
        Section("workloads", "Across workloads: IQM and performance profiles", [iqm] if iqm else [], profile_figs,
                workloads_text, keep=True),
        Section("marginals", "Per-axis marginals", by_axis, marginal_figs),
        Section("explore", "Explore: parallel coordinates and hyperparameters", importances, [],
                importance_note, markup=views),
        Section("pareto", f"Pareto: {metric} vs training time and parameter count", pareto_tables, pareto_figs),
        Section("time-to-target", "Time to target", [timing]),
        Section("curves", "Training curves", [], curves),
        Section("snapshots", "Prediction snapshots", [], snapshot_figs,
                "The latest prediction snapshot of the best trial of each top configuration."),
        Section("best-trial", "Best trial", [], best_figs),
        Section("diagnosis", "Diagnosis", diagnosis),
        Section("throughput", "Throughput", [speed_table], speed_figs),
        Section("compare", "Comparison", comparison, compare_figs),
        Section("provenance", "Provenance", [origin], [], origin_line),
    ]
    subtitle = [status, origin_line, *(f"Warning: {w}" for w in warnings_),
                f"Metric `{metric}` ({'higher' if better else 'lower'} is better). {leader} {needs}"]
    if figures.failed:
        subtitle.append(f"Figures that could not be drawn: {', '.join(figures.failed)}.")
    write_page(out / "index.html", f"Report: {results.name}", subtitle, sections)
    return out

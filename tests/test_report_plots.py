"""Every plot function writes a valid PNG of a readable size (harness.report.plots)."""

from pathlib import Path

from matplotlib.image import imread

try:
    from report_fixtures import board, build_fake_sweep, results  # noqa: F401 - board, results: shared fixtures
except ImportError:  # tests/ as a package
    from tests.report_fixtures import board, build_fake_sweep, results  # noqa: F401 - fixtures pytest finds by name

from harness.report import plots
from harness.report.compare import compare
from harness.report.leaderboard import best_trial, replicate_values
from harness.report.marginals import grid2d, marginal
from harness.report.throughput import throughput

PNG = b"\x89PNG\r\n\x1a\n"


def check_png(path: Path) -> None:
    assert path is not None and path.exists()
    assert path.read_bytes()[:8] == PNG
    height, width = imread(path).shape[:2]
    assert height > 300 and width > 300, (path.name, width, height)


def test_curves(results, board, tmp_path):
    check_png(plots.plot_curves(results.epochs, results.trials, list(board["label"][:3]), tmp_path / "c.png"))


def test_heatmap(results, tmp_path):
    grid = grid2d(results, "best_val_acc", "optimizer.lr", "optimizer.name")
    check_png(plots.plot_heatmap(grid.rename_axis(index="optimizer.lr", columns="optimizer.name"), tmp_path / "h.png",
                                 title="best_val_acc"))


def test_intervals_leaderboard_and_a_single_entry(results, board, tmp_path):
    tied = list(board["tied_with_top"])
    check_png(plots.plot_intervals(board, tmp_path / "b.png", title="t", xlabel="acc", highlight=tied))
    arch = marginal(results, "best_val_acc", "model.arch").rename(columns={"value": "label"})
    check_png(plots.plot_intervals(arch, tmp_path / "one.png", title="architectures", xlabel="acc"))


def test_confusion_and_class_f1(results, board, tmp_path):
    tid = best_trial(results, board, "best_val_acc")["trial_id"]
    classes = results.classes[results.classes["trial_id"] == tid]
    confusion = results.confusion[results.confusion["trial_id"] == tid]
    check_png(plots.plot_confusion(confusion, list(classes["class_name"]), tmp_path / "cm.png", title=tid))
    check_png(plots.plot_class_f1(classes, tmp_path / "f1.png", title=tid))


def test_throughput(results, tmp_path):
    check_png(plots.plot_throughput(throughput(results), tmp_path / "t.png"))


def test_compare(results, board, tmp_path):
    values = replicate_values(results, "best_val_acc")
    check_png(plots.plot_compare(compare(board, board, values, values), "a", "b", tmp_path / "cmp.png",
                                 metric="best_val_acc"))


def test_nothing_to_draw_returns_none(results, tmp_path):
    empty = results.epochs.iloc[0:0]
    assert plots.plot_curves(empty, results.trials, ["x"], tmp_path / "none.png") is None
    assert plots.plot_class_f1(results.classes.iloc[0:0], tmp_path / "none.png", title="x") is None
    assert not (tmp_path / "none.png").exists()

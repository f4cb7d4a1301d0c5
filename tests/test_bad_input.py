"""Bad input never gives a traceback (issue 13, item 3).

Every malformed sweep file, `--set` flag or command-line flag below makes `python -m harness.sweep F`,
`python -m harness.sweep F --dry-run` and `python -m harness.trial F` exit 2 with exactly one line on
stderr, `error: <file or --set or flag>: <key>: <what is wrong>...`, before any trial starts. The
table runs in-process (harness.sweep.cli.main / harness.trial.main with capsys, training and Ray
stubbed out so that a case that wrongly passes fails fast); a few real subprocess runs prove that
nothing else reaches the terminal.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import harness.sweep.cli
import harness.trial
from harness.models.options import describe, option_types

DIR, MISSING, UNREADABLE = object(), object(), object()  # sweep "files" that are not files
FILE = "FILE"  # the message names the sweep file

BASE = "name: bad\ndataset: {name: digits}\nmodel: {arch: mlp, widths: [16]}\n"
CIFAR = "name: bad\ndataset: {name: cifar10, download: false}\n"
SEG = "name: bad\ntask: segmentation\ndataset: {name: synthetic_shapes, shape: [3, 64, 64]}\nloss: {name: bce}\n"
ALL = ("dry-run", "run", "trial")  # harness.sweep F --dry-run, harness.sweep F, harness.trial F
SWEEP = ("dry-run", "run")


def case(id, content, key, args=(), where=FILE, modes=ALL, text=""):
    """One malformed input: the file's content, extra CLI args, the key the message must name, where the
    problem lies (the file, --set or a flag), the CLIs it is run through, and a phrase the message holds."""
    return pytest.param(content, list(args), key, where, modes, text, id=id)


CASES = [
    # --- the five named in the issue
    case("directory", DIR, "", text="is a directory"),
    case("not-utf8", b"name: bad\n# caf\xe9\n", "", text="not UTF-8"),
    case("widths-5", "name: bad\nmodel: {arch: mlp, widths: 5}\n", "model.widths", text="a list of integers > 0"),
    case("torchvision-resnet999", 'name: bad\nmodel: {arch: "torchvision:resnet999"}\n', "model.arch",
         text="unknown torchvision model 'resnet999'"),
    case("vgg16-on-8x8-digits", "name: bad\nmodel: {arch: s0_vgg16_transfer}\n", "model.arch",
         text="needs inputs of at least 32x32, dataset digits gives 1x8x8"),
    # --- the file itself
    case("missing-file", MISSING, "", text="no such file"),
    case("unreadable-file", UNREADABLE, "", text="cannot be read"),
    case("binary-file", b"name: bad\n\x00\x01\x02\n", "", text="binary"),
    case("empty-file", "", "", text="is empty"),
    case("top-level-list", "- name\n- dataset\n", "", text="got a list"),
    case("tab-indent", "name: bad\n\tmodel: {arch: mlp}\n", "", text="not valid YAML"),
    case("yaml-syntax", "name: [unclosed\n", "", text="not valid YAML"),
    case("duplicate-key", BASE + "train: {epochs: 2}\ntrain: {epochs: 3}\n", "train", text="given twice"),
    # --- sections and their keys
    case("section-not-mapping", BASE + "train: 5\n", "train", text="must be a mapping"),
    case("model-null", "name: bad\nmodel:\n", "model", text="must be a mapping"),
    case("epochs-string", BASE + "train: {epochs: ten}\n", "train.epochs"),
    case("epochs-bool", BASE + "train: {epochs: true}\n", "train.epochs"),
    case("epochs-zero", BASE + "train: {epochs: 0}\n", "train.epochs"),
    case("unknown-top-key", BASE + "foo: 1\n", "foo", text="allowed:"),
    case("unknown-section-key", BASE + "optimizer: {lrr: 0.1}\n", "optimizer.lrr", text="did you mean 'lr'"),
    case("lr-nan", BASE + "optimizer: {lr: .nan}\n", "optimizer.lr", text="finite"),
    case("lr-inf", BASE + "optimizer: {lr: .inf}\n", "optimizer.lr", text="finite"),
    case("betas-out-of-range", BASE + "optimizer: {betas: [1.5, 0.9]}\n", "optimizer.betas"),
    case("precision", BASE + "train: {precision: fp32}\n", "train.precision", text="allowed: no, fp16, bf16"),
    case("scheduler-name", BASE + "scheduler: {name: cosin}\n", "scheduler.name", text="did you mean 'cosine'"),
    case("staged-without-stages", BASE + "scheduler: {name: staged}\n", "scheduler", text="needs stages"),
    case("tune-metric-of-segmentation", BASE + "tune: {metric: val_iou}\n", "tune.metric"),
    case("results-name", "name: a b\n", "name", text="letters, digits"),
    case("seeds-strings", BASE + "seeds: [a]\n", "seeds"),
    case("seeds-negative", BASE + "seeds: [-1]\n", "seeds", text="out of range"),
    case("grid-not-list", BASE + "grid: {optimizer.lr: 0.1}\n", "grid.optimizer.lr"),
    case("grid-unknown-key", BASE + "grid: {optimizer.lrr: [1]}\n", "grid.optimizer.lrr"),
    case("grid-int-key", BASE + "grid: {1: [2]}\n", "grid", text="not a key"),
    case("grid-empty-list", BASE + "grid: []\n", "grid"),
    # --- datasets
    case("dataset-name", "name: bad\ndataset: {name: cifar11}\n", "dataset.name", text="did you mean 'cifar10'"),
    case("val-fraction", "name: bad\ndataset: {name: digits, val_fraction: 1.5}\n", "dataset.val_fraction"),
    case("num-val-too-large", "name: bad\ndataset: {name: digits, num_val: 5000}\n", "dataset.num_val",
         text="leaves no training images"),
    case("synthetic-shape-2d", "name: bad\ndataset: {name: synthetic, shape: [1, 8]}\n", "dataset.shape"),
    case("synthetic-one-class", "name: bad\ndataset: {name: synthetic, num_classes: 1}\n", "dataset.num_classes"),
    case("classes-out-of-range", "name: bad\ndataset: {name: mnist_5k, classes: [3, 10]}\n", "dataset.classes",
         text="class 10 is not one of dataset mnist_5k's classes; allowed: indices 0 to 9"),
    case("pack-zero", "name: bad\nresources: {pack: 0}\n", "resources.pack",
         text="0 is not auto, off or a number of trials"),
    case("pack-word", "name: bad\nresources: {pack: sometimes}\n", "resources.pack",
         text="'sometimes' is not auto, off or a number of trials"),
    case("classes-one", "name: bad\ndataset: {name: digits, classes: [3]}\n", "dataset.classes",
         text="at least 2 different classes"),
    case("set-classes-not-a-list", BASE, "dataset.classes", args=["--set", "dataset.classes=3"], where="--set"),
    # --- model options: names and types
    case("option-typo", "name: bad\nmodel: {arch: mlp, widht: [3]}\n", "model.widht", text="did you mean 'widths'"),
    case("dropout-string", "name: bad\nmodel: {arch: mlp, dropout: high}\n", "model.dropout",
         text="allowed: a number >= 0.0 and < 1.0"),
    case("widths-zero", "name: bad\nmodel: {arch: mlp, widths: [0]}\n", "model.widths", text="widths[0]"),
    case("widths-negative", "name: bad\nmodel: {arch: mlp, widths: [-3]}\n", "model.widths"),
    case("channels-string", "name: bad\nmodel: {arch: s0_cnn, channels: abc}\n", "model.channels",
         text="a list of lists of 2 integers > 0"),
    case("pretrained-with-init", CIFAR + "model: {arch: s0_vgg16_transfer, pretrained: true, init: xavier_uniform}\n",
         "model.init", text="would overwrite the pretrained weights"),
    case("segmentation-arch-for-classification", "name: bad\nmodel: {arch: unet_mobilenetv2}\n", "model.arch",
         text="needs task: segmentation"),
    case("classification-dataset-for-segmentation", "name: bad\ntask: segmentation\nloss: {name: bce}\n"
         "model: {arch: unet_mobilenetv2}\n", "dataset.name", text="not for task segmentation"),
    # --- caught by the preflight: the model, its loss or optimizer cannot run on the dataset's input
    case("cnn-mnist-on-digits", "name: bad\nmodel: {arch: cnn_mnist}\n", "model.arch", text="1x8x8"),
    case("vit-on-cifar", CIFAR + 'model: {arch: "torchvision:vit_b_16"}\n', "model.arch",
         text="Expected 224 but got 32"),
    case("unet-encoder-depth", SEG + "model: {arch: unet_mobilenetv2, encoder_depth: 7}\n", "model.encoder_depth"),
    case("group-lr-unknown-group", BASE + "optimizer: {group_lr: {head: 0.1}}\n", "optimizer.group_lr",
         text="groups are ['all']"),
    case("init-from-missing", "name: bad\nmodel: {arch: mlp, init_from: /nonexistent/w.pt}\n", "model.init_from",
         modes=("run", "trial"), text="does not exist"),  # --dry-run: the source sweep may not have run yet
    # --- --set overrides
    case("set-without-equals", BASE, "", args=["--set", "noeq"], where="--set noeq"),
    case("set-negative-epochs", BASE, "train.epochs", args=["--set", "train.epochs=-1"], where="--set"),
    case("set-widths-strings", BASE, "model.widths", args=["--set", "model.widths=[a]"], where="--set"),
    case("set-unknown-key", BASE, "nosuch.key", args=["--set", "nosuch.key=1"], where="--set"),
    case("set-seeds-string", BASE, "seeds", args=["--set", "seeds=abc"], where="--set"),
    case("set-a-section", BASE, "model", args=["--set", "model=5"], where="--set", text="is a section"),
    case("set-into-a-value", BASE, "model.arch.x", args=["--set", "model.arch.x=1"], where="--set"),
    case("set-lr-nan", BASE, "optimizer.lr", args=["--set", "optimizer.lr=.nan"], where="--set"),
    case("set-arch-that-does-not-fit", "name: bad\n", "model.arch", args=["--set", "model.arch=s2_cnn"],
         text="1x8x8"),
    # --- command-line flags
    case("shard-no-slash", BASE, "", args=["--shard", "5"], where="--shard 5", modes=SWEEP),
    case("shard-out-of-range", BASE, "", args=["--shard", "3/2"], where="--shard 3/2", modes=SWEEP),
    case("max-concurrent-zero", BASE, "", args=["--max-concurrent", "0"], where="--max-concurrent", modes=SWEEP),
    case("max-concurrent-not-int", BASE, "", args=["--max-concurrent", "x"], where="--max-concurrent",
         modes=SWEEP),
    case("trial-id-unknown", BASE, "--trial-id", args=["--trial-id", "seed=9"], modes=("trial",),
         text="did you mean 'seed=0'"),
]


def write_case(tmp_path: Path, content, monkeypatch) -> Path:
    path = tmp_path / "bad.yaml"
    if content is DIR:
        path.mkdir()
    elif content is UNREADABLE:  # chmod 000 does not stop root: make the read itself fail
        path.write_text(BASE)
        real = Path.read_bytes

        def read_bytes(self):
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", read_bytes)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not MISSING:
        path.write_text(content)
    return path


@pytest.fixture
def no_training(monkeypatch):
    """A case that wrongly passes validation fails here at once, instead of training or starting Ray."""
    def refuse(*args, **kwargs):
        raise AssertionError("bad input reached training")

    monkeypatch.setattr(harness.sweep.cli, "run_on_tune", refuse)
    monkeypatch.setattr(harness.trial, "make_accelerator", refuse)


@pytest.mark.parametrize("content, args, key, where, modes, text", CASES)
def test_bad_input_exits_2_with_one_line(content, args, key, where, modes, text, tmp_path, monkeypatch, capsys,
                                        no_training):
    path = write_case(tmp_path, content, monkeypatch)
    where = str(path) if where == FILE else where
    for mode in modes:
        if mode == "trial":
            run = lambda: harness.trial.main([str(path), "--results-dir", str(tmp_path / "r"), *args])  # noqa: E731 - a one-line function, named where it is used
        else:
            extra = ["--dry-run"] if mode == "dry-run" else ["--results-dir", str(tmp_path / "r"), "--no-report"]
            run = lambda: harness.sweep.cli.main([str(path), *extra, *args])  # noqa: E731 - a one-line function, named where it is used
        try:
            code = run()
        except SystemExit as exit:  # argparse
            code = exit.code
        out, err = capsys.readouterr()
        lines = err.splitlines()
        assert code == 2, (mode, code, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), (mode, err)
        assert "Traceback" not in err and out == "", (mode, out, err)
        line = lines[0]
        assert line.startswith(f"error: {where}"), (mode, line)
        assert f": {key}:" in line if key else True, (mode, key, line)
        assert text in line, (mode, text, line)
        assert not (tmp_path / "r").exists(), (mode, "nothing is written for bad input")


def test_the_table_is_large_enough():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


def test_what_fits_passes_the_preflight(tmp_path, capsys):
    """The checks reject what cannot run, not what merely looks odd: s0_cnn's three pools fit 8x8 digits
    (8 -> 4 -> 2 -> 1), an MLP with no hidden layer is a linear model, dropout 0 is an int."""
    path = tmp_path / "ok.yaml"
    path.write_text("name: ok\ngrid:\n  - {model.arch: [s0_cnn, s4_smallcnn, cnn_emnist]}\n"
                    "  - {model.arch: [mlp], model.widths: [[], [8, 8]], model.dropout: [0, 0.5]}\n")
    assert harness.sweep.cli.main([str(path), "--dry-run"]) == 0, capsys.readouterr().err
    assert "7 trials" in capsys.readouterr().out


def test_option_types_come_from_annotations_or_defaults():
    def factory(input_shape, num_classes, activation="relu", depth=3, scale=0.5, flags=(True, False), extra=None):
        return None

    assert {k: describe(v) for k, v in option_types(factory).items()} == {
        "activation": "a string", "depth": "an integer", "scale": "a number", "flags": "a list of booleans",
        "extra": "any value"}


CLI_CASES = [  # (the CLI's argv after python -m, the file's content)
    (["harness.sweep", "{path}", "--dry-run"], DIR),
    (["harness.sweep", "{path}", "--results-dir", "{tmp}/r"], "name: bad\nmodel: {arch: mlp, widths: 5}\n"),
    (["harness.trial", "{path}"], "name: bad\nmodel: {arch: s0_vgg16_transfer}\n"),
]


def test_the_terminal_sees_one_line_and_no_traceback(tmp_path):
    """Real processes (run side by side): what reaches the terminal is the one `error:` line, exit 2."""
    procs = []
    for i, (argv, content) in enumerate(CLI_CASES):
        folder = tmp_path / str(i)
        folder.mkdir()
        path = folder / "bad.yaml"
        path.mkdir() if content is DIR else path.write_text(content)
        cmd = [sys.executable, "-m"] + [a.format(path=path, tmp=folder) for a in argv]
        procs.append((cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    for cmd, proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, (cmd, err)
        assert out == "" and len(err.splitlines()) == 1 and err.startswith("error: "), (cmd, out, err)
        assert "Traceback" not in err

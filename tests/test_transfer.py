"""Transfer learning (`model.init_from`, `model.finetune`): a real source trial saves its weights, a
transfer trial on another dataset copies all but the head, and `finetune: head` trains only the head."""

import pytest
import torch
from torch import nn

from harness.config import ConfigError, build_sweep
from harness.models import create_model
from harness.models.transfer import apply_transfer, freeze_all_but_head, head_module, head_parameters, load_transferred
from harness.optimizers import create_optimizer
from harness.trial import run_trial

SHAPE = [1, 16, 16]  # cnn_mnist: conv5 pad1 -> 14 -> pool 7 -> conv5 pad1 -> 5 -> pool 2: 20*2*2 = 80 features


def config(split_seed: int, num_classes: int, epochs: int = 2, **model):
    """cnn_mnist on a small synthetic image set: another split_seed is another dataset."""
    raw = {"name": "t", "dataset": {"name": "synthetic", "num_train": 256, "num_val": 64, "num_test": 64,
                                    "shape": SHAPE, "num_classes": num_classes, "split_seed": split_seed},
           "model": {"arch": "cnn_mnist", **model}, "optimizer": {"name": "adam", "lr": 0.01},
           "train": {"epochs": epochs, "batch_size": 64, "save_model": True}, "health": {"enabled": False}}
    return build_sweep(raw).trials[0].config


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A real source trial (4 classes) with train.save_model: the path of its saved weights."""
    results = tmp_path_factory.mktemp("source")
    out = run_trial(config(split_seed=1, num_classes=4), "src", results)
    assert out.status == "completed", out.row.get("error")
    path = results / "models" / "src.pt"
    assert path.is_file()
    return path


def saved(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def is_head(name: str) -> bool:
    return name.startswith("head.")


def test_load_copies_everything_but_the_head(source):
    model = create_model("cnn_mnist", SHAPE, 3)  # 3 classes: the last layer's shape differs too
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_transferred(model, source)
    src, now = saved(source), model.state_dict()
    assert report["loaded"] == sorted(k for k in now if not is_head(k))
    assert report["skipped"] == ["head.0.bias", "head.0.weight", "head.2.bias", "head.2.weight"]
    for name, value in now.items():
        if is_head(name):
            assert torch.equal(value, before[name])  # left as initialised (head.0 has the source's shape)
        else:
            assert torch.equal(value, src[name])


def test_missing_file_says_how_to_produce_it(tmp_path):
    missing = tmp_path / "models" / "nope.pt"
    with pytest.raises(FileNotFoundError) as err:
        load_transferred(create_model("cnn_mnist", SHAPE, 3), missing)
    message = str(err.value)
    assert str(missing) in message and "train.save_model: true" in message and "s1_transfer_source.yaml" in message


def test_weights_of_another_arch_are_refused(source):
    with pytest.raises(ValueError, match="no tensor of .* fits"):
        load_transferred(create_model("mlp", SHAPE, 3), source)


def test_head_is_the_head_submodule_else_the_last_linear():
    cnn = create_model("cnn_mnist", SHAPE, 3)
    assert head_module(cnn) == ("head", cnn.head)
    mlp = create_model("mlp", SHAPE, 3, widths=[8, 8])
    name, last = head_module(mlp)
    assert last is [m for m in mlp.modules() if isinstance(m, nn.Linear)][-1] and name == "5"
    assert head_parameters(mlp) == [last.weight, last.bias]


def test_finetune_head_freezes_the_rest_and_the_optimizer_only_sees_the_head():
    model = freeze_all_but_head(create_model("cnn_mnist", SHAPE, 3))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if is_head(n)}
    cfg = build_sweep({"optimizer": {"name": "sgd", "lr": 0.1}}).trials[0].config
    optimizer = create_optimizer(model, cfg.optimizer)
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert in_optimizer == {id(p) for p in head_parameters(model)}


def test_transfer_trial_finetune_head_trains_only_the_head(source, tmp_path):
    cfg = config(split_seed=2, num_classes=3, init_from=str(source), finetune="head")
    out = run_trial(cfg, "head", tmp_path)
    assert out.status == "completed", out.row.get("error")
    src, after = saved(source), saved(tmp_path / "models" / "head.pt")
    for name, value in after.items():
        if is_head(name):
            assert not (value.shape == src[name].shape and torch.equal(value, src[name])), name  # new, trained
        else:
            assert torch.equal(value, src[name]), name  # frozen through real training
    assert out.row["model.finetune"] == "head" and out.row["model.init_from"] == str(source)


def test_transfer_trial_finetune_all_trains_everything(source, tmp_path):
    out = run_trial(config(split_seed=2, num_classes=3, init_from=str(source)), "all", tmp_path)
    assert out.status == "completed", out.row.get("error")
    src, after = saved(source), saved(tmp_path / "models" / "all.pt")
    assert not torch.equal(after["features.0.weight"], src["features.0.weight"])


def test_transfer_trial_without_the_source_fails_with_the_path(tmp_path):
    missing = tmp_path / "results" / "s1_transfer_source" / "models" / "seed=0.pt"
    out = run_trial(config(split_seed=2, num_classes=3, init_from=str(missing)), "orphan", tmp_path)
    assert out.status == "failed"
    assert out.row["error"].startswith("FileNotFoundError: model.init_from: " + str(missing))


def test_config_fields(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = build_sweep({"model": {"arch": "cnn_mnist", "init_from": "results/src/models/seed=0.pt"}}).trials[0].config
    assert cfg.model.init_from == str(tmp_path / "results/src/models/seed=0.pt")  # relative to where it is launched
    assert cfg.model.finetune == "all" and "init_from" not in cfg.model.options
    assert build_sweep({}).trials[0].config.model.init_from is None
    assert build_sweep({}, overrides=["model.init_from="]).trials[0].config.model.init_from is None
    with pytest.raises(ConfigError, match="model.finetune: 'features' is not allowed; allowed: all, head"):
        build_sweep({"model": {"finetune": "features"}}, "t.yaml")


def test_apply_transfer_without_init_from_changes_nothing():
    model = create_model("cnn_mnist", SHAPE, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = build_sweep({"model": {"arch": "cnn_mnist"}}).trials[0].config.model
    assert apply_transfer(model, cfg) is model
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())

"""Packed trials (harness.engine.pack, harness.packed_trial, harness.sweep.packs): a member of a pack
is the same trial it is alone (init, data order, augmentation, dropout, optimizer, schedule, rows),
members never touch each other, stopped members freeze, and which trials share a pack."""

import math

import pytest
import torch

from harness.config import load_sweep
from harness.engine.pack import PackedModel
from harness.engine.pack_optim import PackOptimizer
from harness.models import create_model
from harness.packed_trial import run_pack
from harness.sweep.packs import pack_key, plan_packs, why_not_packed
from harness.trial import run_trial

COMPARED = ("train_loss", "train_acc", "val_loss", "val_acc")

# the quickstart repeats each configuration on two data splits; these tests need one (a pack shares one split)
ONE_SPLIT = ["dataset.split_seed=43"]


def assert_same_as_alone(trials, tolerance=1e-4, acc_samples=0):
    """Every member's per-epoch losses within `tolerance` of its solo run, accuracies within `acc_samples`
    samples (an argmax is discrete: where a member's weights drift by float rounding, e.g. grouped vs
    single convolutions, a borderline prediction can flip), statuses and flags identical."""
    alone = [run_trial(t.config, t.trial_id, None, t.point) for t in trials]
    packed = run_pack(trials, None, "p0")
    for a, p in zip(alone, packed):
        assert p.status == a.status, (a.trial_id, p.row.get("error"))
        assert len(p.epochs) == len(a.epochs)
        for ra, rp in zip(a.epochs, p.epochs):
            for key in COMPARED:
                slack = tolerance if key.endswith("loss") else tolerance + acc_samples / 1000  # >= 1,000 samples
                assert rp[key] == pytest.approx(ra[key], abs=slack), (a.trial_id, ra["epoch"], key)
            assert rp["flags"] == ra["flags"]
            assert rp["lr"] == pytest.approx(ra["lr"], rel=1e-9)
        for key in ("best_epoch", "overfit_epoch", "health", "epochs_run"):
            assert p.row[key] == a.row[key], (a.trial_id, key)
        assert p.row["test_acc"] == pytest.approx(a.row["test_acc"], abs=tolerance + acc_samples / 300)
        assert p.row["pack_size"] == len(trials) and p.row["pack_id"] == "p0"
    return alone, packed


@pytest.mark.parametrize("extra", [[], ["dataset.augment=standard"], ["model.dropout=0.3"]])
def test_mlp_members_match_their_solo_runs_sgd_and_adam_in_one_pack(extra):
    # the quickstart's relu slice: SGD and Adam members, two lrs, three seeds, cosine schedule, early stopping;
    # with `standard` augmentation each seed crops and flips its own way, with dropout draws its own masks
    sweep = load_sweep("sweeps/quickstart.yaml", [*ONE_SPLIT, "train.epochs=3", "model.activation=relu", *extra])
    assert {t.config.optimizer.name for t in sweep.trials} == {"sgd", "adam"}
    assert_same_as_alone(sweep.trials)


CNN = """
name: cnn_pack
dataset: {name: digits, val_fraction: 0.15}
model: {arch: s0_cnn_bn_dropout, channels: [[8, 8], [16, 16]], dropout: 0.2}
optimizer: {name: sgd, lr: 0.003, momentum: 0.9}
train: {epochs: 3, batch_size: 64, eval_batch_size: 256}
early_stopping: {enabled: false}
seeds: [0, 1]
grid:
  - optimizer.name: [sgd]
    optimizer.lr: [0.003, 0.001]
  - optimizer.name: [adam]
    optimizer.lr: [0.001]
"""


def test_cnn_with_batchnorm_dropout_and_augmentation_matches_solo(tmp_path):
    path = tmp_path / "cnn.yaml"
    path.write_text(CNN)
    sweep = load_sweep(str(path))
    # SGD and Adam members in one pack. Learning rates where this small BatchNorm + dropout CNN is not chaotic:
    # at SGD 0.002 or Adam 0.003, scaling its initial weights by (1 + 1e-7 noise) moves its OWN solo run by
    # 5e-5 in epoch 1 and 2e-2 by epoch 3, and a pack's float rounding (grouped vs single convolutions,
    # ~1e-7) moves it as much: there no implementation can match within 1e-4
    assert {t.config.optimizer.name for t in sweep.trials} == {"sgd", "adam"}
    alone, packed = assert_same_as_alone(sweep.trials, acc_samples=2)
    # it learns: the comparison is not of noise
    assert all(p.epochs[-1]["train_loss"] < p.epochs[0]["train_loss"] - 0.1 for p in packed)


def test_stacked_rules_follow_torch_optimizers_step_by_step():
    torch.manual_seed(0)
    models = [create_model("mlp", (1, 4, 4), 3, widths=[8]) for _ in range(4)]
    solo = [create_model("mlp", (1, 4, 4), 3, widths=[8]) for _ in range(4)]
    for s, m in zip(solo, models):
        s.load_state_dict(m.state_dict())
    sweep = load_sweep("sweeps/quickstart.yaml", ONE_SPLIT)
    base = sweep.trials[0].config.optimizer
    configs = [base.model_copy(update=u) for u in (
        {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3},
        {"name": "sgd_nesterov", "lr": 0.05, "momentum": 0.8},
        {"name": "adam", "lr": 0.01, "weight_decay": 1e-2},
        {"name": "adamw", "lr": 0.02, "weight_decay": 0.1, "betas": (0.8, 0.99)})]
    pack = PackedModel(models)
    opt = PackOptimizer(pack, configs, "cpu")
    from harness.optimizers import create_optimizer

    torch_opts = [create_optimizer(s, c, "cpu") for s, c in zip(solo, configs)]
    for step in range(20):
        x, y = torch.randn(4, 16, 1, 4, 4), torch.randint(0, 3, (4, 16))
        pack.zero_grad()
        out = pack(x)
        torch.nn.functional.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(4, 16).mean(1).sum().backward()
        opt.step()
        for k, (s, o) in enumerate(zip(solo, torch_opts)):
            o.zero_grad()
            torch.nn.functional.cross_entropy(s(x[k]), y[k]).backward()
            o.step()
    for k, s in enumerate(solo):
        for name, p in s.named_parameters():
            assert torch.allclose(pack.params[name][k], p, atol=1e-5), (configs[k].name, name)


def test_a_nan_in_one_member_never_touches_another():
    sweep = load_sweep("sweeps/quickstart.yaml", [*ONE_SPLIT, "train.epochs=2", "model.activation=relu", "optimizer.name=sgd"])
    trials = sweep.trials[:3]
    # a learning rate that overflows at once: that member diverges, the others are exactly as alone
    from harness.config.grid import Trial

    bad = trials[1].config.model_copy(update={"optimizer": trials[1].config.optimizer.model_copy(update={"lr": 1e30})})
    trials = [trials[0], Trial(trial_id=trials[1].trial_id, point=trials[1].point, config=bad), trials[2]]
    alone = [run_trial(t.config, t.trial_id, None, t.point) for t in (trials[0], trials[2])]
    packed = run_pack(trials, None)
    assert packed[1].status == "diverged"
    for a, p in zip(alone, (packed[0], packed[2])):
        assert [r["train_loss"] for r in p.epochs] == pytest.approx([r["train_loss"] for r in a.epochs], abs=1e-5)
        assert all(math.isfinite(r["val_loss"]) for r in p.epochs)


def test_a_stopped_member_is_shed_and_frozen():
    torch.manual_seed(0)
    models = [create_model("mlp", (1, 4, 4), 3, widths=[8]) for _ in range(3)]
    pack = PackedModel(models)
    frozen = {k: v.clone() for k, v in models[1].state_dict().items()}
    pack.restack([0, 2])
    with torch.no_grad():
        for p in pack.params.values():
            p.add_(1.0)
    for k, v in models[1].state_dict().items():
        assert torch.equal(v, frozen[k])
    assert torch.equal(models[2].state_dict()["1.weight"], pack.params["1.weight"][1])


def test_members_write_their_own_rows(tmp_path):
    from harness import store

    sweep = load_sweep("sweeps/quickstart.yaml", [*ONE_SPLIT, "train.epochs=2", "model.activation=tanh", "optimizer.lr=0.1"])
    run_pack(sweep.trials, tmp_path, "pack6:x")
    trials = store.read_table(tmp_path, "trials")
    epochs = store.read_table(tmp_path, "epochs")
    assert sorted(trials["trial_id"]) == sorted(t.trial_id for t in sweep.trials)
    assert set(trials["pack_id"]) == {"pack6:x"} and set(trials["pack_size"]) == {6}
    assert len(epochs) == 2 * len(sweep.trials)
    assert len(store.read_table(tmp_path, "confusion")) > 0
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_pack_resumes_from_member_checkpoints(tmp_path, monkeypatch):
    import harness.packed_trial

    monkeypatch.setattr(harness.packed_trial, "SAVE_EVERY", 0.0)  # a checkpoint every epoch
    sweep = load_sweep("sweeps/quickstart.yaml", [*ONE_SPLIT, "train.epochs=3", "model.activation=relu", "optimizer.lr=0.1"])
    trials = sweep.trials
    whole = run_pack(trials, None)

    class Stop(BaseException):
        pass

    def stop_after_two(closed):
        if closed[0][1]["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        run_pack(trials, tmp_path, on_pack_epoch=stop_after_two)
    epochs_run = []
    resumed = run_pack(trials, tmp_path, on_pack_epoch=lambda closed: epochs_run.append(closed[0][1]["epoch"]))
    assert epochs_run == [3]  # epochs 1 and 2 came from the members' checkpoints
    for w, r in zip(whole, resumed):
        assert [e["epoch"] for e in r.epochs] == [1, 2, 3]
        assert [e["train_loss"] for e in r.epochs] == pytest.approx([e["train_loss"] for e in w.epochs], abs=1e-6)


# ------------------------------------------------------------------------------------- which trials pack


def test_plan_packs_groups_by_computation_and_fills_slots():
    sweep = load_sweep("sweeps/quickstart.yaml", ONE_SPLIT)
    units = plan_packs(sweep.trials, slots=2)
    assert sorted(map(len, units)) == [12, 12]  # activation changes the computation: one pack each
    for unit in units:
        assert len({t.config.model.activation for t in unit}) == 1
        names = [t.config.optimizer.name for t in unit]
        assert names == sorted(names)  # each optimizer's members contiguous
    assert sorted(map(len, plan_packs(sweep.trials, slots=4))) == [6, 6, 6, 6]
    assert all(len(u) == 1 for u in plan_packs(sweep.trials, no_pack=True))
    capped = plan_packs(load_sweep("sweeps/quickstart.yaml", [*ONE_SPLIT, "resources.pack=5"]).trials, slots=1)
    assert max(map(len, capped)) <= 5 and sum(map(len, capped)) == 24
    assert sorted(t.trial_id for u in units for t in u) == sorted(t.trial_id for t in sweep.trials)


def test_pack_key_and_reasons_not_to_pack():
    a, b = load_sweep("sweeps/quickstart.yaml", ONE_SPLIT).trials[:2]
    assert pack_key(a.config) == pack_key(b.config)
    assert why_not_packed(a.config) is None
    assert why_not_packed(a.config, no_pack=True) == "--no-pack"
    off = load_sweep("sweeps/quickstart.yaml", [*ONE_SPLIT, "resources.pack=off"]).trials[0].config
    assert why_not_packed(off) == "resources.pack is off"
    asha = load_sweep("sweeps/quickstart.yaml", [*ONE_SPLIT, "tune.scheduler=asha"]).trials[0].config
    assert "tune.scheduler asha" in why_not_packed(asha)


def test_members_of_optimizers_without_a_stacked_rule_step_torchs_own():
    # RMSprop and NAdam members: a real torch optimizer each, on the member's views into the stacks
    sweep = load_sweep("sweeps/quickstart.yaml", [*ONE_SPLIT, "train.epochs=3", "model.activation=relu", "optimizer.lr=0.001",
                                                  "optimizer.name=rmsprop"])
    nadam = load_sweep("sweeps/quickstart.yaml", [*ONE_SPLIT, "train.epochs=3", "model.activation=relu", "optimizer.lr=0.001",
                                                  "optimizer.name=nadam"])
    assert_same_as_alone(sweep.trials + nadam.trials[:1])


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_cnn_forward_modes_match_each_member_alone(mode):
    # a GPU runs convolutional packs through vmap (grouped convolutions), a CPU member by member: both give
    # each member's own outputs, gradients and BatchNorm statistics
    import copy

    torch.manual_seed(0)
    models = [create_model("s0_cnn_bn_dropout", (3, 16, 16), 10, channels=[[4, 8], [8, 8]], dropout=0.0)
              for _ in range(3)]
    alone = [copy.deepcopy(m) for m in models]
    pack = PackedModel(models, input_shape=(3, 16, 16))
    pack.mode = mode
    x, y = torch.randn(3, 5, 3, 16, 16), torch.randint(0, 10, (3, 5))
    out = pack(x)
    torch.nn.functional.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(3, 5).mean(1).sum().backward()
    for k, m in enumerate(alone):
        m.train()
        o = m(x[k])
        torch.nn.functional.cross_entropy(o, y[k]).backward()
        assert torch.allclose(out[k], o, atol=1e-5)
        for name, p in m.named_parameters():
            assert torch.allclose(pack.params[name].grad[k], p.grad, atol=1e-5), name
        for name, b in m.named_buffers():
            assert torch.allclose(models[k].get_buffer(name).float(), b.float(), atol=1e-6), name
    pack.eval()
    shared = pack(x[0], shared=True)
    for k, m in enumerate(alone):
        m.eval()
        assert torch.allclose(shared[k], m(x[0]), atol=1e-5)


def test_members_clip_their_own_gradients():
    from harness.config.grid import Trial

    sweep = load_sweep("sweeps/quickstart.yaml", [*ONE_SPLIT, "train.epochs=2", "model.activation=relu", "optimizer.name=sgd",
                                                  "optimizer.lr=0.1"])
    trials = []
    for t, clip in zip(sweep.trials, (None, 0.5, 2.0)):
        cfg = t.config.model_copy(update={"train": t.config.train.model_copy(update={"grad_clip": clip})})
        trials.append(Trial(trial_id=f"{t.trial_id}-clip={clip}", point=t.point, config=cfg))
    assert_same_as_alone(trials)


def test_a_stopped_member_is_written_when_it_stops(tmp_path):
    from harness import store

    # early stopping with patience 1 (SGD at lr 0.1; Adam there is chaotic): two members stop at epochs 5 and 6
    sweep = load_sweep("sweeps/quickstart.yaml", [*ONE_SPLIT, "train.epochs=8", "model.activation=tanh", "optimizer.name=sgd",
                                                  "optimizer.lr=0.1", "early_stopping.patience=1", "seeds=[0,1,2,3]"])
    written_during = {}

    def look(closed):
        epoch = closed[0][1]["epoch"]
        written_during[epoch] = set(store.finished_trial_ids(tmp_path))

    alone = [run_trial(t.config, t.trial_id, None, t.point) for t in sweep.trials]
    outcomes = run_pack(sweep.trials, tmp_path, on_pack_epoch=look)
    assert [o.status for o in outcomes] == [a.status for a in alone]
    stops = {a.trial_id: len(a.epochs) for a in alone if a.status == "early_stopped"}
    assert stops and min(stops.values()) < max(len(a.epochs) for a in alone)  # someone stops before the end
    for tid, last in stops.items():
        later = [e for e in written_during if e > last]
        assert all(tid in written_during[e] for e in later), (tid, last)  # its rows exist while the pack goes on
    for a, o in zip(alone, outcomes):
        assert o.row["test_acc"] == pytest.approx(a.row["test_acc"], abs=1e-4)


def test_members_resumed_at_different_epochs_join_the_pack_at_their_own(tmp_path, monkeypatch):
    import harness.packed_trial

    monkeypatch.setattr(harness.packed_trial, "SAVE_EVERY", 0.0)
    sweep = load_sweep("sweeps/quickstart.yaml", [*ONE_SPLIT, "train.epochs=4", "model.activation=relu", "optimizer.lr=0.1",
                                                  "early_stopping.enabled=false"])
    trials = sweep.trials[:4]
    whole = run_pack(trials, None)

    class Stop(BaseException):
        pass

    def stop_at(epoch):
        def callback(closed):
            if closed[0][1]["epoch"] == epoch:
                raise Stop
        return callback

    for members, epoch in ((trials[:2], 1), (trials[2:], 3)):  # two packs interrupted at different epochs
        with pytest.raises(Stop):
            run_pack(members, tmp_path, on_pack_epoch=stop_at(epoch))
    ran = []
    resumed = run_pack(trials, tmp_path, on_pack_epoch=lambda closed: ran.append(len(closed)))
    assert ran == [2, 2, 4]  # epochs 2 and 3: the first two; epoch 4: all four
    for w, r in zip(whole, resumed):
        assert [e["epoch"] for e in r.epochs] == [1, 2, 3, 4]
        assert [e["train_loss"] for e in r.epochs] == pytest.approx([e["train_loss"] for e in w.epochs], abs=1e-6)


def test_optimizer_state_moves_between_a_pack_and_a_trial_alone():
    import copy

    from harness.optimizers import create_optimizer

    base = load_sweep("sweeps/quickstart.yaml", ONE_SPLIT).trials[0].config.optimizer
    for name in ("sgd", "adam"):
        cfg = base.model_copy(update={"name": name, "lr": 0.01, "momentum": 0.9})
        torch.manual_seed(0)
        models = [create_model("mlp", (1, 4, 4), 3, widths=[8]) for _ in range(2)]
        solo = copy.deepcopy(models[1])
        solo_opt = create_optimizer(solo, cfg, "cpu")
        pack = PackedModel(models)
        pack_opt = PackOptimizer(pack, [cfg, cfg], "cpu")
        for _ in range(3):
            x, y = torch.randn(2, 8, 1, 4, 4), torch.randint(0, 3, (2, 8))
            pack.zero_grad()
            torch.nn.functional.cross_entropy(pack(x).flatten(0, 1), y.flatten(), reduction="none").view(2, 8).mean(1).sum().backward()
            pack_opt.step()
            solo_opt.zero_grad()
            torch.nn.functional.cross_entropy(solo(x[1]), y[1]).backward()
            solo_opt.step()
        mine, torchs = pack_opt.members[1].state_dict(), solo_opt.state_dict()
        assert mine["param_groups"][0]["params"] == torchs["param_groups"][0]["params"]
        for i, entry in torchs["state"].items():
            for key, value in entry.items():
                assert torch.allclose(mine["state"][i][key].float(), value.float(), atol=1e-6), (name, i, key)
        create_optimizer(copy.deepcopy(solo), cfg, "cpu").load_state_dict(mine)  # a pack's checkpoint, alone
        pack_opt.members[0].load_state_dict(torchs)  # a checkpoint taken alone, in a pack
        assert torch.allclose(pack_opt.members[0].state_dict()["state"][0][SLOT[name]], torchs["state"][0][SLOT[name]])


SLOT = {"sgd": "momentum_buffer", "adam": "exp_avg"}

"""Losses, optimizers, schedules and metrics: S3's worked examples and exact values."""

import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.config import LossConfig, OptimizerConfig, SchedulerConfig
from harness.losses import LOSSES, create_loss
from harness.metrics import add_to_confusion, per_class, summary
from harness.optimizers import OPTIMIZERS, create_optimizer
from harness.schedulers import create_scheduler


def test_inverted_dropout_worked_example():
    # S3: inverted dropout at rate 0.5 on [-4.5, -0.75, 3, 6, 1.5] with mask [1,0,1,0,1] -> [-9, 0, 6, 0, 3]
    x = torch.tensor([-4.5, -0.75, 3.0, 6.0, 1.5])
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0])
    assert torch.equal(x * mask / (1 - 0.5), torch.tensor([-9.0, 0.0, 6.0, 0.0, 3.0]))
    # and torch's Dropout is inverted dropout: kept units are scaled by 1/(1-p)
    out = nn.Dropout(0.5).train()(torch.ones(10_000))
    assert set(out.unique().tolist()) <= {0.0, 2.0}


def test_nll_on_log_softmax_equals_cross_entropy_on_logits():
    torch.manual_seed(0)
    logits, y = torch.randn(64, 10), torch.randint(0, 10, (64,))
    nll = create_loss(LossConfig(name="nll"))(logits, y)
    assert torch.allclose(nll, F.cross_entropy(logits, y))
    assert not torch.allclose(F.nll_loss(logits, y), nll)  # S3's bug: NLL on raw logits is something else


def test_two_linear_layers_without_activation_collapse_into_one():
    torch.manual_seed(0)
    a, b = nn.Linear(5, 4), nn.Linear(4, 3)
    merged = nn.Linear(5, 3)
    with torch.no_grad():
        merged.weight.copy_(b.weight @ a.weight)
        merged.bias.copy_(b.weight @ a.bias + b.bias)
    x = torch.randn(8, 5)
    assert torch.allclose(b(a(x)), merged(x), atol=1e-6)


def test_every_loss_gives_a_finite_scalar_with_gradients():
    logits = torch.randn(16, 10, requires_grad=True)
    y = torch.randint(0, 10, (16,))
    for name in LOSSES.names(task="classification"):  # mask losses: tests/test_segmentation.py
        loss = create_loss(LossConfig(name=name))(logits, y)
        assert loss.shape == () and torch.isfinite(loss), name
        loss.backward()
    # mse compares softmax with one-hot: perfect logits give ~0
    perfect = torch.full((2, 3), -30.0)
    perfect[0, 1] = perfect[1, 2] = 30.0
    assert create_loss(LossConfig(name="mse"))(perfect, torch.tensor([1, 2])) < 1e-10


def test_every_optimizer_steps_and_group_lr_is_applied():
    for name in OPTIMIZERS:
        model = nn.Linear(3, 2)
        opt = create_optimizer(model, OptimizerConfig(name=name, lr=0.1))
        model(torch.randn(4, 3)).sum().backward()
        before = model.weight.detach().clone()
        opt.step()
        assert not torch.equal(before, model.weight), name

    # torch's fused kernels on the CPU too where it has them; they follow the reference (for-loop) update
    fused = {"sgd", "sgd_nesterov", "adam", "adamw", "adagrad"}
    for name in OPTIMIZERS:
        cfg = OptimizerConfig(name=name, lr=0.1, momentum=0.9, weight_decay=0.01)
        torch.manual_seed(0)
        model, reference = nn.Linear(3, 2), nn.Linear(3, 2)
        reference.load_state_dict(model.state_dict())
        opt = create_optimizer(model, cfg, "cpu")
        assert opt.defaults.get("fused") is (True if name in fused else None), name
        accepted = inspect.signature(type(opt)).parameters
        plain = {k: v for k, v in opt.defaults.items() if k in accepted} | {"foreach": False}
        ref = type(opt)(reference.parameters(), **plain | ({"fused": None} if "fused" in accepted else {}))
        for step in range(3):
            x = torch.randn(4, 3, generator=torch.Generator().manual_seed(step))
            for m, o in ((model, opt), (reference, ref)):
                o.zero_grad()
                m(x).square().sum().backward()
                o.step()
        assert torch.allclose(model.weight, reference.weight, rtol=1e-5, atol=1e-6), name

    class TwoGroups(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

        def param_groups(self):
            return {"features": list(self.a.parameters()), "head": list(self.b.parameters())}

    opt = create_optimizer(TwoGroups(), OptimizerConfig(name="sgd", lr=0.001, group_lr={"head": 0.01}))
    assert [(g["name"], g["lr"]) for g in opt.param_groups] == [("features", 0.001), ("head", 0.01)]
    with pytest.raises(ValueError, match="group_lr names \\['body'\\]"):
        create_optimizer(TwoGroups(), OptimizerConfig(name="sgd", group_lr={"body": 0.1}))


def lrs(cfg, epochs, base=0.1):
    opt = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=base)
    sched, _ = create_scheduler(opt, cfg, base, epochs, steps_per_epoch=1)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_staged_schedule_continues_one_model_through_fixed_rates():
    cfg = SchedulerConfig(name="staged", stages=[{"epochs": 2, "lr": 0.1}, {"epochs": 1, "lr": 0.01},
                                                 {"epochs": 1, "lr": 0.001}])
    assert lrs(cfg, 4) == pytest.approx([0.1, 0.1, 0.01, 0.001])


def test_step_and_cosine_schedules():
    assert lrs(SchedulerConfig(name="step", step_size=2, gamma=0.5), 5) == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    assert lrs(SchedulerConfig(name="cosine"), 4) == pytest.approx([0.1, 0.085355, 0.05, 0.014645], rel=1e-4)


def test_metrics_from_confusion_matrix():
    cm = torch.tensor([[3, 1, 0], [0, 2, 2], [0, 0, 0]])  # rows: true, cols: predicted; class 2 absent
    stats = per_class(cm)
    assert stats["precision"] == pytest.approx([1.0, 2 / 3, 0.0])
    assert stats["recall"] == pytest.approx([0.75, 0.5, 0.0])
    assert stats["f1"] == pytest.approx([2 * 0.75 / 1.75, 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5), 0.0])
    assert stats["support"] == [4, 4, 0]
    s = summary(cm)
    assert s["accuracy"] == pytest.approx(5 / 8) and s["micro_f1"] == pytest.approx(5 / 8)
    assert s["macro_f1"] == pytest.approx((stats["f1"][0] + stats["f1"][1]) / 2)  # over classes present


def test_metrics_agree_with_torchmetrics():
    from torchmetrics.functional.classification import multiclass_confusion_matrix, multiclass_f1_score

    torch.manual_seed(1)
    preds, target = torch.randint(0, 5, (200,)), torch.randint(0, 5, (200,))
    cm = multiclass_confusion_matrix(preds, target, num_classes=5)
    # the trial's on-device accumulation, in two batches, gives torchmetrics' matrix
    ours = torch.zeros(5, 5, dtype=torch.long)
    add_to_confusion(add_to_confusion(ours, target[:70], preds[:70]), target[70:], preds[70:])
    assert torch.equal(ours, cm)
    assert per_class(cm)["f1"] == pytest.approx(multiclass_f1_score(preds, target, 5, average=None).tolist())
    assert summary(cm)["macro_f1"] == pytest.approx(float(multiclass_f1_score(preds, target, 5, average="macro")))

"""harness.engine.step: the shared optimization step's gradient norm, on exact values."""

import math

import pytest
import torch

from harness.engine.step import Stepper, grad_norm, smallest_layer_grad_norm


def test_grad_norm_is_the_global_l2_norm_including_channels_last():
    a = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # 25
    b = torch.full((2, 3, 2, 2), 0.5).contiguous(memory_format=torch.channels_last)  # 24 * 0.25 = 6
    c = torch.tensor([1.0, 2.0])  # 5
    assert not b.is_contiguous()
    assert float(grad_norm([a, b, c], a)) == pytest.approx(6.0)
    assert float(grad_norm([], a)) == 0.0


def test_stepper_steps_and_reports_the_norm_before_clipping():
    from harness.trial import make_accelerator

    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    accelerator = make_accelerator("no")
    stepper = Stepper(model, optimizer, accelerator, grad_clip=1.0)
    loss = model(torch.tensor([[3.0, 4.0]])).sum()  # gradient [3, 4]: norm 5, clipped to norm 1
    assert float(stepper(loss)) == pytest.approx(5.0)
    assert model.weight.detach()[0].tolist() == pytest.approx([1.0 - 0.1 * 0.6, 2.0 - 0.1 * 0.8])
    assert float(smallest_layer_grad_norm(model)) == pytest.approx(1.0)  # after clipping
    unclipped = Stepper(model, optimizer, accelerator)
    assert float(unclipped(model(torch.tensor([[0.0, 1.0]])).sum())) == pytest.approx(math.sqrt(1.0))

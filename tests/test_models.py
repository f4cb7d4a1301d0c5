"""The model zoo: exact parameter counts of the seed models, shapes, activation swaps, freezing, inits, weights."""

from __future__ import annotations

import inspect
import re
from urllib.error import URLError

import pytest
import torch
from torch import nn

import harness.models.pretrained as pretrained
import harness.models.torchvision_models as tv
from harness.models import (
    INITS,
    MODELS,
    UnknownName,
    WeightsUnavailable,
    count_params,
    create_model,
    model_options,
    replace_activations,
)
from harness.models.activations import ACTIVATION_TYPES

MNIST, CIFAR = (1, 28, 28), (3, 32, 32)

# arch -> (natural input shape, classes, another shape it must also take)
SHAPES = {
    "mlp": (CIFAR, 10, MNIST),
    "s0_mlp": (CIFAR, 10, MNIST),
    "s3_mlp": (MNIST, 10, CIFAR),
    "cnn_mnist": (MNIST, 10, CIFAR),
    "cnn_emnist": (MNIST, 26, CIFAR),
    "s0_cnn": (CIFAR, 10, MNIST),
    "s0_cnn_bn_dropout": (CIFAR, 10, MNIST),
    "s2_cnn": (CIFAR, 10, (1, 36, 36)),  # three pad-0 blocks need at least 29x29
    "s4_smallcnn": (CIFAR, 10, MNIST),
    "s0_vgg16_transfer": (CIFAR, 10, (1, 64, 64)),  # five pools need at least 32x32
    "resnet18": (CIFAR, 10, MNIST),
}

PARAMS = {
    "mlp": 820_874,
    "s0_mlp": 820_874,  # 3072*256+256 + 256*128+128 + 128*10+10
    "s3_mlp": 84_060,  # 784*100+100 + 100*50+50 + 50*10+10
    "cnn_mnist": 30_840,  # 260 + 5,020 + 500*50+50 + 510
    # conv 1->64: 640, BN 128, conv 64->128: 73,856, BN 256, Linear(128*7*7=6272, 50): 313,650, Linear(50,26): 1,326
    "cnn_emnist": 389_856,
    "s0_cnn": 1_167_050,
    "s0_cnn_bn_dropout": 1_167_946,  # s0_cnn + BN 2*(64+128+256)
    # convs 896 + 18,496 + 36,928 + 73,856 + 147,584 + 295,168, BNs 64 + 128 + 256,
    # Linear(256*1*1, 512): 131,584, Linear(512,256): 131,328, Linear(256,10): 2,570
    "s2_cnn": 838_858,
    "s4_smallcnn": 156_074,
    "s0_vgg16_transfer": 14_880_202,  # vgg16 features 14,714,688 + head 131,584 + 32,896 + 1,290
    # torchvision resnet18 11,689,512 - 7x7 stem 9,408 + 3x3 stem 1,728 - fc(1000) 513,000 + fc(10) 5,130
    "resnet18": 11_173_962,
}


def build(arch, shape=None, **options):
    natural, classes, _ = SHAPES[arch]
    return create_model(arch, shape or natural, classes, **options)


def activations(model):
    return [m for m in model.modules() if isinstance(m, ACTIVATION_TYPES)]


def shipped(**where) -> list[str]:
    """The models the harness ships (tests may register their own, e.g. tests/test_registry.py)."""
    return [n for n in MODELS.names(**where) if MODELS.get(n).__module__.startswith("harness.")]


def test_every_registered_model_is_covered():
    assert sorted(SHAPES) == shipped(task="classification") == sorted(PARAMS)


@pytest.mark.parametrize("arch", sorted(PARAMS))
def test_param_count(arch):
    assert count_params(build(arch)) == PARAMS[arch]


@pytest.mark.parametrize("arch", sorted(SHAPES))
def test_forward_shape_on_natural_and_other_input(arch):
    natural, classes, other = SHAPES[arch]
    for shape in (natural, other):
        model = create_model(arch, shape, classes).eval()
        with torch.no_grad():
            out = model(torch.randn(2, *shape))
        assert out.shape == (2, classes)
        assert out.dtype == torch.float32


def test_too_small_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"model 's2_cnn': input shape \(1, 28, 28\) is too small"):
        create_model("s2_cnn", MNIST, 10)
    with pytest.raises(ValueError, match="model 's0_vgg16_transfer'.*too small"):
        create_model("s0_vgg16_transfer", MNIST, 10)


@pytest.mark.parametrize("arch", sorted(SHAPES) + ["torchvision:resnet18"])
def test_gelu_replaces_every_activation(arch):
    shape, classes = (CIFAR, 10) if arch.startswith("torchvision:") else SHAPES[arch][:2]
    model = create_model(arch, shape, classes, activation="gelu")
    acts = activations(model)
    assert not any(isinstance(m, (nn.ReLU, nn.LeakyReLU)) for m in model.modules())
    assert acts and all(type(m) is nn.GELU for m in acts)


def test_default_activations():
    assert {type(m) for m in activations(build("cnn_emnist"))} == {nn.LeakyReLU}
    vgg = activations(build("s0_vgg16_transfer"))
    assert {type(m) for m in vgg} == {nn.ReLU} and len(vgg) == 13 + 2  # 13 conv ReLUs + 2 in the head


def test_options_are_plain_keywords():
    for arch in shipped():
        params = inspect.signature(MODELS.get(arch)).parameters.values()
        assert not any(p.kind is p.VAR_KEYWORD for p in params), arch
        assert ("activation" in model_options(arch)) == (MODELS.meta(arch)["task"] == "classification"), arch
    assert list(model_options("s0_vgg16_transfer")) == ["activation", "pretrained", "freeze_below"]
    assert list(model_options("torchvision:resnet18")) == ["activation", "pretrained"]


# ------------------------------------------------------------------------------------------- VGG16


def test_vgg_freezing_and_param_groups():
    model = build("s0_vgg16_transfer")
    frozen = [p for p in model.features[:19].parameters()]
    assert len(frozen) == 16 and not any(p.requires_grad for p in frozen)  # 8 convs, weight + bias
    assert all(p.requires_grad for p in model.features[19:].parameters())
    # frozen: convs 1,792 + 36,928 + 73,856 + 147,584 + 295,168 + 590,080 + 590,080 + 1,180,160
    assert sum(p.numel() for p in frozen) == 2_915_648

    groups = model.param_groups()
    assert list(groups) == ["features", "head"]
    assert sum(p.numel() for p in groups["features"]) == 5 * 2_359_808  # the five 512->512 convs
    assert sum(p.numel() for p in groups["head"]) == 165_514
    grouped = [id(p) for ps in groups.values() for p in ps]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == {id(p) for p in model.parameters() if p.requires_grad}


def test_vgg_freeze_below_zero_trains_everything():
    model = build("s0_vgg16_transfer", freeze_below=0)
    assert all(p.requires_grad for p in model.parameters())
    assert sum(p.numel() for ps in model.param_groups().values() for p in ps) == 14_880_202


@pytest.fixture
def fake_vgg16_checkpoint(monkeypatch):
    """A random state dict with the names and shapes of torchvision's vgg16, served instead of a download."""
    import torchvision

    with torch.device("meta"):  # shapes only: no 138M-parameter allocation
        layout = torchvision.models.vgg16(weights=None).state_dict()
    state = {k: torch.randn(v.shape) for k, v in layout.items() if k.startswith("features.")}
    monkeypatch.setattr(tv, "load_pretrained", lambda weights: state)
    return state


def test_vgg_pretrained_loads_features_in_torchvision_layout(fake_vgg16_checkpoint):
    model = build("s0_vgg16_transfer", pretrained=True, activation="gelu")
    loaded = model.features.state_dict()
    assert len(loaded) == 26  # 13 convs, weight + bias
    for key, value in loaded.items():
        assert torch.equal(value, fake_vgg16_checkpoint["features." + key]), key
    assert not model.features[0].weight.requires_grad
    assert all(type(m) is nn.GELU for m in activations(model))


def test_vgg_pretrained_with_one_channel_sums_the_rgb_filters(fake_vgg16_checkpoint):
    model = create_model("s0_vgg16_transfer", (1, 32, 32), 10, pretrained=True)
    assert torch.allclose(model.features[0].weight, fake_vgg16_checkpoint["features.0.weight"].sum(1, keepdim=True))


# ------------------------------------------------------------------------------------- pretrained


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No cached checkpoints, and every download fails at once as it would without network."""

    def no_network(url, dst, *args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path


@pytest.mark.parametrize("arch, filename", [("s0_vgg16_transfer", "vgg16-397923af.pth"),
                                            ("torchvision:resnet18", "resnet18-f37072fd.pth")])
def test_pretrained_offline_is_a_one_line_error(offline, arch, filename):
    with pytest.raises(WeightsUnavailable) as info:
        create_model(arch, CIFAR, 10, pretrained=True)
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "\n" not in message
    assert message.startswith("could not download the pretrained weights")
    assert "(no network)" in message
    assert str(offline / "checkpoints" / filename) in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_pretrained_with_another_init_is_refused():
    with pytest.raises(ValueError, match="would overwrite the pretrained weights"):
        create_model("s0_vgg16_transfer", CIFAR, 10, init="xavier_uniform", pretrained=True)


# ------------------------------------------------------------------------------------ torchvision:


def test_torchvision_resnet18_on_one_channel():
    model = create_model("torchvision:resnet18", MNIST, 10).eval()
    assert model.conv1.in_channels == 1
    # 11,689,512 - 7x7x3x64 stem 9,408 + 7x7x1x64 stem 3,136 - fc(1000) 513,000 + fc(10) 5,130
    assert count_params(model) == 11_175_370
    with torch.no_grad():
        assert model(torch.randn(2, *MNIST)).shape == (2, 10)


def test_torchvision_features_stem_on_one_channel():
    model = create_model("torchvision:mobilenet_v3_small", MNIST, 7).eval()
    assert model.features[0][0].in_channels == 1
    with torch.no_grad():
        assert model(torch.randn(2, *MNIST)).shape == (2, 7)


def test_torchvision_pretrained_keeps_all_but_the_head(monkeypatch):
    import torchvision

    reference = torchvision.models.resnet18(weights=None)
    monkeypatch.setattr(tv, "load_pretrained", lambda weights: reference.state_dict())
    model = create_model("torchvision:resnet18", MNIST, 10, pretrained=True)
    assert torch.allclose(model.conv1.weight, reference.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(model.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    assert model.fc.out_features == 10


def test_unknown_torchvision_model_suggests_the_close_name():
    with pytest.raises(UnknownName, match=re.escape("unknown torchvision model 'resnet19' (did you mean 'resnet18'?)")):
        create_model("torchvision:resnet19", CIFAR, 10)


def test_stem_without_conv_is_a_clear_error():
    with pytest.raises(ValueError, match="has no Conv2d stem"):
        pretrained.set_input_channels(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), 1)


# ------------------------------------------------------------------------- activations and inits


def test_replace_activations_count():
    assert replace_activations(build("s0_cnn"), "tanh") == 6
    assert replace_activations(build("s0_vgg16_transfer"), "tanh") == 15
    resnet = create_model("torchvision:resnet18", CIFAR, 10)
    assert replace_activations(resnet, "silu") == 9  # the stem + one shared module per BasicBlock
    assert sum(isinstance(m, nn.SiLU) for m in resnet.modules()) == 9


@pytest.mark.parametrize("init", INITS.names())
def test_every_init_runs_on_an_mlp(init):
    model = create_model("mlp", (1, 8, 8), 3, init=init, widths=(16, 8))
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)


def test_constant_init_makes_all_weights_equal():
    model = create_model("mlp", (1, 8, 8), 3, init="constant", widths=(16, 8))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    for layer in linears:
        assert torch.all(layer.weight == 0.01)
        assert torch.all(layer.bias == 0)


def test_xavier_changes_the_weights():
    torch.manual_seed(0)
    default = create_model("mlp", (1, 8, 8), 3, widths=(16, 8))
    torch.manual_seed(0)
    xavier = create_model("mlp", (1, 8, 8), 3, init="xavier_uniform", widths=(16, 8))
    assert not torch.equal(default[1].weight, xavier[1].weight)
    bound = (6 / (64 + 16)) ** 0.5  # xavier_uniform bound of Linear(64, 16)
    assert xavier[1].weight.abs().max() <= bound
    assert torch.all(xavier[1].bias == 0)

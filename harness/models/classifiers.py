"""The seed models (MLPs and small CNNs of the write-ups in shared/seeds.md), task classification.
Models built on torchvision live in torchvision_models.py, the U-Net in unet.py.

Every CNN here is a `Classifier`: `features` (convolutions) -> `flatten` -> `head` (linear layers), so a
transfer experiment can copy `features` and swap `head`. Flatten sizes are computed from `input_shape`.
Option annotations (`Widths`, `Probability`, ...) are what a sweep file's values are checked against.
"""

from __future__ import annotations

import math

from torch import nn

from harness.models.activations import make_activation
from harness.models.layers import Classifier, double_conv_blocks, flat_size, mlp_head
from harness.models.options import ChannelPairs, NonNegativeInt, PositiveInt, Probability, Widths
from harness.registry import MODELS

register_model = MODELS.register


# ---------------------------------------------------------------------------------------------- MLPs


@register_model("mlp")
def mlp(input_shape, num_classes, activation: str = "relu", widths: Widths = (256, 128), dropout: Probability = 0.0,
        batchnorm: bool = False):
    """Flatten -> [Linear -> (BatchNorm1d) -> act -> (Dropout)] per width -> Linear."""
    head = mlp_head(math.prod(input_shape), widths, num_classes, activation, dropout, batchnorm)
    return nn.Sequential(nn.Flatten(), *head)


@register_model("s0_mlp")
def s0_mlp(input_shape, num_classes, activation: str = "relu"):
    """S0-A: Flatten -> Linear(3072,256) -> act -> Linear(256,128) -> act -> Linear(128,10) on CIFAR-10."""
    return mlp(input_shape, num_classes, activation, widths=(256, 128))


@register_model("s3_mlp")
def s3_mlp(input_shape, num_classes, activation: str = "relu"):
    """S3: Linear(784,100) -> act -> Linear(100,50) -> act -> Linear(50,10) on MNIST."""
    return mlp(input_shape, num_classes, activation, widths=(100, 50))


# ---------------------------------------------------------------------------------------------- CNNs


@register_model("cnn_mnist")
def cnn_mnist(input_shape, num_classes, activation: str = "relu", channels: Widths = (10, 20),
              kernel_size: PositiveInt = 5, padding: NonNegativeInt = 1, hidden: PositiveInt = 50,
              dropout: Probability = 0.0):
    """S1's MNIST CNN: [conv 5x5 pad 1 -> act -> MaxPool2] x2 -> Linear(500,50) -> act -> Linear(50,10)."""
    layers, c_in = [], input_shape[0]
    for c in channels:
        layers += [nn.Conv2d(c_in, c, kernel_size, padding=padding), make_activation(activation), nn.MaxPool2d(2)]
        c_in = c
    features = nn.Sequential(*layers)
    head = mlp_head(flat_size(features, input_shape, "cnn_mnist"), [hidden], num_classes, activation, dropout)
    return Classifier(features, head)


@register_model("cnn_emnist")
def cnn_emnist(input_shape, num_classes, activation: str = "leaky_relu", channels: Widths = (64, 128),
               hidden: PositiveInt = 50):
    """S1's EMNIST letters CNN: [conv3x3 pad1 -> MaxPool2 -> BatchNorm2d -> act] x2 -> Linear(->50) -> act -> Linear."""
    layers, c_in = [], input_shape[0]
    for c in channels:
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.MaxPool2d(2), nn.BatchNorm2d(c), make_activation(activation)]
        c_in = c
    features = nn.Sequential(*layers)
    head = mlp_head(flat_size(features, input_shape, "cnn_emnist"), [hidden], num_classes, activation)
    return Classifier(features, head)


S0_CHANNELS = ((32, 64), (128, 128), (256, 256))


@register_model("s0_cnn")
def s0_cnn(input_shape, num_classes, activation: str = "relu", channels: ChannelPairs = S0_CHANNELS):
    """S0-B: three [conv3x3 -> act -> conv3x3 -> act -> MaxPool2] blocks -> Linear(256*4*4, 10)."""
    features = double_conv_blocks(input_shape[0], channels, activation)
    return Classifier(features, nn.Linear(flat_size(features, input_shape, "s0_cnn"), num_classes))


@register_model("s0_cnn_bn_dropout")
def s0_cnn_bn_dropout(input_shape, num_classes, activation: str = "relu", channels: ChannelPairs = S0_CHANNELS,
                      dropout: Probability = 0.2):
    """S0-C: s0_cnn with Dropout(0.2) then BatchNorm2d after each MaxPool."""
    features = double_conv_blocks(input_shape[0], channels, activation, dropout=dropout, batchnorm=True)
    return Classifier(features, nn.Linear(flat_size(features, input_shape, "s0_cnn_bn_dropout"), num_classes))


@register_model("s2_cnn")
def s2_cnn(input_shape, num_classes, activation: str = "relu",
           channels: ChannelPairs = ((32, 64), (64, 128), (128, 256)), padding: NonNegativeInt = 0,
           dropout: Probability = 0.1):
    """S2's CNN, as read from the write-up.

    Blocks: Conv(c_in->c1, 3x3, pad 0) -> BatchNorm2d -> act -> Conv(c1->c2, 3x3, pad 0) -> act -> MaxPool2,
    three of them ("x3 per the text"), the first being Conv(3->32) ... Conv(32->64) as written, the next two
    doubling the channels. Head: Dropout(0.1) -> Flatten -> Linear(->512) -> act -> Linear(512,256) -> act ->
    Dropout(0.1) -> Linear(256,10). The write-up's Linear(1920,512) fits no reading of the blocks, so the fan-in
    is computed from the input shape. With padding 0, three blocks shrink 32x32 to 1x1 before the last pool
    (32->28->14->10->5->1), so the pools use ceil_mode (identical to floor on even sizes) to keep that 1x1:
    on CIFAR-10 the head sees 256 features. Inputs under 29x29 (MNIST's 28x28) are too small for three blocks.
    """
    layers, c_in = [], input_shape[0]
    for c1, c2 in channels:
        layers += [nn.Conv2d(c_in, c1, 3, padding=padding), nn.BatchNorm2d(c1), make_activation(activation),
                   nn.Conv2d(c1, c2, 3, padding=padding), make_activation(activation), nn.MaxPool2d(2, ceil_mode=True)]
        c_in = c2
    features = nn.Sequential(*layers)
    head = nn.Sequential(
        nn.Dropout(dropout),  # before Flatten in the original; the same thing after it
        nn.Linear(flat_size(features, input_shape, "s2_cnn"), 512), make_activation(activation),
        nn.Linear(512, 256), make_activation(activation),
        nn.Dropout(dropout),
        nn.Linear(256, num_classes),
    )
    return Classifier(features, head)


@register_model("s4_smallcnn")
def s4_smallcnn(input_shape, num_classes, activation: str = "relu", channels: Widths = (16, 32, 64),
                hidden: PositiveInt = 128):
    """S4's SmallCNN: [conv3x3 same -> act -> MaxPool2] x3 -> Flatten(1024) -> Linear(128) -> act -> Linear(10)."""
    layers, c_in = [], input_shape[0]
    for c in channels:
        layers += [nn.Conv2d(c_in, c, 3, padding=1), make_activation(activation), nn.MaxPool2d(2)]
        c_in = c
    features = nn.Sequential(*layers)
    head = mlp_head(flat_size(features, input_shape, "s4_smallcnn"), [hidden], num_classes, activation)
    return Classifier(features, head)

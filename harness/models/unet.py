"""The segmentation model: `unet_mobilenetv2`, a U-Net on a torchvision MobileNetV2 encoder that
outputs per-pixel logits [B, 1, H, W] (binary masks). Registered in MODELS with task segmentation.
torchvision is imported when the model is built (its import costs seconds).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from harness.models.pretrained import load_matching, load_pretrained, set_input_channels
from harness.registry import MODELS

# MobileNetV2 `features` indices ending at each stride (2, 4, 8, 16, 32); the 1x1 conv to 1280 is unused.
MOBILENETV2_STAGES = (2, 4, 7, 14, 18)
DECODER_WIDTHS = (256, 128, 64, 32, 16)  # deepest first; an encoder of depth d uses the last d


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UpBlock(nn.Module):
    """x2 transposed-conv upsampling, then concatenate the skip (if any) and fuse with a 3x3 conv."""

    def __init__(self, cin: int, skip: int, cout: int):
        super().__init__()
        self.up = nn.Sequential(nn.ConvTranspose2d(cin, cout, 2, stride=2, bias=False), nn.BatchNorm2d(cout),
                                nn.ReLU(inplace=True))
        self.fuse = _conv_bn_relu(cout + skip, cout)

    def forward(self, x: torch.Tensor, skip: Optional[torch.Tensor], size) -> torch.Tensor:
        x = self.up(x)
        if x.shape[-2:] != tuple(size):  # odd sizes: match the skip (or the input) exactly
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return self.fuse(x if skip is None else torch.cat([x, skip], dim=1))


class UNetMobileNetV2(nn.Module):
    """U-Net: MobileNetV2 encoder stages (strides 2..2^depth) as skips, a transposed-conv decoder, 1x1 head."""

    def __init__(self, input_shape, out_channels: int = 1, pretrained: bool = False, freeze_encoder: bool = True,
                 encoder_depth: int = 5, width_mult: float = 1.0, decoder_widths: Optional[Sequence[int]] = None):
        super().__init__()
        from torchvision.models import mobilenet_v2

        if not 1 <= encoder_depth <= len(MOBILENETV2_STAGES):
            raise ValueError(f"model 'unet_mobilenetv2': encoder_depth must be 1..5, got {encoder_depth}")
        if pretrained and width_mult != 1.0:
            raise ValueError("model 'unet_mobilenetv2': torchvision's pretrained MobileNetV2 has width_mult 1.0, "
                             f"got {width_mult}")
        widths = list(decoder_widths) if decoder_widths is not None else list(DECODER_WIDTHS[-encoder_depth:])
        if len(widths) != encoder_depth or min(widths) < 1:
            raise ValueError(f"model 'unet_mobilenetv2': decoder_widths needs {encoder_depth} positive widths "
                             f"(one per encoder stage, deepest first), got {list(widths)}")

        net = mobilenet_v2(weights=None, width_mult=width_mult)
        set_input_channels(net, input_shape[0])
        if pretrained:
            from torchvision.models import MobileNet_V2_Weights

            load_matching(net, load_pretrained(MobileNet_V2_Weights.IMAGENET1K_V1))
        bounds = (0,) + MOBILENETV2_STAGES[:encoder_depth]
        self.encoder = nn.ModuleList(net.features[a:b] for a, b in zip(bounds, bounds[1:]))
        skips = [stage[-1].out_channels for stage in self.encoder]
        self.freeze_encoder, self.pretrained = freeze_encoder, pretrained
        self.encoder.requires_grad_(not freeze_encoder)

        blocks, cin = [], skips[-1]
        for i, width in enumerate(widths):  # deepest first; the last block has no skip (full resolution)
            level = encoder_depth - 2 - i
            blocks.append(UpBlock(cin, skips[level] if level >= 0 else 0, width))
            cin = width
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Conv2d(cin, out_channels, 1)

    def train(self, mode: bool = True) -> "UNetMobileNetV2":
        super().train(mode)
        if self.freeze_encoder and self.pretrained:
            self.encoder.eval()  # a frozen pretrained encoder keeps its batch-norm statistics (as Keras)
        return self  # a random encoder has none worth keeping: its batch norm normalizes with batch statistics

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        feats = []
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            for stage in self.encoder:
                x = stage(x)
                feats.append(x)
        x = feats[-1]
        skips = feats[-2::-1] + [None]  # the skip at each decoder level, deepest first
        for block, skip in zip(self.decoder, skips):
            x = block(x, skip, skip.shape[-2:] if skip is not None else size)
        return self.head(x)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by part (`optimizer.group_lr: {encoder: 1e-4}` when the encoder trains)."""
        return {"encoder": list(self.encoder.parameters()),
                "decoder": list(self.decoder.parameters()) + list(self.head.parameters())}


@MODELS.register("unet_mobilenetv2", task="segmentation")
def unet_mobilenetv2(input_shape, num_classes, pretrained=False, freeze_encoder=True, encoder_depth=5,
                     width_mult=1.0, decoder_widths=None):
    """U-Net on a torchvision MobileNetV2 encoder, 1-channel logits (binary masks).

    `pretrained`: ImageNet weights (torchvision; offline without them: WeightsUnavailable).
    `freeze_encoder`: encoder weights fixed (and, when pretrained, its batch-norm statistics).
    `encoder_depth` 1-5: stages used (fewer is faster). `width_mult`: MobileNetV2's channel multiplier.
    `decoder_widths`: one per stage, deepest first (default 256, 128, 64, 32, 16, the last `encoder_depth` of them).
    """
    if num_classes > 2:
        raise ValueError(f"model 'unet_mobilenetv2' predicts binary masks; the dataset has {num_classes} classes")
    return UNetMobileNetV2(input_shape, 1, pretrained, freeze_encoder, encoder_depth, width_mult, decoder_widths)

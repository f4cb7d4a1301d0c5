"""Batched augmentation on the device: float [B, C, H, W] images on the 0..1 scale in, same out.

Each preset is a function (x, generator) -> x that draws per-sample parameters from `generator`
(which lives on x's device) and applies them to the whole batch at once: crops are gathers,
geometric transforms are one per-sample 3x3 homography turned into a sampling grid for
grid_sample, colour changes are blends. No PIL, no per-sample Python loops.

    standard  RandomCrop(pad 4, zeros) + horizontal flip (S0, the usual CIFAR recipe)
    heavy     S2's torchvision stack: crop(pad 4), flip, affine(40 deg, scale 0.9-1.1),
              perspective(0.2, p=0.5), colour jitter(0.5, 0.5, 0.5), rotation(30 deg);
              the geometric ones composed into one warp, then the colour jitter
    s4        S4's Keras layers: flip, rotation +-0.1 turn, zoom +-10%, contrast +-10%
              (Keras fills with reflection)
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def _uniform(g: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return torch.rand(n, generator=g, device=g.device) * (high - low) + low


def _coin(g: torch.Generator, n: int, p: float = 0.5) -> torch.Tensor:
    return torch.rand(n, generator=g, device=g.device) < p


# --------------------------------------------------------------------------------------------------
# Geometry. Coordinates are centred on the image and measured in units of S = max(H, W) / 2
# pixels, so rotations stay rotations on non-square images. Every matrix maps an OUTPUT point
# to the SOURCE point it samples (an inverse warp); the warps of a chain compose as A1 @ A2 @ ...


def _eye(n: int, device) -> torch.Tensor:
    return torch.eye(3, device=device).repeat(n, 1, 1)


def _translate(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = _eye(len(tx), tx.device)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _flip(flip: torch.Tensor) -> torch.Tensor:
    m = _eye(len(flip), flip.device)
    m[:, 0, 0] = 1 - 2 * flip.float()
    return m


def _rotate_scale(degrees: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Rotate by `degrees` and zoom by `scale` about the centre (source = R(-angle) @ out / scale)."""
    a = torch.deg2rad(degrees)
    cos, sin = torch.cos(a) / scale, torch.sin(a) / scale
    m = _eye(len(a), a.device)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, sin, -sin, cos
    return m


def _homography(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """[B, 3, 3] homographies taking the 4 points `src` [B, 4, 2] onto `dst` [B, 4, 2]."""
    x, y = src.unbind(-1)
    X, Y = dst.unbind(-1)
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_x = torch.stack([x, y, one, zero, zero, zero, -x * X, -y * X], dim=-1)
    rows_y = torch.stack([zero, zero, zero, x, y, one, -x * Y, -y * Y], dim=-1)
    a = torch.cat([rows_x, rows_y], dim=1)  # [B, 8, 8]
    h = torch.linalg.solve_ex(a, torch.cat([X, Y], dim=1)).result  # _ex: no error check, no host sync
    return torch.cat([h, torch.ones_like(h[:, :1])], dim=1).view(-1, 3, 3)


def _perspective(g: torch.Generator, n: int, h: int, w: int, distortion: float, p: float, device) -> torch.Tensor:
    """torchvision's RandomPerspective: each corner moves inward by up to `distortion` x half the size."""
    s = max(h, w) / 2
    corners = torch.tensor([[-w, -h], [w, -h], [w, h], [-w, h]], device=device, dtype=torch.float32) / (2 * s)
    inward = -corners.sign() * torch.tensor([w, h], device=device) / (2 * s) * distortion
    move = torch.rand(n, 4, 2, generator=g, device=device) * _coin(g, n, p).view(n, 1, 1)
    moved = corners + move * inward
    return _homography(moved, corners.expand(n, 4, 2))  # output (moved corners) -> source (corners)


def warp(x: torch.Tensor, m: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Resample x [B, C, H, W] with per-sample inverse warps m [B, 3, 3] (bilinear)."""
    b, _, h, w = x.shape
    s = max(h, w) / 2
    ys = (torch.arange(h, device=x.device, dtype=torch.float32) + 0.5 - h / 2) / s
    xs = (torch.arange(w, device=x.device, dtype=torch.float32) + 0.5 - w / 2) / s
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1).view(1, h * w, 3)
    src = points @ m.transpose(1, 2)  # [B, H*W, 3]
    src = src[..., :2] / src[..., 2:]
    grid = torch.stack([src[..., 0] * (2 * s / w), src[..., 1] * (2 * s / h)], dim=-1).view(b, h, w, 2)  # -> -1..1
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode=padding_mode, align_corners=False)


# --------------------------------------------------------------------------------------------------
# Colour


def _gray(x: torch.Tensor) -> torch.Tensor:
    """[B, 1, H, W] luminance (ITU-R 601, as torchvision) for RGB; the channel mean otherwise."""
    if x.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * weights).sum(dim=1, keepdim=True)
    return x.mean(dim=1, keepdim=True)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """factor * x + (1 - factor) * other, clamped to 0..1 (torchvision's _blend)."""
    f = factor.view(-1, 1, 1, 1).to(x.dtype)
    return (f * x + (1 - f) * other).clamp_(0, 1)


def color_jitter(x: torch.Tensor, g: torch.Generator, brightness: float, contrast: float, saturation: float):
    n = len(x)
    x = _blend(x, torch.zeros_like(x[:1]), _uniform(g, n, 1 - brightness, 1 + brightness))
    x = _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True), _uniform(g, n, 1 - contrast, 1 + contrast))
    return _blend(x, _gray(x), _uniform(g, n, 1 - saturation, 1 + saturation))


# --------------------------------------------------------------------------------------------------
# Presets


def none(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return x


class PaddedCrops:
    """RandomCrop(pad, zeros) + horizontal flip for a whole split held on the device (`standard`).

    The split is padded and mirrored ONCE, as uint8 (2 (H+2p)(W+2p) / HW of its size: 3.1x for
    CIFAR). A flipped crop is a crop of the mirrored image, so a batch's crop + flip is then ONE
    index_select of w-byte image rows (overlapping windows of the flat split) straight from it:
    no pad, gather or flip per batch, and no host sync.

        crops = PaddedCrops(images)          # uint8 [N, C, H, W]
        x = crops(batch_indices, generator)  # uint8 [B, C, H, W]; out= a [B, C, H, W] uint8 buffer to fill
    """

    def __init__(self, images: torch.Tensor, pad: int = 4):
        n, c, h, w = images.shape
        H, W = h + 2 * pad, w + 2 * pad
        both = images.new_zeros(2 * n, c, H, W)
        both[:n, :, pad : pad + h, pad : pad + w] = images
        both[n:] = both[:n].flip(3)
        flat = both.view(-1)
        self.rows = flat.as_strided((flat.numel() - w + 1, w), (1, 1))  # row r: the w values from flat index r
        self.n, self.pad, self.shape, self.padded_hw = n, pad, (c, h, w), (H, W)
        rows_of_image = torch.arange(c, device=images.device).view(c, 1) * (H * W)
        self.within = (rows_of_image + torch.arange(h, device=images.device) * W).view(1, -1)  # [1, C*H]

    def __call__(self, idx: torch.Tensor, g: torch.Generator, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, (c, h, w), (H, W), pad = len(idx), self.shape, self.padded_hw, self.pad
        dy = torch.randint(0, 2 * pad + 1, (b, 1), generator=g, device=idx.device)
        dx = torch.randint(0, 2 * pad + 1, (b, 1), generator=g, device=idx.device)
        flip = _coin(g, b).view(b, 1)
        dx = torch.where(flip, 2 * pad - dx, dx)  # the same crop, counted in the mirrored image
        start = (idx.view(b, 1) + flip * self.n) * (c * H * W) + dy * W + dx
        rows = (start + self.within).view(-1)
        if out is None:
            return self.rows.index_select(0, rows).view(b, c, h, w)
        torch.index_select(self.rows, 0, rows, out=out.view(b * c * h, w))
        return out


def standard(x: torch.Tensor, g: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop of the zero-padded image plus horizontal flip, for one batch (uint8 or float)."""
    return PaddedCrops(x, pad)(torch.arange(len(x), device=x.device), g)


def heavy(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    b, _, h, w = x.shape
    s = max(h, w) / 2
    shift = torch.randint(-4, 5, (2, b), generator=g, device=x.device).float() / s  # RandomCrop(pad 4)
    m = (
        _translate(shift[0], shift[1])
        @ _flip(_coin(g, b))
        @ _rotate_scale(_uniform(g, b, -40, 40), _uniform(g, b, 0.9, 1.1))  # RandomAffine
        @ _perspective(g, b, h, w, distortion=0.2, p=0.5, device=x.device)
        @ _rotate_scale(_uniform(g, b, -30, 30), torch.ones(b, device=x.device))  # RandomRotation
    )
    x = warp(x, m, padding_mode="zeros")
    return color_jitter(x, g, 0.5, 0.5, 0.5)


def s4(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    b = len(x)
    m = _flip(_coin(g, b)) @ _rotate_scale(_uniform(g, b, -36, 36), _uniform(g, b, 0.9, 1.1))
    x = warp(x, m, padding_mode="reflection")
    mean = x.mean(dim=(2, 3), keepdim=True)  # Keras RandomContrast: per image and channel
    return _blend(x, mean, _uniform(g, b, 0.9, 1.1))


PRESETS = {"none": none, "standard": standard, "heavy": heavy, "s4": s4}

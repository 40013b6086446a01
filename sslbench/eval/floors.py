"""Trivial localizers scored beside every method, so a number can be read against what no
listening at all achieves on the same test set and protocol."""

from __future__ import annotations

import torch
from torch import Tensor

from sslbench.eval.functional import upsample

FLOORS = ("centre", "whole_image", "random")
#: resolution of the random floor's noise before upsampling: a typical feature map
RANDOM_GRID = 7


def _centre(height: int, width: int, device) -> Tensor:
    """A centred Gaussian (sigma a quarter of the side): the photographer's-bias prior."""
    ys = torch.arange(height, device=device, dtype=torch.float32) + 0.5 - height / 2
    xs = torch.arange(width, device=device, dtype=torch.float32) + 0.5 - width / 2
    return torch.exp(-(ys[:, None] ** 2 / (2 * (height / 4) ** 2) + xs[None, :] ** 2 / (2 * (width / 4) ** 2)))


def floor_maps(floor: str, index: Tensor, frames: int, size: int, mode: str) -> Tensor:
    """(N, frames * size, size) maps of a floor for the samples ``index`` (frames stacked vertically).

    ``centre``: a Gaussian per frame; ``whole_image``: boolean all-true (every pixel predicted,
    whatever the rule); ``random``: uniform noise on a 7 x 7 grid per frame, upsampled with the
    protocol's ``mode`` and seeded by the sample index (the same in every process and batch order).
    """
    n, device = index.numel(), index.device
    if floor == "centre":
        return _centre(size, size, device).repeat(frames, 1).expand(n, -1, -1).contiguous()
    if floor == "whole_image":
        return torch.ones(n, frames * size, size, dtype=torch.bool, device=device)
    if floor == "random":
        noise = torch.stack([
            torch.rand(frames, RANDOM_GRID, RANDOM_GRID, generator=torch.Generator().manual_seed(int(i) + 1_000_003))
            for i in index.tolist()
        ]).to(device)
        return upsample(noise.flatten(0, 1), size, mode).view(n, frames * size, size)
    raise ValueError(f"unknown floor {floor!r}; choose from {FLOORS}")


"""What the evaluation functions accept: tensors or numpy arrays, ground truth with the values a
protocol defines, and maps that may hold NaN or inf (a diverged model), which score as failures."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor

#: gt values of single-source sets: Flickr's consensus adds 0.5 per annotator (capped at 1)
SINGLE_GT_VALUES = (0.0, 0.5, 1.0)
BINARY_GT_VALUES = (0.0, 1.0)


def as_tensor(value, name: str) -> Tensor:
    """A torch tensor from a tensor or a numpy array; anything else is a TypeError naming ``name``."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise TypeError(f"{name} must be a torch.Tensor or a numpy.ndarray, got {type(value).__name__}")


def check_gt_values(gt: Tensor, allowed: Iterable[float], what: str) -> None:
    """Raise when ``gt`` holds a value outside ``allowed`` (say which, and what is expected)."""
    allowed = tuple(allowed)
    outside = torch.ones_like(gt, dtype=torch.bool)
    for value in allowed:
        outside &= gt != value
    if bool(outside.any()):
        example = float(gt[outside].flatten()[0])
        raise ValueError(f"{what} ground truth must hold only {', '.join(f'{v:g}' for v in allowed)}; found {example:g}")


def non_finite_rows(maps: Tensor) -> Tensor:
    """(N,) whether each (N, ...) map holds a NaN or an infinity (always False for masks)."""
    if maps.dtype == torch.bool:
        return torch.zeros(maps.shape[0], dtype=torch.bool, device=maps.device)
    return ~torch.isfinite(maps.flatten(1)).all(1)


def zero_non_finite(maps: Tensor) -> tuple[Tensor, Tensor]:
    """``(maps with non-finite rows zeroed, which rows)``; the input itself when every row is finite."""
    bad = non_finite_rows(maps)
    if not bool(bad.any()):
        return maps, bad
    clean = maps.clone()
    clean[bad] = 0
    return clean, bad

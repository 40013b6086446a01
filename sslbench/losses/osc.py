"""The object similarity-aware clustering (OSC) loss (Kim et al., CVPR 2024, Eq. 4; reference code
as read in methods.md 7).

For each sample b and each object group k found by ``cluster_bank``: the anchor A is the bank
entry at the group's root (a group whose anchor is all zero is skipped, as in the code), the
positive P the mean of the group's entries, the negative N the mean of every other entry of the
sample's bank (background and zero padding included) together with E_n;
    L_k = (1 - cos(A, P)) + cos(A, N).
``normalization="code"`` sums L_k over groups and samples and divides by B; ``"paper"`` divides
each sample's sum by its number of groups K_b first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

NORMALIZATIONS = ("code", "paper")


def osc_loss(bank: Tensor, negative: Tensor, groups: list[list[list[int]]], roots: list[list[int]], normalization: str = "code") -> Tensor:
    """``bank`` (B, T, C) with gradients, ``negative`` (B, C); ``groups`` / ``roots`` per sample."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown OSC normalization {normalization!r}; choose one of {NORMALIZATIONS}")
    total = bank.new_zeros(())
    for b, (sample_groups, sample_roots) in enumerate(zip(groups, roots)):
        sample_loss, counted = bank.new_zeros(()), 0
        for members, root in zip(sample_groups, sample_roots):
            anchor = bank[b, root]
            if not bool(anchor.detach().any()):
                continue
            others = [t for t in range(bank.shape[1]) if t not in members]
            positive = bank[b, members].mean(0)
            negative_set = torch.cat([bank[b, others], negative[b][None]])
            cos = lambda x: F.cosine_similarity(anchor, x, dim=0)  # noqa: E731
            sample_loss = sample_loss + (1 - cos(positive)) + cos(negative_set.mean(0))
            counted += 1
        if normalization == "paper" and counted:
            sample_loss = sample_loss / counted
        total = total + sample_loss
    return total / max(bank.shape[0], 1)

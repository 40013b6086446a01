"""The object similarity-aware clustering (OSC) loss (Kim et al., CVPR 2024, Eq. 4; reference code
as read in methods.md 7).

For each sample b and each object group k found by ``cluster_bank``: the anchor A is the bank
entry at the group's root, the positive P the mean of the group's entries, and the negative
    N = mean(every other entry of the sample's bank, background and zero padding included) + E_n
as NoPrior's ``model_base.py`` ``object_loss`` computes it (E_n added to the mean, not averaged in
as one more entry); then
    L_k = (1 - cos(A, P)) + cos(A, N).
As in the code, a group is skipped when its anchor sums to zero (a padded entry), when it has no
other entry to take the mean of (NaN there), or when N sums to zero.
``normalization="code"`` sums L_k over groups and samples and divides by B; ``"paper"`` divides
each sample's sum by its number of groups K_b first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

NORMALIZATIONS = ("code", "paper")


def osc_loss(bank: Tensor, negative: Tensor, groups: list[list[list[int]]], roots: list[list[int]], normalization: str = "code") -> Tensor:
    """``bank`` (B, T, C) with gradients, ``negative`` (B, C); ``groups`` / ``roots`` per sample.

    All groups of the batch are scored at once: one (G, T) membership mask gives each group's
    positive (members' mean) and negative (the rest of its sample's bank, with E_n).
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown OSC normalization {normalization!r}; choose one of {NORMALIZATIONS}")
    owner = [b for b, sample_groups in enumerate(groups) for _ in sample_groups]
    if not owner:
        return bank.new_zeros(())
    sample = torch.tensor(owner, device=bank.device)
    members = torch.zeros(len(owner), bank.shape[1], dtype=bank.dtype, device=bank.device)
    for g, group in enumerate(m for sample_groups in groups for m in sample_groups):
        members[g, group] = 1.0
    root = torch.tensor([r for sample_roots in roots for r in sample_roots], device=bank.device)
    entries = bank[sample]  # (G, T, C): each group's sample bank
    anchor = entries[torch.arange(len(owner), device=bank.device), root]
    member_sum = torch.einsum("gt,gtc->gc", members, entries)
    count = members.sum(1, keepdim=True)
    positive = member_sum / count
    others = bank.shape[1] - count
    rest = (entries.sum(1) - member_sum) / others.clamp(min=1) + negative[sample]
    skipped = (anchor.detach().sum(1) == 0) | (others[:, 0] == 0) | (rest.detach().sum(1) == 0)
    counted = (~skipped).to(bank.dtype)
    terms = (1 - F.cosine_similarity(anchor, positive, dim=1)) + F.cosine_similarity(anchor, rest, dim=1)
    loss = torch.where(skipped, torch.zeros_like(terms), terms)
    per_sample = torch.zeros(bank.shape[0], dtype=bank.dtype, device=bank.device).index_add_(0, sample, loss)
    if normalization == "paper":
        groups_counted = torch.zeros_like(per_sample).index_add_(0, sample, counted)
        per_sample = per_sample / groups_counted.clamp(min=1)
    return per_sample.sum() / bank.shape[0]

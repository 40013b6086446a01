"""Iterative object identification and object clustering (Kim et al., CVPR 2024, Sec. 3.3-3.4 and
Algorithm 1; reference ``model.py`` as read in methods.md 7).

The identification loop runs batched: every iteration handles all samples at once, finished
samples are masked, and the loop ends when every sample has finished (at most h * w + 1
iterations, since each one either claims a new cell or finishes its sample). Only the union-find
clustering, whose work depends on each sample's bank, runs per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from sslbench.nn.similarity import av_similarity, soft_mask

FORMS = ("code", "paper")


@dataclass
class Identification:
    """What the IOI loop found, padded to T iterations.

    Attributes:
        bank: (B, T, C) sound-associated cell vectors E_p, zero after a sample finished.
        maps: (B, T, h, w) each iteration's foreground map (-R_p for the code form, R_p for the paper's).
        valid: (B, T) whether iteration t ran for sample b.
        negative: (B, C) the negative cell vector E_n.
    """

    bank: Tensor
    maps: Tensor
    valid: Tensor
    negative: Tensor


#: ``nn.PairwiseDistance``'s default eps: the reference's R_p and R_n are ||x - y + eps||_2
PAIRWISE_EPS = 1e-6


def identify_objects(
    features: Tensor, sim: Tensor, background: Tensor, form: str = "code", stop_threshold: float = 0.1
) -> Identification:
    """Algorithm 1 on a batch, always in float32 (under bf16 autocast R_p < R_n flips).

    Args:
        features: (B, C, h, w) sound-associated features F^_v = F_v * S_v.
        sim: (B, h, w) sound-associated map S_v (own-pair cosine).
        background: (B, h, w) background weights (the trimap Neg); E_n = mean over all cells of F^_v * Neg.
        form: ``"code"`` (NoPrior ``model_base.py`` ``lvs_loss``: ``while True``, every sample runs at
            least one iteration; a cell joins the object when its L2 distance to E_p is below its
            distance to E_n) or ``"paper"`` (Algorithm 1: no iteration unless max(S_v) > eps; inner
            product with E_p above that with E_n).
        stop_threshold: a sample finishes after an iteration that claims no new cell or leaves
            max(remaining S_v) below it (the code's 0.1).
    """
    if form not in FORMS:
        raise ValueError(f"unknown IOI form {form!r}; choose one of {FORMS}")
    with torch.autocast(features.device.type, enabled=False):
        return _identify(features.float(), sim.float(), background.float(), form, stop_threshold)


def _identify(features: Tensor, sim: Tensor, background: Tensor, form: str, stop_threshold: float) -> Identification:
    b, c, h, w = features.shape
    cells = features.flatten(2)  # (B, C, P)
    negative = torch.einsum("bcp,bp->bc", cells, background.flatten(1)) / cells.shape[-1]  # mean over all P cells
    remaining = sim.flatten(1).detach().clone()
    assigned = torch.zeros_like(remaining, dtype=torch.bool)
    if form == "code":
        active = torch.ones(b, dtype=torch.bool, device=features.device)
    else:  # Algorithm 1's "while max(S_v) > eps": a sample with no sounding cell runs no iteration
        active = remaining.amax(1) > stop_threshold
    with torch.no_grad():  # regions and maps never carry gradients (the reference detaches its maps)
        points = cells.detach().transpose(1, 2)  # (B, P, C)
        if form == "code":
            to_negative = F.pairwise_distance(points, negative.detach()[:, None], eps=PAIRWISE_EPS)
        else:
            to_negative = torch.einsum("bpc,bc->bp", points, negative.detach())
    bank, maps, valid = [], [], []
    rows = torch.arange(b, device=features.device)
    # each iteration claims a new cell or finishes its sample: at most P + 1 iterations
    while bool(active.any()) and len(bank) <= h * w:
        chosen = remaining.argmax(1)
        anchor = cells[rows, :, chosen]  # (B, C) with gradients: the bank entries E_p
        with torch.no_grad():
            if form == "code":
                score = -F.pairwise_distance(points, points[rows, chosen][:, None], eps=PAIRWISE_EPS)  # -R_p
                region = -score < to_negative  # R_p < R_n
            else:
                score = torch.einsum("bpc,bc->bp", points, points[rows, chosen])  # R_p
                region = score > to_negative
        new = region & ~assigned & active[:, None]
        bank.append(anchor * active[:, None])
        maps.append(score * active[:, None])
        valid.append(active.clone())
        remaining = remaining.masked_fill(new, 0.0)
        assigned |= new
        finished = ~new.any(1) | (remaining.amax(1) < stop_threshold)
        active = active & ~finished
    if not bank:
        return Identification(cells.new_zeros(b, 0, c), cells.new_zeros(b, 0, h, w), active.new_zeros(b, 0), negative)
    return Identification(
        torch.stack(bank, 1), torch.stack(maps, 1).view(b, len(maps), h, w), torch.stack(valid, 1), negative
    )


def identify_sounding_objects(
    visual: Tensor, audio: Tensor, eps_neg: float = 0.4, sharpness: float = 0.03, form: str = "code", stop_threshold: float = 0.1
) -> Identification:
    """The IOI step on unit-norm features, in float32 under any autocast: S_v = cos(F_v, a),
    F^_v = F_v * S_v, the trimap background 1 - sigma((S_v - eps_neg) / sharpness), then
    :func:`identify_objects`."""
    with torch.autocast(visual.device.type, enabled=False):
        visual, audio = visual.float(), audio.float()
        sim = av_similarity(visual, audio)
        background = 1 - soft_mask(sim, eps_neg, sharpness)
        return identify_objects(visual * sim[:, None], sim, background, form, stop_threshold)


def find_root(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path compression (halving)
        i = parent[i]
    return i


def cluster_bank(
    bank: Tensor, negative: Tensor, tau1: float = 0.7, tau2: float = 0.6, form: str = "code"
) -> tuple[list[list[int]], list[int], list[bool]]:
    """Group one sample's bank (T, C) into objects.

    Entries with cos(E_n, E_t) > tau1 are background. Pairs (t, k < t) with cos > tau2 are joined
    by union-find as NoPrior's ``model_base.py`` calls it, ``union(parent, t, k)``: the root of the
    earlier entry k is re-parented under the root of the later entry t, so each group's root, the
    OSC anchor, is its latest foreground entry that joined another (the paper does not say). The
    code form joins a foreground entry with any earlier entry, background included (its k loop does
    not skip them), so a background entry can bridge two groups; the paper's removes background
    entries first.

    Returns ``(groups, roots, is_background)``: each group's foreground members in bank order (the
    groups ordered by their first member, as the reference's dict fills) and its union-find root.
    """
    t = bank.shape[0]
    if t == 0:
        return [], [], []
    unit = F.normalize(bank.float(), dim=1)
    is_background = (unit @ F.normalize(negative.float(), dim=0) > tau1).tolist()
    similar = (unit @ unit.T > tau2).tolist()
    parent = list(range(t))
    for i in range(t):
        if is_background[i]:
            continue
        for k in range(i):
            if form == "paper" and is_background[k]:
                continue
            if similar[i][k]:
                root_i, root_k = find_root(parent, i), find_root(parent, k)
                if root_i != root_k:
                    parent[root_k] = root_i
    groups: dict[int, list[int]] = {}
    for i in range(t):
        if not is_background[i]:
            groups.setdefault(find_root(parent, i), []).append(i)
    roots = list(groups)
    return [groups[r] for r in roots], roots, is_background

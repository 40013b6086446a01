"""AVSBench S4 mask metrics: mIoU and F-score of one video's frames
(``avs_s4/utils/utility.py``, ``shared/reference/evaluation.md`` A.5).

Self-supervised maps are scores in [0, 1], not logits: pass them with ``probabilities=True`` so the
sigmoid is not applied a second time (the S4 protocol feeds min-max normalised maps, so "p > 0.5"
keeps the pixels above the middle of each map's range). Re-exported by ``sslbench.eval.functional``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sslbench.eval.inputs import BINARY_GT_VALUES, as_tensor, check_gt_values, non_finite_rows

#: Eval_Fmeasure's thresholds: float32 ``linspace(0, 1 - 1e-10, 255)`` (the end rounds to 1.0)
F_THRESHOLDS = 255
F_BETA2 = 0.3


def _probabilities(logits, probabilities: bool) -> Tensor:
    """Scores in [0, 1]; a frame holding NaN or inf (a diverged model) becomes all -1: it predicts
    nothing at any threshold (IoU 0 unless the mask is empty, F 0)."""
    logits = as_tensor(logits, "logits").float()
    p = logits if probabilities else torch.sigmoid(logits)
    return p.masked_fill(non_finite_rows(logits)[:, None, None], -1.0)


def _masks(masks) -> Tensor:
    masks = as_tensor(masks, "masks")
    check_gt_values(masks, BINARY_GT_VALUES, "AVSBench S4 mask")
    return masks.float()


def s4_frame_iou(logits: Tensor, masks: Tensor, probabilities: bool = False) -> Tensor:
    """(N,) per-frame ``inter / (union + 1e-7)`` of ``p > 0.5`` (strict) against binary masks; a
    frame with an empty mask scores its true-negative pixels over H * W."""
    pred = (_probabilities(logits, probabilities) > 0.5).float()
    target = _masks(masks)
    inter = (pred * target).sum((1, 2))
    union = torch.maximum(pred, target).sum((1, 2))
    empty = target.sum((1, 2)) == 0
    inter = torch.where(empty, ((1 - target) * (1 - pred)).sum((1, 2)), inter)
    union = torch.where(empty, torch.full_like(union, masks.shape[-1] * masks.shape[-2]), union)
    return inter / (union + 1e-7)


def s4_miou(logits: Tensor, masks: Tensor, probabilities: bool = False) -> Tensor:
    """``mask_iou`` of one video: the mean of :func:`s4_frame_iou` over its (N, H, W) frames."""
    return s4_frame_iou(logits, masks, probabilities).sum() / logits.shape[0]


def s4_frame_fscores(logits: Tensor, masks: Tensor, probabilities: bool = False) -> tuple[Tensor, Tensor]:
    """Per frame, F (beta^2 = 0.3) at the 255 thresholds (``p >= th``) -> ((N, 255) scores, (N,)
    valid); frames with an empty mask are not valid (``Eval_Fmeasure`` skips them)."""
    p = _probabilities(logits, probabilities).flatten(1)
    target = _masks(masks).flatten(1)
    thresholds = torch.linspace(0, 1 - 1e-10, F_THRESHOLDS, device=p.device).expand(p.shape[0], -1).contiguous()
    # counts of p >= th from sorted values (exact integers, as the reference's float sums are)
    n = p.shape[1]
    predicted = n - torch.searchsorted(p.sort(1).values, thresholds)
    positive_scores = torch.where(target > 0, p, -1.0).sort(1).values  # -1 is below every threshold
    tp = (n - torch.searchsorted(positive_scores, thresholds)).float()
    precision, recall = tp / (predicted.float() + 1e-20), tp / (target.sum(1, keepdim=True) + 1e-20)
    f = (1 + F_BETA2) * precision * recall / (F_BETA2 * precision + recall)
    return torch.nan_to_num(f, nan=0.0), target.mean(1) != 0


def s4_fscore(logits: Tensor, masks: Tensor, probabilities: bool = False) -> Tensor:
    """``Eval_Fmeasure`` of one video: F averaged over its frames with a non-empty mask, then the
    max over thresholds; 0 when every mask is empty."""
    scores, valid = s4_frame_fscores(logits, masks, probabilities)
    if not valid.any():
        return torch.tensor(0.0)
    return scores[valid].mean(0).max()

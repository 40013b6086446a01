"""The audio-visual similarity map, the one computation every method shares."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def av_similarity(visual: Tensor, audio: Tensor, pairwise: bool = False) -> Tensor:
    """Inner products between visual locations and audio embeddings.

    Args:
        visual: (B, C, h, w) visual feature map (L2-normalised over C for cosines).
        audio: (B', C) audio embeddings (L2-normalised for cosines).
        pairwise: if True, every image against every audio -> (B, B', h, w), image-major;
            else each image against its own audio (B' == B) -> (B, h, w).
    """
    if visual.dim() != 4 or audio.dim() != 2 or visual.shape[1] != audio.shape[1]:
        raise ValueError(f"expected visual (B, C, h, w) and audio (B', C), got {tuple(visual.shape)}, {tuple(audio.shape)}")
    if pairwise:
        return torch.einsum("nchw,mc->nmhw", visual, audio)
    if visual.shape[0] != audio.shape[0]:
        raise ValueError(f"own-pair similarity needs as many audios as images, got {visual.shape[0]} and {audio.shape[0]}")
    return torch.einsum("nchw,nc->nhw", visual, audio)


def soft_mask(sim: Tensor, threshold: float = 0.65, sharpness: float = 0.03) -> Tensor:
    """LVS's soft foreground mask sigma((S - eps) / tau_m); one minus it is the soft background
    (LVS's hard negative, NoPrior's trimap Neg and E_n)."""
    return torch.sigmoid((sim - threshold) / sharpness)


def soft_threshold_mean(sim: Tensor, threshold: float = 0.65, sharpness: float = 0.03) -> Tensor:
    """LVS soft-positive average over space: sum(sigma((S - eps)/tau_m) * S) / sum(sigma(...)).

    Reduces the last two (spatial) dims. Used by LVS (positives), marginNCE and SSL-Align's s_L.
    """
    mask = soft_mask(sim, threshold, sharpness)
    return (mask * sim).sum((-2, -1)) / mask.sum((-2, -1))


def max_pooled_unit(features: Tensor) -> Tensor:
    """(B, C, h, w) -> (B, C): global max pooling (AdaptiveMaxPool2d(1)), then L2 over C. The
    audio embedding of LVS, SSL-Align, ICL and NoPrior."""
    return F.normalize(features.flatten(2).amax(-1), dim=1)

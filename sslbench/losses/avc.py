"""The paper form of NoPrior's audio-visual contrastive loss L_avc (Kim et al., CVPR 2024, Eqs. 1-3).

The reference code instead trains with the LVS loss (``sslbench.losses.LVSLoss``); this is the text:
    S^{n->m}(i, j) = cos(F^n_ij, l^m) / sum_ij cos(F^n_ij, l^n)        (normalised by the own-pair sum)
    M_n = sigmoid((S^{n->n} - alpha) / omega)
    Pos_n = <M_n, S^{n->n}> / |M_n|
    Neg_n = <1 - M_n, S^{n->n}> / |1 - M_n| + 1/(hw) sum_{m != n} <1, S^{n->m}>
    L_avc = -1/B sum_n log( exp(Pos_n) / (exp(Pos_n) + exp(Neg_n)) )
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sslbench.nn.similarity import av_similarity, soft_mask


def paper_avc_loss(visual: Tensor, audio: Tensor, alpha: float = 0.65, omega: float = 0.03) -> Tensor:
    """``visual`` (B, C, h, w) and ``audio`` (B, C), both unit-norm over C."""
    cos = av_similarity(visual.float(), audio.float(), pairwise=True)  # (B images, B audios, h, w)
    own = torch.diagonal(cos, dim1=0, dim2=1).permute(2, 0, 1)  # (B, h, w)
    s = cos / own.sum((-2, -1))[:, None, None, None]
    s_own = torch.diagonal(s, dim1=0, dim2=1).permute(2, 0, 1)
    mask = soft_mask(s_own, alpha, omega)
    positive = (mask * s_own).sum((-2, -1)) / mask.sum((-2, -1))
    hw = s.shape[-1] * s.shape[-2]
    others = s.sum((-2, -1)) * (1 - torch.eye(s.shape[0], device=s.device, dtype=s.dtype))
    negative = ((1 - mask) * s_own).sum((-2, -1)) / (1 - mask).sum((-2, -1)) + others.sum(1) / hw
    return -F.logsigmoid(positive - negative).mean()  # log(e^P / (e^P + e^N)) = logsigmoid(P - N)

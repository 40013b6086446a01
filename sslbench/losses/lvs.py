"""The LVS loss with its hard-negative background (Chen et al., CVPR 2021, "the hard way").

https://arxiv.org/abs/2104.02691; reference ``model.py`` (the training loop was never released).
With A_n = cos(v_n, a_n) (own pair) and A0_nk = cos(v_n, a_k) (all pairs), masks of sharpness
tau_m = 0.03: Pos = sigma((A - eps_p)/tau_m), Neg = 1 - sigma((A - eps_n)/tau_m) (trimap) or 1 - Pos.
    positive      = sum(Pos * A) / sum(Pos)
    easy negative = sum(Pos_all * A0) / sum(Pos_all), times (1 - 100 I): the diagonal becomes -99x
                    its value (a large negative logit, as in the code, not -inf)
    hard negative = sum(Neg * A) / sum(Neg), the image's own background
    loss = CE([positive - m | easy negatives | hard negative] / 0.07, target 0)   (image anchor only)
The masks are not detached, as in the reference code. The margin m is 0 in LVS; marginNCE's
Table 5 "LVS-marginNCE" rows train this loss with m = -0.2 and -0.3 (the positive raised).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslbench.nn.similarity import av_similarity, soft_mask, soft_threshold_mean


class LVSLoss(nn.Module):
    """Args:
    eps_pos: positive threshold epsilon_p (0.65).
    eps_neg: trimap negative threshold epsilon_n (0.4).
    mask_sharpness: tau_m of the sigmoid masks (0.03).
    tau: logit temperature (0.07).
    trimap: Neg from its own threshold eps_neg (True) or Neg = 1 - Pos (False).
    hard_negative: include the background term (True); False keeps positives and easy negatives.
    margin: subtracted from the positive similarity before the temperature (0; marginNCE: -0.2).
    """

    def __init__(
        self,
        eps_pos: float = 0.65,
        eps_neg: float = 0.4,
        mask_sharpness: float = 0.03,
        tau: float = 0.07,
        trimap: bool = True,
        hard_negative: bool = True,
        margin: float = 0.0,
    ):
        super().__init__()
        if trimap and eps_neg > eps_pos:
            raise ValueError(f"trimap needs eps_neg <= eps_pos, got {eps_neg} > {eps_pos}")
        self.eps_pos, self.eps_neg, self.mask_sharpness, self.tau = eps_pos, eps_neg, mask_sharpness, tau
        self.trimap, self.hard_negative, self.margin = trimap, hard_negative, margin

    def logits(self, visual: Tensor, audio: Tensor) -> Tensor:
        """(B, B + 1 [+ 1]) logits: column 0 the positive, then B easy negatives, then the hard negative."""
        a0 = av_similarity(visual.float(), audio.float(), pairwise=True)  # (B, B, h, w)
        own = torch.diagonal(a0, dim1=0, dim2=1).permute(2, 0, 1)  # (B, h, w)
        positive = soft_threshold_mean(own, self.eps_pos, self.mask_sharpness)
        easy = soft_threshold_mean(a0, self.eps_pos, self.mask_sharpness)
        easy = easy * (1 - 100 * torch.eye(easy.shape[0], device=easy.device, dtype=easy.dtype))
        columns = [positive[:, None] - self.margin, easy]
        if self.hard_negative:
            eps = self.eps_neg if self.trimap else self.eps_pos
            neg = 1 - soft_mask(own, eps, self.mask_sharpness)
            columns.append(((neg * own).sum((-2, -1)) / neg.sum((-2, -1)))[:, None])
        return torch.cat(columns, dim=1) / self.tau

    def forward(self, visual: Tensor, audio: Tensor) -> Tensor:
        logits = self.logits(visual, audio)
        return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device))

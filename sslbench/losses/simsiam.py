"""SimSiam's symmetric negative-cosine loss with stop-gradient (Chen & He, CVPR 2021), as SSPL
uses it (reference ``criterions.py``): L = 1/2 D(p1, sg(z2)) + 1/2 D(p2, sg(z1)), D = -cos."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class SimSiamLoss(nn.Module):
    """p1, p2: (B, D) predictor outputs; z1, z2: (B, D) projector outputs (detached here). In [-1, 1]."""

    def forward(self, p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor) -> Tensor:
        if not p1.shape == p2.shape == z1.shape == z2.shape or p1.dim() != 2:
            raise ValueError(f"expected four (B, D) tensors, got {[tuple(t.shape) for t in (p1, p2, z1, z2)]}")
        d12 = F.cosine_similarity(p1.float(), z2.detach().float(), dim=1).mean()
        d21 = F.cosine_similarity(p2.float(), z1.detach().float(), dim=1).mean()
        return -0.5 * (d12 + d21)

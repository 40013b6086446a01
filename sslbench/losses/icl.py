"""ICL's contrastive losses (Lin et al., "Unsupervised Sound Localization via Iterative Contrastive
Learning", CVIU 2023, https://arxiv.org/abs/2104.00315; no code released, methods.md 6).

phi = L2-normalise each location over channels, then average over the chosen locations.
- Eq. (3), initialisation: -1/k sum_i log softmax_j(phi(V_i) . a_j / tau)[i].
- Eq. (7), iterative: with pseudo-sounding patches v+_i = phi(V_i at R~_i > delta_v), pseudo-silent
  patches v-_i = phi(V_i at R~_i < delta_v) (intra-frame negatives) and y_ij = [<a~_i, a~_j> >= delta_a]
  (inter-frame relation; y_ii = 1),
      L = -1/k sum_i log( sum_j y_ij exp(v+_i . a_j / tau) / sum_j (exp(v-_i . a_j / tau) + exp(v+_i . a_j / tau)) ).
  Without intra-frame sampling the v- terms are left out of the denominator; without the
  inter-frame relation y is the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def masked_average(phi: Tensor, mask: Tensor) -> Tensor:
    """(B, C, h, w) unit features averaged over each sample's (B, h, w) mask -> (B, C); 0 where empty."""
    weights = mask.flatten(1).to(phi.dtype)
    return torch.einsum("bcp,bp->bc", phi.flatten(2), weights) / weights.sum(1, keepdim=True).clamp(min=1)


def initial_contrast(visual: Tensor, audio: Tensor, tau: float) -> Tensor:
    """Eq. (3). ``visual`` (B, C, h, w) raw features, ``audio`` (B, C) embeddings."""
    logits = F.normalize(visual, dim=1).mean((-2, -1)) @ audio.T / tau
    return F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device))


def iterative_contrast(
    visual: Tensor, audio: Tensor, positive: Tensor, negative: Tensor | None, related: Tensor, tau: float
) -> Tensor:
    """Eq. (7). ``positive`` / ``negative``: (B, h, w) boolean patch masks (``negative`` None
    without intra-frame sampling; a sample with no negative patch has no v- term); ``related``:
    (B, B) boolean y_ij with a true diagonal."""
    phi = F.normalize(visual, dim=1)
    pos_logits = masked_average(phi, positive) @ audio.T / tau
    numerator = torch.logsumexp(pos_logits.masked_fill(~related, float("-inf")), dim=1)
    terms = [pos_logits]
    if negative is not None:
        neg_logits = masked_average(phi, negative) @ audio.T / tau
        has_negative = negative.flatten(1).any(1, keepdim=True)
        terms.append(neg_logits.masked_fill(~has_negative, float("-inf")))
    denominator = torch.logsumexp(torch.cat(terms, dim=1), dim=1)
    return (denominator - numerator).mean()

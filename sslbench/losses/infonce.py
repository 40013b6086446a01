"""InfoNCE over audio-visual similarity maps: EZ-VSL's max-MIL loss and marginNCE.

EZ-VSL (Mo & Morgado, ECCV 2022, https://arxiv.org/abs/2208.00757), reference ``model.py``:
    logits_nm = max_hw <v_n(h, w), a_m> / tau,   loss = CE(logits, diag) + CE(logits^T, diag)
(summed over the two directions, not averaged). marginNCE (Park et al., ICASSP 2023,
https://arxiv.org/abs/2211.01966) subtracts a margin m from the positive logit only,
    -log exp((S_ii - m)/tau) / (exp((S_ii - m)/tau) + sum_{j != i} exp(S_ij / tau)),
so a negative margin (the paper's -0.2) raises the positive. Its headline model pools S_ij with
the LVS soft-threshold mean instead of the max, tau = 0.07, image anchor only (methods.md 3; no
code was released, so those three choices follow the paper text and are options here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslbench.nn.similarity import av_similarity, soft_threshold_mean

POOLINGS = ("max", "soft_threshold")


def pool_similarity(sim: Tensor, pooling: str, threshold: float = 0.65, sharpness: float = 0.03) -> Tensor:
    """Reduce (..., h, w) similarity maps to one score per pair."""
    if pooling == "max":
        return sim.flatten(-2).amax(-1)
    if pooling == "soft_threshold":
        return soft_threshold_mean(sim, threshold, sharpness)
    raise ValueError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")


class MarginInfoNCE(nn.Module):
    """Contrastive loss between every image and every audio of a batch (negatives per device).

    Args:
        tau: logit temperature (EZ-VSL 0.03; marginNCE 0.07).
        margin: subtracted from the positive similarity before the temperature (marginNCE -0.2; 0 = EZ-VSL).
        pooling: ``"max"`` (EZ-VSL max-MIL) or ``"soft_threshold"`` (LVS-style masked mean).
        symmetric: add the audio->image direction (EZ-VSL); False keeps the image anchor only.
        threshold, sharpness: epsilon and tau_m of the soft-threshold mask (0.65, 0.03).
    """

    def __init__(
        self,
        tau: float = 0.03,
        margin: float = 0.0,
        pooling: str = "max",
        symmetric: bool = True,
        threshold: float = 0.65,
        sharpness: float = 0.03,
    ):
        super().__init__()
        if tau <= 0:
            raise ValueError(f"tau must be positive, got {tau}")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")
        self.tau, self.margin, self.pooling, self.symmetric = tau, margin, pooling, symmetric
        self.threshold, self.sharpness = threshold, sharpness

    def logits(self, visual: Tensor, audio: Tensor) -> Tensor:
        """(B, B) logits, row = image, column = audio, margin applied on the diagonal."""
        sim = av_similarity(visual.float(), audio.float(), pairwise=True)
        scores = pool_similarity(sim, self.pooling, self.threshold, self.sharpness)
        eye = torch.eye(scores.shape[0], device=scores.device, dtype=scores.dtype)
        return (scores - self.margin * eye) / self.tau

    def forward(self, visual: Tensor, audio: Tensor) -> Tensor:
        """visual: (B, C, h, w) L2-normalised over C; audio: (B, C) L2-normalised. Returns a scalar."""
        logits = self.logits(visual, audio)
        target = torch.arange(logits.shape[0], device=logits.device)
        loss = F.cross_entropy(logits, target)
        if self.symmetric:
            loss = loss + F.cross_entropy(logits.t(), target)
        return loss

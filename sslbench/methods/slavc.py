"""SLAVC (Mo & Morgado, "A Closer Look at Weakly-Supervised Audio-Visual Source Localization",
NeurIPS 2022), https://arxiv.org/abs/2209.09634 ; reference ``model.py`` as read in methods.md 8.

EZ-VSL's encoders with two projection pairs (image 1x1 convs, audio Linears) and momentum (EMA)
copies of encoders and projections. Image features pass a strong dropout (p 0.9) before the
projections. The loss multiplies, per (image, audio) pair, a softmax over audios of head 1 with a
softmax over space of head 2, the online features of one modality facing the momentum features
of the other, in both directions. The map is the mean of the two heads' cosine / tau maps, taken
from the momentum encoders (``--use_mom_eval``, which the published numbers use).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datamodules.batch import AVBatch
from sslbench.methods.base import LocalizationMethod
from sslbench.methods.ogl import ObjectGuidance
from sslbench.nn.backbones import init_like_reference, resnet18_trunk


class SLAVCEncoders(nn.Module):
    """The parts the momentum copy mirrors: two trunks and two projection pairs."""

    def __init__(self, embed_dim: int, vision_weights: str | None, backbone_width: int):
        super().__init__()
        self.visual_net = resnet18_trunk(3, backbone_width, 2, weights=vision_weights)
        self.audio_net = resnet18_trunk(1, backbone_width, 2)
        width = self.visual_net.out_channels
        self.visual_proj1 = nn.Conv2d(width, embed_dim, kernel_size=1)
        self.visual_proj2 = nn.Conv2d(width, embed_dim, kernel_size=1)
        self.audio_proj1 = nn.Linear(width, embed_dim)
        self.audio_proj2 = nn.Linear(width, embed_dim)
        for module in (self.audio_net, self.visual_proj1, self.visual_proj2, self.audio_proj1, self.audio_proj2):
            init_like_reference(module)
        if vision_weights is None:
            init_like_reference(self.visual_net)

    def visual(self, image: Tensor, dropout: nn.Module) -> tuple[Tensor, Tensor]:
        features = dropout(self.visual_net(image))
        return F.normalize(self.visual_proj1(features), dim=1), F.normalize(self.visual_proj2(features), dim=1)

    def audio(self, audio: Tensor, dropout: nn.Module) -> tuple[Tensor, Tensor]:
        pooled = dropout(self.audio_net(audio).flatten(2).amax(-1))
        return F.normalize(self.audio_proj1(pooled), dim=1), F.normalize(self.audio_proj2(pooled), dim=1)


def slavc_direction_logits(query_1: Tensor, query_2: Tensor, key_1: Tensor, key_2: Tensor, tau: float) -> Tensor:
    """(N, M): log sum_hw softmax_over_audios(v1 . a1 / tau) * softmax_over_space(v2 . a2 / tau),
    v the (N, D, h, w) image maps and a the (M, D) audio vectors of the two heads."""
    head_1 = torch.einsum("nchw,mc->nmhw", query_1, key_1).flatten(2) / tau
    head_2 = torch.einsum("nchw,mc->nmhw", query_2, key_2).flatten(2) / tau
    return torch.log((head_1.softmax(dim=1) * head_2.softmax(dim=2)).sum(2))


class SLAVC(LocalizationMethod):
    """SLAVC with momentum targets and image-feature dropout.

    Args:
        embed_dim: projection width (512).
        tau: temperature (0.03).
        image_dropout: dropout on the visual trunk's map before projection (0.9).
        audio_dropout: dropout on the pooled audio features (0).
        momentum: EMA rate of the momentum encoders (0.999 in the training script; the code default 0.9).
        momentum_eval: maps from the momentum encoders (``--use_mom_eval``, as published).
        vision_weights: ``"imagenet"``, a file path, or null.
        backbone_width: ResNet-18 width; 64 is the real network.
        lr: Adam learning rate (1e-4).
        weight_decay: Adam weight decay (0).
        object_guidance: OGL at inference (the SLAVC README uses alpha 0.9).
    """

    ogl_normalization = "fixed_range"  # SLAVC test.py: min_max_norm over [-1/tau, 1/tau] and [0, 2.5]

    def __init__(
        self,
        embed_dim: int = 512,
        tau: float = 0.03,
        image_dropout: float = 0.9,
        audio_dropout: float = 0.0,
        momentum: float = 0.999,
        momentum_eval: bool = True,
        vision_weights: str | None = "imagenet",
        backbone_width: int = 64,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        object_guidance: ObjectGuidance | None = None,
    ):
        super().__init__(lr=lr, weight_decay=weight_decay, object_guidance=object_guidance)
        self.save_hyperparameters(ignore=["object_guidance"])
        self.tau, self.momentum, self.momentum_eval = tau, momentum, momentum_eval
        self.online = SLAVCEncoders(embed_dim, vision_weights, backbone_width)
        self.momentum_encoders = copy.deepcopy(self.online).requires_grad_(False)
        self.image_dropout = nn.Dropout(image_dropout)
        self.audio_dropout = nn.Dropout(audio_dropout)

    @property
    def raw_score_range(self) -> tuple[float, float]:
        return (-1.0 / self.tau, 1.0 / self.tau)

    def features(self, encoders: SLAVCEncoders, image: Tensor, audio: Tensor) -> tuple[Tensor, ...]:
        return (*encoders.visual(image, self.image_dropout), *encoders.audio(audio, self.audio_dropout))

    def forward(self, image: Tensor, audio: Tensor) -> Tensor:
        """Mean of the two heads' own-pair cosine / tau maps (B, h, w)."""
        encoders = self.momentum_encoders if self.momentum_eval else self.online
        v1, v2, a1, a2 = self.features(encoders, image, audio)
        return (torch.einsum("nchw,nc->nhw", v1, a1) + torch.einsum("nchw,nc->nhw", v2, a2)) / (2 * self.tau)

    @torch.no_grad()
    def update_momentum_encoders(self) -> None:
        """EMA of the parameters (buffers are the momentum nets' own, as in the reference)."""
        for online, target in zip(self.online.parameters(), self.momentum_encoders.parameters()):
            target.mul_(self.momentum).add_(online.detach(), alpha=1 - self.momentum)

    def compute_loss(self, batch: AVBatch) -> dict[str, Tensor]:
        if self.training:  # the reference steps the EMA before it computes this batch's targets
            self.update_momentum_encoders()
        v1, v2, a1, a2 = self.features(self.online, batch.image, batch.audio)
        with torch.no_grad():
            tv1, tv2, ta1, ta2 = self.features(self.momentum_encoders, batch.image, batch.audio)
        image_to_audio = slavc_direction_logits(v1, v2, ta1, ta2, self.tau)
        audio_to_image = slavc_direction_logits(tv1, tv2, a1, a2, self.tau)
        labels = torch.arange(len(v1), device=v1.device)
        loss_i2a, loss_a2i = F.cross_entropy(image_to_audio, labels), F.cross_entropy(audio_to_image, labels)
        return {"loss": loss_i2a + loss_a2i, "image_to_audio": loss_i2a, "audio_to_image": loss_a2i}

    def frozen_modules(self) -> list[nn.Module]:
        return []  # the momentum nets train their BatchNorm statistics, as the reference's do

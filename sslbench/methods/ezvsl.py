"""EZ-VSL (Mo & Morgado, "Localizing Visual Sounds the Easy Way", ECCV 2022) and marginNCE.

https://arxiv.org/abs/2208.00757 ; marginNCE: Park, Senocak, Chung, ICASSP 2023,
https://arxiv.org/abs/2211.01966 ("an LVS-based loss on top of the EZ-VSL architecture").
Architecture (reference ``model.py``): torchvision ResNet-18s; vision ImageNet-initialised and
fine-tuned, 1x1 conv 512 -> dim, L2 over channels (7 x 7 at 224); audio 1-channel ResNet-18,
global max pooling, Linear 512 -> dim, L2. The audio net and both projections are re-initialised
like the reference (Kaiming convs, BN ~ N(1, 0.02), Linear trunc-normal 0.01).

Defaults are EZ-VSL (max-MIL, tau 0.03, symmetric, margin 0). ``margin=-0.2`` alone is Table 5's
"EZ-VSL-marginNCE"; ``experiments/ezvsl_margin.yaml`` is the paper's headline model.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from datamodules.batch import AVBatch
from sslbench.losses.infonce import MarginInfoNCE
from sslbench.methods.base import LocalizationMethod
from sslbench.methods.ogl import ObjectGuidance
from sslbench.nn.backbones import init_like_reference, resnet18_trunk
from sslbench.nn.similarity import av_similarity


class EZVSL(LocalizationMethod):
    """EZ-VSL with a configurable margin, pooling and temperature.

    Args:
        embed_dim: projection width (512).
        tau: logit temperature (EZ-VSL 0.03; marginNCE 0.07).
        margin: marginNCE margin on the positive similarity (0 = EZ-VSL; the paper's best -0.2).
        pooling: ``"max"`` (EZ-VSL max-MIL) or ``"soft_threshold"`` (marginNCE's LVS-style mean).
        symmetric: sum the image->audio and audio->image losses (EZ-VSL); False = image anchor only.
        vision_weights: ``"imagenet"``, a file path, or null for random init (EZ-VSL uses ImageNet).
        backbone_width: ResNet-18 width; 64 is the real network, smaller is for tests and CPU demos.
        lr: Adam learning rate (1e-4).
        weight_decay: Adam weight decay (EZ-VSL 0; marginNCE uses some, value not given).
        object_guidance: OGL at inference (EZ-VSL's published numbers use alpha 0.4).
    """

    def __init__(
        self,
        embed_dim: int = 512,
        tau: float = 0.03,
        margin: float = 0.0,
        pooling: Literal["max", "soft_threshold"] = "max",
        symmetric: bool = True,
        vision_weights: str | None = "imagenet",
        backbone_width: int = 64,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        object_guidance: ObjectGuidance | None = None,
    ):
        super().__init__(lr=lr, weight_decay=weight_decay, object_guidance=object_guidance)
        self.save_hyperparameters(ignore=["object_guidance"])
        self.criterion = MarginInfoNCE(tau=tau, margin=margin, pooling=pooling, symmetric=symmetric)
        self.visual_net = resnet18_trunk(3, backbone_width, 2, weights=vision_weights)
        self.audio_net = resnet18_trunk(1, backbone_width, 2)
        width = self.visual_net.out_channels
        self.visual_proj = nn.Conv2d(width, embed_dim, kernel_size=1)
        self.audio_proj = nn.Linear(width, embed_dim)
        for module in (self.audio_net, self.visual_proj, self.audio_proj):
            init_like_reference(module)
        if vision_weights is None:
            init_like_reference(self.visual_net)
            if backbone_width == 64:
                rank_zero_warn("EZVSL: vision_weights=null trains the visual ResNet-18 from scratch; the paper fine-tunes ImageNet weights")

    def embed(self, image: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D, h, w) and (B, D) L2-normalised features."""
        visual = F.normalize(self.visual_proj(self.visual_net(image)), dim=1)
        pooled = self.audio_net(audio).flatten(2).amax(-1)  # AdaptiveMaxPool2d(1)
        return visual, F.normalize(self.audio_proj(pooled), dim=1)

    @property
    def raw_score_range(self) -> tuple[float, float]:
        return (-1.0 / self.criterion.tau, 1.0 / self.criterion.tau)

    def forward(self, image: Tensor, audio: Tensor) -> Tensor:
        """Own-pair cosine map / tau, (B, h, w) (EZ-VSL's Savl)."""
        visual, audio_emb = self.embed(image, audio)
        return av_similarity(visual, audio_emb) / self.criterion.tau

    def compute_loss(self, batch: AVBatch) -> dict[str, Tensor]:
        visual, audio = self.embed(batch.image, batch.audio)
        return {"loss": self.criterion(visual, audio)}

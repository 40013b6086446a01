"""LVS (Chen et al., "Localizing Visual Sounds the Hard Way", CVPR 2021).

https://arxiv.org/abs/2104.02691 ; reference ``model.py`` and ``models/base_models.py``.
Two "LVS-style" ResNet-18s with layer4 stride 1 (224 -> 14 x 14), no projection heads: the image
map is L2-normalised over its 512 channels, the audio map max-pooled to 512 and L2-normalised.
The reference's ImageNet load is commented out and every conv/BN is re-initialised after
construction, so vision starts from random init by default (SSL-Align Table 1: "no pre-trained
vision"). The loss is ``sslbench.losses.LVSLoss``; the training loop was never released.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from datamodules.batch import AVBatch
from sslbench.losses.lvs import LVSLoss
from sslbench.methods.base import LocalizationMethod
from sslbench.methods.ogl import ObjectGuidance
from sslbench.nn.backbones import init_like_reference, load_trunk_weights, resnet18_trunk
from sslbench.nn.similarity import av_similarity, max_pooled_unit


class LVS(LocalizationMethod):
    """LVS with its soft-mask loss and hard-negative background.

    Args:
        eps_pos: positive-mask threshold epsilon_p (0.65).
        eps_neg: trimap negative threshold epsilon_n (0.4).
        mask_sharpness: tau_m of the sigmoid masks (0.03).
        tau: logit temperature (0.07).
        trimap: use the separate negative threshold (the reference default).
        hard_negative: include the image's own background as a negative (the "hard way").
        margin: marginNCE's margin on the positive (0 in LVS; Table 5's "LVS-marginNCE": -0.2, -0.3).
        vision_weights: null (the reference trains vision from scratch), ``"imagenet"`` or a path.
        backbone_width: ResNet-18 width; 64 is the real network.
        lr: Adam learning rate (1e-4; not released, the EZ-VSL value).
        weight_decay: Adam weight decay.
        object_guidance: optional OGL at inference.
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
        vision_weights: str | None = None,
        backbone_width: int = 64,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        object_guidance: ObjectGuidance | None = None,
    ):
        super().__init__(lr=lr, weight_decay=weight_decay, object_guidance=object_guidance)
        self.save_hyperparameters(ignore=["object_guidance"])
        self.criterion = LVSLoss(eps_pos, eps_neg, mask_sharpness, tau, trimap, hard_negative, margin)
        self.visual_net = resnet18_trunk(3, backbone_width, layer4_stride=1)
        init_like_reference(self.visual_net)  # AVENet.__init__ re-initialises every conv and BN
        load_trunk_weights(self.visual_net, vision_weights)  # after the re-init, so a requested start survives
        self.audio_net = resnet18_trunk(1, backbone_width, layer4_stride=1)
        init_like_reference(self.audio_net)

    def embed(self, image: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        visual = F.normalize(self.visual_net(image), dim=1)
        return visual, max_pooled_unit(self.audio_net(audio))

    raw_score_range = (-1.0, 1.0)  # cosine

    def forward(self, image: Tensor, audio: Tensor) -> Tensor:
        """Own-pair cosine map A (B, 14, 14 at 224), as LVS's test uses it."""
        visual, audio_emb = self.embed(image, audio)
        return av_similarity(visual, audio_emb)

    def compute_loss(self, batch: AVBatch) -> dict[str, Tensor]:
        visual, audio = self.embed(batch.image, batch.audio)
        return {"loss": self.criterion(visual, audio)}

"""SSPL (Song et al., "Self-Supervised Predictive Learning: A Negative-Free Method for Sound
Source Localization in Visual Scenes", CVPR 2022), https://arxiv.org/abs/2203.13412 ; reference
``sspl_w_pcm/`` and ``sspl_wo_pcm/`` (methods.md 4).

- Vision: frozen ImageNet VGG16 up to conv5_3 (no ReLU, no pool5): 512 x 14 x 14.
- Audio: frozen VGGish on 3 log-mel examples; a trainable head g (Linear 128-512, ReLU, Linear
  512-512). VGGish and g outputs are both averaged over the examples; f_a is L2-normalised for PCM.
- PCM (``use_pcm``) refines the visual map with the audio (``sslbench.nn.pcm``).
- Attention: S = cos(f_v, g(f_a)), min-max scaled with 1e-10, f_av = sum_hw S~ f_v (a sum over
  the un-normalised features).
- SimSiam projector / predictor on f_av of two augmented views sharing one audio; negative
  cosine with stop-gradient. No negatives.
- AdamW (0.9, 0.999), weight decay 1e-4 except PCM's rates, one learning rate per part (Table S1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from datamodules.batch import AVBatch
from datamodules.views import ViewSpec
from sslbench.losses.simsiam import SimSiamLoss
from sslbench.methods.base import LocalizationMethod
from sslbench.methods.ogl import ObjectGuidance
from sslbench.nn.pcm import PredictiveCoding
from sslbench.nn.similarity import av_similarity
from sslbench.nn.vgg import VGG16Conv53, VGGish

#: (lr_sound, lr_head) of the reference scripts, by use_pcm: with PCM (20 epochs) and without (100 epochs)
LEARNING_RATES = {True: (2e-5, 5e-5), False: (5e-4, 2e-3)}


def simsiam_projector(dim: int, hidden: int = 2048) -> nn.Sequential:
    """512 -> 2048 -> 2048 -> 2048, bias-free Linear layers each followed by BN, ReLU after the
    first two, the last BN without affine parameters."""
    return nn.Sequential(
        nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden, affine=False),
    )


def simsiam_predictor(hidden: int = 2048, bottleneck: int = 512) -> nn.Sequential:
    """2048 -> 512 (BN, ReLU) -> 2048 (Linear with bias)."""
    return nn.Sequential(
        nn.Linear(hidden, bottleneck, bias=False), nn.BatchNorm1d(bottleneck), nn.ReLU(inplace=True),
        nn.Linear(bottleneck, hidden),
    )


class SSPL(LocalizationMethod):
    """SSPL with or without its predictive coding module.

    Args:
        use_pcm: refine the visual features with PCM (SSPL); False is "SSPL w/o PCM".
        pcm_steps: PCM computing steps T (5).
        embed_dim: width of the audio head g (512, the visual channels).
        projector_dim: SimSiam projector width (2048).
        predictor_dim: SimSiam predictor bottleneck (512).
        vision_weights: ``"imagenet"`` (torchvision VGG16), a file path, or null (random init).
        vggish_weights: torchvggish's ``vggish-10086976.pth`` path (``"vggish"``: the hub cache), or null.
        freeze_encoders: keep VGG16 and VGGish frozen (the paper); False fine-tunes them.
        backbone_width: VGG width; 64 is the real network, smaller for tests and CPU runs.
        lr_pcm: PCM learning rate (2e-5; Table S1's "lr_frame").
        lr_sound: audio head learning rate (null: the reference scripts', 2e-5 with PCM, 5e-4
            without, Table S1's SoundNet-Flickr rates; VGG-Sound's differ without PCM: 5e-3).
        lr_head: SimSiam head learning rate (null: 5e-5 with PCM, 2e-3 without; VGG-Sound w/o PCM: 1e-2).
        lr_encoders: learning rate of the encoders when they are not frozen (1e-4).
        weight_decay: AdamW weight decay (1e-4), none on PCM's rates.
        object_guidance: optional OGL at inference.
    """

    def __init__(
        self,
        use_pcm: bool = True,
        pcm_steps: int = 5,
        embed_dim: int = 512,
        projector_dim: int = 2048,
        predictor_dim: int = 512,
        vision_weights: str | None = "imagenet",
        vggish_weights: str | None = "vggish",
        freeze_encoders: bool = True,
        backbone_width: int = 64,
        lr_pcm: float = 2e-5,
        lr_sound: float | None = None,
        lr_head: float | None = None,
        lr_encoders: float = 1e-4,
        weight_decay: float = 1e-4,
        object_guidance: ObjectGuidance | None = None,
    ):
        super().__init__(lr=lr_pcm, weight_decay=weight_decay, object_guidance=object_guidance)
        self.save_hyperparameters(ignore=["object_guidance"])
        default_sound, default_head = LEARNING_RATES[use_pcm]
        self.lr_sound = default_sound if lr_sound is None else lr_sound
        self.lr_head = default_head if lr_head is None else lr_head
        self.lr_pcm, self.lr_encoders, self.freeze_encoders = lr_pcm, lr_encoders, freeze_encoders
        self.visual_net = VGG16Conv53(backbone_width, vision_weights)
        self.vggish = VGGish(backbone_width, vggish_weights)
        channels = self.visual_net.out_channels
        self.sound_head = nn.Sequential(nn.Linear(128, embed_dim), nn.ReLU(inplace=True), nn.Linear(embed_dim, channels))
        self.pcm = PredictiveCoding(channels, 128, pcm_steps) if use_pcm else None
        self.projector = simsiam_projector(channels, projector_dim)
        self.predictor = simsiam_predictor(projector_dim, predictor_dim)
        self.criterion = SimSiamLoss()
        if freeze_encoders:
            self.visual_net.requires_grad_(False)
            self.vggish.requires_grad_(False)
            if backbone_width == 64 and (vision_weights is None or vggish_weights is None):
                rank_zero_warn("SSPL: a frozen encoder without pretrained weights cannot learn; the paper freezes pretrained ones")

    train_views = ViewSpec(second_image=True)
    raw_score_range = (-1.0, 1.0)  # cosine

    def frozen_modules(self) -> list[nn.Module]:
        return [self.visual_net, self.vggish] if self.freeze_encoders else []

    def encode_audio(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        """VGGish log-mel examples (B, E, 96, 64) -> f_a (B, 128) and g(f_a) (B, C), both
        averaged over the E examples (g is applied per example first, as the reference does)."""
        if audio.dim() != 4 or audio.shape[-2:] != (96, 64):
            raise ValueError(f"SSPL needs VGGish examples (B, E, 96, 64) (data.audio_preset: vggish), got {tuple(audio.shape)}")
        b, e = audio.shape[:2]
        f_a = self.vggish(audio.reshape(b * e, 1, 96, 64))
        g = self.sound_head(f_a)
        return f_a.view(b, e, -1).mean(1), g.view(b, e, -1).mean(1)

    def refined_visual(self, image: Tensor, f_a: Tensor) -> Tensor:
        visual = self.visual_net(image)
        return self.pcm(visual, F.normalize(f_a, dim=1)) if self.pcm is not None else visual

    def forward(self, image: Tensor, audio: Tensor) -> Tensor:
        """S = cos(f~_v, g(f_a)) at feature resolution (B, 14, 14 at 224)."""
        f_a, g = self.encode_audio(audio)
        return av_similarity(F.normalize(self.refined_visual(image, f_a), dim=1), F.normalize(g, dim=1))

    def attended(self, image: Tensor, f_a: Tensor, g: Tensor) -> Tensor:
        """f_av = sum_hw S~(h, w) f~_v(:, h, w), S~ the min-max scaled attention (B, C)."""
        visual = self.refined_visual(image, f_a)
        sim = av_similarity(F.normalize(visual, dim=1), F.normalize(g, dim=1)).flatten(1)
        lo, hi = sim.amin(1, keepdim=True), sim.amax(1, keepdim=True)
        weights = (sim - lo) / (hi - lo + 1e-10)
        return torch.einsum("bp,bcp->bc", weights, visual.flatten(2))

    def compute_loss(self, batch: AVBatch) -> dict[str, Tensor]:
        if "image_2" not in batch.views:
            raise ValueError("SSPL trains on two views of each frame; the data module adds `image_2` when it trains SSPL")
        f_a, g = self.encode_audio(batch.audio)
        z1 = self.projector(self.attended(batch.image, f_a, g))
        z2 = self.projector(self.attended(batch.views["image_2"], f_a, g))
        return {"loss": self.criterion(self.predictor(z1), self.predictor(z2), z1, z2)}

    def embeddings(self, image: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        """The average-pooled visual features (without PCM, which needs the audio) and g(f_a): both
        live in the visual channels, where the attention compares them, and neither sees the other."""
        _, g = self.encode_audio(audio)
        return F.normalize(self.visual_net(image).mean((-2, -1)), dim=1), F.normalize(g, dim=1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        decay = self.hparams.weight_decay
        groups = [
            {"params": list(self.sound_head.parameters()), "lr": self.lr_sound},
            {"params": [*self.projector.parameters(), *self.predictor.parameters()], "lr": self.lr_head},
        ]
        if self.pcm is not None:
            rates = {id(p) for p in self.pcm.rate_parameters()}
            groups.append({"params": [p for p in self.pcm.parameters() if id(p) not in rates], "lr": self.lr_pcm})
            groups.append({"params": self.pcm.rate_parameters(), "lr": self.lr_pcm, "weight_decay": 0.0})
        if not self.freeze_encoders:
            groups.append({"params": [*self.visual_net.parameters(), *self.vggish.parameters()], "lr": self.lr_encoders})
        return torch.optim.AdamW(groups, betas=(0.9, 0.999), weight_decay=decay)

"""NoPrior: iterative object identification (IOI) with the OSC loss (Kim, Um, Lee, Kim, "Learning
to Visually Localize Sound Sources from Mixtures without Prior Source Knowledge", CVPR 2024),
https://arxiv.org/abs/2403.17420 ; reference VisualAIKHU/NoPrior_MultiSSL (methods.md 7).

- Vision: torchvision ResNet-18 (ImageNet), weights frozen by default but its BatchNorm in
  training mode, as the code leaves it, 7 x 7 at 224; audio: 1-channel
  ResNet-18, global max pooling, L2. No projection heads. (The reference also carries
  Hear-The-Flow's optical-flow attention, which the paper never mentions; it is left out.)
- L_avc: the LVS loss on the image features (the code, default) or the paper's Eqs. (1)-(3).
- IOI (``sslbench.nn.ioi``): F^_v = F_v * S_v, E_n from the trimap background, then iterations
  (at least one per sample in the code) until no new cell or max(S_v) < 0.1; distances (code) or
  inner products (paper); in float32 under any autocast.
- Clustering: background when cos(E_n, E_t) > tau1 = 0.7, union-find on cos > tau2 = 0.6.
- L_osc (``sslbench.losses.osc``), code or paper normalisation. Total = L_avc + L_osc.
- Inference: one map per object group, the mean of its iterations' maps: a variable number of
  objects per sample. Single-source test sets are scored through them too, as mixtures of one.
  ``single_map: true`` scores S_v as one object instead: the single-map baseline on the very
  same network.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from datamodules.batch import AVBatch
from sslbench.eval.functional import upsample
from sslbench.losses.avc import paper_avc_loss
from sslbench.losses.lvs import LVSLoss
from sslbench.losses.osc import osc_loss
from sslbench.methods.base import LocalizationMethod
from sslbench.methods.ogl import ObjectGuidance
from sslbench.nn.backbones import init_like_reference, resnet18_trunk
from sslbench.nn.ioi import Identification, cluster_bank, identify_sounding_objects
from sslbench.nn.similarity import av_similarity, max_pooled_unit

VISION_BATCHNORM = ("batch", "frozen")
#: each choice between the reference code and the paper
Form = Literal["code", "paper"]


class IOI(LocalizationMethod):
    """Sound sources in mixtures of unknown size.

    Args:
        avc: L_avc form, ``"code"`` (the LVS loss) or ``"paper"`` (Eqs. 1-3).
        ioi_form: foreground selection, ``"code"`` (L2 distances) or ``"paper"`` (inner products).
        clustering: ``"code"`` (union-find through background entries too) or ``"paper"`` (background removed first).
        osc_normalization: ``"code"`` (sum over groups, / B) or ``"paper"`` (also / K_b per sample).
        eps_pos: alpha, the mask threshold (0.65).
        eps_neg: the trimap background threshold (eps_pos - 0.25 = 0.4).
        mask_sharpness: omega, the mask temperature (0.03).
        tau: logit temperature of L_avc (0.07).
        tau1: background threshold of the clustering (0.7).
        tau2: same-object threshold of the clustering (0.6).
        stop_threshold: a sample stops iterating when max(remaining S_v) falls below it (0.1).
        osc_weight: lambda_2, weight of L_osc (1; lambda_1 of L_avc is 1).
        freeze_vision: keep the ImageNet ResNet-18's weights frozen (the reference default).
        vision_batchnorm: the frozen ResNet's BatchNorm in training, ``"batch"`` (the code: it is only
            ``requires_grad=False``, so it normalises with batch statistics and its running
            statistics move) or ``"frozen"`` (eval mode: ImageNet statistics, nothing moves).
        vision_weights: ``"imagenet"``, a file path, or null.
        backbone_width: ResNet-18 width; 64 is the real network.
        lr: Adam learning rate (1e-4 in the scripts).
        weight_decay: Adam weight decay.
        object_guidance: optional OGL on the single-source path.
        single_map: at test time return S_v as the one object of every sample (a baseline), not
            the IOI groups.
    """

    raw_score_range = (-1.0, 1.0)  # the own-pair cosine map

    def __init__(
        self,
        avc: Form = "code",
        ioi_form: Form = "code",
        clustering: Form = "code",
        osc_normalization: Form = "code",
        eps_pos: float = 0.65,
        eps_neg: float = 0.4,
        mask_sharpness: float = 0.03,
        tau: float = 0.07,
        tau1: float = 0.7,
        tau2: float = 0.6,
        stop_threshold: float = 0.1,
        osc_weight: float = 1.0,
        freeze_vision: bool = True,
        vision_batchnorm: Literal["batch", "frozen"] = "batch",
        vision_weights: str | None = "imagenet",
        backbone_width: int = 64,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        object_guidance: ObjectGuidance | None = None,
        single_map: bool = False,
    ):
        super().__init__(lr=lr, weight_decay=weight_decay, object_guidance=object_guidance)
        for name, value in (("avc", avc), ("ioi_form", ioi_form), ("clustering", clustering), ("osc_normalization", osc_normalization)):
            if value not in ("code", "paper"):
                raise ValueError(f"{name} must be 'code' or 'paper', got {value!r}")
        if vision_batchnorm not in VISION_BATCHNORM:
            raise ValueError(f"vision_batchnorm must be one of {VISION_BATCHNORM}, got {vision_batchnorm!r}")
        self.save_hyperparameters(ignore=["object_guidance"])
        self.lvs_loss = LVSLoss(eps_pos, eps_neg, mask_sharpness, tau, trimap=True, hard_negative=True)
        self.visual_net = resnet18_trunk(3, backbone_width, 2, weights=vision_weights)
        self.audio_net = resnet18_trunk(1, backbone_width, 2)
        init_like_reference(self.audio_net)
        self.freeze_vision = freeze_vision
        if freeze_vision:
            self.visual_net.requires_grad_(False)
            if vision_weights is None and backbone_width == 64:
                rank_zero_warn("IOI: a frozen vision network without pretrained weights keeps random features")

    def frozen_modules(self) -> list[nn.Module]:
        return [self.visual_net] if self.freeze_vision and self.hparams.vision_batchnorm == "frozen" else []

    @property
    def scores_single_sets_as_mixtures(self) -> bool:
        """NoPrior scores a single-source test set through its object maps, as a mixture of K = 1
        (``test_step`` with ``concat_num=1``); the single-map baseline scores S_v instead."""
        return not self.hparams.single_map

    def embed(self, image: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        return F.normalize(self.visual_net(image), dim=1), max_pooled_unit(self.audio_net(audio))

    def forward(self, image: Tensor, audio: Tensor) -> Tensor:
        """The sound-associated map S_v (B, h, w): own-pair cosine."""
        return av_similarity(*self.embed(image, audio))

    def identify(self, visual: Tensor, audio: Tensor) -> Identification:
        """Run the IOI loop on unit-norm features."""
        hp = self.hparams
        return identify_sounding_objects(visual, audio, hp.eps_neg, hp.mask_sharpness, hp.ioi_form, hp.stop_threshold)

    def clusters(self, found: Identification) -> tuple[list[list[list[int]]], list[list[int]]]:
        """Per sample, the object groups of its valid bank entries and their roots."""
        hp = self.hparams
        groups, roots = [], []
        for b in range(found.bank.shape[0]):
            count = int(found.valid[b].sum())
            sample_groups, sample_roots, _ = cluster_bank(found.bank[b, :count].detach(), found.negative[b].detach(), hp.tau1, hp.tau2, hp.clustering)
            groups.append(sample_groups)
            roots.append(sample_roots)
        return groups, roots

    def compute_loss(self, batch: AVBatch) -> dict[str, Tensor]:
        visual, audio = self.embed(batch.image, batch.audio)
        hp = self.hparams
        if hp.avc == "code":
            avc = self.lvs_loss(visual, audio)
        else:
            avc = paper_avc_loss(visual, audio, hp.eps_pos, hp.mask_sharpness)
        with torch.autocast(visual.device.type, enabled=False):  # bf16 flips R_p < R_n and the cosines
            found = self.identify(visual.float(), audio.float())
            groups, roots = self.clusters(found)
            osc = osc_loss(found.bank, found.negative, groups, roots, hp.osc_normalization)
        objects = torch.tensor([len(g) for g in groups], dtype=torch.float32).mean()
        return {"loss": avc + hp.osc_weight * osc, "avc": avc, "osc": osc, "objects": objects}

    @torch.no_grad()
    def object_maps(self, image: Tensor, audio: Tensor, size: int | tuple[int, int]) -> list[Tensor]:
        """Per sample, (n_i, H, W): the mean map of each object group, upsampled; n_i may be 0."""
        if self.hparams.single_map:
            return super().object_maps(image, audio, size)
        visual, audio_emb = self.embed(image, audio)
        found = self.identify(visual.float(), audio_emb.float())
        groups, _ = self.clusters(found)
        size = (size, size) if isinstance(size, int) else tuple(size)
        out = []
        for b, sample_groups in enumerate(groups):
            if not sample_groups:
                out.append(found.maps.new_zeros(0, *size))
                continue
            maps = torch.stack([found.maps[b, members].mean(0) for members in sample_groups])
            out.append(upsample(maps, size, self.upsample_mode))
        return out

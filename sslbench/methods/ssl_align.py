"""SSL-Align (Senocak et al., "Sound Source Localization is All about Cross-Modal Alignment",
ICCV 2023), https://arxiv.org/abs/2309.10724 ; training code read in kaistmm/ssl_kccv
``Alignment/`` (methods.md 5).

LVS-style ResNet-18s (14 x 14 at 224), vision from scratch by default. Two similarities per
(image, audio) pair, both contrasted image -> audio with tau 0.07 over the batch:
- s_L, localization: the code's sigma((cos - 0.65)/0.03)-weighted mean of the cosine map
  (``similarity="code"``, default) or the paper's Eq. (3), the plain spatial mean (``"paper"``);
- s_A, alignment: cosine of projected global features. As ``Alignment/model.py`` ``forward`` (and
  Eq. 4), the *raw* trunk features are pooled (image by max in the code, average in the paper) and
  projected by one Linear 512 -> 512 per modality, then L2-normalised; the retrieval embeddings
  are these projections.
Positives: V = {v, v_aug, v_conc} x A = {a, a_aug, a_conc}, 9 pairs, each with both losses,
summed (not averaged), as the code does. Each view is its own forward pass (image and audio
together), as in ``train.py``, so BatchNorm normalises each view with its own batch statistics.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datamodules.batch import AVBatch
from datamodules.views import STRONG_FORMS, ViewSpec
from sslbench.methods.base import LocalizationMethod
from sslbench.methods.ogl import ObjectGuidance
from sslbench.nn.backbones import init_like_reference, load_trunk_weights, resnet18_trunk
from sslbench.nn.similarity import av_similarity, soft_threshold_mean

SIMILARITIES = ("code", "paper")
POOLINGS = ("max", "avg")


def localization_similarity(visual: Tensor, audio: Tensor, form: str = "code", eps: float = 0.65, sharpness: float = 0.03) -> Tensor:
    """s_L of every image against every audio, (B, B'): the soft-thresholded (code) or plain
    (paper) spatial mean of the cosine map. ``visual`` (B, C, h, w) and ``audio`` (B', C) unit-norm."""
    maps = av_similarity(visual, audio, pairwise=True)
    if form == "code":
        return soft_threshold_mean(maps, eps, sharpness)
    if form == "paper":
        return maps.mean((-2, -1))
    raise ValueError(f"unknown s_L form {form!r}; choose one of {SIMILARITIES}")


class SSLAlign(LocalizationMethod):
    """Cross-modal alignment with multiple positives.

    Args:
        similarity: form of s_L, ``"code"`` (soft-threshold mean, produced the checkpoints) or ``"paper"``.
        image_pooling: global image pooling before the projection, ``"max"`` (code) or ``"avg"`` (paper).
        alignment: add the s_A loss (feature alignment); False is Table 8's "without alignment".
        augmented_positives: use v_aug and a_aug (multi-view invariance).
        conceptual_positives: use v_conc and a_conc from ``data.neighbours`` (semantic invariance).
        audio_shift_seconds: a_aug shifts the audio window by up to this much (3.5 s).
        augmentation: v_aug as the code draws it (``"code"``: rotation, factor-range colour jitter
            and blur on the full frame before resize and crop) or as it looks intended
            (``"intended"``: ColorJitter(0.4, 0.4, 0.4, 0.1) on the cropped view);
            ``datamodules.views.strong_augmentation``.
        eps: s_L threshold (0.65).
        sharpness: s_L mask sharpness (0.03).
        tau: logit temperature (0.07).
        proj_dim: projection size of s_A (512).
        vision_weights: null (the paper trains vision from scratch), ``"imagenet"`` or a path.
        backbone_width: ResNet-18 width; 64 is the real network.
        lr: Adam learning rate (1e-4).
        weight_decay: Adam weight decay (1e-4 in the code).
        object_guidance: optional OGL at inference (the paper's "+OGL" rows use alpha 0.4).
    """

    ogl_normalization = "lvs"  # SSLalignment test.py: 1 - normalize_img(-x) for both maps

    def __init__(
        self,
        similarity: Literal["code", "paper"] = "code",
        image_pooling: Literal["max", "avg"] = "max",
        alignment: bool = True,
        augmented_positives: bool = True,
        conceptual_positives: bool = True,
        audio_shift_seconds: float = 3.5,
        augmentation: Literal["code", "intended"] = "code",
        eps: float = 0.65,
        sharpness: float = 0.03,
        tau: float = 0.07,
        proj_dim: int = 512,
        vision_weights: str | None = None,
        backbone_width: int = 64,
        lr: float = 1e-4,
        weight_decay: float = 1e-4,
        object_guidance: ObjectGuidance | None = None,
    ):
        super().__init__(lr=lr, weight_decay=weight_decay, object_guidance=object_guidance)
        if similarity not in SIMILARITIES:
            raise ValueError(f"unknown s_L form {similarity!r}; choose one of {SIMILARITIES}")
        if image_pooling not in POOLINGS:
            raise ValueError(f"unknown image pooling {image_pooling!r}; choose one of {POOLINGS}")
        if augmentation not in STRONG_FORMS:
            raise ValueError(f"unknown augmentation {augmentation!r}; choose one of {STRONG_FORMS}")
        self.save_hyperparameters(ignore=["object_guidance"])
        self.similarity, self.image_pooling, self.alignment = similarity, image_pooling, alignment
        self.eps, self.sharpness, self.tau = eps, sharpness, tau
        self.visual_net = resnet18_trunk(3, backbone_width, layer4_stride=1)
        init_like_reference(self.visual_net)
        load_trunk_weights(self.visual_net, vision_weights)
        self.audio_net = resnet18_trunk(1, backbone_width, layer4_stride=1)
        init_like_reference(self.audio_net)
        width = self.visual_net.out_channels
        self.visual_proj = nn.Linear(width, proj_dim)
        self.audio_proj = nn.Linear(width, proj_dim)
        self.train_views = ViewSpec(
            strong_image=augmented_positives,
            audio_shift_seconds=audio_shift_seconds if augmented_positives else 0.0,
            conceptual=conceptual_positives,
            strong_form=augmentation,
        )

    raw_score_range = (-1.0, 1.0)  # cosine

    def features(self, image: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        """Raw trunk outputs: the (B, C, h, w) image map and the max-pooled (B, C) audio vector."""
        return self.visual_net(image), self.audio_net(audio).flatten(2).amax(-1)

    def embed(self, image: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        """(B, C, h, w) and (B, C) unit-norm features, as LVS."""
        visual, audio = self.features(image, audio)
        return F.normalize(visual, dim=1), F.normalize(audio, dim=1)

    def project(self, visual: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        """The s_A space from *raw* features (``features``): the image map pooled, each side
        projected, then L2-normalised."""
        pooled = visual.flatten(2).amax(-1) if self.image_pooling == "max" else visual.mean((-2, -1))
        return F.normalize(self.visual_proj(pooled), dim=1), F.normalize(self.audio_proj(audio), dim=1)

    def forward(self, image: Tensor, audio: Tensor) -> Tensor:
        """Own-pair cosine map (B, 14, 14 at 224), as the reference's LVS-path inference."""
        visual, audio_emb = self.embed(image, audio)
        return av_similarity(visual, audio_emb)

    def embeddings(self, image: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        return self.project(*self.features(image, audio))

    def compute_loss(self, batch: AVBatch) -> dict[str, Tensor]:
        pairs = [(batch.image, batch.audio)]  # the views: original, augmented, conceptual
        for suffix in ("aug", "conc"):
            if f"image_{suffix}" in batch.views and f"audio_{suffix}" in batch.views:
                pairs.append((batch.views[f"image_{suffix}"], batch.views[f"audio_{suffix}"]))
        maps, vectors, projected = [], [], []
        for image, audio in pairs:  # one forward pass per view, as train.py calls the model
            visual_raw, audio_raw = self.features(image, audio)
            maps.append(F.normalize(visual_raw, dim=1).float())
            vectors.append(F.normalize(audio_raw, dim=1).float())
            if self.alignment:
                projected.append([p.float() for p in self.project(visual_raw, audio_raw)])
        target = torch.arange(len(batch), device=batch.image.device)
        loc = align = torch.zeros((), device=batch.image.device)
        for i in range(len(pairs)):  # image view i against audio view j, the 3 x 3 grid of train.py
            for j in range(len(pairs)):
                s_l = localization_similarity(maps[i], vectors[j], self.similarity, self.eps, self.sharpness)
                loc = loc + F.cross_entropy(s_l / self.tau, target)
                if self.alignment:
                    align = align + F.cross_entropy(projected[i][0] @ projected[j][1].T / self.tau, target)
        return {"loss": loc + align, "localization": loc, "alignment": align}

"""ICL (Lin, Tseng, Lee, Lin, Yang, "Unsupervised Sound Localization via Iterative Contrastive
Learning", CVIU 2023), https://arxiv.org/abs/2104.00315 . No code was released; the reconstruction
follows the paper text and methods.md 6, with every unstated value marked *guess* below.

LVS-style ResNet-18s (MSSL's backbone: 256 px -> 16 x 16), vision ImageNet-initialised, audio on
MSSL's log-mel (``audio_preset: mssl``). Response map R = V * a (pixel-wise inner product), min-max
normalised (Eq. 1). Training: Eq. (3) until ``iterative_epoch``, then Eq. (7) with pseudo-labels
from the previous epoch's model; intra-frame negatives from ``intra_epoch`` on and the
inter-frame relation from ``inter_epoch`` on, so Table 2's "Itr(e) Intra(e) Inter(e)" rows rerun.

Pseudo-labels: at the start of every iterative epoch the trunks are copied and frozen; that
snapshot (the model as it ended the previous epoch) scores each training batch, so R~ and a~
belong to the very crop and flip being trained on, and are identical on every DDP rank.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datamodules.batch import AVBatch
from sslbench.eval.functional import min_max
from sslbench.losses.icl import initial_contrast, iterative_contrast
from sslbench.methods.base import LocalizationMethod
from sslbench.methods.ogl import ObjectGuidance
from sslbench.nn.backbones import init_like_reference, load_trunk_weights, resnet18_trunk
from sslbench.nn.similarity import av_similarity, max_pooled_unit


class ICL(LocalizationMethod):
    """Iterative contrastive learning with intra-frame sampling and the inter-frame relation.

    Args:
        tau: temperature (*guess* 0.07; the supplement with it is not available).
        delta_v: threshold of the min-max normalised response for sounding patches (*guess* 0.5).
        delta_a: audio-similarity threshold of the inter-frame relation (*guess* 0.9).
        iterative_epoch: first epoch trained with Eq. (7) (Table 2's "Itr(3)"); earlier ones use Eq. (3).
        intra_epoch: first epoch with intra-frame negatives (*guess* 3: Table 2's full model).
        inter_epoch: first epoch with the inter-frame relation (*guess* 3).
        sampled_patches: sounding patches drawn at random per sample (null: all of them; the count is not given).
        vision_weights: ``"imagenet"`` (the paper), a file path, or null.
        backbone_width: ResNet-18 width; 64 is the real network.
        lr: Adam learning rate (*guess* 1e-4).
        weight_decay: Adam weight decay.
        object_guidance: optional OGL at inference.
    """

    raw_score_range = None  # inner products of unnormalised features: unbounded

    def __init__(
        self,
        tau: float = 0.07,
        delta_v: float = 0.5,
        delta_a: float = 0.9,
        iterative_epoch: int = 3,
        intra_epoch: int = 3,
        inter_epoch: int = 3,
        sampled_patches: int | None = None,
        vision_weights: str | None = "imagenet",
        backbone_width: int = 64,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        object_guidance: ObjectGuidance | None = None,
    ):
        super().__init__(lr=lr, weight_decay=weight_decay, object_guidance=object_guidance)
        if not 0.0 <= delta_v <= 1.0 or not 0.0 <= delta_a <= 1.0:
            raise ValueError(f"delta_v and delta_a are thresholds in [0, 1], got {delta_v} and {delta_a}")
        if intra_epoch < iterative_epoch or inter_epoch < iterative_epoch:
            raise ValueError("intra- and inter-frame terms need the pseudo-labels of the iterative stage: "
                             f"intra_epoch ({intra_epoch}) and inter_epoch ({inter_epoch}) must be >= iterative_epoch ({iterative_epoch})")
        self.save_hyperparameters(ignore=["object_guidance"])
        self.tau, self.delta_v, self.delta_a = tau, delta_v, delta_a
        self.visual_net = resnet18_trunk(3, backbone_width, layer4_stride=1)
        load_trunk_weights(self.visual_net, vision_weights)
        self.audio_net = resnet18_trunk(1, backbone_width, layer4_stride=1)
        init_like_reference(self.audio_net)
        self._snapshot: list[nn.Module] = []  # a plain list: not a submodule, not in checkpoints

    def forward(self, image: Tensor, audio: Tensor) -> Tensor:
        """R = V * a at feature resolution (B, h, w); evaluation min-max normalises it (Eq. 1)."""
        return av_similarity(self.visual_net(image), max_pooled_unit(self.audio_net(audio)))

    def embeddings(self, image: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        phi = F.normalize(self.visual_net(image), dim=1).mean((-2, -1))
        return F.normalize(phi, dim=1), max_pooled_unit(self.audio_net(audio))

    def stage(self, epoch: int | None = None) -> dict[str, bool]:
        """Which parts of the loss are on in ``epoch`` (default: the current one)."""
        epoch = self.current_epoch if epoch is None else epoch
        hp = self.hparams
        return {"iterative": epoch >= hp.iterative_epoch, "intra": epoch >= hp.intra_epoch, "inter": epoch >= hp.inter_epoch}

    def take_snapshot(self) -> None:
        """Freeze a copy of the trunks as they are now: the pseudo-labeller of the epoch ahead."""
        self._snapshot[:] = [copy.deepcopy(net).eval().requires_grad_(False) for net in (self.visual_net, self.audio_net)]

    def on_train_epoch_start(self) -> None:
        if self.stage()["iterative"]:  # the weights as the previous epoch left them
            self.take_snapshot()

    @torch.no_grad()
    def pseudo_labels(self, image: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        """R~ (B, h, w), min-max normalised, and a~ (B, C) from the previous epoch's snapshot."""
        if not self._snapshot:  # e.g. a loss computed outside fit: the current weights stand in
            self.take_snapshot()
        visual_net, audio_net = self._snapshot
        previous_audio = max_pooled_unit(audio_net(audio))
        return min_max(av_similarity(visual_net(image), previous_audio).float()), previous_audio

    def sounding_patches(self, response: Tensor) -> Tensor:
        """x_pos = R~ > delta_v, randomly thinned to ``sampled_patches``; all patches if none pass."""
        positive = response > self.delta_v
        positive |= ~positive.flatten(1).any(1)[:, None, None]
        count = self.hparams.sampled_patches
        if count is not None:
            draw = torch.rand(positive.shape, device=positive.device).masked_fill(~positive, 2.0).flatten(1)
            rank = draw.argsort(1).argsort(1).view_as(positive)
            positive &= rank < count
        return positive

    def compute_loss(self, batch: AVBatch) -> dict[str, Tensor]:
        visual = self.visual_net(batch.image)
        audio = max_pooled_unit(self.audio_net(batch.audio))
        stage = self.stage()
        if not stage["iterative"]:
            return {"loss": initial_contrast(visual.float(), audio.float(), self.tau)}
        response, previous_audio = self.pseudo_labels(batch.image, batch.audio)
        positive = self.sounding_patches(response)
        negative = response < self.delta_v if stage["intra"] else None
        eye = torch.eye(len(batch), dtype=torch.bool, device=visual.device)
        related = (previous_audio @ previous_audio.T >= self.delta_a) | eye if stage["inter"] else eye
        loss = iterative_contrast(visual.float(), audio.float(), positive, negative, related, self.tau)
        return {"loss": loss, "sounding_fraction": positive.float().mean(), "related_pairs": related.float().sum(1).mean()}

"""AVGN (Mo & Tian, "Audio-Visual Grouping Network for Sound Localization from Mixtures", CVPR 2023),
https://arxiv.org/abs/2303.17056 ; reference stoneMo/AVGN ``model.py`` (``AVGN``), ``grouping.py``,
``train.py`` (``train``, ``validate_multi``) and ``datasets.py``.

EZ-VSL's encoders (torchvision ResNet-18s, vision ImageNet, 1x1 conv / Linear projections, L2)
feed two grouping transformers (``sslbench.nn.grouping``) that share C learnable class tokens:
the audio one turns the clip's embedding into one embedding per class, the visual one the 7 x 7
locations. Training is weakly supervised by class labels:

    loc   = EZ-VSL's max-MIL InfoNCE (both directions) between the frame's map and the audio's
            class embedding of the frame's class (not L2-normalised)
    token = CE(fc_cls(class tokens), identity)          (each token names its class)
    pred  = BCE(sum sigmoid(fc_v(visual groups)), frame classes) + BCE(.. audio groups .., mixture classes)
    loss  = loc + token + pred

The map of a source is cos(frame, the audio's embedding of that source's class) / tau; the
reference picks the class from the ground truth at test time too (``validate_multi`` runs the
model once per source with its label). ``test_tokens: predicted`` picks the classes the audio
presence head finds most likely instead, for sets without labels.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from datamodules.batch import AVBatch, Unreadable
from sslbench.eval.functional import upsample
from sslbench.methods.ezvsl import EZVSL
from sslbench.methods.ogl import ObjectGuidance
from sslbench.nn.grouping import GroupingEncoder
from sslbench.nn.similarity import av_similarity


def frames_of(image: Tensor, frames: int) -> Tensor:
    """(B, 3, K*H, W) frames stacked vertically -> (B, K, 3, H, W)."""
    b, c, height, w = image.shape
    return image.view(b, c, frames, height // frames, w).permute(0, 2, 1, 3, 4)


class AVGN(EZVSL):
    """Audio-visual grouping with learnable class tokens on EZ-VSL's encoders.

    Args:
        num_classes: C, the class tokens (37 VGG-Instruments, 8 MUSIC-Duet, 221 VGGSound; the set's classes).
        embed_dim: projection and transformer width (512).
        tau: logit temperature (0.03).
        depth_audio: audio transformer blocks (3).
        depth_visual: visual transformer blocks (3).
        heads: attention heads (8).
        drop_path: stochastic depth of every block (0.1).
        assignment: ``soft`` (``--attn_assign soft``, every script) or ``hard`` (straight-through, Gumbel).
        image_dropout: dropout on the image trunk's features (0).
        audio_dropout: dropout on the pooled audio features (0).
        test_tokens: ``labels`` (the reference: each source's gt class picks its token; the
            predicted classes stand in where a set has none) or ``predicted`` (always the classes
            the audio presence head ranks highest).
        vision_weights: ``"imagenet"`` (the code), a file path, or null.
        backbone_width: ResNet-18 width; 64 is the real network.
        lr: Adam learning rate (1e-4).
        weight_decay: Adam weight decay (0).
        object_guidance: optional OGL at inference (AVGN's README: alpha 0.3).
    """

    #: object map i is source i's, in the order of the gt frames (``validate_multi`` scores frame j
    #: against the map of source j)
    maps_follow_sources = True

    def __init__(
        self,
        num_classes: int = 10,
        embed_dim: int = 512,
        tau: float = 0.03,
        depth_audio: int = 3,
        depth_visual: int = 3,
        heads: int = 8,
        drop_path: float = 0.1,
        assignment: Literal["soft", "hard"] = "soft",
        image_dropout: float = 0.0,
        audio_dropout: float = 0.0,
        test_tokens: Literal["labels", "predicted"] = "labels",
        vision_weights: str | None = "imagenet",
        backbone_width: int = 64,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        object_guidance: ObjectGuidance | None = None,
    ):
        super().__init__(embed_dim=embed_dim, tau=tau, vision_weights=vision_weights, backbone_width=backbone_width,
                         lr=lr, weight_decay=weight_decay, object_guidance=object_guidance)
        self.save_hyperparameters(ignore=["object_guidance"])
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if assignment not in ("soft", "hard"):
            raise ValueError(f"assignment must be 'soft' or 'hard', got {assignment!r}")
        if test_tokens not in ("labels", "predicted"):
            raise ValueError(f"test_tokens must be 'labels' or 'predicted', got {test_tokens!r}")
        self.image_dropout, self.audio_dropout = nn.Dropout(image_dropout), nn.Dropout(audio_dropout)
        self.class_tokens = nn.Parameter(torch.zeros(num_classes, embed_dim))
        hard = assignment == "hard"
        self.audio_grouping = GroupingEncoder(embed_dim, num_classes, depth_audio, heads, drop_path, hard)
        self.visual_grouping = GroupingEncoder(embed_dim, num_classes, depth_visual, heads, drop_path, hard)
        self.audio_presence, self.visual_presence = nn.Linear(embed_dim, 1), nn.Linear(embed_dim, 1)
        self.token_classifier = nn.Linear(embed_dim, num_classes)
        for m in self.modules():  # model.py AVGN._init_weights, applied last: every Linear and LayerNorm
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self._eval_classes: Tensor | None = None

    # -- the network -------------------------------------------------------------------------

    def embed_visual(self, image: Tensor) -> Tensor:
        """(B, D, h, w) L2-normalised (image dropout before the projection)."""
        return F.normalize(self.visual_proj(self.image_dropout(self.visual_net(image))), dim=1)

    def embed_audio(self, audio: Tensor) -> Tensor:
        """(B, D) L2-normalised (max-pooled, audio dropout before the projection)."""
        return F.normalize(self.audio_proj(self.audio_dropout(self.audio_net(audio).flatten(2).amax(-1))), dim=1)

    def embed(self, image: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        return self.embed_visual(image), self.embed_audio(audio)

    def audio_groups(self, audio_emb: Tensor) -> Tensor:
        """(B, C, D): the clip's embedding of each class."""
        return self.audio_grouping(audio_emb[:, None], self.class_tokens)

    def class_maps(self, visual: Tensor, groups: Tensor, classes: Tensor) -> Tensor:
        """(B, h, w) map of each frame against the audio embedding of ``classes`` (B,)."""
        chosen = groups[torch.arange(groups.shape[0], device=groups.device), classes]
        return av_similarity(visual.float(), chosen.float()) / self.criterion.tau

    def predicted_classes(self, groups: Tensor, k: int) -> Tensor:
        """(B, k) the classes the audio presence head ranks highest."""
        return torch.sigmoid(self.audio_presence(groups)).squeeze(-1).topk(k, dim=-1).indices

    def _classes_for(self, groups: Tensor, k: int) -> Tensor:
        """(B, k) source classes: the batch's labels (reference) where known, else predicted."""
        predicted = self.predicted_classes(groups, k)
        labels = self._eval_classes
        if self.hparams.test_tokens == "predicted" or labels is None:
            return predicted
        labels = labels[:, :k].to(groups.device)
        if labels.shape[1] < k or bool((labels < 0).any()):
            rank_zero_warn("AVGN: some test samples have no class labels; their tokens are the predicted classes", once=True)
            labels = torch.cat([labels, predicted[:, labels.shape[1]:]], dim=1) if labels.shape[1] < k else labels
            labels = torch.where(labels < 0, predicted, labels)
        return labels

    def forward(self, image: Tensor, audio: Tensor, classes: Tensor | None = None) -> Tensor:
        """(B, h, w) map / tau of each frame for its class (``classes`` (B,); default: the batch's
        label in evaluation, else the audio's most likely class)."""
        visual, audio_emb = self.embed(image, audio)
        groups = self.audio_groups(audio_emb)
        if classes is None:
            classes = self._classes_for(groups, 1)[:, 0]
        return self.class_maps(visual, groups, classes)

    @torch.no_grad()
    def object_maps(self, image: Tensor, audio: Tensor, size: int | tuple[int, int]) -> list[Tensor]:
        """Per sample, (S, K*H, W): source i's class token applied to each of the K stacked frames,
        the sources in the order of the gt frames (``validate_multi`` runs frame j with label j);
        S = the sources labelled (one frame may hold several), else K."""
        size = (size, size) if isinstance(size, int) else tuple(size)
        frames = max(1, image.shape[-2] // image.shape[-1])
        sources = self._eval_classes.shape[1] if self._eval_classes is not None else frames
        b = image.shape[0]
        visual = self.embed_visual(frames_of(image, frames).flatten(0, 1))  # (B*K, D, h, w)
        groups = self.audio_groups(self.embed_audio(audio))  # (B, C, D): one clip per sample
        classes = self._classes_for(groups, sources)  # (B, S)
        per_frame_groups = groups.repeat_interleave(frames, dim=0)
        frame_size = (size[0] // frames, size[1])
        maps = []
        for i in range(sources):  # each frame upsampled on its own, as validate_multi does, then stacked
            per_frame = self.class_maps(visual, per_frame_groups, classes[:, i].repeat_interleave(frames))  # (B*K, h, w)
            per_frame = upsample(per_frame, frame_size, self.upsample_mode)
            maps.append(per_frame.view(b, frames, *frame_size).flatten(1, 2))  # (B, K*H, W)
        out = torch.stack(maps, dim=1).flatten(0, 1)  # (B*S, K*H, W)
        if self.object_guidance is not None:
            out = self.object_guidance.refine(out, image.repeat_interleave(sources, dim=0), self.upsample_mode, self.raw_score_range)
        return list(out.view(b, sources, *size))

    def validation_loss(self, batch: AVBatch) -> Tensor | None:
        known = batch.source_classes if batch.source_classes is not None else batch.class_id[:, None]
        return super().validation_loss(batch) if bool((known[:, 0] >= 0).all()) else None

    def _eval_step(self, batch: AVBatch | Unreadable, stage: str) -> dict[str, Tensor] | None:
        if isinstance(batch, AVBatch):  # the labels pick the tokens, as validate() passes them
            self._eval_classes = batch.source_classes if batch.source_classes is not None else batch.class_id[:, None]
        try:
            return super()._eval_step(batch, stage)
        finally:
            self._eval_classes = None

    # -- training ----------------------------------------------------------------------------

    def losses(self, frame: Tensor, audio: Tensor, frame_classes: Tensor, audio_targets: Tensor) -> dict[str, Tensor]:
        """``AVGN.forward(mode='train')``: ``frame_classes`` (B,) the class of each frame,
        ``audio_targets`` (B, C) the multi-hot classes heard."""
        visual, audio_emb = self.embed(frame, audio)
        b = visual.shape[0]
        visual_groups = self.visual_grouping(visual.flatten(2).transpose(1, 2), self.class_tokens)
        audio_groups = self.audio_groups(audio_emb)
        chosen = audio_groups[torch.arange(b, device=visual.device), frame_classes]
        loc = self.criterion(visual, chosen)
        c = self.class_tokens.shape[0]
        token = F.cross_entropy(self.token_classifier(self.class_tokens), torch.arange(c, device=visual.device))
        visual_targets = F.one_hot(frame_classes, c).to(visual_groups.dtype)
        with torch.autocast(visual.device.type, enabled=False):  # binary_cross_entropy refuses half precision
            v_prob = torch.sigmoid(self.visual_presence(visual_groups).float()).sum(-1)
            a_prob = torch.sigmoid(self.audio_presence(audio_groups).float()).sum(-1)
            pred = F.binary_cross_entropy(v_prob, visual_targets.float()) + F.binary_cross_entropy(a_prob, audio_targets.float())
        return {"loss": loc + token + pred, "localization": loc, "token": token, "presence": pred}

    def training_targets(self, batch: AVBatch) -> tuple[Tensor, Tensor, Tensor]:
        """The frame the loss sees, its class and the classes heard. A mixture's first frame and
        first source (``image[:, 0]``, ``cls_target[:, 0]``), all its sources heard."""
        c = self.class_tokens.shape[0]
        sources = batch.source_classes if batch.source_classes is not None else batch.class_id[:, None]
        if bool((sources[:, 0] < 0).any()) or bool((sources >= c).any()):
            raise ValueError(
                f"AVGN trains with class labels in [0, {c}): this training set has samples without a class "
                f"(or with more classes than num_classes={c})"
            )
        k = sources.shape[1]
        image = batch.image
        if k > 1 and image.shape[-2] == k * image.shape[-1]:  # K frames stacked: the first one
            image = frames_of(image, k)[:, 0]
        heard = torch.zeros(len(batch), c, device=sources.device)
        valid = sources >= 0
        heard[torch.arange(len(batch), device=sources.device)[:, None].expand_as(sources)[valid], sources[valid]] = 1.0
        return image, sources[:, 0], heard  # a class heard twice counts once (the reference never pairs a class with itself)

    def compute_loss(self, batch: AVBatch) -> dict[str, Tensor]:
        frame, frame_classes, heard = self.training_targets(batch)
        return self.losses(frame, batch.audio, frame_classes.to(frame.device), heard.to(frame.device))

    def embeddings(self, image: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        visual, audio_emb = self.embed(image, audio)
        return F.normalize(visual.mean((-2, -1)), dim=1), audio_emb

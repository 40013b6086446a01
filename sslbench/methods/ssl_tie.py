"""SSL-TIE (Liu et al., "Exploiting Transformation Invariance and Equivariance for Self-supervised
Sound Localisation", ACM MM 2022), https://arxiv.org/abs/2206.12772 ; reference jinxiang-liu/SSL-TIE
``models/model.py`` (``AVENet``), ``main.py`` (``train_one_epoch``), ``utils/tf_equivariance_loss.py``,
``datasets/dataloader.py``, ``opts.py`` and ``scripts/train_*.sh``.

A Siamese LVS: the same LVS-style trunks, map and loss (``AVENet.forward`` is LVS's, thresholds
0.65 / 0.4, trimap, hard negative, temperature 0.07), run on the frame and on a rotated, zoomed,
flipped copy of it with the same audio (``sslbench.losses.equivariance``):

    loss = 0.5 (LVS(frame) + LVS(transformed frame)) + w * MSE(map(transformed frame), transformed map(frame))

Invariance comes from the loader (MoCo v2 frame augmentation, SpecAugment on the mel spectrogram
with p 0.8), equivariance from the consistency term. The map is the own-pair cosine A, tested with
LVS's protocol (``evaluator.protocol: lvs``), as its ``main.py:test`` does.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from datamodules.batch import AVBatch
from sslbench.losses.equivariance import RotateZoomFlip, consistency
from sslbench.methods.lvs import LVS
from sslbench.methods.ogl import ObjectGuidance
from sslbench.nn.similarity import av_similarity

#: 10 log10 of AmplitudeToDB's floor: what a masked (zeroed) mel bin becomes in decibels
MASKED_DB = -100.0


def spec_augment(audio: Tensor, time_width: int, freq_width: int, probability: float, fill: float = MASKED_DB) -> Tensor:
    """SSL-TIE's loader: with probability ``probability`` per sample, torchaudio's
    ``TimeMasking(time_width)`` then ``FrequencyMasking(freq_width)`` on the power mel spectrogram
    before ``AmplitudeToDB``, i.e. ``fill`` dB here. ``audio``: (B, 1, mels, frames)."""
    import torchaudio.functional as AF

    masked = AF.mask_along_axis_iid(audio, time_width, fill, axis=3)
    masked = AF.mask_along_axis_iid(masked, freq_width, fill, axis=2)
    chosen = torch.rand(audio.shape[0], device=audio.device) < probability
    return torch.where(chosen[:, None, None, None], masked, audio)


class SSLTIE(LVS):
    """LVS trained on a frame and its rotated / zoomed-out / flipped copy, with map equivariance.

    Args:
        eps_pos: positive-mask threshold (0.65, ``--epsilon``).
        eps_neg: trimap negative threshold (0.4, ``--epsilon2``).
        mask_sharpness: sigmoid mask temperature (0.03).
        tau: logit temperature (0.07).
        trimap: separate negative threshold (``--tri_map``, on).
        hard_negative: the image's own background as a negative (``--Neg``, on).
        max_rotation: largest rotation in whole degrees (45 in ``opts.py``; 30 in every train script).
        zoom_scale: the zoom-out factor drawn for half the batches (0.5, fixed in the code; its
            ``--rescale_factor`` is never read).
        zoom_probability: probability of a zoom-out batch (0.5).
        flip_probability: probability of a flipped batch (0.5).
        equivariance_weight: weight of the consistency term (``--trans_equi_weight``, 1).
        consistency_kind: ``mse`` (``--equi_loss_type mse``) or ``l1``.
        detach_first_map: stop the consistency gradient through the first view's map
            (``--heatmap_no_grad``, off).
        spec_augment: the loader's SpecAugment (``--aud_aug SpecAug`` in the scripts).
        spec_time_mask: TimeMasking's width parameter (180 of 670 frames).
        spec_freq_mask: FrequencyMasking's width parameter (35 of 257 mels).
        spec_probability: probability a sample is masked (0.8).
        spec_fill: what a masked bin becomes: -100 dB, the ``ssltie`` front-end's floor (another
            front-end has its own: log(1e-7) / 12 = -1.343 for the scipy log spectrogram).
        vision_weights: null (the code builds vision with ``pretrained=False`` and re-initialises it).
        backbone_width: ResNet-18 width; 64 is the real network.
        lr: Adam learning rate (1e-4).
        weight_decay: Adam weight decay (1e-4).
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
        max_rotation: int = 45,
        zoom_scale: float = 0.5,
        zoom_probability: float = 0.5,
        flip_probability: float = 0.5,
        equivariance_weight: float = 1.0,
        consistency_kind: Literal["mse", "l1"] = "mse",
        detach_first_map: bool = False,
        spec_augment: bool = True,
        spec_time_mask: int = 180,
        spec_freq_mask: int = 35,
        spec_probability: float = 0.8,
        spec_fill: float = MASKED_DB,
        vision_weights: str | None = None,
        backbone_width: int = 64,
        lr: float = 1e-4,
        weight_decay: float = 1e-4,
        object_guidance: ObjectGuidance | None = None,
    ):
        super().__init__(eps_pos=eps_pos, eps_neg=eps_neg, mask_sharpness=mask_sharpness, tau=tau, trimap=trimap,
                         hard_negative=hard_negative, vision_weights=vision_weights, backbone_width=backbone_width,
                         lr=lr, weight_decay=weight_decay, object_guidance=object_guidance)
        self.save_hyperparameters(ignore=["object_guidance"])
        if consistency_kind not in ("mse", "l1"):
            raise ValueError(f"consistency_kind must be 'mse' or 'l1', got {consistency_kind!r}")

    def draw_transform(self, batch_size: int) -> RotateZoomFlip:
        h = self.hparams
        return RotateZoomFlip.draw(batch_size, h.max_rotation, h.zoom_scale, h.zoom_probability, h.flip_probability)

    def compute_loss(self, batch: AVBatch, transform: RotateZoomFlip | None = None) -> dict[str, Tensor]:
        """``train_one_epoch``: both views through the same networks (BatchNorm in training mode
        sees each), LVS's loss on each, and the consistency of the maps. ``transform`` fixes the
        draw (tests, parity checks)."""
        h = self.hparams
        audio = batch.audio
        if h.spec_augment and self.training:
            audio = spec_augment(audio, h.spec_time_mask, h.spec_freq_mask, h.spec_probability, h.spec_fill)
        transform = transform or self.draw_transform(len(batch))
        canvas = tuple(batch.image.shape[-2:])  # the reference's input_hw: its 224 x 224 frames

        visual, audio_emb = self.embed(batch.image, audio)
        heatmap = av_similarity(visual.float(), audio_emb.float())[:, None]  # A, (B, 1, h, w)
        contrast = self.criterion(visual, audio_emb)

        moved = transform.apply(batch.image, canvas)
        visual_t, audio_t = self.embed(moved, audio)
        heatmap_t = av_similarity(visual_t.float(), audio_t.float())[:, None]
        contrast_t = self.criterion(visual_t, audio_t)

        first = heatmap.detach() if h.detach_first_map else heatmap
        equivariance = consistency(heatmap_t, transform.apply(first, canvas), h.consistency_kind)
        total = 0.5 * (contrast + contrast_t) + h.equivariance_weight * equivariance
        return {"loss": total, "contrast": contrast, "contrast_transformed": contrast_t, "equivariance": equivariance}

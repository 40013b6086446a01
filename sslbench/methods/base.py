"""LocalizationMethod: the thin base every method implements.

A method says how to score locations (``forward``), how to learn (``compute_loss``) and how to
turn scores into a map (``localize``). It never computes metrics, picks thresholds, reads files
or knows dataset names: the data module and ``LocalizationEvaluator`` do.

Adding a method: subclass, give ``__init__`` typed arguments with the paper's defaults (one
docstring line each), implement ``forward`` and ``compute_loss``, add ``experiments/<name>.yaml``,
and a test with the loss against a slow reference written in the test.
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from pathlib import Path

import lightning as L
import torch
from torch import Tensor

from datamodules.batch import AVBatch, Unreadable
from datamodules.views import ViewSpec
from sslbench.errors import WeightsUnavailableError
from sslbench.eval.functional import min_max, upsample
from sslbench.methods.ogl import ObjectGuidance


class LocalizationMethod(L.LightningModule, ABC):
    """Base class: optimiser, logging, and the evaluation/prediction steps.

    Args:
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        object_guidance: optional object-guided refinement applied by :meth:`localize` (EZ-VSL OGL).
    """

    #: upsampling of raw maps in :meth:`localize`; the evaluator sets its protocol's mode
    upsample_mode: str = "bilinear_align_corners"
    #: extra training views the data module must provide (``datamodules.views``)
    train_views: ViewSpec = ViewSpec()
    #: how the method's reference mixes OGL's object map (``ObjectGuidance.normalization``),
    #: used when the config names none
    ogl_normalization: str = "minmax"

    def __init__(self, lr: float = 1e-4, weight_decay: float = 0.0, object_guidance: ObjectGuidance | None = None):
        super().__init__()
        self.lr, self.weight_decay = lr, weight_decay
        if object_guidance is not None and object_guidance.normalization is None:
            object_guidance.normalization = self.ogl_normalization
        self.object_guidance = object_guidance

    @abstractmethod
    def forward(self, image: Tensor, audio: Tensor) -> Tensor:
        """Raw own-pair localization logits at feature resolution, (B, h, w)."""

    @abstractmethod
    def compute_loss(self, batch: AVBatch) -> dict[str, Tensor]:
        """``{"loss": total, <part>: value, ...}`` for one training batch."""

    def embeddings(self, image: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        """One (B, D) image and (B, D) audio embedding per sample, for retrieval and neighbour
        search (``sslbench knn``). Methods with a shared embedding space override it."""
        raise NotImplementedError(f"{type(self).__name__} does not define global embeddings")

    #: fixed (low, high) range of :meth:`forward`'s raw maps, if they have one: a cosine map
    #: spans (-1, 1), divided by tau (-1/tau, 1/tau); None when unbounded
    raw_score_range: tuple[float, float] | None = None

    @property
    def score_range(self) -> tuple[float, float] | None:
        """Fixed (low, high) range of :meth:`evaluation_maps`, if it has one (SLAVC's absolute
        prediction maps it to [0, 1]); object guidance always gives [0, 1]."""
        return (0.0, 1.0) if self.object_guidance is not None else self.raw_score_range

    @torch.no_grad()
    def evaluation_maps(self, image: Tensor, audio: Tensor, size: int | tuple[int, int] | None = None) -> Tensor:
        """Raw float32 maps (B, H, W) upsampled to ``size`` with ``upsample_mode``: what the
        reference evaluations threshold. With object guidance, EZ-VSL's normalised mix."""
        size = tuple(image.shape[-2:]) if size is None else size
        maps = upsample(self(image, audio).float(), size, self.upsample_mode)
        if self.object_guidance is not None:
            maps = self.object_guidance.refine(maps, image, self.upsample_mode, self.raw_score_range)
        return maps

    @torch.no_grad()
    def object_maps(self, image: Tensor, audio: Tensor, size: int | tuple[int, int]) -> list[Tensor]:
        """Per sample, (n_i, H, W) maps of each sounding object found, in the method's order (the
        multi-source protocols). A single-source method finds one: its evaluation map."""
        return list(self.evaluation_maps(image, audio, size)[:, None])

    @torch.no_grad()
    def localize(self, image: Tensor, audio: Tensor, size: int | tuple[int, int] | None = None) -> Tensor:
        """Scores in [0, 1] of shape (B, H, W) at ``size`` (default: the image size): the
        evaluation map min-max normalised per image, for pictures and predictions."""
        return min_max(self.evaluation_maps(image, audio, size))

    # -- Lightning steps --------------------------------------------------------------------

    def training_step(self, batch: AVBatch | Unreadable, batch_idx: int) -> Tensor | None:
        if not isinstance(batch, AVBatch):  # every sample of the batch was unreadable (counted by the data module)
            return None
        parts = self.compute_loss(batch)
        self.log_dict({f"train/{k}": v.detach() for k, v in parts.items()}, prog_bar=True, batch_size=len(batch))
        return parts["loss"]

    def _eval_step(self, batch: AVBatch | Unreadable, stage: str) -> dict[str, Tensor] | None:
        if not isinstance(batch, AVBatch):
            return None
        if batch.gt_frames is not None:  # K frames stacked vertically: maps cover all of them
            k, side = batch.gt_frames.shape[1], batch.gt_frames.shape[-1]
            out = {"object_maps": self.object_maps(batch.image, batch.audio, (k * side, side))}
        else:
            size = batch.gt_map.shape[-2:] if batch.gt_map is not None else batch.image.shape[-2:]
            maps = self.evaluation_maps(batch.image, batch.audio, tuple(size))
            out = {"maps": maps if stage != "predict" else min_max(maps)}
        has_views = all(key in batch.views for key in self.train_views.keys)  # eval loaders add none
        if stage == "val" and len(batch) > 1 and has_views:  # the contrastive loss needs at least two samples
            loss = self.validation_loss(batch)
            if loss is not None:
                self.log("val/loss", loss, batch_size=len(batch), sync_dist=True)
        return out

    def validation_loss(self, batch: AVBatch) -> Tensor | None:
        """The training loss on a validation batch (None: it cannot be computed on this batch)."""
        return self.compute_loss(batch)["loss"]

    def validation_step(self, batch: AVBatch | Unreadable, batch_idx: int, dataloader_idx: int = 0):
        return self._eval_step(batch, "val")

    def test_step(self, batch: AVBatch | Unreadable, batch_idx: int, dataloader_idx: int = 0):
        return self._eval_step(batch, "test")

    def predict_step(self, batch: AVBatch | Unreadable, batch_idx: int, dataloader_idx: int = 0):
        return self._eval_step(batch, "predict")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # the training seed travels with the weights, so a later `sslbench test` reports it
        seed = os.environ.get("PL_GLOBAL_SEED")
        checkpoint["sslbench_run"] = {"seed": int(seed) if seed is not None else None}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.trained_run = checkpoint.get("sslbench_run")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)

    def train(self, mode: bool = True) -> LocalizationMethod:
        # frozen parts keep their BatchNorm statistics whenever Lightning switches modes
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    def frozen_modules(self) -> list[torch.nn.Module]:
        """Sub-networks that never train (their BatchNorm statistics stay fixed too)."""
        return []


def load_method(path: str) -> LocalizationMethod:
    """Any sslbench method from a checkpoint ``sslbench fit`` wrote (the class is recorded in it)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(f"checkpoint not found: {path}")
    class_path = torch.load(path, map_location="cpu", weights_only=False).get("hyper_parameters", {}).get("_class_path")
    if not class_path:
        raise WeightsUnavailableError(f"{path} does not record its method class (not written by `sslbench fit`)")
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name).load_from_checkpoint(path, map_location="cpu")

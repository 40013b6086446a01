"""The typed batch every dataset produces and every method consumes."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class AVBatch:
    """A collated batch. ``audio`` is filled on the batch's device by the data module's front-end.

    Attributes:
        image: (B, 3, H, W) normalised frames.
        waveform: (B, T) mono clips at the preset's sample rate.
        index: (B,) position of each sample in its dataset (de-duplicates DDP padding).
        sample_id: the dataset's id of each sample.
        class_id: (B,) class of the (first) sounding source, -1 when unknown.
        gt_map: (B, S, S) evaluation ground truth at the evaluation resolution, or None.
        boxes: per sample, (M, 4) normalised ``[x1, y1, x2, y2]`` boxes for drawing.
        audio: (B, 1, F, T) network input, computed from ``waveform`` after transfer.
        n_boxes: (B,) gt boxes per sample on extended sets (0: a non-sounding sample), else None.
        gt_frames: (B, K, S, S) binary gt of each of the K frames stacked vertically in ``image``
            (multi-source sets; K = 1 when one frame holds every source), else None.
        group: (B,) the video each frame belongs to (segmentation sets score per video), else None.
        crops: (B, 3) ``[top, left, flip]`` of frames the device still has to crop (``image`` then
            holds them uncropped, zero-padded to the batch's largest), else None.
        source_classes: (B, K) class of each sounding source of a mixture, in the order of its gt
            frames (-1 unknown or padding), else None.
        views: extra training views a method asked for (``datamodules.views``): ``image_*`` (B, 3, H, W),
            ``waveform_*`` (B, T) and, after transfer, their ``audio_*`` network inputs.
        unreadable: id -> reason of the samples of this batch that could not be read (dropped).
    """

    image: Tensor
    waveform: Tensor
    index: Tensor
    sample_id: list[str]
    class_id: Tensor
    gt_map: Tensor | None = None
    boxes: list[Tensor] = field(default_factory=list)
    audio: Tensor | None = None
    n_boxes: Tensor | None = None
    gt_frames: Tensor | None = None
    group: Tensor | None = None
    source_classes: Tensor | None = None
    crops: Tensor | None = None
    views: dict[str, Tensor] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.image.shape[0]

    def pin_memory(self) -> AVBatch:
        """Page-locked copies of every tensor (``DataLoader(pin_memory=True)`` calls it)."""
        pinned = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                value = value.pin_memory()
            elif isinstance(value, dict):
                value = {k: v.pin_memory() if isinstance(v, Tensor) else v for k, v in value.items()}
            elif isinstance(value, list) and value and isinstance(value[0], Tensor):
                value = [v.pin_memory() for v in value]
            pinned[f.name] = value
        return AVBatch(**pinned)


@dataclass
class Unreadable:
    """A batch none of whose samples could be read: nothing to train on, only what to report."""

    unreadable: dict[str, str]


def collate(samples: list[dict[str, Any] | None]) -> AVBatch | Unreadable:
    """Stack samples; unreadable ones (``datamodules.base.unreadable``'s markers) are dropped and
    listed on the batch for the data module to count."""
    bad = {s["unreadable"]: s["reason"] for s in samples if s is not None and "unreadable" in s}
    samples = [s for s in samples if s is not None and "unreadable" not in s]
    if not samples:
        return Unreadable(bad)
    has_gt = all(s.get("gt_map") is not None for s in samples)

    def optional(key: str, dtype=None) -> Tensor | None:
        if not all(s.get(key) is not None for s in samples):
            return None
        values = [s[key] for s in samples]
        return torch.stack(values) if isinstance(values[0], Tensor) else torch.tensor(values, dtype=dtype)

    crops = optional("crop")
    return AVBatch(
        image=_stack_frames([s["image"] for s in samples], crops is not None),
        crops=crops,
        waveform=torch.stack([s["waveform"] for s in samples]),
        index=torch.tensor([s["index"] for s in samples], dtype=torch.long),
        sample_id=[s["sample_id"] for s in samples],
        class_id=torch.tensor([s.get("class_id", -1) for s in samples], dtype=torch.long),
        gt_map=torch.stack([s["gt_map"] for s in samples]) if has_gt else None,
        boxes=[s.get("boxes", torch.zeros(0, 4)) for s in samples],
        n_boxes=optional("n_boxes", torch.long),
        gt_frames=optional("gt_frames"),
        group=optional("group", torch.long),
        source_classes=_source_classes(samples),
        views={k: torch.stack([s["views"][k] for s in samples]) for k in samples[0].get("views", {})},
        unreadable=bad,
    )


def _stack_frames(frames: list[Tensor], padded: bool) -> Tensor:
    """Stack frames; frames still to be cropped on the device may differ in size: zero-padded to
    the largest (every crop stays inside its own frame)."""
    if not padded or len({f.shape for f in frames}) == 1:
        return torch.stack(frames)
    height, width = max(f.shape[-2] for f in frames), max(f.shape[-1] for f in frames)
    return torch.stack([F.pad(f, (0, width - f.shape[-1], 0, height - f.shape[-2])) for f in frames])


def _source_classes(samples: list[dict[str, Any]]) -> Tensor | None:
    """(B, K) source classes, shorter lists padded with -1; None when a sample has none."""
    if not all("source_classes" in s for s in samples):
        return None
    width = max(len(s["source_classes"]) for s in samples)
    return torch.tensor([list(s["source_classes"]) + [-1] * (width - len(s["source_classes"])) for s in samples], dtype=torch.long)

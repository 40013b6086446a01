"""Mixtures composed from any single-source set, for methods that localize several sources.

``StackedMixture`` follows NoPrior's mixtures (methods.md 7): K frames stacked vertically
(3 x K*H x W), one gt frame per source, the partners of item i being i + j * N / K of the base set
(so the mixture set has N / K items). The sounds are mixed by averaging the waveforms; NoPrior
averages the K log-spectrograms instead, which needs the front-end per source.
"""

from __future__ import annotations

from typing import Any

import torch

from datamodules.base import AVDataset
from sslbench.audio import AudioPreset


class StackedMixture(AVDataset):
    """K single-source samples stacked vertically, their audio mixed: a multi-source set whose every
    frame holds one source.

    Args:
        base: the single-source set to compose from (with ground truth for evaluation).
        sources: K, the frames (and sources) per mixture.
        name: logged name (default ``<base>_stacked<K>``).
    """

    evaluation = "multi"

    def __init__(self, base: AVDataset, sources: int = 2, name: str | None = None):
        super().__init__()
        if sources < 1:
            raise ValueError(f"a mixture needs at least one source, got {sources}")
        if len(base) < sources:
            raise ValueError(f"{base.name} has {len(base)} samples, fewer than the {sources} sources of one mixture")
        self.base, self.sources = base, sources
        self.name = name or f"{base.name}_stacked{sources}"

    def configure(self, *, image_size: int, audio: AudioPreset, train: bool, eval_size: int = 224) -> None:
        super().configure(image_size=image_size, audio=audio, train=train, eval_size=eval_size)
        self.base.configure(image_size=image_size, audio=audio, train=train, eval_size=eval_size)

    def partners(self, index: int) -> list[int]:
        stride = len(self.base) // self.sources
        return [index + j * stride for j in range(self.sources)]

    @property
    def sample_ids(self) -> list[str]:
        ids = self.base.sample_ids
        return ["+".join(ids[p] for p in self.partners(i)) for i in range(len(self.base) // self.sources)]

    @property
    def list_name(self) -> str:
        return f"{self.base.list_name} (stacked by {self.sources})"

    @property
    def has_ground_truth(self) -> bool:
        return self.base.has_ground_truth

    def class_id(self, index: int) -> int:
        return self.base.class_id(self.partners(index)[0])

    def __len__(self) -> int:
        return len(self.base) // self.sources

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        parts = [self.base[p] for p in self.partners(index)]
        if any(p is None for p in parts):
            return None
        k = self.sources
        boxes = []
        for j, part in enumerate(parts):  # [x1, y1, x2, y2] of frame j -> the stacked frame
            b = part.get("boxes", torch.zeros(0, 4)).clone()
            b[:, 1::2] = (b[:, 1::2] + j) / k
            boxes.append(b)
        sample = {
            "image": torch.cat([p["image"] for p in parts], dim=-2),
            "waveform": torch.stack([p["waveform"] for p in parts]).mean(0),
            "index": index,
            "sample_id": "+".join(p["sample_id"] for p in parts),
            "class_id": parts[0]["class_id"],
            "boxes": torch.cat(boxes),
        }
        if all(p.get("gt_map") is not None for p in parts):
            sample["gt_frames"] = torch.stack([(p["gt_map"] > 0).float() for p in parts])
        return sample

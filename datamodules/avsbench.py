"""AVSBench S4 (AVSBench-object, single source): five frames per video with pixel masks
(evaluation.md B.7), scored per video by mIoU and F-score.

Layout under ``root`` (``.../Single-source``): ``s4_meta_data.csv`` (header; columns video name,
start time, category, split) and ``s4_data/`` with ``visual_frames/<split>/<category>/<video>/
<video>_<k>.png`` (k = 1..5, one per second), ``audio_wav/<split>/<category>/<video>.wav`` (5 s)
and ``gt_masks/<split>/<category>/<video>/<video>_<k>.png`` (binary; training videos have only
``_1``). Frame k hears the preset's window centred on second k - 0.5 of its video's audio.
"""

from __future__ import annotations

import csv
import logging
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from datamodules.base import AVDataset, unreadable
from datamodules.folder import read_waveform
from datamodules.transforms import load_rgb
from sslbench.audio import cut_window
from sslbench.errors import DatasetNotFoundError

FRAMES_PER_VIDEO = 5
log = logging.getLogger(__name__)


def read_s4_meta(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path} is empty")
    header = [h.strip() for h in rows[0]]
    col = {name: header.index(name) if name in header else default for name, default in (("category", 2), ("split", 3))}
    return [{"video": r[0].strip(), "category": r[col["category"]].strip(), "split": r[col["split"]].strip()} for r in rows[1:] if r]


def mask_box(mask: torch.Tensor) -> torch.Tensor:
    """The normalised [x1, y1, x2, y2] box around a mask's pixels (for drawing), (M, 4)."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(xs) == 0:
        return torch.zeros(0, 4)
    h, w = mask.shape
    return torch.tensor([[xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h]], dtype=torch.float32)


class AVSBenchS4(AVDataset):
    """Args:
    root: the ``Single-source`` folder (with ``s4_meta_data.csv`` and ``s4_data/``).
    split: ``train``, ``val`` or ``test``.
    name: logged name (default ``avsbench_s4``).
    """

    evaluation = "segmentation"
    protocol = "avsbench_s4"

    def __init__(self, root: str, split: str = "test", name: str = "avsbench_s4"):
        super().__init__()
        self.root, self.split, self.name = Path(root).expanduser(), split, name
        self.meta = self.root / "s4_meta_data.csv"
        for path in (self.root, self.meta, self.root / "s4_data"):
            if not path.exists():
                raise DatasetNotFoundError("AVSBenchS4", path, "Point `root:` at AVSBench's Single-source folder (s4_meta_data.csv and s4_data/).")
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, got {split!r}")
        self._reported: set[str] = set()

    def _path(self, kind: str, category: str, video: str, k: int | None = None) -> Path:
        base = self.root / "s4_data" / kind / self.split / category
        return base / f"{video}.wav" if k is None else base / video / f"{video}_{k}.png"

    @cached_property
    def _samples(self) -> list[tuple[str, str, int]]:
        """(video, category, k) of every frame whose image, audio (and, for evaluation, mask) exist."""
        samples, self.wanted_count = [], 0
        for row in read_s4_meta(self.meta):
            if row["split"] != self.split:
                continue
            for k in range(1, FRAMES_PER_VIDEO + 1):
                self.wanted_count += 1
                needed = [self._path("visual_frames", row["category"], row["video"], k), self._path("audio_wav", row["category"], row["video"])]
                if self.split != "train":
                    needed.append(self._path("gt_masks", row["category"], row["video"], k))
                if all(p.is_file() for p in needed):
                    samples.append((row["video"], row["category"], k))
        if not samples:
            raise DatasetNotFoundError("AVSBenchS4", self.root / "s4_data", f"no {self.split} frame has its image, audio and mask")
        return samples

    @cached_property
    def _groups(self) -> dict[str, int]:
        return {v: i for i, v in enumerate(dict.fromkeys(v for v, _, _ in self._samples))}

    @property
    def sample_ids(self) -> list[str]:
        return [f"{v}_{k}" for v, _, k in self._samples]

    @property
    def has_ground_truth(self) -> bool:
        return self.split != "train"

    def manifest(self) -> dict[str, Any]:
        ids = self.sample_ids
        return {"dataset": self.name, "list": str(self.meta), "root": str(self.root), "wanted": self.wanted_count,
                "available": len(ids), "used": len(ids), "missing": [], "excluded": []}

    def _waveform(self, category: str, video: str, k: int) -> torch.Tensor:
        wave = read_waveform(self._path("audio_wav", category, video), self.audio.sample_rate)
        seconds = wave.numel() / self.audio.sample_rate
        start = min(max(k - 0.5 - self.audio.window_seconds / 2, 0.0), max(seconds - self.audio.window_seconds, 0.0))
        centred = seconds / 2 - self.audio.window_seconds / 2 if self.audio.window_position == "centre" else 0.0
        return cut_window(wave, self.audio, shift_seconds=start - max(centred, 0.0))

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        video, category, k = self._samples[index]
        try:
            image = self.frame_transform()(load_rgb(self._path("visual_frames", category, video, k)))
            waveform = self._waveform(category, video, k)
            sample = {"image": image, "waveform": waveform, "index": index, "sample_id": f"{video}_{k}", "class_id": -1}
            if not self.train and self.has_ground_truth:
                with Image.open(self._path("gt_masks", category, video, k)) as m:
                    mask = torch.from_numpy(np.array(m.convert("1"), dtype=np.float32))
                gt = F.interpolate(mask[None, None], size=(self.eval_size, self.eval_size), mode="nearest")[0, 0]
                sample.update(gt_map=gt, boxes=mask_box(gt), group=self._groups[video])
            return sample
        except Exception as err:
            return unreadable(f"{video}_{k}", f"S4 frame {video}_{k}", err)

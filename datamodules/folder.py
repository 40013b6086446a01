"""Readers for the ``frames/<id>.jpg`` + ``audio/<id>.wav`` layout of EZ-VSL, SLAVC and LVS.

File formats are described in ``shared/reference/evaluation.md`` part B. Unreadable files are
reported (once each, naming the file and the reason) and skipped, never replaced by another sample.
"""

from __future__ import annotations

import csv
import json
import logging
import xml.etree.ElementTree as ET
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
import torchaudio

from datamodules.base import AVDataset
from datamodules.transforms import image_transform, load_rgb
from sslbench.audio import cut_window
from sslbench.errors import DatasetNotFoundError
from sslbench.eval.functional import gt_map_flickr, gt_map_vggss

log = logging.getLogger(__name__)


def read_id_list(path: Path) -> list[str]:
    """Ids from a ``.txt`` (one per line) or ``.csv`` (first column) list; extensions dropped."""
    with open(path, newline="") as f:
        rows = [row[0].strip() for row in csv.reader(f) if row and row[0].strip()]
    return [Path(r).stem if Path(r).suffix in (".jpg", ".wav", ".mp4", ".png", ".npy") else r for r in rows]


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the file's rate; channels are clipped to [-1, 1] then averaged."""
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    if data.size == 0:
        raise ValueError("no audio samples")
    return np.clip(data, -1, 1).mean(axis=1), rate


def parse_flickr_xml(path: Path) -> list[list[int]]:
    """Every annotator's ``<bbox>`` of one image: children 1..4 are xmin, ymin, xmax, ymax."""
    boxes = []
    for child in ET.parse(path).getroot():
        for element in child:
            if element.tag != "bbox":
                raise ValueError(f"{path}: unexpected <{element.tag}> under <{child.tag}>; only <bbox> is allowed")
            boxes.append([int(e.text) for e in list(element)[1:5]])
    return boxes


class FramesAudioFolder(AVDataset):
    """Frames and audio by id: ``<root>/frames/<id>.jpg`` and ``<root>/audio/<id>.wav``.

    Args:
        root: dataset folder holding ``frames/`` and ``audio/``.
        ids: optional list file (``.txt`` or ``.csv``) restricting and ordering the samples; without
            it every id with both a frame and an audio file is used.
        name: key for logged metrics.
    """

    def __init__(self, root: str, ids: str | None = None, name: str = "folder"):
        super().__init__()
        self.root = Path(root).expanduser()
        self.name = name
        for path in (self.root, self.root / "frames", self.root / "audio"):
            if not path.is_dir():
                raise DatasetNotFoundError(type(self).__name__, path, self._hint())
        self.ids_file = Path(ids).expanduser() if ids else None
        if self.ids_file is not None and not self.ids_file.is_file():
            raise DatasetNotFoundError(type(self).__name__, self.ids_file, "Give the sample list file with `ids:`.")
        self._reported: set[str] = set()

    def _hint(self) -> str:
        return (
            f"Expected the layout <root>/frames/<id>.jpg and <root>/audio/<id>.wav. Point `root:` of "
            f"{type(self).__name__} in your config (or --data.train.root PATH on the command line) at your copy."
        )

    @cached_property
    def _ids(self) -> list[str]:
        on_disk = {p.stem for p in (self.root / "audio").glob("*.wav")} & {
            p.stem for p in (self.root / "frames").glob("*.jpg")
        }
        wanted = read_id_list(self.ids_file) if self.ids_file else sorted(on_disk)
        ids = [i for i in wanted if i in on_disk and self._annotated(i)]
        log.info("%s: %d of %d samples available", self.name, len(ids), len(wanted))
        if not ids:
            raise DatasetNotFoundError(type(self).__name__, self.root, "No sample has both a frame and an audio file.")
        return ids

    @property
    def sample_ids(self) -> list[str]:
        return self._ids

    def _annotated(self, sample_id: str) -> bool:
        return True

    def boxes(self, sample_id: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(gt map, normalised boxes for drawing) of a sample, or None for an unannotated set."""
        return None

    def _report(self, path: Path, err: Exception) -> None:
        if str(path) not in self._reported:
            self._reported.add(str(path))
            log.warning("skipping unreadable file %s (%s: %s)", path, type(err).__name__, err)

    def load_waveform(self, sample_id: str, shift_seconds: float = 0.0) -> torch.Tensor:
        data, rate = read_audio(self.root / "audio" / f"{sample_id}.wav")
        wave = torch.from_numpy(data)
        if rate != self.audio.sample_rate:
            wave = torchaudio.functional.resample(wave, rate, self.audio.sample_rate)
        return cut_window(wave, self.audio, shift_seconds=shift_seconds)

    def shifted_waveform(self, index: int, waveform: torch.Tensor, shift_seconds: float) -> torch.Tensor:
        """A new window cut from the whole file, ``shift_seconds`` from the usual one."""
        try:
            return self.load_waveform(self._ids[index], shift_seconds)
        except Exception as err:  # read a moment ago: keep the epoch going on the window we have
            self._report(self.root / "audio" / f"{self._ids[index]}.wav", err)
            return super().shifted_waveform(index, waveform, shift_seconds)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        sample_id = self._ids[index]
        frame = self.root / "frames" / f"{sample_id}.jpg"
        try:
            image = image_transform(self.image_size, self.train)(load_rgb(frame))
        except Exception as err:
            self._report(frame, err)
            return None
        try:
            waveform = self.load_waveform(sample_id)
        except Exception as err:
            self._report(self.root / "audio" / f"{sample_id}.wav", err)
            return None
        sample = {"image": image, "waveform": waveform, "index": index, "sample_id": sample_id, "class_id": -1}
        truth = None if self.train else self.boxes(sample_id)
        if truth is not None:
            sample["gt_map"], sample["boxes"] = truth
        return sample


class VGGSound(FramesAudioFolder):
    """VGGSound training clips (no boxes); ``ids`` e.g. EZ-VSL's ``vggss_144k.txt``."""

    def __init__(self, root: str, ids: str | None = None, name: str = "vggsound"):
        super().__init__(root, ids, name)


class VGGSS(FramesAudioFolder):
    """VGG-Sound Source test set: boxes from ``vggss.json`` (normalised x1, y1, x2, y2).

    Args:
        annotations: path of ``vggss.json``.
    """

    def __init__(self, root: str, annotations: str, ids: str | None = None, name: str = "vggss"):
        super().__init__(root, ids, name)
        self.annotations = Path(annotations).expanduser()
        if not self.annotations.is_file():
            raise DatasetNotFoundError("VGGSS", self.annotations, "Set `annotations:` to your copy of vggss.json.")

    @cached_property
    def _boxes(self) -> dict[str, list[list[float]]]:
        with open(self.annotations) as f:
            return {entry["file"]: entry["bbox"] for entry in json.load(f)}

    @property
    def has_ground_truth(self) -> bool:
        return True

    def _annotated(self, sample_id: str) -> bool:
        return sample_id in self._boxes

    def boxes(self, sample_id):
        raw = self._boxes[sample_id]
        return gt_map_vggss(raw, self.eval_size), torch.tensor(raw, dtype=torch.float32).clamp(0, 1).reshape(-1, 4)


class FlickrSoundNet(FramesAudioFolder):
    """SoundNet-Flickr annotated test set: one XML per image in ``annotations`` (256 x 256 frame).

    Args:
        annotations: folder of ``<id>.xml`` files (default ``<root>/Annotations``).
        ids: the test list, e.g. ``flickr_test.csv`` (249 ids in EZ-VSL, 250 in SLAVC).
    """

    def __init__(self, root: str, annotations: str | None = None, ids: str | None = None, name: str = "flickr"):
        super().__init__(root, ids, name)
        self.annotations = Path(annotations).expanduser() if annotations else self.root / "Annotations"
        if not self.annotations.is_dir():
            raise DatasetNotFoundError("FlickrSoundNet", self.annotations, "Set `annotations:` to the XML folder.")

    @property
    def has_ground_truth(self) -> bool:
        return True

    def _annotated(self, sample_id: str) -> bool:
        return (self.annotations / f"{sample_id}.xml").is_file()

    def boxes(self, sample_id):
        raw = parse_flickr_xml(self.annotations / f"{sample_id}.xml")
        drawn = torch.tensor(raw, dtype=torch.float32).reshape(-1, 4) / 256
        return gt_map_flickr(raw, self.eval_size), drawn

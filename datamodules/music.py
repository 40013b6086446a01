"""MUSIC solo and duet frames with AVGN / NoPrior's annotation files (evaluation.md B.4).

Layout: ``<root>/frames/<file>.jpg`` with ``file`` = ``<ytid>_<NNN>_<NNNNN>``, and the audio either
per frame (``<root>/audio/<file>.wav``) or, as AVGN ships it, one file per video
(``<root>/audio/<ytid>.wav``, the name without ``_NNN_NNNNN``), whose centre window then serves
every frame of the video. Boxes are normalised ``[x, y, w, h]`` (not corners: read as corners,
half of them would be empty, AVGN's bug).
"""

from __future__ import annotations

import csv
import json
import re
from functools import cached_property
from pathlib import Path

import torch

from datamodules.folder import FramesAudioFolder
from sslbench.errors import DatasetNotFoundError
from sslbench.eval.functional import gt_map_music

_CLIP_SUFFIX = re.compile(r"_\d{3}_\d{5}$")


def xywh_to_corners(boxes) -> torch.Tensor:
    b = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4).clamp(min=0)
    return torch.stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]], dim=1).clamp(0, 1)


class MUSIC(FramesAudioFolder):
    """MUSIC-Solo or MUSIC-Duet (the kind follows the annotation file).

    Args:
        root: folder with ``frames/`` and ``audio/``.
        annotations: ``music_solo.json`` (``file, class, bbox``) or ``music_duet.json`` (``file,
            class_src1, bbox_src1, class_src2, bbox_src2``); none for a training set.
        ids: ``music_solo_test.csv`` (``file,class``), ``music_duet_test.csv`` (``file``) or a
            training list (``file,class[,class2]``); default: every annotated frame (or every frame).
        name: logged name (default ``music_solo`` / ``music_duet`` / ``music``).
        protocol: the evaluation protocol by default (solo ``ezvsl``, duet ``ioi``, as NoPrior reports it).
    """

    def __init__(self, root: str, annotations: str | None = None, ids: str | None = None, name: str | None = None,
                 protocol: str | None = None):
        super().__init__(root, ids, name or "music")
        self.annotations = Path(annotations).expanduser() if annotations else None
        if self.annotations is not None and not self.annotations.is_file():
            raise DatasetNotFoundError("MUSIC", self.annotations, "Set `annotations:` to music_solo.json or music_duet.json.")
        if self.annotations is not None:
            self.evaluation = "multi" if self._duet else "single"
            self.protocol = protocol or ("ioi" if self._duet else "ezvsl")
            self.name = name or ("music_duet" if self._duet else "music_solo")

    @cached_property
    def _entries(self) -> dict[str, dict]:
        if self.annotations is None:
            return {}
        with open(self.annotations) as f:
            return {e["file"]: e for e in json.load(f)}

    @cached_property
    def _duet(self) -> bool:
        return any("bbox_src1" in e for e in self._entries.values())

    @cached_property
    def _list_classes(self) -> dict[str, list[str]]:
        """id -> the classes a list names (``file,class[,class2]``: AVGN's ``music_*_train.txt``)."""
        if self.ids_file is None:
            return {}
        with open(self.ids_file, newline="") as f:
            return {r[0].strip(): [c.strip() for c in r[1:3] if c.strip()] for r in csv.reader(f) if len(r) >= 2}

    def _class_names(self, sample_id: str) -> list[str]:
        """The sample's sources' classes, first source first."""
        entry = self._entries.get(sample_id, {})
        if "class_src1" in entry:
            return [entry["class_src1"], entry["class_src2"]]
        if "class" in entry:
            return [entry["class"]]
        return self._list_classes.get(sample_id, [])

    @cached_property
    def _class_index(self) -> dict[str, int]:
        """Sorted class names -> index, as AVGN's ``get_train_dataset`` numbers them."""
        names = {name for i in self._ids for name in self._class_names(i)}
        return {c: k for k, c in enumerate(sorted(names))}

    def source_classes(self, index: int) -> list[int]:
        return [self._class_index[name] for name in self._class_names(self._ids[index])]

    def class_id(self, index: int) -> int:
        classes = self.source_classes(index)
        return classes[0] if classes else -1

    def wanted_ids(self) -> list[str]:
        if self.ids_file is None and self._entries:
            return list(self._entries)
        return super().wanted_ids()

    def audio_key(self, sample_id: str) -> str:
        """The frame's own audio file if there is one, else its video's (AVGN's layout)."""
        return sample_id if sample_id in self._audios else _CLIP_SUFFIX.sub("", sample_id)

    @property
    def has_ground_truth(self) -> bool:
        return self.annotations is not None

    def _annotated(self, sample_id: str) -> bool:
        return self.annotations is None or sample_id in self._entries

    def boxes(self, sample_id):
        if self.annotations is None:
            return None
        entry = self._entries[sample_id]
        raw = [entry["bbox_src1"], entry["bbox_src2"]] if self._duet else [entry["bbox"]]
        return gt_map_music(raw, self.eval_size), xywh_to_corners(raw)

    def __getitem__(self, index: int):
        sample = super().__getitem__(index)
        if sample is None or "unreadable" in sample:
            return sample
        if self._duet and "gt_map" in sample:  # one frame holds both sources
            sample["gt_frames"] = (sample["gt_map"] > 0).float()[None]
        if len(self.source_classes(index)) > 1:  # a duet's two instruments (AVGN's class_labels, class_labels_ss)
            sample["source_classes"] = self.source_classes(index)
        return sample

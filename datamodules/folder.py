"""Readers for the ``frames/<id>.jpg`` + ``audio/<id>.wav`` layout of EZ-VSL, SLAVC, LVS and AVGN.

File formats are described in ``shared/reference/evaluation.md`` part B. A list names the samples
wanted; those whose files are absent are counted and listed (``manifest``), never replaced by
another sample. Unreadable files are reported (once each, naming the file and the reason) and the
sample is skipped by the collate function.
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

from datamodules.base import AVDataset, ListedSamples, unreadable
from datamodules.transforms import load_rgb
from sslbench.audio import cut_window
from sslbench.errors import DatasetNotFoundError
from sslbench.eval.functional import gt_map_flickr, gt_map_vggss

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
#: the prefix of the sample id of an extended set's non-sounding row: ``silent:<video>:<audio>``
SILENT = "silent"


def read_id_list(path: Path) -> list[str]:
    """Ids from a ``.txt`` (one per line) or ``.csv`` (first column) list; extensions dropped."""
    with open(path, newline="") as f:
        rows = [row[0].strip() for row in csv.reader(f) if row and row[0].strip()]
    return [Path(r).stem if Path(r).suffix in (".jpg", ".wav", ".mp4", ".png", ".npy", ".flac") else r for r in rows]


def read_non_sounding(path: Path) -> list[tuple[str, str]]:
    """(video, audio) of each ``non-sounding`` row of SLAVC's ``*_test_plus_silent.csv``
    (header ``video,audio,label``)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"video", "audio", "label"} <= rows[0].keys():
        raise ValueError(f"{path}: expected the header video,audio,label, got {','.join(rows[0])}")
    return [(r["video"].strip(), r["audio"].strip()) for r in rows if r["label"].strip() == "non-sounding"]


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the file's rate; channels are clipped to [-1, 1] then averaged."""
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    if data.size == 0:
        raise ValueError("no audio samples")
    return np.clip(data, -1, 1).mean(axis=1), rate


def read_waveform(path: Path, rate: int) -> torch.Tensor:
    """The whole file as a mono float32 tensor at ``rate`` Hz (:func:`read_audio`, resampled)."""
    data, file_rate = read_audio(path)
    wave = torch.from_numpy(data)
    return wave if file_rate == rate else torchaudio.functional.resample(wave, file_rate, rate)


def parse_flickr_xml(path: Path) -> list[list[int]]:
    """Every annotator's ``<bbox>`` of one image: children 1..4 are xmin, ymin, xmax, ymax."""
    boxes = []
    for child in ET.parse(path).getroot():
        for element in child:
            if element.tag != "bbox":
                raise ValueError(f"{path}: unexpected <{element.tag}> under <{child.tag}>; only <bbox> is allowed")
            boxes.append([int(e.text) for e in list(element)[1:5]])
    return boxes


def files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """``{stem: path}`` of the files in ``folder`` with one of ``suffixes`` (first suffix wins)."""
    found: dict[str, Path] = {}
    if folder.is_dir():
        for path in sorted(folder.iterdir(), key=lambda p: suffixes.index(p.suffix.lower()) if p.suffix.lower() in suffixes else 99):
            if path.suffix.lower() in suffixes:
                found.setdefault(path.stem, path)
    return found


class FramesAudioFolder(ListedSamples, AVDataset):
    """Frames and audio by id: ``<root>/frames/<id>.jpg`` and ``<root>/audio/<id>.wav`` (or ``.flac``).

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
        self.excluded: list[str] = []

    def _hint(self) -> str:
        return (
            f"Expected the layout <root>/frames/<id>.jpg and <root>/audio/<id>.wav. Point `root:` of "
            f"{type(self).__name__} in your config (or --data.train.root PATH on the command line) at your copy."
        )

    # -- which samples ------------------------------------------------------------------------

    @cached_property
    def _frames(self) -> dict[str, Path]:
        return files_by_stem(self.root / "frames", FRAME_SUFFIXES)

    @cached_property
    def _audios(self) -> dict[str, Path]:
        return files_by_stem(self.root / "audio", AUDIO_SUFFIXES)

    def frame_key(self, sample_id: str) -> str:
        """The frame file's stem of ``sample_id`` (another for non-sounding rows, MUSIC clips)."""
        return sample_id.split(":")[1] if sample_id.startswith(f"{SILENT}:") else sample_id

    def audio_key(self, sample_id: str) -> str:
        return sample_id.split(":")[2] if sample_id.startswith(f"{SILENT}:") else sample_id

    def wanted_ids(self) -> list[str]:
        """The samples asked for, in order: the list, or every id with a frame and an audio file."""
        if self.ids_file:
            return read_id_list(self.ids_file)
        return sorted(k for k in self._frames if self.audio_key(k) in self._audios)

    def _usable(self, sample_id: str) -> bool:
        return self.frame_key(sample_id) in self._frames and self.audio_key(sample_id) in self._audios and self._annotated(sample_id)

    def lacks(self, sample_id: str) -> list[str]:
        """What an unusable sample is missing: ``frame``, ``audio`` and / or ``annotation``."""
        parts = [("frame", self.frame_key(sample_id) in self._frames), ("audio", self.audio_key(sample_id) in self._audios),
                 ("annotation", self._annotated(sample_id))]
        return [name for name, present in parts if not present]

    @cached_property
    def _ids(self) -> list[str]:
        wanted = list(dict.fromkeys(self.wanted_ids()))  # a repeated id counts once
        ids = [i for i in wanted if self._usable(i)]
        kept = set(ids)
        self.missing = [i for i in wanted if i not in kept]
        self.missing_parts = {i: self.lacks(i) for i in self.missing}
        self.wanted_count = len(wanted)
        log.info("%s: %d of %d samples available", self.name, len(ids), len(wanted))
        if not ids:
            raise DatasetNotFoundError(
                type(self).__name__, self.root,
                f"None of the {len(wanted)} samples wanted has both its frame and its audio file"
                + (" and annotation" if self.has_ground_truth else "") + " (run `sslbench data check` on the folder).",
            )
        return ids

    def manifest(self) -> dict[str, Any]:
        """What was asked for and what is used: counts, missing and excluded ids."""
        ids = self._ids
        return {
            "dataset": self.name, "list": str(self.ids_file) if self.ids_file else None, "root": str(self.root),
            "wanted": self.wanted_count, "available": len(ids) + len(self.excluded), "used": len(ids),
            "missing": self.missing, "missing_parts": self.missing_parts, "excluded": self.excluded,
        }

    def _annotated(self, sample_id: str) -> bool:
        return True

    def boxes(self, sample_id: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(gt map, normalised boxes for drawing) of a sample, or None for an unannotated set."""
        return None

    # -- reading --------------------------------------------------------------------------------

    def audio_file(self, sample_id: str) -> Path:
        key = self.audio_key(sample_id)
        return self._audios.get(key, self.root / "audio" / f"{key}.wav")

    def frame_file(self, sample_id: str) -> Path:
        key = self.frame_key(sample_id)
        return self._frames.get(key, self.root / "frames" / f"{key}.jpg")

    def load_waveform(self, sample_id: str, shift_seconds: float = 0.0) -> torch.Tensor:
        wave = read_waveform(self.audio_file(sample_id), self.audio.sample_rate)
        return cut_window(wave, self.audio, shift_seconds=shift_seconds)

    def shifted_waveform(self, index: int, waveform: torch.Tensor, shift_seconds: float) -> torch.Tensor:
        """A new window cut from the whole file, ``shift_seconds`` from the usual one."""
        try:
            return self.load_waveform(self._ids[index], shift_seconds)
        except Exception:  # read a moment ago: keep the epoch going on the window we have
            return super().shifted_waveform(index, waveform, shift_seconds)

    def raw_frame(self, index: int):
        return load_rgb(self.frame_file(self._ids[index]))

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        sample_id = self._ids[index]
        frame = self.frame_file(sample_id)
        try:
            image, crop = self.frame_and_crop(load_rgb(frame, min_side=self.decode_side))
        except Exception as err:
            return unreadable(sample_id, frame, err)
        try:
            waveform = self.load_waveform(sample_id)
        except Exception as err:
            return unreadable(sample_id, self.audio_file(sample_id), err)
        sample = {"image": image, "waveform": waveform, "index": index, "sample_id": sample_id, "class_id": self.class_id(index)}
        if crop is not None:
            sample["crop"] = crop
        truth = None if self.train else self.boxes(sample_id)
        if truth is not None:
            sample["gt_map"], sample["boxes"] = truth
            if self.evaluation == "extended":
                sample["n_boxes"] = len(sample["boxes"])
        return sample


class ExtendedRows:
    """Mixin: SLAVC's extended test sets add non-sounding rows (an image with another clip's
    audio, or an inaudible source) with an empty ground truth, from ``*_test_plus_silent.csv``."""

    non_sounding_file: Path | None = None

    def _init_extended(self, non_sounding: str | None, protocol: str | None) -> None:
        self.non_sounding_file = Path(non_sounding).expanduser() if non_sounding else None
        self.protocol = protocol or "ezvsl"
        if self.non_sounding_file is not None:
            if not self.non_sounding_file.is_file():
                raise DatasetNotFoundError(type(self).__name__, self.non_sounding_file, "Set `non_sounding:` to SLAVC's *_test_plus_silent.csv.")
            self.evaluation = "extended"
            self.protocol = protocol or "slavc_relative"  # how SLAVC reports its extended sets

    def _silent_ids(self) -> list[str]:
        if self.non_sounding_file is None:
            return []
        return [f"{SILENT}:{video}:{audio}" for video, audio in read_non_sounding(self.non_sounding_file)]

    @staticmethod
    def is_silent(sample_id: str) -> bool:
        return sample_id.startswith(f"{SILENT}:")


class VGGSound(FramesAudioFolder):
    """VGGSound clips (no boxes). ``ids``: EZ-VSL's ``vggss_10k.txt`` / ``vggss_144k.txt``, the
    open-set ``vggss_heard.txt``, or nothing for every clip on disk (VGGSound full).

    Args:
        classes: optional ``vggsound.csv`` (``youtube_id,start_seconds,label,split``) giving each
            clip's class (used by duets of different classes and swapped-audio checks).
    """

    def __init__(self, root: str, ids: str | None = None, name: str = "vggsound", classes: str | None = None):
        super().__init__(root, ids, name)
        self.classes_file = Path(classes).expanduser() if classes else None
        if self.classes_file is not None and not self.classes_file.is_file():
            raise DatasetNotFoundError("VGGSound", self.classes_file, "Set `classes:` to VGGSound's vggsound.csv.")

    @cached_property
    def _labels(self) -> dict[str, str]:
        if self.classes_file is None:
            return {}
        with open(self.classes_file, newline="") as f:
            return {f"{r[0]}_{int(r[1]):06d}": r[2] for r in csv.reader(f) if len(r) >= 3 and r[1].strip().isdigit()}

    @cached_property
    def _class_index(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(sorted(set(self._labels.values())))}

    def class_id(self, index: int) -> int:
        label = self._labels.get(self._ids[index])
        return self._class_index[label] if label is not None else -1


class VGGSS(ExtendedRows, FramesAudioFolder):
    """VGG-Sound Source test set: boxes from ``vggss.json`` (normalised x1, y1, x2, y2).

    Args:
        annotations: path of ``vggss.json``.
        ids: optional list (``vggss_test.csv``, the open-set ``vggss_heard_test.csv`` /
            ``vggss_unheard_test.csv``, SSPL's ``vggss_test_4692.csv``); default: every annotated clip.
        non_sounding: SLAVC's ``vggss_test_plus_silent.csv``: Extended VGG-SS (adds AP, max-F1, LocAcc).
        protocol: the evaluation protocol this set is scored under by default (``ezvsl``; an
            extended set ``slavc_relative``); ``--evaluator.protocol`` overrides every set's.
    """

    benchmark = "vggss"

    def __init__(
        self, root: str, annotations: str, ids: str | None = None, name: str = "vggss", non_sounding: str | None = None,
        protocol: str | None = None,
    ):
        super().__init__(root, ids, name)
        self.annotations = Path(annotations).expanduser()
        if not self.annotations.is_file():
            raise DatasetNotFoundError("VGGSS", self.annotations, "Set `annotations:` to your copy of vggss.json.")
        self._init_extended(non_sounding, protocol)

    @cached_property
    def _entries(self) -> dict[str, dict]:
        with open(self.annotations) as f:
            return {entry["file"]: entry for entry in json.load(f)}

    @cached_property
    def _class_index(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(sorted({e.get("class", "") for e in self._entries.values()}))}

    def wanted_ids(self) -> list[str]:
        base = read_id_list(self.ids_file) if self.ids_file else list(self._entries)
        return base + self._silent_ids()

    @property
    def has_ground_truth(self) -> bool:
        return True

    def _annotated(self, sample_id: str) -> bool:
        return self.is_silent(sample_id) or sample_id in self._entries

    def class_id(self, index: int) -> int:
        entry = self._entries.get(self._ids[index])
        return self._class_index[entry.get("class", "")] if entry else -1

    def boxes(self, sample_id):
        if self.is_silent(sample_id):
            return torch.zeros(self.eval_size, self.eval_size, dtype=torch.float64), torch.zeros(0, 4)
        raw = self._entries[sample_id]["bbox"]
        return gt_map_vggss(raw, self.eval_size), torch.tensor(raw, dtype=torch.float32).clamp(0, 1).reshape(-1, 4)


class FlickrSoundNet(ExtendedRows, FramesAudioFolder):
    """SoundNet-Flickr. With ``annotations`` (one XML per image, 256 x 256 frame) a test set;
    without, a training set (``ids``: ``flickr_10k.txt`` / ``flickr_144k.txt``).

    Args:
        annotations: folder of ``<id>.xml`` files (default ``<root>/Annotations`` when it exists).
        ids: the test list, e.g. ``flickr_test.csv`` (249 ids in EZ-VSL, 250 in SLAVC), or a training list.
        non_sounding: SLAVC's ``flickr_test_plus_silent.csv``: Extended Flickr.
        protocol: the evaluation protocol this set is scored under by default (``ezvsl``; an
            extended set ``slavc_relative``); ``--evaluator.protocol`` overrides every set's.
    """

    benchmark = "flickr"

    def __init__(
        self, root: str, annotations: str | None = None, ids: str | None = None, name: str = "flickr", non_sounding: str | None = None,
        protocol: str | None = None,
    ):
        super().__init__(root, ids, name)
        default = self.root / "Annotations"
        self.given_annotations = Path(annotations).expanduser() if annotations else None
        self.found_annotations = default if default.is_dir() else None
        if self.given_annotations is not None and not self.given_annotations.is_dir():
            raise DatasetNotFoundError("FlickrSoundNet", self.given_annotations, "Set `annotations:` to the XML folder.")
        self._init_extended(non_sounding, protocol)

    @property
    def annotations(self) -> Path | None:
        """The XML folder: the one given, else ``<root>/Annotations`` unless this is a training set
        (the released Flickr root holds the annotated test images beside the 10k / 144k training
        clips, which have no XML)."""
        if self.given_annotations is not None:
            return self.given_annotations
        return None if self.train else self.found_annotations

    def configure(self, **settings) -> None:
        was_training = self.train
        super().configure(**settings)
        if self.train != was_training:  # annotations in use changed: which samples are usable too
            self.__dict__.pop("_ids", None)

    def wanted_ids(self) -> list[str]:
        return super().wanted_ids() + self._silent_ids()

    @property
    def has_ground_truth(self) -> bool:
        return self.annotations is not None

    def _annotated(self, sample_id: str) -> bool:
        return self.annotations is None or self.is_silent(sample_id) or (self.annotations / f"{sample_id}.xml").is_file()

    def boxes(self, sample_id):
        if self.annotations is None:
            return None
        if self.is_silent(sample_id):
            return torch.zeros(self.eval_size, self.eval_size, dtype=torch.float64), torch.zeros(0, 4)
        raw = parse_flickr_xml(self.annotations / f"{sample_id}.xml")
        drawn = torch.tensor(raw, dtype=torch.float32).reshape(-1, 4) / 256
        return gt_map_flickr(raw, self.eval_size), drawn

"""Mixtures composed from any single-source set, for methods that localize several sources.

- ``StackedMixture``: NoPrior's mixtures (methods.md 7): K frames stacked vertically (3 x K*H x
  W), one gt frame per source, the partners of item i being i + (j * N) // K of the base set (so
  the mixture set has N // K items), as NoPrior's ``datasets_flow.py`` pairs them. The sounds are mixed as NoPrior mixes them, by averaging the K
  log-spectrograms (the data module's front-end does it on the batch), or by averaging waveforms.
- ``DuetComposer``: seeded mixtures with a saved list, in three layouts:
  ``side_by_side`` (VGGSound-Duet: two frames side by side, squeezed into one square frame, the
  waveforms summed), ``stacked`` (the IOI layout, with random partners) and ``grid2x2``
  (MUSIC-Synthetic: four frames in a 2 x 2 grid, two of the four sounding, their waveforms summed).
  Boxes and classes are kept per source. A list file (the saved one, or AVGN's
  ``vggsound_duet_test.csv``) reproduces the mixtures exactly.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from datamodules.base import AVDataset, first_unreadable
from sslbench.eval.functional import gt_map_vggss

#: the views key holding each mixture's K source waveforms (B, K, T): the front-end averages
#: their log-spectrograms into ``audio``
MIX_SOURCES = "mix_sources"


def is_heard(view: str) -> bool:
    """Whether a view key carries audio: a mixture's sources, or a ``waveform_*`` clip."""
    return view == MIX_SOURCES or view.startswith("waveform_")
AUDIO_MIXES = ("log_spectrogram", "waveform", "waveform_sum")


class StackedMixture(AVDataset):
    """K single-source samples stacked vertically, their audio mixed: a multi-source set whose every
    frame holds one source.

    Args:
        base: the single-source set to compose from (with ground truth for evaluation).
        sources: K, the frames (and sources) per mixture.
        name: logged name (default ``<base>_stacked<K>``).
        audio_mix: ``log_spectrogram`` (NoPrior: the mean of the K log-spectrograms), ``waveform``
            (the mean of the K waveforms) or ``waveform_sum`` (AVGN's mixtures: their sum, unclipped).
    """

    evaluation = "multi"

    def __init__(
        self, base: AVDataset, sources: int = 2, name: str | None = None,
        audio_mix: Literal["log_spectrogram", "waveform", "waveform_sum"] = "log_spectrogram",
    ):
        super().__init__()
        if sources < 1:
            raise ValueError(f"a mixture needs at least one source, got {sources}")
        if len(base) < sources:
            raise ValueError(f"{base.name} has {len(base)} samples, fewer than the {sources} sources of one mixture")
        if audio_mix not in AUDIO_MIXES:
            raise ValueError(f"audio_mix must be one of {AUDIO_MIXES}, got {audio_mix!r}")
        self.base, self.sources, self.audio_mix = base, sources, audio_mix
        self.name = name or f"{base.name}_stacked{sources}"

    def configure(self, **settings) -> None:
        super().configure(**settings)
        self.base.configure(**{**settings, "device_augmentation": False})  # frames are combined here, finished

    def partners(self, index: int) -> list[int]:
        # NoPrior datasets_flow.py __getitem__: idx + i * len(files) // concat_num, i.e. (i * N) // K,
        # which differs from i * (N // K) whenever K does not divide N
        n = len(self.base)
        return [index + (j * n) // self.sources for j in range(self.sources)]

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
        if first_unreadable(parts):
            return first_unreadable(parts)
        sample = stack_vertically(parts, self.audio_mix)
        sample["index"] = index
        return sample


def stack_vertically(parts: list[dict], audio_mix: str) -> dict[str, Any]:
    """K samples -> one with the frames stacked top to bottom, one gt frame per source."""
    k = len(parts)
    boxes = []
    for j, part in enumerate(parts):  # [x1, y1, x2, y2] of frame j -> the stacked frame
        b = part.get("boxes", torch.zeros(0, 4)).clone()
        b[:, 1::2] = (b[:, 1::2] + j) / k
        boxes.append(b)
    waves = torch.stack([p["waveform"] for p in parts])
    sample = {
        "image": torch.cat([p["image"] for p in parts], dim=-2),
        "waveform": waves.sum(0) if audio_mix == "waveform_sum" else waves.mean(0),
        "sample_id": "+".join(p["sample_id"] for p in parts),
        "class_id": parts[0]["class_id"],
        "boxes": torch.cat(boxes),
        "source_classes": [p["class_id"] for p in parts],
    }
    if audio_mix == "log_spectrogram":
        sample["views"] = {MIX_SOURCES: waves}
    if all(p.get("gt_map") is not None for p in parts):
        sample["gt_frames"] = torch.stack([(p["gt_map"] > 0).float() for p in parts])
    return sample


# -- seeded duets in three layouts ----------------------------------------------------------------

LAYOUTS = {"side_by_side": 2, "stacked": 2, "grid2x2": 4}


def read_mixture_list(path: Path) -> list[tuple[list[str], list[bool]]]:
    """Mixtures from a saved list (``sources,sounding`` with ``+``-joined ids and 0/1 flags) or
    from AVGN's ``vggsound_duet_test.csv`` (``file,class,mix_file,mix_class``, no header)."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if rows and rows[0][:2] == ["sources", "sounding"]:
        return [(r[0].split("+"), [c == "1" for c in r[1]]) for r in rows[1:]]
    return [([r[0].strip(), r[2].strip()], [True, True]) for r in rows if len(r) >= 4]


def write_mixture_list(path: Path, mixtures: list[tuple[list[str], list[bool]]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sources", "sounding"])
        for ids, sounding in mixtures:
            writer.writerow(["+".join(ids), "".join("1" if s else "0" for s in sounding)])


class DuetComposer(AVDataset):
    """Mixtures of single-source samples, drawn with a seed (or read from a list), in a layout.

    Args:
        base: the single-source set to compose from.
        layout: ``side_by_side``, ``stacked`` or ``grid2x2`` (see the module docstring).
        num_mixtures: how many to draw (default: as many as the base set has samples).
        seed: drawing seed; partners of another class when the base set knows classes.
        mixtures: a list file to read the mixtures from instead of drawing them.
        save_list: where to write the mixtures drawn (``sources,sounding`` rows).
        name: logged name (default ``<base>_<layout>``).
    """

    evaluation = "multi"

    def __init__(
        self,
        base: AVDataset,
        layout: Literal["side_by_side", "stacked", "grid2x2"] = "side_by_side",
        num_mixtures: int | None = None,
        seed: int = 0,
        mixtures: str | None = None,
        save_list: str | None = None,
        name: str | None = None,
    ):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
        self.base, self.layout, self.seed = base, layout, seed
        self.num_mixtures, self.mixtures_file, self.save_list = num_mixtures, mixtures, save_list
        self.name = name or f"{base.name}_{layout}"

    def configure(self, **settings) -> None:
        super().configure(**settings)
        self.base.configure(**{**settings, "device_augmentation": False})  # frames are combined here, finished

    @property
    def _mixtures(self) -> list[tuple[list[int], list[bool]]]:
        if not hasattr(self, "_drawn"):
            self._drawn = self._read() if self.mixtures_file else self._draw()
            if self.save_list:
                ids = self.base.sample_ids
                write_mixture_list(Path(self.save_list), [([ids[i] for i in m], s) for m, s in self._drawn])
        return self._drawn

    def _read(self) -> list[tuple[list[int], list[bool]]]:
        position = {sid: i for i, sid in enumerate(self.base.sample_ids)}
        rows = read_mixture_list(Path(self.mixtures_file))
        kept = [([position[i] for i in ids], s) for ids, s in rows if all(i in position for i in ids)]
        if not kept:
            raise ValueError(f"none of the {len(rows)} mixtures of {self.mixtures_file} has all its sources in {self.base.name}")
        self.missing = len(rows) - len(kept)
        return kept

    def _draw(self) -> list[tuple[list[int], list[bool]]]:
        n, k = len(self.base), LAYOUTS[self.layout]
        if n < k:
            raise ValueError(f"{self.base.name} has {n} samples, fewer than the {k} of one mixture")
        rng = random.Random(self.seed)
        drawn = []
        for i in range(self.num_mixtures or n):
            members = [i % n]
            while len(members) < k:  # partners of another class when classes are known
                j = rng.randrange(n)
                classes = {self.base.class_id(m) for m in members}
                if j not in members and (self.base.class_id(j) < 0 or self.base.class_id(j) not in classes or rng.random() < 0.05):
                    members.append(j)
            sounding = [True] * k
            if self.layout == "grid2x2":  # two of the four sound
                silent = rng.sample(range(4), 2)
                sounding = [q not in silent for q in range(4)]
            drawn.append((members, sounding))
        return drawn

    @property
    def sample_ids(self) -> list[str]:
        ids = self.base.sample_ids
        return ["+".join(ids[i] for i in members) for members, _ in self._mixtures]

    @property
    def list_name(self) -> str:
        source = Path(self.mixtures_file).name if self.mixtures_file else f"seed {self.seed}"
        return f"{self.base.list_name} ({self.layout}, {source})"

    @property
    def has_ground_truth(self) -> bool:
        return self.base.has_ground_truth

    def __len__(self) -> int:
        return len(self._mixtures)

    def class_id(self, index: int) -> int:
        members, sounding = self._mixtures[index]
        return self.base.class_id(next(m for m, s in zip(members, sounding) if s))

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        members, sounding = self._mixtures[index]
        parts = [self.base[m] for m in members]
        if first_unreadable(parts):
            return first_unreadable(parts)
        if self.layout == "stacked":
            sample = stack_vertically(parts, "log_spectrogram")
        else:
            sample = self._tile(parts, sounding)
        sample["index"] = index
        return sample

    def _tile(self, parts: list[dict], sounding: list[bool]) -> dict[str, Any]:
        """Side by side (1 x 2) or a 2 x 2 grid in one square frame; sounding sources' boxes only."""
        rows, cols = (1, 2) if self.layout == "side_by_side" else (2, 2)
        side = parts[0]["image"].shape[-1]
        tiles = [F.interpolate(p["image"][None], size=(side // rows, side // cols), mode="bilinear", align_corners=False)[0] for p in parts]
        grid = torch.cat([torch.cat(tiles[r * cols:(r + 1) * cols], dim=-1) for r in range(rows)], dim=-2)
        boxes, classes = [], []
        for q, (part, on) in enumerate(zip(parts, sounding)):
            if not on:
                continue
            r, c = divmod(q, cols)
            b = part.get("boxes", torch.zeros(0, 4)).clone().float()
            b[:, 0::2] = (b[:, 0::2] + c) / cols
            b[:, 1::2] = (b[:, 1::2] + r) / rows
            boxes.append(b)
            classes.append(part["class_id"])
        waves = [p["waveform"] for p, on in zip(parts, sounding) if on]
        sample = {
            "image": grid,
            "waveform": torch.stack(waves).sum(0),
            "sample_id": "+".join(p["sample_id"] for p in parts),
            "class_id": classes[0],
            "boxes": torch.cat(boxes),
            "source_classes": classes,
        }
        if all(p.get("gt_map") is not None for p in parts):
            gt = gt_map_vggss(sample["boxes"].tolist(), self.eval_size).float()
            sample["gt_map"], sample["gt_frames"] = gt, gt[None]
        return sample

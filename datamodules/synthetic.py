"""SyntheticScenes: a procedural audio-visual localization set that needs no download.

Each of K classes has a visual identity (shape, colour, texture family) and a sound identity
(pitch, timbre, modulation family); instances vary in size, position, shade, texture phase,
pitch and modulation rate. A scene holds one (``solo``) or two (``duet``) sounding objects, at
least one silent distractor of another class, and small clutter on a smooth coloured background,
so an objectness prior alone cannot solve it. The audio is the sounding sources' mix at 16 kHz
plus background noise. Sample ``i`` of a split is a pure function of ``(seed, split, i)``.

Ground truth imitates SoundNet-Flickr: every sounding object gets three jittered annotator boxes
in a 256 x 256 frame, turned into the consensus map by ``gt_map_flickr``.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from datamodules.base import AVDataset
from datamodules.transforms import normalize
from sslbench.eval.functional import gt_map_flickr, gt_map_vggss

SHAPES = ("disc", "square", "triangle", "diamond", "ring", "cross")
TEXTURES = ("solid", "stripes", "checker", "dots")
TIMBRES = ("bright", "odd", "mellow")
MODULATIONS = ("steady", "tremolo", "pulses")
SPLITS = {"train": 0, "val": 1, "test": 2}
DEFAULT_SIZES = {"train": 4000, "val": 256, "test": 501}
ANNOTATORS = 3
ANNOTATION_FRAME = 256


@dataclass(frozen=True)
class ClassIdentity:
    shape: str
    colour: tuple[float, float, float]
    texture: str
    pitch: float
    timbre: str
    modulation: str


def class_identities(num_classes: int) -> list[ClassIdentity]:
    """Distinct hues and pitches (2.5 semitones apart from 180 Hz); shapes, textures, timbres and
    modulations cycle with co-prime periods so that neighbouring classes differ in every cue."""
    out = []
    for k in range(num_classes):
        colour = colorsys.hsv_to_rgb((k * 0.381966) % 1.0, 0.85, 0.95)  # golden-angle hues
        out.append(
            ClassIdentity(
                shape=SHAPES[k % len(SHAPES)],
                colour=tuple(float(c) for c in colour),
                texture=TEXTURES[k % len(TEXTURES)],
                pitch=180.0 * 2 ** (2.5 * k / 12),
                timbre=TIMBRES[k % len(TIMBRES)],
                modulation=MODULATIONS[(k // len(TIMBRES)) % len(MODULATIONS)],
            )
        )
    return out


@dataclass(frozen=True)
class SceneObject:
    cls: int
    box: tuple[float, float, float, float]  # normalised x1, y1, x2, y2
    sounding: bool
    visible: bool = True  # False: an off-screen source, heard but not drawn


def _corner_box(rng: np.random.Generator, corner: int, side: float) -> tuple[float, float, float, float]:
    """A square of ``side`` whose position leans towards one image corner (0..3), jittered."""
    cx = (corner % 2) * (1 - side) + rng.uniform(-0.08, 0.08)
    cy = (corner // 2) * (1 - side) + rng.uniform(-0.08, 0.08)
    x0, y0 = float(np.clip(cx, 0, 1 - side)), float(np.clip(cy, 0, 1 - side))
    return x0, y0, x0 + side, y0 + side


class SyntheticScenes(AVDataset):
    """Procedural scenes; the default dataset wherever none is named.

    Args:
        split: ``train``, ``val`` or ``test``: disjoint random streams of the same generator. Left
            unset, the data module picks the split from where the dataset is used (``test`` alone).
        num_samples: samples in the split (default 4000 train, 256 val, 501 test).
        num_classes: K object classes.
        mode: ``solo`` (one sounding object) or ``duet`` (two, mixed).
        seed: generator seed; sample i is a pure function of (seed, split, i).
        sample_rate: audio rate in Hz (the audio preset's rate must match).
        snr_db: range of the sources-to-background-noise ratio.
        clutter: number of small background shapes per scene (drawn from this range).
        cache: keep rendered samples in memory (per loader process), so epochs after the first
            cost nothing; about 0.25 MB per sample at 128 px. Training samples are randomly flipped
            (both axes) and their audio circularly shifted, which leaves every identity intact.
        silent_fraction: share of non-sounding samples (an extended set, as SLAVC's): the sound
            comes from a class that is not in the picture, and the gt is empty.
        masks: give pixel masks of the visible sounding object instead of boxes (a segmentation
            set, as AVSBench S4), grouped into "videos" of ``frames_per_video`` consecutive samples.
        frames_per_video: samples per video of a segmentation set.
        name: the name results are logged under (default: ``synthetic``, ``synthetic_duet``, ... by
            kind); set it to test on several synthetic sets of one kind at once.

    The set's kind follows: ``duet`` is a multi-source set (one frame, both sources in its gt, as
    MUSIC-Duet), ``silent_fraction > 0`` an extended set, ``masks`` a segmentation set.
    """

    name = "synthetic"

    def __init__(
        self,
        split: str | None = None,
        num_samples: int | None = None,
        num_classes: int = 10,
        mode: Literal["solo", "duet"] = "solo",
        seed: int = 0,
        sample_rate: int = 16000,
        snr_db: tuple[float, float] = (6.0, 20.0),
        clutter: tuple[int, int] = (10, 25),
        cache: bool = False,
        silent_fraction: float = 0.0,
        masks: bool = False,
        frames_per_video: int = 5,
        name: str | None = None,
    ):
        super().__init__()
        if sum([mode == "duet", silent_fraction > 0, masks]) > 1:
            raise ValueError("choose one of mode='duet', silent_fraction > 0 and masks=True")
        if not 0 <= silent_fraction < 1:
            raise ValueError(f"silent_fraction must be in [0, 1), got {silent_fraction}")
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        self.split_chosen = split is not None
        split = split or "test"
        if mode not in ("solo", "duet"):
            raise ValueError(f"mode must be 'solo' or 'duet', got {mode!r}")
        if num_classes < 3:
            raise ValueError("num_classes must be at least 3 (sounding objects plus a distractor of another class)")
        self.split, self.mode, self.seed = split, mode, seed
        self.num_samples_chosen = num_samples
        self.num_samples = DEFAULT_SIZES[split] if num_samples is None else num_samples
        self.num_classes, self.sample_rate = num_classes, sample_rate
        self.snr_db, self.clutter = snr_db, clutter
        self.identities = class_identities(num_classes)
        self.silent_fraction, self.masks, self.frames_per_video = silent_fraction, masks, frames_per_video
        self.evaluation = "multi" if mode == "duet" else "extended" if silent_fraction else "segmentation" if masks else "single"
        self.name_chosen = name
        default_names = {"single": "synthetic", "multi": "synthetic_duet", "extended": "synthetic_extended", "segmentation": "synthetic_masks"}
        self.name = name or default_names[self.evaluation]
        self.cache = cache
        self._rendered: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def for_split(self, split: str, num_samples: int | None = None) -> SyntheticScenes:
        """The same generator (classes, mode, seed, cache) on another split."""
        return SyntheticScenes(
            split, num_samples, self.num_classes, self.mode, self.seed, self.sample_rate, self.snr_db, self.clutter, self.cache,
            self.silent_fraction, self.masks, self.frames_per_video, self.name_chosen,
        )

    def configure(self, *, image_size, audio, train, eval_size=224, **frames) -> None:
        """As :meth:`AVDataset.configure`; the frame pipelines (``frames``) are recorded but scenes are
        rendered at ``image_size`` and only flipped in training."""
        if audio.sample_rate != self.sample_rate:
            raise ValueError(
                f"audio preset {audio.name!r} expects {audio.sample_rate} Hz but SyntheticScenes renders "
                f"{self.sample_rate} Hz; set sample_rate: {audio.sample_rate} on the dataset"
            )
        if (image_size, audio) != (self.image_size, self.audio):
            self._rendered.clear()
        super().configure(image_size=image_size, audio=audio, train=train, eval_size=eval_size, **frames)

    def raw_frame(self, index: int) -> torch.Tensor:
        """The rendered scene, (3, S, S) uint8, before the training flip."""
        return torch.from_numpy(self._render(index, self.scene(index))[0]).permute(2, 0, 1)

    @property
    def sample_ids(self) -> list[str]:
        return [f"{self.split}_{i:06d}" for i in range(self.num_samples)]

    def __len__(self) -> int:
        return self.num_samples

    @property
    def has_ground_truth(self) -> bool:
        return True

    def _rng(self, index: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLITS[self.split], index, stream])

    def scene(self, index: int) -> list[SceneObject]:
        """The objects of scene ``index`` in drawing order (later ones occlude earlier ones)."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        rng = self._rng(index, 0)
        n_sounding = 1 if self.mode == "solo" else 2
        classes = rng.choice(self.num_classes, size=n_sounding + 1, replace=False)
        corners = rng.permutation(4)
        # Sounding and silent objects share one size distribution and a random drawing order, so
        # neither size nor occlusion tells which one sounds; the partner sits in the opposite corner.
        if self.mode == "solo":
            sides = rng.uniform(0.58, 0.7, size=2)
            places = [corners[0], 3 - corners[0]]
        else:  # two sounding objects on a diagonal, the distractor in a third corner
            sides = rng.uniform(0.45, 0.55, size=3)
            places = [corners[0], 3 - corners[0], corners[1] if corners[1] != 3 - corners[0] else corners[2]]
        objects = [
            SceneObject(int(c), _corner_box(rng, int(p), float(s)), sounding=i < n_sounding)
            for i, (c, p, s) in enumerate(zip(classes, places, sides))
        ]
        objects = [objects[i] for i in rng.permutation(len(objects))]
        silent = self._rng(index, 4)  # its own stream: sets without silent samples are unchanged
        if self.silent_fraction and silent.uniform() < self.silent_fraction:
            offscreen = int(silent.choice(np.setdiff1d(np.arange(self.num_classes), classes)))
            objects = [SceneObject(o.cls, o.box, sounding=False) for o in objects]
            objects.append(SceneObject(offscreen, (0.0, 0.0, 0.0, 0.0), sounding=True, visible=False))
        return objects

    def class_id(self, index: int) -> int:
        return next(o.cls for o in self.scene(index) if o.sounding)

    # -- pictures ---------------------------------------------------------------------------

    def render_image(self, index: int, objects: list[SceneObject]) -> np.ndarray:
        """(S, S, 3) uint8, like a decoded frame."""
        rng = self._rng(index, 1)
        s = self.image_size
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
        canvas = np.empty((s, s, 3), np.float32)
        for c in range(3):  # smooth coloured background
            fx, fy, ph = rng.uniform(0.5, 2.5), rng.uniform(0.5, 2.5), rng.uniform(0, 2 * math.pi)
            canvas[..., c] = 0.45 + 0.2 * np.sin(2 * math.pi * (fx * xx + fy * yy) + ph) * rng.uniform(0.3, 1)
        for _ in range(rng.integers(*self.clutter, endpoint=True)):
            side = rng.uniform(0.04, 0.12)
            x0, y0 = rng.uniform(0, 1 - side, size=2)
            colour = np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.2, 0.9), rng.uniform(0.3, 1)))
            self._paint(canvas, (x0, y0, x0 + side, y0 + side), SHAPES[rng.integers(len(SHAPES))], colour, "solid", rng)
        for obj in (o for o in objects if o.visible):
            ident = self.identities[obj.cls]
            colour = np.array(ident.colour) * rng.uniform(0.85, 1.1)
            self._paint(canvas, obj.box, ident.shape, colour, ident.texture, rng)
        canvas += rng.normal(0, 0.03, canvas.shape).astype(np.float32)
        return (np.clip(canvas, 0, 1) * 255 + 0.5).astype(np.uint8)

    @staticmethod
    def _shape(box, shape: str, s: int):
        """Pixels of ``shape`` in ``box`` on an s x s grid -> (row slice, column slice, inside, u, v), or None."""
        x0, y0, x1, y1 = (int(round(v * s)) for v in box)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        v, u = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        u = (u - x0 + 0.5) / (x1 - x0) * 2 - 1  # object frame in [-1, 1]
        v = (v - y0 + 0.5) / (y1 - y0) * 2 - 1
        if shape == "disc":
            inside = u**2 + v**2 <= 1
        elif shape == "square":
            inside = (np.abs(u) <= 0.9) & (np.abs(v) <= 0.9)
        elif shape == "triangle":
            inside = (v >= -0.9) & (v <= 0.9) & (np.abs(u) <= (v + 0.9) / 1.8)
        elif shape == "diamond":
            inside = np.abs(u) + np.abs(v) <= 1
        elif shape == "ring":
            r2 = u**2 + v**2
            inside = (r2 <= 1) & (r2 >= 0.3)
        else:  # cross
            inside = ((np.abs(u) <= 0.35) | (np.abs(v) <= 0.35)) & (np.abs(u) <= 0.95) & (np.abs(v) <= 0.95)
        return slice(y0, y1), slice(x0, x1), inside, u, v

    def _paint(self, canvas: np.ndarray, box, shape: str, colour: np.ndarray, texture: str, rng) -> None:
        found = self._shape(box, shape, canvas.shape[0])
        if found is None:
            return
        rows, cols, inside, u, v = found
        shade = np.ones_like(u)
        freq, angle = rng.uniform(2.5, 4.5), rng.uniform(0, math.pi)
        a = u * math.cos(angle) + v * math.sin(angle)
        b = -u * math.sin(angle) + v * math.cos(angle)
        if texture == "stripes":
            shade = np.where(np.sin(math.pi * freq * a) > 0, 1.0, 0.55)
        elif texture == "checker":
            shade = np.where(np.sin(math.pi * freq * a) * np.sin(math.pi * freq * b) > 0, 1.0, 0.55)
        elif texture == "dots":
            shade = np.where(np.cos(math.pi * freq * a) * np.cos(math.pi * freq * b) > 0.5, 0.5, 1.0)
        region = canvas[rows, cols]
        region[inside] = (shade[..., None] * colour[None, None, :])[inside]

    def class_map(self, objects: list[SceneObject], size: int) -> torch.Tensor:
        """(size, size) int64: 1 + the class of the object seen at each pixel, 0 for background
        (later objects occlude earlier ones; clutter counts as background)."""
        labels = np.zeros((size, size), np.int64)
        for obj in (o for o in objects if o.visible):
            found = self._shape(obj.box, self.identities[obj.cls].shape, size)
            if found is not None:
                rows, cols, inside, _, _ = found
                labels[rows, cols][inside] = obj.cls + 1
        return torch.from_numpy(labels)

    def sounding_mask(self, objects: list[SceneObject], size: int) -> torch.Tensor:
        """(size, size) float {0, 1}: visible pixels of the sounding objects (later objects occlude)."""
        sounding = torch.tensor([1 + o.cls for o in objects if o.sounding and o.visible], dtype=torch.int64)
        return torch.isin(self.class_map(objects, size), sounding).float()  # a scene's classes are distinct

    # -- sounds -----------------------------------------------------------------------------

    def render_audio(self, index: int, objects: list[SceneObject]) -> np.ndarray:
        """(T,) float32 waveform: the sounding sources plus background noise, in [-1, 1]."""
        rng = self._rng(index, 2)
        n = int(round(self.sample_rate * self.audio.window_seconds))
        t = np.arange(n, dtype=np.float64) / self.sample_rate
        mix = np.zeros(n)
        for obj in objects:
            if obj.sounding:
                mix += self._source(self.identities[obj.cls], t, rng)
        noise_rms = np.sqrt(np.mean(mix**2)) * 10 ** (-rng.uniform(*self.snr_db) / 20)
        mix += rng.normal(0, 1, n) * noise_rms
        return np.clip(mix, -1, 1).astype(np.float32)

    def _source(self, ident: ClassIdentity, t: np.ndarray, rng) -> np.ndarray:
        f0 = ident.pitch * rng.uniform(0.97, 1.03)
        # every timbre is harmonic-rich, so the pitch shows as a harmonic spacing a CNN can see anywhere
        harmonics, decay = {"bright": ((1, 2, 3, 4, 5, 6, 7, 8), 1), "odd": ((1, 3, 5, 7, 9, 11), 1), "mellow": ((1, 2, 3, 4, 5), 2)}[ident.timbre]
        phase = 2 * math.pi * f0 * t + rng.uniform(0, 2 * math.pi)
        # sin(h x) by the Chebyshev recurrence s_{h+1} = 2 cos(x) s_h - s_{h-1}: one sin and one cos
        two_cos, previous, current = 2 * np.cos(phase), np.zeros_like(phase), np.sin(phase)
        wave = np.zeros_like(phase)
        for h in range(1, max(harmonics) + 1):
            if h in harmonics and h * f0 < self.sample_rate / 2:
                wave += current / h**decay
            previous, current = current, two_cos * current - previous
        rate = rng.uniform(3.0, 7.0)
        if ident.modulation == "tremolo":
            wave *= 0.55 + 0.45 * np.sin(2 * math.pi * rate * t)
        elif ident.modulation == "pulses":
            wave *= np.sin(2 * math.pi * rate / 2 * t + rng.uniform(0, 6.3)) > 0
        rms = np.sqrt(np.mean(wave**2)) + 1e-8
        return wave / rms * 0.12 * rng.uniform(0.7, 1.3)

    # -- ground truth -----------------------------------------------------------------------

    def annotator_boxes(self, index: int, objects: list[SceneObject]) -> torch.Tensor:
        """(ANNOTATORS * n_sounding, 4) int boxes in the 256 x 256 frame, each coordinate jittered."""
        rng = self._rng(index, 3)
        rows = []
        for obj in objects:
            if obj.sounding and obj.visible:
                for _ in range(ANNOTATORS):
                    jittered = np.clip(np.array(obj.box) + rng.normal(0, 0.02, 4), 0, 1)
                    rows.append([int(round(v * ANNOTATION_FRAME)) for v in jittered])
        return torch.tensor(rows, dtype=torch.long)

    def _render(self, index: int, objects: list[SceneObject]) -> tuple[np.ndarray, np.ndarray]:
        if index in self._rendered:
            return self._rendered[index]
        rendered = self.render_image(index, objects), self.render_audio(index, objects)
        if self.cache:
            self._rendered[index] = rendered
        return rendered

    def __getitem__(self, index: int) -> dict[str, Any]:
        objects = self.scene(index)
        image, waveform = self._render(index, objects)
        image, waveform = torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(waveform)
        if self.train:  # identity-preserving augmentation, so a cached set is not memorised
            image = image.flip([d for d in (1, 2) if torch.rand(()) < 0.5])
            waveform = waveform.roll(int(torch.randint(waveform.numel(), ())))
        sample = {
            "image": normalize(image.float() / 255),
            "waveform": waveform,
            "index": index,
            "sample_id": f"{self.split}_{index:06d}",
            "class_id": next(o.cls for o in objects if o.sounding),
            "boxes": torch.tensor([o.box for o in objects if o.sounding and o.visible], dtype=torch.float32).view(-1, 4),
        }
        if not self.train:
            sample.update(self.ground_truth(index, objects, sample["boxes"]))
        return sample

    def ground_truth(self, index: int, objects: list[SceneObject], boxes: torch.Tensor) -> dict[str, Any]:
        """The evaluation targets of this set's kind (``AVBatch``'s gt fields)."""
        if self.evaluation == "segmentation":
            return {"gt_map": self.sounding_mask(objects, self.eval_size), "group": index // self.frames_per_video}
        annotated = self.annotator_boxes(index, objects)
        gt = {"gt_map": gt_map_flickr(annotated, size=self.eval_size)}
        if self.evaluation == "extended":
            gt["n_boxes"] = len(annotated)
        if self.evaluation == "multi":  # one frame holding both sources: their binary union, as MUSIC-Duet
            gt["gt_frames"] = gt_map_vggss(boxes, size=self.eval_size)[None]
        return gt

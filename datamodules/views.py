"""Extra views of each training sample, for methods that learn from more than one pair.

A method states what it needs as a :class:`ViewSpec` (``LocalizationMethod.train_views``); the
data module wraps its training set in :class:`ViewedDataset`, which adds the views to each sample
under fixed names, so datasets never know which method reads them:

- ``image_2``: a second independent draw of the training transform (SSPL's two views).
- ``image_aug``: a SimCLR-style strong augmentation (SSL-Align's v_aug).
- ``waveform_aug``: the audio window shifted in time (SSL-Align's a_aug).
- ``image_conc`` / ``waveform_conc``: the image of a visual neighbour and the audio of an audio
  neighbour, drawn from precomputed top-k tables (SSL-Align's conceptual positives; ``sslbench knn``).

Waveform views become ``audio_*`` spectrograms on the batch's device, like the main audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from datamodules.base import AVDataset, first_unreadable, is_unreadable
from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize, normalize, train_resize


@dataclass(frozen=True)
class ViewSpec:
    """What a method needs beyond (image, audio).

    Attributes:
        second_image: a second draw of the training transform, ``image_2``.
        strong_image: a strongly augmented draw, ``image_aug``.
        strong_form: how it is drawn (:func:`strong_augmentation`): ``code`` or ``intended``.
        audio_shift_seconds: > 0 adds ``waveform_aug``, shifted by up to this many seconds.
        conceptual: add ``image_conc`` and ``waveform_conc`` from the neighbour tables.
    """

    second_image: bool = False
    strong_image: bool = False
    audio_shift_seconds: float = 0.0
    conceptual: bool = False
    strong_form: str = "code"

    @property
    def empty(self) -> bool:
        return self == ViewSpec()

    @property
    def keys(self) -> list[str]:
        """The ``AVBatch.views`` entries this spec fills (audio ones after transfer)."""
        keys = ["image_2"] * self.second_image + ["image_aug"] * self.strong_image
        keys += ["audio_aug"] * (self.audio_shift_seconds > 0) + ["image_conc", "audio_conc"] * self.conceptual
        return keys


STRONG_FORMS = ("code", "intended")


def strong_augmentation(size: int, form: str = "code") -> v2.Compose:
    """SSL-Align's v_aug (methods.md 5).

    ``code`` (kaistmm/ssl_kccv ``Alignment/datasets/dataloader_vggss.py``, ``_load_frame(aug=True)``
    then ``aug_img_transform``), on the full decoded frame: a rotation by a random multiple of 90
    degrees (no expand: a wide frame loses its corners), ColorJitter with p 4/5 called as
    ``brightness=(0, 0.4), contrast=(0, 0.4), saturation=(0, 0.4), hue=(0, 0.1)``, which torchvision
    reads as factor *ranges* (a brightness factor in [0, 0.4]: a darkened frame), GaussianBlur(3,
    sigma 0.1-2) with p 1/2; then Resize(int(1.1 * size), bicubic), RandomCrop, HFlip, VFlip,
    RandomAffine(translate 0.2), CenterCrop, RandomGrayscale(0.2), normalised. Returns the network
    input from a PIL image or uint8 tensor.

    ``intended``: what the call looks meant to be, ColorJitter(0.4, 0.4, 0.4, 0.1) (factors within
    +-0.4 of 1, hue +-0.1), with the same rotation, blur, flips, translation and grayscale, applied
    to an already-cropped [0, 1] training view; returns [0, 1].
    """
    if form not in STRONG_FORMS:
        raise ValueError(f"unknown strong augmentation form {form!r}; choose one of {STRONG_FORMS}")
    rotate = v2.RandomChoice([v2.RandomRotation((a, a)) for a in (0, 90, 180, 270)])
    blur = v2.RandomApply([v2.GaussianBlur(3, sigma=(0.1, 2.0))], p=0.5)
    flips_and_shift = [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(), v2.RandomAffine(degrees=0, translate=(0.2, 0.2))]
    if form == "intended":
        return v2.Compose([rotate, v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), blur, *flips_and_shift,
                           v2.RandomGrayscale(0.2)])
    jitter = v2.ColorJitter(brightness=(0, 0.4), contrast=(0, 0.4), saturation=(0, 0.4), hue=(0, 0.1))
    return v2.Compose([
        rotate, v2.RandomApply([jitter], p=0.8), blur,
        v2.Resize(train_resize(size), interpolation=v2.InterpolationMode.BICUBIC), v2.RandomCrop(size), *flips_and_shift,
        v2.CenterCrop(size), v2.RandomGrayscale(0.2),
        v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


@dataclass(frozen=True)
class NeighbourTables:
    """Top-k neighbours of every training sample, by image and by audio similarity.

    ``image[i]`` and ``audio[i]`` hold positions in ``sample_ids`` (the training list they were
    computed on), nearest first, the sample itself excluded.
    """

    sample_ids: list[str]
    image: Tensor
    audio: Tensor
    source: str = ""

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path, sample_ids=np.array(self.sample_ids), image=self.image.numpy(), audio=self.audio.numpy(), source=self.source
        )

    @classmethod
    def load(cls, path: str | Path) -> NeighbourTables:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"neighbour tables not found: {path} (make them with `sslbench knn`)")
        with np.load(path, allow_pickle=False) as data:
            return cls([str(s) for s in data["sample_ids"]], torch.from_numpy(data["image"]), torch.from_numpy(data["audio"]),
                       str(data["source"]))

    def aligned_to(self, dataset: AVDataset) -> NeighbourTables:
        """The tables re-indexed to ``dataset``'s sample order; neighbours it lacks are dropped."""
        position = {sample_id: i for i, sample_id in enumerate(dataset.sample_ids)}
        known = set(self.sample_ids)
        missing = [s for s in dataset.sample_ids if s not in known]
        if missing:
            raise ValueError(
                f"neighbour tables ({self.source or 'file'}) lack {len(missing)} of the {len(dataset)} training samples "
                f"(first: {missing[0]!r}); recompute them on this training list with `sslbench knn`"
            )
        own = {sample_id: i for i, sample_id in enumerate(self.sample_ids)}
        remap = torch.tensor([position.get(s, -1) for s in self.sample_ids])
        rows = torch.tensor([own[s] for s in dataset.sample_ids])
        return NeighbourTables(list(dataset.sample_ids), remap[self.image[rows]], remap[self.audio[rows]], self.source)


class ViewedDataset(Dataset):
    """A training set whose samples carry the views of a :class:`ViewSpec` under ``views``."""

    def __init__(self, dataset: AVDataset, spec: ViewSpec, neighbours: NeighbourTables | None = None):
        if spec.conceptual and neighbours is None:
            raise ValueError(
                "this method trains with conceptual positives: compute neighbour tables with "
                "`sslbench knn --config <your config> --out neighbours.npz` and set data.neighbours"
            )
        self.dataset, self.spec = dataset, spec
        self.neighbours = neighbours.aligned_to(dataset) if spec.conceptual else None
        self.strong = strong_augmentation(dataset.image_size, spec.strong_form) if spec.strong_image else None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str):  # name, sample_ids, class_id, ... of the wrapped set
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def _neighbour(self, table: Tensor, index: int) -> int:
        row = table[index]
        row = row[row >= 0]
        if row.numel() == 0:
            return index
        return int(row[torch.randint(row.numel(), ())])

    def strong_view(self, index: int) -> Tensor | dict[str, str]:
        """``image_aug``: the code form from the full frame when the reader keeps it, else from
        a training view (as the intended form always is); the unreadable marker when the frame
        cannot be read."""
        if self.spec.strong_form == "code":
            try:
                frame = self.dataset.raw_frame(index)
            except Exception:  # unreadable: the training view below says so
                frame = None
            if frame is not None:
                return self.strong(frame)
        view = self.dataset[index]
        if is_unreadable(view):
            return first_unreadable([view])
        if self.spec.strong_form == "code":  # no full frame: the same pipeline on the cropped view
            return self.strong(denormalize(view["image"]))
        return normalize(self.strong(denormalize(view["image"])))

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        sample = self.dataset[index]
        if is_unreadable(sample):
            return first_unreadable([sample])
        views: dict[str, Tensor] = {}
        if self.spec.second_image:
            second = self.dataset[index]
            if is_unreadable(second):
                return first_unreadable([second])
            views["image_2"] = second["image"]
        if self.spec.strong_image:
            strong = self.strong_view(index)
            if isinstance(strong, dict):
                return strong
            views["image_aug"] = strong
        if self.spec.audio_shift_seconds > 0:
            shift = float(torch.empty(()).uniform_(-self.spec.audio_shift_seconds, self.spec.audio_shift_seconds))
            views["waveform_aug"] = self.dataset.shifted_waveform(index, sample["waveform"], shift)
        if self.neighbours is not None:  # present exactly when the spec asks for conceptual views
            by_image = self.dataset[self._neighbour(self.neighbours.image, index)]
            by_audio = self.dataset[self._neighbour(self.neighbours.audio, index)]
            if first_unreadable((by_image, by_audio)):  # the neighbour's id is the one counted
                return first_unreadable((by_image, by_audio))
            views["image_conc"], views["waveform_conc"] = by_image["image"], by_audio["waveform"]
        return {**sample, "views": views}

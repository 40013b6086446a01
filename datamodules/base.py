"""The contract between a dataset reader and ``AudioVisualDataModule``."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

from datamodules.transforms import DEVICE_AUGMENTED, decode_side, draw_crop, image_transform, train_decode, train_resize
from sslbench.audio import PRESETS, AudioPreset


class AVDataset(Dataset, ABC):
    """A dataset of (frame, audio clip[, ground truth]) samples.

    Subclasses take their files and options as typed ``__init__`` arguments (so a config names
    them), check in ``__init__`` that their root exists, and read nothing heavy before first use.
    The data module then calls :meth:`configure` with what the method needs; ``__getitem__``
    returns a dict with ``image``, ``waveform``, ``index``, ``sample_id``, ``class_id`` and, for
    evaluation, ``gt_map`` and ``boxes`` (see ``datamodules.batch.AVBatch``), or :func:`unreadable`'s
    marker for a sample whose files cannot be read (dropped by the collate function, counted and
    reported once by the data module).
    """

    #: key under which metrics are logged (``test/<name>/ciou@0.5``)
    name: str = "dataset"
    #: what the evaluator scores (``sslbench.eval.protocols.KINDS``): ``single`` (``gt_map``),
    #: ``extended`` (plus ``n_boxes``, 0 for non-sounding samples), ``multi`` (``gt_frames``) or
    #: ``segmentation`` (``gt_map`` is a mask, ``group`` the video)
    evaluation: str = "single"
    #: the protocol the evaluator scores this set under unless told otherwise (None: the default
    #: of its kind, ``sslbench.eval.callback.DEFAULT_PROTOCOLS``)
    protocol: str | None = None

    #: the published benchmark this reader serves (``vggss``, ``flickr``), for protocols whose
    #: reference treats them apart (SSL-Align upsamples VGG-SS maps as cv2 does, Flickr's not)
    benchmark: str | None = None

    def __init__(self) -> None:
        self.image_size = 224
        self.eval_size = 224
        self.audio: AudioPreset = PRESETS["ezvsl"]
        self.train = False
        self.train_transform, self.test_transform = "ezvsl", "resize"
        self.device_augmentation = False

    def configure(
        self, *, image_size: int, audio: AudioPreset, train: bool, eval_size: int = 224,
        train_transform: str = "ezvsl", test_transform: str = "resize", device_augmentation: bool = False,
    ) -> None:
        """Set the frame size, the audio window, train-time augmentation and the frame pipelines
        (``datamodules.transforms.image_transform``) before loading. With ``device_augmentation``,
        training frames of a pipeline in ``DEVICE_AUGMENTED`` leave the worker decoded and resized
        (uint8) with their crop drawn, and the data module crops them on the batch's device."""
        self.image_size, self.audio, self.train, self.eval_size = image_size, audio, train, eval_size
        self.train_transform, self.test_transform = train_transform, test_transform
        self.device_augmentation = device_augmentation

    @property
    def crops_on_device(self) -> bool:
        return self.train and self.device_augmentation and self.train_transform in DEVICE_AUGMENTED

    def frame_and_crop(self, frame) -> tuple[Tensor, Tensor | None]:
        """A decoded frame (PIL image or (3, H, W) uint8) through this set's pipeline: the finished
        frame and None, or, when the device crops, the resized uint8 frame and its ``[top, left,
        flip]`` draw. A frame already at the resized size (packed data) is not resized again."""
        if not self.crops_on_device:
            return self.frame_transform()(frame), None
        side = train_resize(self.image_size)
        if not (isinstance(frame, Tensor) and min(frame.shape[-2:]) == side):
            frame = train_decode(self.image_size)(frame)
        return frame, draw_crop(frame.shape[-2], frame.shape[-1], self.image_size)

    def frame_transform(self):
        """This set's frame pipeline: the training or the test one, as configured."""
        return image_transform(self.image_size, self.train, self.train_transform, self.test_transform)

    @property
    def decode_side(self) -> int:
        """The short side frames may be decoded down to (``transforms.load_rgb``'s draft mode)."""
        return decode_side(self.image_size, self.train, self.train_transform, self.test_transform)

    def raw_frame(self, index: int):
        """Sample ``index``'s frame as decoded (PIL image or (3, H, W) uint8), before any resize or
        crop, for augmentations the references apply to the full frame; None when not kept."""
        return None

    @property
    @abstractmethod
    def sample_ids(self) -> list[str]:
        """Ids of the samples, in index order."""

    @property
    def list_name(self) -> str:
        """Name of the sample list this set evaluates (recorded beside every result)."""
        return self.name

    def class_id(self, index: int) -> int:
        """Class of sample ``index``'s sounding source if known cheaply, else -1."""
        return -1

    @property
    def has_ground_truth(self) -> bool:
        return False

    def __len__(self) -> int:
        return len(self.sample_ids)

    def shifted_waveform(self, index: int, waveform: Tensor, shift_seconds: float) -> Tensor:
        """Sample ``index``'s audio window moved by ``shift_seconds`` (SSL-Align's a_aug). Readers
        that keep the whole clip cut a new window; by default the window is rolled circularly."""
        return waveform.roll(int(round(shift_seconds * self.audio.sample_rate)))

    @abstractmethod
    def __getitem__(self, index: int) -> dict[str, Any] | None: ...


def unreadable(sample_id: str, what, err: BaseException | str) -> dict[str, str]:
    """What a reader returns for a sample it cannot read: the collate function drops it and the
    data module counts it (once per run, whichever loader process met it)."""
    reason = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    return {"unreadable": str(sample_id), "reason": f"{what}: {reason}"}


def is_unreadable(sample: dict[str, Any] | None) -> bool:
    return sample is None or "unreadable" in sample


def first_unreadable(parts) -> dict[str, str] | None:
    """The marker of the first unreadable part of a composed sample, else None."""
    for part in parts:
        if is_unreadable(part):
            return part if part is not None else {"unreadable": "?", "reason": "unreadable"}
    return None


def ids_hash(sample_ids: list[str]) -> str:
    """Short hash of sample ids in order: equal hashes mean the same sample list."""
    return hashlib.sha256("\n".join(sample_ids).encode()).hexdigest()[:16]


class ListedSamples:
    """Mixin for readers whose samples come from a list: ``_ids`` (the ids in use), ``excluded``
    (dropped by :meth:`exclude`: the data module's guard against test ids in a training list)."""

    excluded: list[str]
    _ids: list[str]

    @property
    def sample_ids(self) -> list[str]:
        return self._ids

    def exclude(self, ids: set[str]) -> list[str]:
        """Drop ``ids``; returns those dropped."""
        dropped = [i for i in self._ids if i in ids]
        if dropped:
            self._ids = [i for i in self._ids if i not in ids]
            self.excluded = [*getattr(self, "excluded", []), *dropped]
        return dropped

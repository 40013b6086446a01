"""Image transforms of the reference loaders (EZ-VSL ``datasets.py``)."""

from __future__ import annotations

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def image_transform(size: int, train: bool) -> v2.Compose:
    """Train: Resize(1.1 * size, bicubic) -> RandomCrop -> HFlip; test: Resize((size, size)), no
    crop, so normalised boxes stay aligned. Both end with ImageNet normalisation."""
    if train:
        geometry = [
            v2.Resize(train_resize(size), interpolation=v2.InterpolationMode.BICUBIC),
            v2.RandomCrop(size),
            v2.RandomHorizontalFlip(),
        ]
    else:
        geometry = [v2.Resize((size, size), interpolation=v2.InterpolationMode.BICUBIC)]
    return v2.Compose(
        [v2.ToImage(), *geometry, v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )


def train_crop(size: int) -> v2.Compose:
    """The training augmentation of a uint8 frame already resized to short side ``int(1.1 * size)``
    (packed shards): RandomCrop and HFlip, kept uint8 so loader workers ship a quarter of the bytes;
    :func:`normalize_uint8` finishes it on the batch's device."""
    return v2.Compose([v2.RandomCrop(size), v2.RandomHorizontalFlip()])


def train_resize(size: int) -> int:
    """The short side the training transform resizes frames to (EZ-VSL: int(224 * 1.1) = 246)."""
    return int(size * 1.1)


def normalize_uint8(image: Tensor) -> Tensor:
    """(..., 3, H, W) uint8 -> float32 ImageNet-normalised, on the image's device."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(3, 1, 1)
    return (image.float() / 255.0 - mean) / std


def normalize(image: Tensor) -> Tensor:
    """(..., 3, H, W) in [0, 1] -> ImageNet-normalised."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype).view(3, 1, 1)
    return (image - mean) / std


def denormalize(image: Tensor) -> Tensor:
    """Inverse of :func:`normalize`, clipped to [0, 1], for pictures."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * std + mean).clamp(0, 1)


def load_rgb(path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")

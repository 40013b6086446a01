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
            v2.Resize(int(size * 1.1), interpolation=v2.InterpolationMode.BICUBIC),
            v2.RandomCrop(size),
            v2.RandomHorizontalFlip(),
        ]
    else:
        geometry = [v2.Resize((size, size), interpolation=v2.InterpolationMode.BICUBIC)]
    return v2.Compose(
        [v2.ToImage(), *geometry, v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )


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

"""Image transforms of the reference loaders, by name (EZ-VSL ``datasets.py`` by default)."""

from __future__ import annotations

import functools
import math

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


#: training-frame pipelines of the reference loaders, by name (``data.train_transform``)
TRAIN_TRANSFORMS = ("ezvsl", "sspl", "mssl", "moco_v2")
#: test-frame pipelines (``data.test_transform``)
TEST_TRANSFORMS = ("resize", "resize_center_crop")
#: taps of the MoCo v2 blur: +-3 sigma at its largest sigma (2)
MOCO_BLUR_TAPS = 13


def image_transform(size: int, train: bool, train_form: str = "ezvsl", test_form: str = "resize") -> v2.Compose:
    """A frame (PIL image or uint8 tensor) -> an ImageNet-normalised float tensor.

    Training (``train_form``):
    - ``ezvsl`` (EZ-VSL, LVS, SLAVC, SSL-Align ``datasets.py``): Resize(int(1.1 * size), bicubic,
      short side) -> RandomCrop(size) -> HFlip;
    - ``sspl`` (SSPL: frames stored squashed to 256 x 256 with cv2 INTER_CUBIC, then the same
      Resize(246) -> RandomCrop(224) -> HFlip): the squash to round(size * 8 / 7) square first;
    - ``mssl`` (MSSL ``prepare_data/data.py`` + ``dataloader.py``, ICL's base): cv2.resize to
      (size, size), INTER_LINEAR, then HFlip; no crop;
    - ``moco_v2`` (SSL-TIE ``datasets/dataloader.py``, ``--img_aug moco_v2`` in its scripts):
      RandomResizedCrop(size, scale (0.3, 1)), ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8,
      RandomGrayscale(0.2), Gaussian blur (sigma in [0.1, 2]) with p 0.5, HFlip. The reference blurs
      with PIL's ``GaussianBlur(radius=sigma)``; here a 13-tap Gaussian (3 sigma at the largest sigma).
    Test (``test_form``): ``resize`` (EZ-VSL: Resize((size, size)), bicubic, no crop, so normalised
    boxes stay aligned) or ``resize_center_crop`` (LVS ``dataloader.py``: Resize(size) of the short
    side, bicubic, then CenterCrop(size)).
    """
    if train_form not in TRAIN_TRANSFORMS:
        raise ValueError(f"unknown train_transform {train_form!r}; choose one of {TRAIN_TRANSFORMS}")
    if test_form not in TEST_TRANSFORMS:
        raise ValueError(f"unknown test_transform {test_form!r}; choose one of {TEST_TRANSFORMS}")
    bicubic, bilinear = v2.InterpolationMode.BICUBIC, v2.InterpolationMode.BILINEAR
    if train and train_form == "moco_v2":
        geometry = [
            v2.RandomResizedCrop(size, scale=(0.3, 1.0), interpolation=bilinear),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            v2.RandomGrayscale(p=0.2),
            v2.RandomApply([v2.GaussianBlur(MOCO_BLUR_TAPS, sigma=(0.1, 2.0))], p=0.5),
            v2.RandomHorizontalFlip(),
        ]
    elif train and train_form == "mssl":
        geometry = [v2.Resize((size, size), interpolation=bilinear, antialias=False), v2.RandomHorizontalFlip()]
    elif train:
        squash = [v2.Resize((round(size * 8 / 7),) * 2, interpolation=bicubic, antialias=False)] if train_form == "sspl" else []
        geometry = [*squash, v2.Resize(train_resize(size), interpolation=bicubic), v2.RandomCrop(size), v2.RandomHorizontalFlip()]
    elif test_form == "resize_center_crop":
        geometry = [v2.Resize(size, interpolation=bicubic), v2.CenterCrop(size)]
    else:
        geometry = [v2.Resize((size, size), interpolation=bicubic)]
    return v2.Compose(
        [v2.ToImage(), *geometry, v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )


@functools.cache  # stateless (draws come from the RNG at call time); built once per size, not per sample
def train_crop(size: int) -> v2.Compose:
    """The training augmentation of a uint8 frame already resized to short side ``int(1.1 * size)``
    (packed data): RandomCrop and HFlip, kept uint8 so loader workers ship a quarter of the bytes;
    :func:`normalize_uint8` finishes it on the batch's device."""
    return v2.Compose([v2.RandomCrop(size), v2.RandomHorizontalFlip()])


#: the training pipelines whose random part (crop, flip) can run on the batch's device
DEVICE_AUGMENTED = ("ezvsl",)


def train_decode(size: int) -> v2.Compose:
    """The worker's share of the ``ezvsl`` training pipeline when the device crops: decode and
    Resize(int(1.1 * size)) of the short side (bicubic), kept uint8."""
    return v2.Compose([v2.ToImage(), v2.Resize(train_resize(size), interpolation=v2.InterpolationMode.BICUBIC)])


def draw_crop(height: int, width: int, size: int) -> Tensor:
    """RandomCrop(size) + RandomHorizontalFlip's draw for a (height, width) frame: ``[top, left,
    flip]``, from torch's generator (seeded per sample by the loader), as torchvision draws them."""
    if height < size or width < size:
        raise ValueError(f"a {height} x {width} frame is smaller than the {size} px crop")
    top = int(torch.randint(0, height - size + 1, (1,)))
    left = int(torch.randint(0, width - size + 1, (1,)))
    return torch.tensor([top, left, int(torch.rand(1) < 0.5)])


def crop_flip(images: Tensor, crops: Tensor, size: int) -> Tensor:
    """Each frame's crop and flip at once, on the frames' device: (B, C, H, W) (padded) frames and
    (B, 3) ``[top, left, flip]`` -> (B, C, size, size), exactly ``v2.functional.crop`` then
    ``horizontal_flip`` per frame. No host sync."""
    crops = crops.to(images.device)
    steps = torch.arange(size, device=images.device)
    rows = crops[:, :1] + steps  # (B, size)
    cols = crops[:, 1:2] + torch.where(crops[:, 2:3].bool(), size - 1 - steps, steps)
    batch = torch.arange(images.shape[0], device=images.device)[:, None, None]
    return images[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


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


def load_rgb(path, min_side: int | None = None) -> Image.Image:
    """The image as RGB. With ``min_side``, a JPEG at least twice that large is decoded at a
    reduced scale (PIL's draft mode: 1/2, 1/4 or 1/8 in the DCT), never below ``min_side``: the
    frame is resized further down anyway, and decoding is most of a loader's time."""
    with Image.open(path) as img:
        if min_side and img.format == "JPEG":
            width, height = img.size
            scale = min_side / min(width, height)
            if scale <= 0.5:
                img.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
        return img.convert("RGB")


def decode_side(size: int, train: bool, train_form: str = "ezvsl", test_form: str = "resize") -> int:
    """The smallest short side a frame must keep for ``image_transform(size, ...)``: its first resize."""
    if train and train_form == "ezvsl":
        return train_resize(size)
    if train and train_form == "sspl":
        return round(size * 8 / 7)
    if train and train_form == "moco_v2":  # the smallest crop (30% of the area) still fills `size` pixels
        return math.ceil(size / math.sqrt(0.3))
    return size

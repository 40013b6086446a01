"""The training crop and flip on the batch's device: the same frames as torchvision's CPU pipeline
under the same seed, the same distribution over many draws, frames of different sizes in one
batch, and page-locked batches."""

import numpy as np
import pytest
import torch
from PIL import Image
from test_folder import write_sample
from torchvision.transforms import v2

from datamodules import AudioVisualDataModule, VGGSound, collate
from datamodules.sampling import seeded
from datamodules.transforms import crop_flip, draw_crop, image_transform, normalize_uint8, train_decode


def frame(height=70, width=120, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("seed", range(6))
def test_device_crop_equals_the_cpu_pipeline_under_the_same_seed(seed):
    """``draw_crop`` draws as v2.RandomCrop then v2.RandomHorizontalFlip draw (top, left, then the
    coin), so the same per-sample seed gives the very same frame on either path."""
    image = frame(seed=seed)
    with seeded(seed):
        cpu = image_transform(32, True, "ezvsl")(image)
    with seeded(seed):
        decoded = train_decode(32)(image)
        crop = draw_crop(decoded.shape[-2], decoded.shape[-1], 32)
    device = normalize_uint8(crop_flip(decoded[None], crop[None], 32))[0]
    torch.testing.assert_close(device, cpu)


def test_crop_flip_is_crop_then_flip_per_frame():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (3, 3, 40, 50), generator=g, dtype=torch.uint8)
    crops = torch.tensor([[0, 0, 0], [5, 18, 1], [8, 18, 1]])
    got = crop_flip(images, crops, 32)
    for b, (top, left, flip) in enumerate(crops.tolist()):
        expected = v2.functional.crop(images[b], top, left, 32, 32)
        expected = v2.functional.horizontal_flip(expected) if flip else expected
        assert torch.equal(got[b], expected)


def test_draws_cover_every_offset_uniformly_and_flip_half_the_time():
    torch.manual_seed(0)
    draws = torch.stack([draw_crop(40, 50, 32) for _ in range(4000)])
    assert draws[:, 0].min() == 0 and draws[:, 0].max() == 8 and draws[:, 1].max() == 18
    assert float(draws[:, 0].float().mean()) == pytest.approx(4.0, abs=0.15)  # uniform on 0..8
    assert float(draws[:, 1].float().var()) == pytest.approx((19**2 - 1) / 12, rel=0.08)  # uniform on 0..18
    assert float(draws[:, 2].float().mean()) == pytest.approx(0.5, abs=0.03)
    with pytest.raises(ValueError, match="smaller"):
        draw_crop(20, 50, 32)


def test_a_training_loader_ships_uint8_frames_of_any_width_and_the_module_crops(tmp_path):
    """Frames of two aspect ratios in one batch: padded, uint8, their crops drawn in the worker; the
    data module's transfer hook returns the frames the CPU pipeline gives under the same seeds."""
    root = tmp_path / "vggsound"
    for i in range(4):
        write_sample(root, f"s{i}")
    Image.fromarray(np.zeros((64, 160, 3), dtype=np.uint8) + 200).save(root / "frames" / "s3.jpg")  # a wide frame
    data = AudioVisualDataModule(train=VGGSound(str(root)), test=[], image_size=32, batch_size=4, num_workers=0, audio_preset="quick")
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch.image.dtype == torch.uint8 and batch.crops.shape == (4, 3)
    assert batch.image.shape[-2:] == (35, 87)  # short sides resized to int(1.1 * 32) = 35; the wide frame int(160 * 35 / 64)
    out = data.on_after_batch_transfer(batch, 0)
    assert out.image.shape == (4, 3, 32, 32) and out.image.dtype == torch.float32 and out.crops is None
    cpu = AudioVisualDataModule(train=VGGSound(str(root)), test=[], image_size=32, batch_size=4, num_workers=0,
                                audio_preset="quick", device_augmentation=False)
    cpu.setup("fit")
    reference = cpu.on_after_batch_transfer(next(iter(cpu.train_dataloader())), 0)
    torch.testing.assert_close(out.image, reference.image)


def test_batches_pin_every_tensor():
    if not torch.cuda.is_available():
        pytest.skip("page-locked memory needs a CUDA runtime")
    sample = {"image": torch.zeros(3, 8, 8), "waveform": torch.zeros(10), "index": 0, "sample_id": "a", "views": {"image_x": torch.zeros(3, 8, 8)}}
    pinned = collate([sample]).pin_memory()
    assert pinned.image.is_pinned() and pinned.views["image_x"].is_pinned()


def test_pin_memory_carries_every_field(monkeypatch):
    """The traversal, on the CPU: every tensor (fields, views, box lists) goes through pin_memory."""
    seen = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: seen.append(tuple(self.shape)) or self.clone())
    sample = {"image": torch.zeros(3, 8, 8), "waveform": torch.zeros(10), "index": 0, "sample_id": "a",
              "source_classes": [1, 2], "boxes": torch.zeros(1, 4), "views": {"image_x": torch.ones(3, 4, 4)}}
    batch = collate([sample])
    copy = batch.pin_memory()
    assert copy.sample_id == ["a"] and copy.source_classes.tolist() == [[1, 2]]
    assert torch.equal(copy.views["image_x"], batch.views["image_x"]) and copy.views["image_x"] is not batch.views["image_x"]
    assert (1, 3, 4, 4) in seen and (1, 4) in seen and (1, 3, 8, 8) in seen

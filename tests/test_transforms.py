"""Frame pipelines by name, as each reference loader builds them, and the data module's
per-role settings (test-time audio window, test frames, a global batch split over devices)."""

from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from datamodules import AudioVisualDataModule, SyntheticScenes
from datamodules.transforms import denormalize, image_transform


def wide_frame() -> Image.Image:
    """64 x 128 (H x W): the left quarter red, the rest white."""
    image = Image.new("RGB", (128, 64), (255, 255, 255))
    image.paste((255, 0, 0), (0, 0, 32, 64))
    return image


def red_fraction(x: torch.Tensor) -> float:
    rgb = denormalize(x)
    return float(((rgb[0] > 0.8) & (rgb[1] < 0.2)).float().mean())


def test_test_frames_resize_or_resize_and_centre_crop():
    """EZ-VSL's test loader squashes to (size, size): the red quarter stays a quarter. LVS's test
    loader (``datasets/dataloader.py``) resizes the short side and centre-crops: the crop spans
    columns 25%-75% of the frame, so the red quarter is cut away."""
    assert red_fraction(image_transform(32, False, test_form="resize")(wide_frame())) == pytest.approx(0.25, abs=0.04)
    assert red_fraction(image_transform(32, False, test_form="resize_center_crop")(wide_frame())) < 0.04


def test_training_frames_of_each_reference():
    """``ezvsl``: Resize(1.1 x short side) of the wide frame then a 32 px crop of 70 x 140: many crops
    miss the red quarter. ``sspl``: squashed square first (256 x 256 for 224), so every crop keeps
    part of it. ``mssl``: squashed to 32 x 32 and maybe flipped, no crop: exactly a quarter."""
    torch.manual_seed(0)
    ezvsl = [red_fraction(image_transform(32, True, "ezvsl")(wide_frame())) for _ in range(30)]
    sspl = [red_fraction(image_transform(32, True, "sspl")(wide_frame())) for _ in range(30)]
    mssl = [red_fraction(image_transform(32, True, "mssl")(wide_frame())) for _ in range(10)]
    assert min(ezvsl) < 0.05 and min(sspl) > 0.1
    assert all(f == pytest.approx(0.25, abs=0.04) for f in mssl)
    with pytest.raises(ValueError, match="train_transform"):
        image_transform(32, True, "simclr")


def test_data_module_sets_test_audio_and_frames_per_role_and_checks_names():
    train, test = SyntheticScenes("train", 8), SyntheticScenes("test", 4)
    dm = AudioVisualDataModule(train=train, test=[test], test_audio_preset="lvs_test", test_transform="resize_center_crop",
                               train_transform="ezvsl", batch_size=4, num_workers=0)
    dm.setup("test")
    assert (train.audio.name, test.audio.name) == ("ezvsl", "lvs_test")
    assert test.test_transform == "resize_center_crop" and test[0]["waveform"].numel() == 16000 * 10
    with pytest.raises(ValueError, match="test_transform"):
        AudioVisualDataModule(test_transform="crop")
    with pytest.raises(ValueError, match="sample rate"):
        AudioVisualDataModule(test_audio_preset="noprior")  # 22.05 kHz beside a 16 kHz training preset


@pytest.mark.parametrize("devices,per_device", [(1, 256), (2, 128), (4, 64), (3, None)])
def test_global_batch_is_split_over_the_devices(devices, per_device):
    """SSPL: "256 image-audio pairs in each minibatch, distributed in parallel on 2 or 4 GPUs"."""
    dm = AudioVisualDataModule(global_batch_size=256, batch_size=7, num_workers=0)
    dm.trainer = SimpleNamespace(world_size=devices)
    if per_device is None:
        with pytest.raises(ValueError, match="does not split over 3"):
            dm.derive_batch_size()
    else:
        dm.derive_batch_size()
        assert dm.batch_size == per_device


@pytest.mark.parametrize("global_batch,knob", [(None, "data.batch_size"), (256, "data.global_batch_size")])
def test_a_training_set_smaller_than_a_batch_names_the_setting_to_lower(global_batch, knob):
    """One line, no traceback (SSLBenchError), naming the setting that made the batch."""
    from sslbench.errors import SSLBenchError

    dm = AudioVisualDataModule(train=SyntheticScenes(num_samples=12), test=[], batch_size=16, global_batch_size=global_batch,
                               num_workers=0, image_size=32, audio_preset="quick")
    dm.setup("fit")  # without a trainer: one device
    with pytest.raises(SSLBenchError, match=f"12 samples, fewer than one batch of {global_batch or 16}.*lower {knob}"):
        dm.train_dataloader()


def test_a_large_jpeg_is_decoded_at_a_reduced_scale(tmp_path):
    """PIL's draft mode: a 1280 x 720 JPEG needed at short side 246 decodes at 1/2 (640 x 360),
    never below what the resize needs; a PNG, or a JPEG not twice as large, decodes in full."""
    from datamodules.transforms import load_rgb

    Image.new("RGB", (1280, 720), (200, 30, 30)).save(tmp_path / "big.jpg")
    Image.new("RGB", (1280, 720), (200, 30, 30)).save(tmp_path / "big.png")
    assert load_rgb(tmp_path / "big.jpg", min_side=246).size == (640, 360)
    assert load_rgb(tmp_path / "big.jpg", min_side=90).size == (160, 90)  # 1/8, still >= 90
    assert load_rgb(tmp_path / "big.jpg", min_side=400).size == (1280, 720)
    assert load_rgb(tmp_path / "big.png", min_side=90).size == (1280, 720)
    assert load_rgb(tmp_path / "big.jpg").size == (1280, 720)


def test_moco_v2_frames_crop_recolour_and_blur():
    """SSL-TIE's ``moco_v2``: RandomResizedCrop of 30-100% of the area (a crop can miss the red quarter
    or be mostly red), then colour jitter, greyscale and blur; always the requested size. Its
    smallest crop needs a frame decoded at size / sqrt(0.3)."""
    from datamodules.transforms import decode_side

    torch.manual_seed(0)
    frames = [image_transform(32, True, "moco_v2")(wide_frame()) for _ in range(60)]
    assert all(f.shape == (3, 32, 32) for f in frames)
    fractions = [red_fraction(f) for f in frames]
    assert min(fractions) < 0.05 and max(fractions) > 0.4
    assert decode_side(224, True, "moco_v2") == 409

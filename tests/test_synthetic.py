import numpy as np
import pytest
import torch

from datamodules import SyntheticScenes
from datamodules.synthetic import class_identities
from sslbench.audio import PRESETS


def configured(**kwargs) -> SyntheticScenes:
    ds = SyntheticScenes(**kwargs)
    ds.configure(image_size=64, audio=PRESETS["ezvsl"], train=False)
    return ds


def test_sample_is_a_pure_function_of_seed_split_and_index():
    a, b = configured(split="test", num_samples=6), configured(split="test", num_samples=6)
    for i in (0, 5):
        x, y = a[i], b[i]
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["waveform"], y["waveform"])
        assert torch.equal(x["gt_map"], y["gt_map"])
    _ = a[3]  # order of access must not matter
    assert torch.equal(a[5]["image"], configured(split="test", num_samples=6)[5]["image"])
    assert not torch.equal(a[0]["image"], configured(split="val", num_samples=6)[0]["image"])
    assert not torch.equal(a[0]["image"], configured(split="test", num_samples=6, seed=1)[0]["image"])


def test_cache_returns_the_same_samples():
    plain, cached = configured(num_samples=3), configured(num_samples=3, cache=True)
    for i in range(3):
        cached[i]
        assert torch.equal(plain[i]["image"], cached[i]["image"])
        assert torch.equal(plain[i]["waveform"], cached[i]["waveform"])


@pytest.mark.parametrize("mode,n_sounding", [("solo", 1), ("duet", 2)])
def test_scene_has_sounding_objects_and_a_silent_distractor_of_another_class(mode, n_sounding):
    ds = configured(mode=mode, num_samples=50)
    for i in range(50):
        objects = ds.scene(i)
        sounding = [o for o in objects if o.sounding]
        silent = [o for o in objects if not o.sounding]
        assert len(sounding) == n_sounding and len(silent) >= 1
        assert not {o.cls for o in silent} & {o.cls for o in sounding}
        for o in objects:
            x0, y0, x1, y1 = o.box
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        assert ds.class_id(i) == sounding[0].cls


def test_ground_truth_is_a_consensus_of_jittered_annotators():
    ds = configured(num_samples=20)
    sample = ds[0]
    assert sample["gt_map"].shape == (224, 224)
    values = set(torch.cat([ds[i]["gt_map"].unique() for i in range(20)]).tolist())
    assert values == {0.0, 0.5, 1.0}
    box = sample["boxes"][0]
    cx, cy = int((box[0] + box[2]) / 2 * 224), int((box[1] + box[3]) / 2 * 224)
    assert sample["gt_map"][cy, cx] == 1.0  # all annotators agree on the object's centre


def test_audio_is_a_clip_at_the_preset_rate_and_depends_on_the_sounding_class():
    ds = configured(num_samples=200)
    sample = ds[0]
    assert sample["waveform"].shape == (48000,) and sample["waveform"].abs().max() <= 1
    # the dominant frequency follows the sounding class's pitch
    by_class = {}
    for i in range(200):
        by_class.setdefault(ds.class_id(i), i)
    peaks = {}
    for cls, i in by_class.items():
        spectrum = np.abs(np.fft.rfft(ds[i]["waveform"].numpy()))
        peaks[cls] = np.argmax(spectrum) * 16000 / 48000
    for cls, peak in peaks.items():
        assert peak == pytest.approx(ds.identities[cls].pitch, rel=0.05)


def test_classes_differ_in_every_cue_from_their_neighbours():
    ids = class_identities(10)
    assert len({i.colour for i in ids}) == 10 and len({i.pitch for i in ids}) == 10
    for a, b in zip(ids, ids[1:]):
        assert a.shape != b.shape and a.texture != b.texture and a.timbre != b.timbre


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="split"):
        SyntheticScenes(split="training")
    with pytest.raises(ValueError, match="mode"):
        SyntheticScenes(mode="trio")
    with pytest.raises(ValueError, match="16000 Hz"):
        SyntheticScenes().configure(image_size=64, audio=PRESETS["noprior"], train=False)


def test_neither_size_nor_drawing_order_tells_the_sounding_object():
    ds = configured(num_samples=400)
    sounding_sides, silent_sides, sounding_on_top = [], [], 0
    for i in range(400):
        objects = ds.scene(i)
        for o in objects:
            (sounding_sides if o.sounding else silent_sides).append(o.box[2] - o.box[0])
        sounding_on_top += objects[-1].sounding
    assert abs(np.mean(sounding_sides) - np.mean(silent_sides)) < 0.01
    assert 150 < sounding_on_top < 250  # drawn last about half of the time


def test_training_augmentation_flips_and_shifts_without_changing_identity():
    plain = configured(num_samples=4)
    train = SyntheticScenes(num_samples=4)
    train.configure(image_size=64, audio=PRESETS["ezvsl"], train=True)
    torch.manual_seed(0)
    for i in range(4):
        base, aug = plain[i], train[i]
        flips = [base["image"].flip(dims) for dims in ([], [1], [2], [1, 2])]
        assert any(torch.equal(aug["image"], f) for f in flips)
        shift = int(torch.nonzero(aug["waveform"] == base["waveform"][0])[0])
        assert torch.equal(aug["waveform"], base["waveform"].roll(shift))
        assert "gt_map" not in aug  # training samples carry no evaluation ground truth


def test_class_map_labels_each_objects_pixels_with_its_class_and_the_rest_background():
    ds = configured(num_samples=20)
    for i in range(20):
        objects = ds.scene(i)
        labels = ds.class_map(objects, 64)
        assert set(labels.unique().tolist()) <= {0} | {1 + o.cls for o in objects}
        top = objects[-1]  # drawn last: nothing hides it
        x0, y0, x1, y1 = top.box
        cy, cx = int((y0 + y1) / 2 * 64), int((x0 + x1) / 2 * 64)
        if ds.identities[top.cls].shape != "ring":  # a ring's centre is background
            assert labels[cy, cx] == top.cls + 1
        sounding = {1 + o.cls for o in objects if o.sounding}
        pixels = ds.sounding_mask(objects, 64).bool()
        assert all(v in sounding for v in labels[pixels].unique().tolist())
        assert not any(v in sounding for v in labels[~pixels].unique().tolist())

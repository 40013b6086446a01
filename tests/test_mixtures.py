"""StackedMixture: K single-source samples per mixture, one gt frame per source."""

import pytest
import torch

from datamodules.datamodule import SwappedAudio
from datamodules.mixtures import MIX_SOURCES, StackedMixture
from datamodules.synthetic import SyntheticScenes
from sslbench.audio import get_preset


def test_frames_stack_vertically_with_one_gt_frame_per_source():
    base = SyntheticScenes("test", 6)
    mix = StackedMixture(base, sources=2)
    mix.configure(image_size=32, audio=get_preset("quick"), train=False, eval_size=32)
    assert len(mix) == 3 and mix.partners(1) == [1, 4] and mix.evaluation == "multi"
    sample, first, second = mix[1], base[1], base[4]
    assert sample["image"].shape == (3, 64, 32)
    torch.testing.assert_close(sample["image"][:, 32:], second["image"])
    torch.testing.assert_close(sample["waveform"], (first["waveform"] + second["waveform"]) / 2)
    assert sample["gt_frames"].shape == (2, 32, 32)
    torch.testing.assert_close(sample["gt_frames"][0], (first["gt_map"] > 0).float())
    assert sample["sample_id"] == "test_000001+test_000004" == mix.sample_ids[1]
    y = sample["boxes"][:, 1::2]  # the second source's box sits in the lower half
    assert (y[0] <= 0.5).all() and (y[-1] >= 0.5).all() and len(sample["boxes"]) == 2


def test_training_mixtures_carry_no_ground_truth_and_bad_sizes_fail():
    base = SyntheticScenes("train", 4)
    mix = StackedMixture(base, sources=2)
    mix.configure(image_size=32, audio=get_preset("quick"), train=True)
    assert "gt_frames" not in mix[0]
    with pytest.raises(ValueError, match="fewer than the 3"):
        StackedMixture(SyntheticScenes("test", 2), sources=3)


def test_swapped_audio_moves_everything_heard_and_nothing_seen():
    base = SyntheticScenes("test", 8)
    mix = StackedMixture(base, sources=2)
    mix.configure(image_size=32, audio=get_preset("quick"), train=False, eval_size=32)
    swapped = SwappedAudio(mix)
    j = swapped.partner(0)
    assert j != 0 and mix.class_id(j) != mix.class_id(0)
    got, own, other = swapped[0], mix[0], mix[j]
    assert torch.equal(got["image"], own["image"]) and torch.equal(got["gt_frames"], own["gt_frames"])
    assert torch.equal(got["waveform"], other["waveform"])
    # the front-end hears a mixture through its sources' log-spectrograms: those must move too
    assert torch.equal(got["views"][MIX_SOURCES], other["views"][MIX_SOURCES])
    assert not torch.equal(got["views"][MIX_SOURCES], own["views"][MIX_SOURCES])


def test_swap_train_audio_trains_on_mismatched_pairs():
    from datamodules import AudioVisualDataModule

    data = AudioVisualDataModule(train=SyntheticScenes("train", 8), audio_preset="quick", image_size=32,
                                 batch_size=4, num_workers=0, swap_train_audio=True)
    data.setup("fit")
    heard = data.viewed_train_set()
    assert isinstance(heard, SwappedAudio) and heard.dataset is data.train_set
    for i in range(8):
        assert heard.class_id(heard.partner(i)) != heard.class_id(i)
    plain = AudioVisualDataModule(train=SyntheticScenes("train", 8), audio_preset="quick", image_size=32, batch_size=4, num_workers=0)
    plain.setup("fit")
    assert plain.viewed_train_set() is plain.train_set

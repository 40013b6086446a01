import numpy as np
import pytest
import scipy.signal
import torch

from sslbench.audio import PRESETS, LogSpectrogram, cut_window, get_preset, tukey_window


def scipy_reference(wave: np.ndarray, preset) -> np.ndarray:
    """The reference loaders' front-end, literally: scipy spectrogram, log(+1e-7), / 12."""
    _, _, spec = scipy.signal.spectrogram(wave, preset.sample_rate, nperseg=preset.n_fft, noverlap=preset.noverlap)
    return np.log(spec + 1e-7) / 12.0


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_log_spectrogram_matches_scipy(name):
    preset = get_preset(name)
    rng = np.random.default_rng(0)
    n = preset.num_samples
    t = np.arange(n) / preset.sample_rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.normal(size=n) + 0.1  # DC offset: detrend matters
    expected = scipy_reference(wave, preset)
    got = LogSpectrogram(preset)(torch.tensor(wave, dtype=torch.float32)[None])[0, 0].double().numpy()
    assert got.shape == expected.shape == preset.shape
    np.testing.assert_allclose(got, expected, atol=2e-4)


def test_shapes_from_the_reference_notes():
    assert PRESETS["ezvsl"].shape == (257, 200)
    assert PRESETS["lvs_test"].shape == (257, 671)
    assert PRESETS["sslalign"].shape == (257, 299)
    assert PRESETS["noprior"].shape == (257, 276)


def test_tukey_matches_scipy_periodic_window():
    np.testing.assert_allclose(tukey_window(512, 0.25).numpy(), scipy.signal.get_window(("tukey", 0.25), 512), atol=1e-12)


def test_cut_window_centres_and_tiles():
    preset = get_preset("ezvsl")
    rate = preset.sample_rate
    long = torch.arange(10 * rate, dtype=torch.float32) / (10 * rate)  # a ramp: the value tells the position
    clip = cut_window(long, preset)
    assert clip.numel() == 3 * rate
    assert clip[0].item() == pytest.approx(long[int(3.5 * rate)].item())  # start = 10/2 - 1.5 s
    short = torch.tensor([0.5, -2.0, 3.0])
    tiled = cut_window(short, preset)
    assert tiled.numel() == 3 * rate
    assert tiled[:6].tolist() == [0.5, -1.0, 1.0, 0.5, -1.0, 1.0]  # clipped to [-1, 1] and repeated


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="unknown audio preset"):
        get_preset("nope")
    with pytest.raises(ValueError, match="batch, samples"):
        LogSpectrogram(PRESETS["ezvsl"])(torch.zeros(48000))

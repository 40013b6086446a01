import numpy as np
import pytest
import scipy.signal
import torch

from sslbench.audio import PRESETS, LogSpectrogram, build_frontend, cut_window, fit_window, get_preset, tukey_window, window_slice


def scipy_reference(wave: np.ndarray, preset) -> np.ndarray:
    """The reference loaders' front-end, literally: scipy spectrogram, log(+1e-7), / 12."""
    _, _, spec = scipy.signal.spectrogram(wave, preset.sample_rate, nperseg=preset.n_fft, noverlap=preset.noverlap)
    return np.log(spec + 1e-7) / 12.0


@pytest.mark.parametrize("name", sorted(n for n, p in PRESETS.items() if p.frontend == "spectrogram"))
def test_log_spectrogram_matches_scipy(name):
    preset = get_preset(name)
    rng = np.random.default_rng(0)
    n = preset.num_samples
    t = np.arange(n) / preset.sample_rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.normal(size=n) + 0.1  # DC offset: detrend matters
    expected = scipy_reference(wave, preset)
    got = LogSpectrogram(preset)(torch.tensor(wave, dtype=torch.float32)[None])[0, 0].double().numpy()
    assert (1, *got.shape) == (1, *expected.shape) == preset.shape
    np.testing.assert_allclose(got, expected, atol=2e-4)


def test_shapes_from_the_reference_notes():
    assert PRESETS["ezvsl"].shape == (1, 257, 200)
    assert PRESETS["lvs_test"].shape == (1, 257, 671)
    assert PRESETS["sslalign"].shape == (1, 257, 299)
    assert PRESETS["noprior"].shape == (1, 257, 276)
    assert PRESETS["vggish"].shape == (3, 96, 64)  # SSPL: 3 x 96 x 64 from 48000 samples
    assert PRESETS["mssl"].shape == (1, 251, 64)  # MSSL: ~251 x 64 for 5 s


def vggish_reference(wave: np.ndarray, rate: int = 16000) -> np.ndarray:
    """SSPL's normalize_audio, then VGGish's mel_features written out plainly in numpy."""
    wave = wave - wave.min()
    wave = (wave / (wave.max() + 1e-3) - 0.5) * 2
    n_frames = 1 + (len(wave) - 400) // 160
    frames = np.stack([wave[i * 160 : i * 160 + 400] for i in range(n_frames)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)  # periodic Hann
    magnitude = np.abs(np.fft.rfft(frames * window, 512))
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
    bins = mel(np.linspace(0, rate / 2, 257))
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    weights = np.zeros((257, 64))
    for i in range(64):
        lo, mid, hi = edges[i : i + 3]
        weights[:, i] = np.maximum(0.0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))
    weights[0] = 0.0
    logmel = np.log(magnitude @ weights + 0.01)
    n_examples = 1 + (n_frames - 96) // 96
    return np.stack([logmel[i * 96 : i * 96 + 96] for i in range(n_examples)])


def test_vggish_logmel_matches_a_numpy_transcription():
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 16000
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.normal(size=t.size) + 0.2
    got = build_frontend("vggish")(torch.tensor(wave, dtype=torch.float32)[None])[0].double().numpy()
    expected = vggish_reference(wave)
    assert got.shape == expected.shape == (3, 96, 64)
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_mssl_logmel_matches_librosa_as_mssl_calls_it():
    """MSSL ``prepare_data/data.py``: ``np.log(librosa.feature.melspectrogram(wav, sr, n_fft=int(0.04 * sr),
    hop_length=int(0.02 * sr), n_mels=64) + np.spacing(1)).T`` under librosa 0.7.0, whose centred
    frames were reflect-padded (today's librosa pads with zeros: the first and last frames differ).
    A silent second makes the floor visible: log(2.2e-16) = -36.04 there, not log(1e-7) = -16.12."""
    import librosa
    rng = np.random.default_rng(1)
    preset = get_preset("mssl")
    t = np.arange(preset.num_samples) / preset.sample_rate
    wave = (0.3 * np.sin(2 * np.pi * 660 * t) + 0.05 * rng.normal(size=t.size)).astype(np.float32)
    wave[2 * preset.sample_rate : 3 * preset.sample_rate] = 0.0
    mel = librosa.feature.melspectrogram(y=wave, sr=preset.sample_rate, n_fft=882, hop_length=441, n_mels=64, pad_mode="reflect")
    expected = np.log(mel + np.spacing(1)).T
    assert expected.min() == pytest.approx(np.log(np.spacing(1)))
    got = build_frontend(preset)(torch.from_numpy(wave)[None])[0, 0].double().numpy()
    assert got.shape == expected.shape == preset.shape[1:]
    np.testing.assert_allclose(got, expected, atol=1e-3)


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


@pytest.mark.parametrize("seconds", [10.0, 3.0, 1.3, 0.01])
@pytest.mark.parametrize("shift", [0.0, 0.7, -5.0, 20.0])
def test_packed_int16_window_is_cut_window_of_the_converted_clip(seconds, shift):
    """A packed reader slices int16 audio before converting it; the window must be the one
    ``cut_window`` cuts from the whole converted clip, tiled and shifted alike."""
    preset = get_preset("sslalign")  # shifts are SSL-Align's a_aug
    rate = preset.sample_rate
    stored = np.random.default_rng(0).integers(-32768, 32767, int(seconds * rate), dtype=np.int16)
    whole = cut_window(torch.from_numpy(stored.astype(np.float32) / 32767.0), preset, shift_seconds=shift)
    cut = stored[window_slice(len(stored), preset, rate, shift)]
    windowed = fit_window(torch.from_numpy(cut.astype(np.float32) / 32767.0), preset, rate)
    assert torch.equal(windowed, whole)


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="unknown audio preset"):
        get_preset("nope")
    with pytest.raises(ValueError, match="batch, samples"):
        LogSpectrogram(PRESETS["ezvsl"])(torch.zeros(48000))

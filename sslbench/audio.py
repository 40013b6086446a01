"""Audio front-ends: every per-paper preset in one place, computed batched in torch.

Waveforms travel through the data loader; the spectrogram is computed on the batch's device
(``AudioVisualDataModule.on_after_batch_transfer``), so no STFT runs in a loader worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class AudioPreset:
    """How a method turns a clip into network input.

    ``window_seconds`` of audio at ``sample_rate`` are cut around the clip centre (``"centre"``) or
    from its start (``"start"``), tiled when the file is shorter. ``frontend`` says what the network
    sees: ``"spectrogram"`` (scipy's, log, / scale), ``"vggish"`` (VGGish log-mel examples) or
    ``"logmel"`` (librosa's mel spectrogram, log; ``pad_mode`` pads its centred frames) or
    ``"mel_db"`` (torchaudio's mel spectrogram in decibels, frequency x time).
    """

    name: str
    sample_rate: int
    window_seconds: float
    window_position: str = "centre"
    n_fft: int = 512
    noverlap: int = 274
    log_floor: float = 1e-7
    scale: float = 12.0
    paper: str = ""
    frontend: str = "spectrogram"
    n_mels: int = 64
    pad_mode: str = "reflect"

    @property
    def num_samples(self) -> int:
        return int(round(self.sample_rate * self.window_seconds))

    @property
    def hop(self) -> int:
        return self.n_fft - self.noverlap

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one clip's network input (without the batch dimension)."""
        if self.frontend == "vggish":  # non-overlapping 0.96 s examples of 96 frames x 64 mels
            return vggish_examples(self.num_samples), VGGISH_EXAMPLE, self.n_mels
        if self.frontend == "logmel":  # centred frames (librosa's default), time x mel
            return 1, 1 + self.num_samples // self.hop, self.n_mels
        if self.frontend == "mel_db":  # centred frames, mel x time
            return 1, self.n_mels, 1 + self.num_samples // self.hop
        return 1, self.n_fft // 2 + 1, 1 + (self.num_samples - self.n_fft) // self.hop

    @property
    def time_axis(self) -> int:
        """The axis of the network input that runs over time: scipy spectrograms are frequency x
        time, the log-mel front-ends time x mel."""
        return -2 if self.frontend in ("vggish", "logmel") else -1


#: MSSL's log floor, ``np.spacing(1)`` (the float64 machine epsilon)
MSSL_LOG_FLOOR = 2.220446049250313e-16

# scipy.signal.spectrogram(nperseg=512, noverlap=N) -> log(S + 1e-7) -> /12 (methods.md, front-end).
PRESETS: dict[str, AudioPreset] = {
    p.name: p
    for p in (
        AudioPreset("ezvsl", 16000, 3.0, paper="EZ-VSL / marginNCE / SLAVC / AVGN: 3 s centred, 257 x 200"),
        AudioPreset("lvs_test", 16000, 10.0, "start", paper="LVS test loader: first 10 s, 257 x 671"),
        AudioPreset("sslalign", 16000, 3.0, noverlap=353, paper="SSL-Align: hop 159, 257 x 299"),
        AudioPreset("noprior", 22050, 3.0, paper="NoPrior / Hear-The-Flow: 22.05 kHz, 257 x 276"),
        AudioPreset("quick", 16000, 1.0, paper="not a paper's: the EZ-VSL STFT on 1 s (257 x 66) for CPU demos and tests"),
        AudioPreset("vggish", 16000, 3.0, n_fft=512, noverlap=512 - 160, log_floor=0.01, scale=1.0, frontend="vggish",
                    paper="SSPL: waveform min-max to [-1, 1), VGGish log-mel, 3 examples of 96 x 64"),
        AudioPreset("quick_vggish", 16000, 0.975, n_fft=512, noverlap=512 - 160, log_floor=0.01, scale=1.0,
                    frontend="vggish", paper="not a paper's: one VGGish example (0.975 s) for CPU demos and tests"),
        # MSSL prepare_data/data.py: librosa 0.7.0 melspectrogram (centre frames, reflect padding),
        # log(S + np.spacing(1)); np.spacing(1) = 2.220446049250313e-16
        AudioPreset("mssl", 22050, 5.0, n_fft=882, noverlap=882 - 441, log_floor=MSSL_LOG_FLOOR, scale=1.0, frontend="logmel",
                    paper="ICL / MSSL: 22.05 kHz, 5 s, librosa 0.7 mel (n_fft 882, hop 441, 64 mels, reflect), log, 251 x 64"),
        # SSL-TIE datasets/dataloader.py: the first 10 s (tiled when short), torchaudio
        # MelSpectrogram(n_fft=512, hop_length=239, n_mels=257, normalized=True), AmplitudeToDB()
        AudioPreset("ssltie", 16000, 10.0, "start", n_fft=512, noverlap=512 - 239, log_floor=1e-10, scale=1.0,
                    frontend="mel_db", n_mels=257,
                    paper="SSL-TIE: first 10 s, torchaudio mel (n_fft 512, hop 239, 257 mels, normalized) in dB, 257 x 670"),
        AudioPreset("quick_mssl", 16000, 1.0, n_fft=640, noverlap=320, log_floor=MSSL_LOG_FLOOR, scale=1.0, frontend="logmel",
                    paper="not a paper's: the MSSL log-mel on 1 s at 16 kHz (40 ms / 20 ms, 51 x 64) for CPU demos"),
    )
}

#: the preset names, for typed arguments (a misspelled one fails when the command line is parsed)
PresetName = Literal[tuple(PRESETS)]  # noqa: PYI  (built from the table above)

#: VGGish framing (``vggish_params``): 25 ms windows, 10 ms hop, examples of 96 frames
VGGISH_WINDOW, VGGISH_HOP, VGGISH_EXAMPLE = 400, 160, 96
VGGISH_BAND = (125.0, 7500.0)


def vggish_examples(num_samples: int) -> int:
    """Whole 96-frame examples in a clip of ``num_samples`` (frames of 400 samples, hop 160)."""
    frames = 1 + (num_samples - VGGISH_WINDOW) // VGGISH_HOP
    return 1 + (frames - VGGISH_EXAMPLE) // VGGISH_EXAMPLE


def get_preset(name: str) -> AudioPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown audio preset {name!r}; choose one of {sorted(PRESETS)}") from None


def tukey_window(length: int, alpha: float = 0.25, periodic: bool = True, dtype=torch.float64) -> Tensor:
    """Tukey (tapered cosine) window; ``periodic`` matches scipy's ``get_window(..., fftbins=True)``."""
    n = length + 1 if periodic else length
    x = torch.arange(n, dtype=dtype)
    width = alpha * (n - 1) / 2.0
    w = torch.ones(n, dtype=dtype)
    if width > 0:
        left = x < width
        right = x > (n - 1) - width
        w[left] = 0.5 * (1 + torch.cos(math.pi * (x[left] / width - 1)))
        w[right] = 0.5 * (1 + torch.cos(math.pi * ((x[right] - (n - 1)) / width + 1)))
    return w[:length] if periodic else w


class LogSpectrogram(nn.Module):
    """``log(scipy.signal.spectrogram(x, fs, nperseg=n_fft, noverlap) + floor) / scale`` in torch.

    Matches scipy's defaults: Tukey(0.25) window, per-segment mean removal (``detrend='constant'``),
    one-sided ``'density'`` scaling (divided by ``fs * sum(w^2)``, doubled except DC and Nyquist),
    no padding. Input (B, T) waveforms, output (B, 1, n_fft // 2 + 1, frames) float32.
    """

    def __init__(self, preset: AudioPreset):
        super().__init__()
        self.preset = preset
        window = tukey_window(preset.n_fft, 0.25)
        self.register_buffer("window", window.float(), persistent=False)
        self.density = 1.0 / (preset.sample_rate * float((window**2).sum()))

    def forward(self, waveform: Tensor) -> Tensor:
        if waveform.dim() != 2:
            raise ValueError(f"expected waveforms of shape (batch, samples), got {tuple(waveform.shape)}")
        p = self.preset
        if waveform.shape[-1] < p.n_fft:
            raise ValueError(f"clip of {waveform.shape[-1]} samples is shorter than one {p.n_fft}-sample frame")
        with torch.autocast(waveform.device.type, enabled=False):
            frames = waveform.float().unfold(-1, p.n_fft, p.hop)  # (B, frames, n_fft)
            frames = (frames - frames.mean(-1, keepdim=True)) * self.window
            power = torch.fft.rfft(frames, dim=-1).abs().square() * self.density
            power[..., 1:-1] *= 2.0  # one-sided; n_fft is even so the last bin is Nyquist
            spec = torch.log(power + p.log_floor) / p.scale
        return spec.transpose(1, 2).unsqueeze(1).contiguous()


def hertz_to_mel_htk(hz: Tensor) -> Tensor:
    return 1127.0 * torch.log1p(hz / 700.0)


def vggish_mel_matrix(sample_rate: int, n_bins: int, n_mels: int, band: tuple[float, float]) -> Tensor:
    """(n_bins, n_mels) HTK triangular filters on linear-spectrogram bins, as VGGish's
    ``mel_features``: edges evenly spaced in HTK mel, unnormalised, the DC bin zeroed."""
    bins_mel = hertz_to_mel_htk(torch.linspace(0.0, sample_rate / 2.0, n_bins, dtype=torch.float64))
    edges = torch.linspace(*hertz_to_mel_htk(torch.tensor(band, dtype=torch.float64)).tolist(), n_mels + 2, dtype=torch.float64)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = torch.minimum(rising, falling).clamp(min=0.0)
    weights[0] = 0.0
    return weights


class VGGishLogMel(nn.Module):
    """SSPL's audio input: the clip min-max scaled to [-1, 1) (``normalize_audio``), then VGGish's
    log-mel (periodic Hann of 400 samples, FFT 512, hop 160, magnitude, 64 HTK mels 125-7500 Hz,
    ``log(mel + 0.01)``) cut into non-overlapping 96-frame examples. (B, T) -> (B, E, 96, 64)."""

    def __init__(self, preset: AudioPreset):
        super().__init__()
        self.preset = preset
        self.register_buffer("window", torch.hann_window(VGGISH_WINDOW, periodic=True), persistent=False)
        mel = vggish_mel_matrix(preset.sample_rate, preset.n_fft // 2 + 1, preset.n_mels, VGGISH_BAND)
        self.register_buffer("mel", mel.float(), persistent=False)

    def forward(self, waveform: Tensor) -> Tensor:
        if waveform.dim() != 2:
            raise ValueError(f"expected waveforms of shape (batch, samples), got {tuple(waveform.shape)}")
        examples = vggish_examples(waveform.shape[-1])
        if examples < 1:
            raise ValueError(f"clip of {waveform.shape[-1]} samples is shorter than one VGGish example (15600)")
        with torch.autocast(waveform.device.type, enabled=False):
            wave = waveform.float()
            wave = wave - wave.amin(-1, keepdim=True)
            wave = (wave / (wave.amax(-1, keepdim=True) + 1e-3) - 0.5) * 2.0
            frames = wave.unfold(-1, VGGISH_WINDOW, VGGISH_HOP) * self.window
            magnitude = torch.fft.rfft(frames, n=self.preset.n_fft, dim=-1).abs()
            logmel = torch.log(magnitude @ self.mel + self.preset.log_floor)  # (B, frames, mels)
            used = examples * VGGISH_EXAMPLE
        return logmel[:, :used].reshape(wave.shape[0], examples, VGGISH_EXAMPLE, self.preset.n_mels).contiguous()


class LogMel(nn.Module):
    """MSSL's input (``librosa.feature.melspectrogram`` defaults of the librosa 0.7.0 it names:
    centred frames with reflect padding (librosa 0.10 changed the default to zeros), periodic
    Hann, power 2, Slaney mel scale and area normalisation), ``log(S + floor)``, as time x mel.
    (B, T) -> (B, 1, frames, mels)."""

    def __init__(self, preset: AudioPreset):
        super().__init__()
        import torchaudio

        self.preset = preset
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=preset.sample_rate, n_fft=preset.n_fft, hop_length=preset.hop, n_mels=preset.n_mels,
            center=True, pad_mode=preset.pad_mode, power=2.0, norm="slaney", mel_scale="slaney",
        )

    def forward(self, waveform: Tensor) -> Tensor:
        if waveform.dim() != 2:
            raise ValueError(f"expected waveforms of shape (batch, samples), got {tuple(waveform.shape)}")
        with torch.autocast(waveform.device.type, enabled=False):
            spec = torch.log(self.mel(waveform.float()) + self.preset.log_floor)
        return spec.transpose(1, 2).unsqueeze(1).contiguous()


class MelDecibels(nn.Module):
    """SSL-TIE's input: ``torchaudio.transforms.MelSpectrogram`` with its defaults (centred frames,
    reflect padding, periodic Hann, power 2, HTK mel scale, no filter normalisation) and
    ``normalized=True`` (the STFT divided by the window's L2 norm), then ``AmplitudeToDB()``:
    10 log10(max(S, 1e-10)), no top_db. 257 mels from 257 frequency bins leave some filters empty,
    as in the reference. (B, T) -> (B, 1, mels, frames)."""

    def __init__(self, preset: AudioPreset):
        super().__init__()
        import warnings

        import torchaudio

        self.preset = preset
        with warnings.catch_warnings():  # "At least one mel filterbank has all zero values": the reference's too
            warnings.simplefilter("ignore", UserWarning)
            self.mel = torchaudio.transforms.MelSpectrogram(
                sample_rate=preset.sample_rate, n_fft=preset.n_fft, hop_length=preset.hop, n_mels=preset.n_mels, normalized=True,
            )

    def forward(self, waveform: Tensor) -> Tensor:
        if waveform.dim() != 2:
            raise ValueError(f"expected waveforms of shape (batch, samples), got {tuple(waveform.shape)}")
        with torch.autocast(waveform.device.type, enabled=False):
            spec = 10.0 * torch.log10(self.mel(waveform.float()).clamp(min=self.preset.log_floor))
        return spec.unsqueeze(1).contiguous()


FRONTENDS = {"spectrogram": LogSpectrogram, "vggish": VGGishLogMel, "logmel": LogMel, "mel_db": MelDecibels}


def build_frontend(preset: str | AudioPreset) -> nn.Module:
    preset = get_preset(preset) if isinstance(preset, str) else preset
    return FRONTENDS[preset.frontend](preset)


def cut_window(waveform: Tensor, preset: AudioPreset, sample_rate: int | None = None, shift_seconds: float = 0.0) -> Tensor:
    """Cut the preset's window from a mono clip (tiling a short one), as the reference loaders do.

    EZ-VSL: start = max(duration / 2 - window / 2, 0), clip to [-1, 1], tile if short, truncate.
    ``shift_seconds`` moves the start (SSL-Align's a_aug), kept inside the clip.
    """
    rate = sample_rate or preset.sample_rate
    return fit_window(waveform[window_slice(waveform.numel(), preset, rate, shift_seconds)], preset, rate)


def window_slice(length: int, preset: AudioPreset, sample_rate: int, shift_seconds: float = 0.0) -> slice:
    """Where :func:`cut_window` cuts a clip of ``length`` samples; lets a reader slice stored int16
    audio before converting it (a 3 s window of a 10 s clip converts a third of the samples)."""
    n = int(round(sample_rate * preset.window_seconds))
    if length == 0:
        raise ValueError("empty audio clip")
    if preset.window_position == "centre":
        start = max(int((length / sample_rate / 2 - preset.window_seconds / 2) * sample_rate), 0)
    else:
        start = 0
    if shift_seconds:
        start = min(max(start + int(round(shift_seconds * sample_rate)), 0), max(length - n, 0))
    return slice(start, start + n)


def fit_window(clip: Tensor, preset: AudioPreset, sample_rate: int) -> Tensor:
    """The cut ``clip`` tiled to the window's length when short, clipped to [-1, 1]."""
    n = int(round(sample_rate * preset.window_seconds))
    if clip.numel() < n:
        clip = clip.repeat(math.ceil(n / clip.numel()))[:n]
    return clip.clamp(-1.0, 1.0)

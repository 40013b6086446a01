"""Audio front-ends: every per-paper preset in one place, computed batched in torch.

Waveforms travel through the data loader; the spectrogram is computed on the batch's device
(``AudioVisualDataModule.on_after_batch_transfer``), so no STFT runs in a loader worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class AudioPreset:
    """How a method turns a clip into network input.

    ``window_seconds`` of audio at ``sample_rate`` are cut around the clip centre (``"centre"``) or
    from its start (``"start"``), tiled when the file is shorter.
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

    @property
    def num_samples(self) -> int:
        return int(round(self.sample_rate * self.window_seconds))

    @property
    def hop(self) -> int:
        return self.n_fft - self.noverlap

    @property
    def shape(self) -> tuple[int, int]:
        """(frequency bins, frames) of the spectrogram, as scipy would give it."""
        return self.n_fft // 2 + 1, 1 + (self.num_samples - self.n_fft) // self.hop


# scipy.signal.spectrogram(nperseg=512, noverlap=N) -> log(S + 1e-7) -> /12 (methods.md, front-end).
PRESETS: dict[str, AudioPreset] = {
    p.name: p
    for p in (
        AudioPreset("ezvsl", 16000, 3.0, paper="EZ-VSL / marginNCE / SLAVC / AVGN: 3 s centred, 257 x 200"),
        AudioPreset("lvs_test", 16000, 10.0, "start", paper="LVS test loader: first 10 s, 257 x 671"),
        AudioPreset("sslalign", 16000, 3.0, noverlap=353, paper="SSL-Align: hop 159, 257 x 299"),
        AudioPreset("noprior", 22050, 3.0, paper="NoPrior / Hear-The-Flow: 22.05 kHz, 257 x 276"),
        AudioPreset("quick", 16000, 1.0, paper="not a paper's: the EZ-VSL STFT on 1 s (257 x 66) for CPU demos and tests"),
    )
}


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


def build_frontend(preset: str | AudioPreset) -> nn.Module:
    preset = get_preset(preset) if isinstance(preset, str) else preset
    return LogSpectrogram(preset)


def cut_window(waveform: Tensor, preset: AudioPreset, sample_rate: int | None = None) -> Tensor:
    """Cut the preset's window from a mono clip (tiling a short one), as the reference loaders do.

    EZ-VSL: start = max(duration / 2 - window / 2, 0), clip to [-1, 1], tile if short, truncate.
    """
    rate = sample_rate or preset.sample_rate
    n = int(round(rate * preset.window_seconds))
    if waveform.numel() == 0:
        raise ValueError("empty audio clip")
    if preset.window_position == "centre":
        start = max(int((waveform.numel() / rate / 2 - preset.window_seconds / 2) * rate), 0)
    else:
        start = 0
    clip = waveform[start : start + n]
    if clip.numel() < n:
        clip = clip.repeat(math.ceil(n / clip.numel()))[:n]
    return clip.clamp(-1.0, 1.0)

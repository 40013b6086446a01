"""Shared fixtures: tiny models and data that the tests build themselves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from datamodules.batch import AVBatch

os.environ.setdefault("WANDB_MODE", "disabled")  # tests never start a W&B run unless they ask for one

REPO = Path(__file__).resolve().parents[1]
SHARED_METADATA = REPO.parent / "shared" / "metadata"

# A model small enough to train for a few steps in seconds on a CPU.
TINY_EZVSL = ["--model", "EZVSL", "--model.vision_weights", "null", "--model.backbone_width", "4", "--model.embed_dim", "16"]
TINY_DATA = [
    "--trainer.log_every_n_steps", "1",
    "--data.image_size", "64",
    "--data.batch_size", "8",
    "--data.num_workers", "0",
    "--data.train", "SyntheticScenes", "--data.train.num_samples", "16",
    "--data.val", "SyntheticScenes", "--data.val.num_samples", "8",
]


@pytest.fixture
def run_root(tmp_path: Path) -> list[str]:
    """Trainer arguments that keep every file of a CLI run under tmp_path, logged as CSV."""
    return [
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false",
        "--evaluator.num_visualized", "2",
    ]


def random_batch(n=3, size=64, audio_shape=(1, 257, 200), views=(), seed=0) -> AVBatch:
    """A batch of random images and network-ready audio, with random extra ``views`` images."""
    g = torch.Generator().manual_seed(seed)
    return AVBatch(
        image=torch.randn(n, 3, size, size, generator=g),
        waveform=torch.zeros(n, 16),
        index=torch.arange(n),
        sample_id=[str(i) for i in range(n)],
        class_id=torch.zeros(n, dtype=torch.long),
        audio=torch.randn(n, *audio_shape, generator=g),
        views={key: torch.randn(n, 3, size, size, generator=g) for key in views},
    )


def write_video(path: Path, seconds: float = 2.0, fps: int = 10, size=(64, 48), rate: int = 22050, audio: str | None = "tone",
                colour_shift: int = 0) -> Path:
    """An mp4 (mpeg4 video, aac audio) written with PyAV: each frame's colour follows its time, so
    the middle frame is recognisable; ``audio`` is ``tone``, ``silent`` or None (no audio stream)."""
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        sound = container.add_stream("aac", rate=rate, layout="stereo") if audio else None
        for i in range(int(seconds * fps)):
            level = int(255 * i / max(1, seconds * fps - 1))
            frame = np.full((size[1], size[0], 3), ((level + colour_shift) % 256, 255 - level, 128), dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            t = np.arange(int(seconds * rate)) / rate
            wave = np.zeros_like(t) if audio == "silent" else 0.4 * np.sin(2 * np.pi * 440 * t) * (0.3 + 0.7 * t / seconds)
            samples = np.stack([wave, wave]).astype(np.float32)
            step = 1024
            for start in range(0, samples.shape[1], step):
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + step]), format="fltp", layout="stereo")
                chunk.rate = rate
                chunk.pts = start
                for packet in sound.encode(chunk):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return path


class SignalAtStep(Callback):
    """Sends this process ``signum`` after training step ``step`` (1-based), as a cluster scheduler
    would; the resume tests add it with ``--trainer.callbacks+=``."""

    def __init__(self, step: int = 3, signum: int = 15):
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class SignalInValidation(Callback):
    """Sends this process ``signum`` during the first validation batch after training step ``step``."""

    def __init__(self, step: int = 3, signum: int = 15):
        self.step, self.signum, self.sent = step, signum, False

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking and trainer.global_step == self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)

"""Shared fixtures: tiny models and data that the tests build themselves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

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

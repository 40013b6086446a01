"""Top-k neighbour tables of a training set by image and by audio similarity (SSL-Align's
conceptual positives; the command is ``sslbench knn``, in ``sslbench.commands.knn``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch import Tensor
from torch.utils.data import DataLoader

from datamodules.batch import AVBatch, collate
from datamodules.datamodule import AudioVisualDataModule
from datamodules.transforms import denormalize
from sslbench.audio import AudioPreset, build_frontend

Encoder = Callable[[AVBatch], Tensor]


def colour_histogram(batch: AVBatch, bins: int = 6) -> Tensor:
    """Joint RGB histogram of each frame, (B, bins^3), normalised to sum 1."""
    rgb = (denormalize(batch.image) * (bins - 1e-6)).long().flatten(2)  # (B, 3, P)
    code = rgb[:, 0] * bins * bins + rgb[:, 1] * bins + rgb[:, 2]
    hist = torch.zeros(code.shape[0], bins**3).scatter_add_(1, code, torch.ones_like(code, dtype=torch.float))
    return hist / code.shape[1]


def mean_spectrum(audio: Tensor, preset: AudioPreset) -> Tensor:
    """The network input averaged over time: (B, F) for a spectrogram, (B, mels) for a log-mel
    (VGGish: (B, examples * mels))."""
    return audio.mean(preset.time_axis).flatten(1)


def imagenet_encoder() -> Encoder:
    from sslbench.nn.backbones import resnet18_trunk

    net = resnet18_trunk(3, 64, 2, weights="imagenet").eval()
    return lambda batch: net(batch.image).mean((-2, -1))


def vggish_encoder(weights: str) -> Encoder:
    from sslbench.nn.vgg import VGGish

    net = VGGish(64, weights).eval()
    frontend = build_frontend("vggish")
    return lambda batch: net(frontend(batch.waveform).flatten(0, 1).unsqueeze(1)).view(len(batch), -1, 128).mean(1)


def checkpoint_encoders(path: str) -> tuple[Encoder, Encoder]:
    from sslbench.methods.base import load_method

    method = load_method(path).eval()
    return (lambda batch: method.embeddings(batch.image, batch.audio)[0]), (lambda batch: method.embeddings(batch.image, batch.audio)[1])


def make_encoders(image: str, audio: str, preset: AudioPreset) -> tuple[Encoder, Encoder]:
    image_enc = {"colour": lambda: colour_histogram, "imagenet": imagenet_encoder}.get(image)
    audio_enc = {"spectrum": lambda: lambda batch: mean_spectrum(batch.audio, preset)}.get(audio)
    if audio == "vggish" or audio.startswith("vggish:"):
        audio_enc = lambda: vggish_encoder(audio.partition(":")[2] or "vggish")  # noqa: E731
    image_fn = image_enc() if image_enc else checkpoint_encoders(image)[0]
    audio_fn = audio_enc() if audio_enc else checkpoint_encoders(audio)[1]
    return image_fn, audio_fn


@torch.no_grad()
def embed_training_set(
    data: AudioVisualDataModule, encoders: tuple[Encoder, Encoder], batch_size: int = 64
) -> tuple[Tensor, Tensor, list[int]]:
    """(N, D) image and (N, D') audio embeddings of the readable training samples and their indices."""
    dataset = data.train_set
    dataset.configure(image_size=data.image_size, audio=data.preset, train=False, eval_size=data.eval_size)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate, num_workers=data.num_workers)
    image_emb, audio_emb = {}, {}
    for batch in loader:
        if batch is None:
            continue
        batch.audio = data.frontend(batch.waveform)
        for index, v, a in zip(batch.index.tolist(), encoders[0](batch), encoders[1](batch)):
            image_emb[index], audio_emb[index] = v, a
        print(f"\rknn: embedded {len(image_emb)} of {len(dataset)} samples", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if len(image_emb) < len(dataset):  # an unreadable sample has no neighbours and is nobody's
        print(f"knn: {len(dataset) - len(image_emb)} unreadable samples left out", file=sys.stderr)
    order = sorted(image_emb)
    return torch.stack([image_emb[i] for i in order]), torch.stack([audio_emb[i] for i in order]), order


def top_k(embeddings: Tensor, k: int, chunk: int = 2048) -> Tensor:
    """(N, k) indices of the k most cosine-similar other rows (after centring), nearest first."""
    x = F.normalize(embeddings.float() - embeddings.float().mean(0), dim=1)
    k = min(k, x.shape[0] - 1)
    rows = []
    for start in range(0, x.shape[0], chunk):
        sim = x[start : start + chunk] @ x.T
        sim[torch.arange(sim.shape[0]), torch.arange(start, start + sim.shape[0])] = -float("inf")
        rows.append(sim.topk(k, dim=1).indices)
    return torch.cat(rows)


def data_module_from_configs(configs: list[str]) -> AudioVisualDataModule:
    """The ``data:`` section of experiment configs (later files win), as ``sslbench fit`` builds it."""
    from jsonargparse import ArgumentParser

    import datamodules

    datamodules.import_all()  # short class names

    merged: dict = {}
    for path in configs:
        section = (yaml.safe_load(Path(path).read_text()) or {}).get("data") or {}
        merged = _deep_merge(merged, section)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(AudioVisualDataModule, "data")
    return parser.instantiate_classes(parser.parse_object({"data": merged})).data


def _deep_merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out

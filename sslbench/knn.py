"""``sslbench knn``: top-k neighbour tables of a training set (SSL-Align's conceptual positives).

    sslbench knn --config experiments/ssl_align.yaml --out neighbours.npz \
        [--image-encoder imagenet|colour|CKPT] [--audio-encoder vggish|spectrum|CKPT] [--k 1000]

Every training sample is embedded once (no augmentation) by an image and an audio encoder;
neighbours are the top-k cosine similarities after centring, the sample itself excluded. The paper
uses "off-the-shelf ImageNet ResNet and VGGSound model features" (which ones is not said):
``imagenet`` is torchvision's ResNet-18 and ``vggish`` torchvggish's VGGish (AudioSet); a
checkpoint of any sslbench method uses its ``embeddings``; ``colour`` (a colour histogram) and
``spectrum`` (the mean log spectrum) need no weights at all. The data module's ``neighbours`` then
points at the file.
"""

from __future__ import annotations

import argparse
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
from datamodules.views import NeighbourTables
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

    import datamodules  # noqa: F401  (short class names)

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sslbench knn", description=__doc__.split("\n\n")[0].replace("``", "`"))
    parser.add_argument("--config", action="append", required=True, help="experiment config(s) naming the training set")
    parser.add_argument("--out", required=True, help="where to write the tables (.npz)")
    parser.add_argument("--image-encoder", default="imagenet", help="imagenet, colour, or an sslbench checkpoint")
    parser.add_argument("--audio-encoder", default="vggish", help="vggish[:PATH], spectrum, or an sslbench checkpoint")
    parser.add_argument("--k", type=int, default=1000, help="neighbours per sample (the paper's best: 1000)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    for path in args.config:
        if not Path(path).is_file():
            parser.error(f"config file not found: {path}")
    data = data_module_from_configs(args.config)
    image, audio, order = embed_training_set(data, make_encoders(args.image_encoder, args.audio_encoder, data.preset), args.batch_size)
    ids = [data.train_set.sample_ids[i] for i in order]
    source = f"image: {args.image_encoder}, audio: {args.audio_encoder}, k={args.k}"
    NeighbourTables(ids, top_k(image, args.k), top_k(audio, args.k), source).save(args.out)
    print(f"knn: wrote {args.out} ({len(ids)} samples, {source})", file=sys.stderr)

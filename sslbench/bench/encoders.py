"""Synthetic stand-ins for the labelled pretraining some methods start from.

SSPL freezes an ImageNet VGG16 and an AudioSet VGGish, and NoPrior (IOI) an ImageNet ResNet-18.
No such weights can be downloaded here; this trains the same networks (any width) with labels on
a *disjoint* synthetic world (another seed: other scenes, the same classes, as ImageNet covers
Flickr's objects) and saves them as weight files the methods load like the released ones:

- VGG16 conv5_3 and a torchvision-layout ResNet-18, each with a linear probe: which classes are
  visible (multi-label, BCE);
- the ResNet-18 also labels every cell of its feature grid with the class seen there, background
  included, with a cosine classifier (cross-entropy on scaled cosines to one learnt direction per
  class). IOI compares frozen cell features by cosine: cells of one object alike (tau2 = 0.6),
  background cells alike (tau1 = 0.7), and a silent object's cells far from the sound's direction
  (its S_v must fall under the 0.1 stop). Image-level labels alone left one object's cells at a
  median cosine of 0.43;
- VGGish + a linear probe: which class sounds (cross-entropy).

    python -m sslbench.bench.encoders --width 8 --out runs/synthetic_encoders
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from datamodules.batch import collate
from datamodules.synthetic import SyntheticScenes
from sslbench.audio import build_frontend, get_preset
from sslbench.nn.backbones import ResNetTrunk
from sslbench.nn.vgg import VGG16Conv53, VGGish

PRETRAIN_SEED = 1000  # the sslbench default scenes use seed 0


def visible_classes(data: SyntheticScenes, index: int) -> torch.Tensor:
    target = torch.zeros(data.num_classes)
    for obj in data.scene(index):
        if obj.visible:
            target[obj.cls] = 1.0
    return target


def cell_labels(data: SyntheticScenes, indices: list[int], size: int, grid: tuple[int, int]) -> torch.Tensor:
    """(B, h, w) int64: the class (1 + id, 0 background) covering most of each feature cell."""
    maps = torch.stack([data.class_map(data.scene(i), size) for i in indices])
    area = F.adaptive_avg_pool2d(F.one_hot(maps, data.num_classes + 1).permute(0, 3, 1, 2).float(), grid)
    return area.argmax(1)


def random_flips(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """The same random vertical and horizontal flips, per sample, for images (B, C, H, W) and label maps (B, H, W)."""
    out = [t.clone() for t in tensors]
    for b in range(len(out[0])):
        for axis in (-2, -1):
            if torch.rand(()) < 0.5:
                for t in out:
                    t[b] = t[b].flip(axis)
    return out


class CosineCellProbe(nn.Module):
    """Per-cell class logits: scale * cos(feature, class direction)."""

    def __init__(self, channels: int, classes: int, scale: float = 10.0):
        super().__init__()
        self.directions = nn.Parameter(torch.randn(classes, channels))
        self.scale = scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.einsum("bchw,kc->bkhw", F.normalize(features, dim=1), F.normalize(self.directions, dim=1))


def pretrain(width: int = 8, image_size: int = 128, samples: int = 3000, epochs: int = 4, out: str = "runs/synthetic_encoders",
             audio_preset: str = "quick_vggish", lr: float = 1e-3, seed: int = 0) -> dict[str, Path]:
    torch.manual_seed(seed)
    data = SyntheticScenes("train", samples, seed=PRETRAIN_SEED, cache=True)
    preset = get_preset(audio_preset)
    data.configure(image_size=image_size, audio=preset, train=False)  # flipped below, with the cell labels
    frontend = build_frontend(preset)
    vision, resnet, audio = VGG16Conv53(width), ResNetTrunk(3, width, 2), VGGish(width)
    vision_probe, resnet_probe = nn.Linear(vision.out_channels, data.num_classes), nn.Linear(resnet.out_channels, data.num_classes)
    cell_probe = CosineCellProbe(resnet.out_channels, data.num_classes + 1)
    audio_probe = nn.Linear(128, data.num_classes)
    modules = (vision, resnet, audio, vision_probe, resnet_probe, audio_probe, cell_probe)
    params = [p for m in modules for p in m.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)
    loader = DataLoader(data, batch_size=64, shuffle=True, collate_fn=collate, drop_last=True)
    for epoch in range(epochs):
        correct = seen = cells_right = cells_seen = 0
        for batch in loader:
            examples = frontend(batch.waveform)
            indices = batch.index.tolist()
            targets = torch.stack([visible_classes(data, i) for i in indices])
            cells = cell_labels(data, indices, image_size, (image_size // 32, image_size // 32))
            image, cells = random_flips(batch.image, cells)
            image_logits = vision_probe(vision(image).amax((-2, -1)))
            features = resnet(image)
            resnet_logits, cell_logits = resnet_probe(features.amax((-2, -1))), cell_probe(features)
            audio_logits = audio_probe(audio(examples.flatten(0, 1).unsqueeze(1)).view(len(batch), -1, 128).mean(1))
            loss = (F.binary_cross_entropy_with_logits(image_logits, targets) + F.binary_cross_entropy_with_logits(resnet_logits, targets)
                    + F.cross_entropy(audio_logits, batch.class_id) + F.cross_entropy(cell_logits, cells))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            correct += int((audio_logits.argmax(1) == batch.class_id).sum())
            cells_right += int((cell_logits.argmax(1) == cells).sum())
            seen, cells_seen = seen + len(batch), cells_seen + cells.numel()
        print(f"encoders: epoch {epoch}: loss {loss.item():.3f}, sound-class accuracy {correct / seen:.2f}, "
              f"cell-class accuracy {cells_right / cells_seen:.2f}", file=sys.stderr, flush=True)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"vision": folder / f"vgg16_w{width}.pth", "vggish": folder / f"vggish_w{width}.pth", "resnet18": folder / f"resnet18_w{width}.pth"}
    torch.save(vision.state_dict(), paths["vision"])
    torch.save(audio.state_dict(), paths["vggish"])
    torch.save(resnet.state_dict(), paths["resnet18"])
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--out", default="runs/synthetic_encoders")
    args = parser.parse_args(argv)
    paths = pretrain(args.width, args.image_size, samples=args.samples, epochs=args.epochs, out=args.out)
    print(f"encoders: wrote {', '.join(str(p) for p in paths.values())}", file=sys.stderr)


if __name__ == "__main__":
    main()

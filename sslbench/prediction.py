"""Localization maps for your own image and audio files, with any checkpoint (``sslbench predict``
in ``sslbench.commands.predict`` is the command): pairs found in a folder, the model and its run's
audio preset, overlays and raw maps written."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import numpy as np
import torch

import sslbench.methods as methods
from datamodules.folder import read_waveform
from datamodules.transforms import image_transform, load_rgb
from sslbench.audio import build_frontend, cut_window, get_preset
from sslbench.checkpoints import LAYOUTS, detect_layout, load_reference_checkpoint
from sslbench.errors import SSLBenchError
from sslbench.methods.base import LocalizationMethod, load_method
from sslbench.runs import saved_run_config
from sslbench.viz import blend_overlay

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
#: each method's paper preset, when neither the run nor the user names one
PAPER_PRESET = {"EZVSL": "ezvsl", "SLAVC": "ezvsl", "LVS": "ezvsl", "SSLAlign": "sslalign", "SSPL": "vggish",
                "ICL": "mssl", "IOI": "noprior"}


def find_pairs(folder: Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """(name, image, audio) for each image with an audio file of its name; and the images without."""
    if not folder.is_dir():
        raise SSLBenchError(f"predict: {folder} is not a folder")
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    pairs, lonely = [], []
    for image in images:
        candidates = [d / (image.stem + s) for d in (image.parent, folder / "audio", image.parent.parent / "audio") for s in AUDIO_SUFFIXES]
        audio = next((c for c in candidates if c.is_file()), None)
        if audio is None:
            lonely.append(str(image))
        else:
            pairs.append((image.stem, image, audio))
    return pairs, lonely


def load_model(path: Path) -> tuple[LocalizationMethod, dict]:
    """The model from an sslbench checkpoint or a reference one, and its run's config if known."""
    if not path.exists():
        raise SSLBenchError(f"predict: checkpoint not found: {path}")
    layout = detect_layout(path)
    if layout is None:
        return load_method(str(path)), saved_run_config(path)
    cls = getattr(methods, LAYOUTS[layout].method)
    no_download = {k: None for k in inspect.signature(cls).parameters if k.endswith("weights")}
    model = cls(**no_download)  # the weights all come from the checkpoint
    print(f"predict: {load_reference_checkpoint(model, path)}", file=sys.stderr)
    return model, {}


def predict(model: LocalizationMethod, pairs, preset_name: str, image_size: int, out: Path, device: str, batch_size: int = 16):
    """Write overlays and raw maps; returns (written names, {name: reason} of skipped pairs)."""
    preset = get_preset(preset_name)
    frontend = build_frontend(preset).to(device)
    model = model.to(device).eval()
    transform = image_transform(image_size, train=False)
    out.mkdir(parents=True, exist_ok=True)
    raw_maps, skipped, written = {}, {}, []
    for start in range(0, len(pairs), batch_size):
        chunk, images, waves, originals = [], [], [], []
        for name, image_path, audio_path in pairs[start : start + batch_size]:
            try:
                original = load_rgb(image_path)
                images.append(transform(original))
                waves.append(cut_window(read_waveform(audio_path, preset.sample_rate), preset))
            except Exception as err:  # one bad file never stops the others
                skipped[name] = f"{type(err).__name__}: {err}"
                images, waves = images[: len(chunk)], waves[: len(chunk)]
                continue
            chunk.append(name)
            originals.append(original)
        if not chunk:
            continue
        with torch.no_grad():
            image = torch.stack(images).to(device)
            audio = frontend(torch.stack(waves).to(device))
            raw = model.evaluation_maps(image, audio)
            scores = model.localize(image, audio)
        for i, name in enumerate(chunk):
            raw_maps[name] = raw[i].float().cpu().numpy()
            blend_overlay(originals[i], scores[i].cpu(), out / f"{name}.png", title=name)
            written.append(name)
        print(f"predict: {min(start + batch_size, len(pairs))}/{len(pairs)} pairs", file=sys.stderr, flush=True)
    if raw_maps:
        np.savez_compressed(out / "maps.npz", **raw_maps)
    return written, skipped

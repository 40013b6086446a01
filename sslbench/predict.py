"""``sslbench predict``: where does the sound come from, for your own image and audio files.

    sslbench predict runs/.../best.ckpt --image dog.jpg --audio bark.wav --out preds/
    sslbench predict their_ezvsl.pth --pairs my_clips/ --out preds/

``--pairs DIR`` takes every image in DIR (jpg, png) with the audio file of the same name (wav,
flac, ogg), next to it or in ``DIR/audio/``. Writes ``<name>.png`` (the heatmap over the image,
beside the image itself) per pair and ``maps.npz`` (each pair's raw map at the network's input
size, before any normalisation). Released reference checkpoints work too (``sslbench.checkpoints``).
The audio is cut and transformed with the preset the model was trained with: the run's saved
config when there is one, else ``--audio-preset``, else the method's paper preset.
"""

from __future__ import annotations

import argparse
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
from sslbench.errors import SSLBenchError, ensure_writable
from sslbench.methods.base import LocalizationMethod, load_method, saved_run_config
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sslbench predict", description=__doc__.split("\n\n")[0].replace("``", "`"))
    parser.add_argument("checkpoint", help="an sslbench checkpoint, or a reference repository's released one")
    parser.add_argument("--image", help="one image file (with --audio)")
    parser.add_argument("--audio", help="the audio file heard with --image")
    parser.add_argument("--pairs", help="a folder of images and same-named audio files")
    parser.add_argument("--out", default="predictions", help="output folder (default: predictions)")
    parser.add_argument("--audio-preset", help="audio preset (default: the run's, else the method's paper preset)")
    parser.add_argument("--image-size", type=int, help="network input side (default: the run's, else 224)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if bool(args.pairs) == bool(args.image or args.audio) or bool(args.image) != bool(args.audio):
        parser.error("give either --image and --audio, or --pairs FOLDER")
    ensure_writable(args.out, "output folder (--out)")
    if args.pairs:
        pairs, lonely = find_pairs(Path(args.pairs))
        if lonely:
            print(f"predict: {len(lonely)} images have no audio file of their name, e.g. {lonely[0]}", file=sys.stderr)
    else:
        for given in (args.image, args.audio):
            if not Path(given).is_file():
                raise SSLBenchError(f"predict: file not found: {given}")
        pairs = [(Path(args.image).stem, Path(args.image), Path(args.audio))]
    if not pairs:
        raise SSLBenchError(f"predict: no image with a same-named audio file ({', '.join(AUDIO_SUFFIXES)}) in {args.pairs}")
    model, run_config = load_model(Path(args.checkpoint))
    data = run_config.get("data") or {}
    preset = args.audio_preset or data.get("audio_preset") or PAPER_PRESET.get(type(model).__name__, "ezvsl")
    image_size = args.image_size or data.get("image_size") or 224
    print(f"predict: {type(model).__name__}, audio preset {preset}, images at {image_size} px, {len(pairs)} pairs", file=sys.stderr)
    written, skipped = predict(model, pairs, preset, image_size, Path(args.out), args.device)
    for name, reason in skipped.items():
        print(f"predict: skipped {name}: {reason}", file=sys.stderr)
    if not written:
        raise SSLBenchError("predict: no pair could be read")
    print(f"predict: wrote {len(written)} overlays and maps.npz to {args.out}" + (f"; skipped {len(skipped)}" if skipped else ""))

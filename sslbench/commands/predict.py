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
import sys
from pathlib import Path

from sslbench.errors import SSLBenchError, ensure_writable


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sslbench predict", description=__doc__.split("\n\n")[0].replace("``", "`"))
    parser.add_argument("checkpoint", help="an sslbench checkpoint, or a reference repository's released one")
    parser.add_argument("--image", help="one image file (with --audio)")
    parser.add_argument("--audio", help="the audio file heard with --image")
    parser.add_argument("--pairs", help="a folder of images and same-named audio files")
    parser.add_argument("--out", default="predictions", help="output folder (default: predictions)")
    parser.add_argument("--audio-preset", help="audio preset (default: the run's, else the method's paper preset)")
    parser.add_argument("--image-size", type=int, help="network input side (default: the run's, else 224)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when there is one)")
    args = parser.parse_args(argv)
    if bool(args.pairs) == bool(args.image or args.audio) or bool(args.image) != bool(args.audio):
        parser.error("give either --image and --audio, or --pairs FOLDER")
    ensure_writable(args.out, "output folder (--out)")
    import torch

    from sslbench.prediction import AUDIO_SUFFIXES, PAPER_PRESET, find_pairs, load_model, predict

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
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

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
from pathlib import Path


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
    from datamodules.views import NeighbourTables
    from sslbench.neighbours import data_module_from_configs, embed_training_set, make_encoders, top_k

    data = data_module_from_configs(args.config)
    image, audio, order = embed_training_set(data, make_encoders(args.image_encoder, args.audio_encoder, data.preset), args.batch_size)
    ids = [data.train_set.sample_ids[i] for i in order]
    source = f"image: {args.image_encoder}, audio: {args.audio_encoder}, k={args.k}"
    NeighbourTables(ids, top_k(image, args.k), top_k(audio, args.k), source).save(args.out)
    print(f"knn: wrote {args.out} ({len(ids)} samples, {source})", file=sys.stderr)

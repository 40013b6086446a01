"""``make bench-data``: training loader throughput, raw files vs packed shards, by worker count.

Writes ``--samples`` prepared-layout samples (a 640 x 360 JPEG frame, as decoded from a video,
and 10 s of 16 kHz audio each), packs them (frames at short side 246, int16 audio), then times a
training epoch of each through a DataLoader (224 px with the training augmentation, the EZ-VSL
3 s window, batch 32) with 0, 1 and 2 workers. Prints samples/s, samples/s per worker and the
packed / raw ratio. Timing starts after the first batch (worker start-up is not loading).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image, ImageFilter
from torch.utils.data import DataLoader

from datamodules.batch import collate
from datamodules.folder import VGGSound
from datamodules.packed import PackedShards, pack_folder
from sslbench.audio import get_preset


def write_raw(root: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    base = Image.fromarray(rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)).filter(ImageFilter.GaussianBlur(2))
    t = np.arange(10 * 16000) / 16000
    for i in range(n):
        sample_id = f"clip{i:05d}"
        base.rotate(i % 360).save(root / "frames" / f"{sample_id}.jpg", quality=90)
        soundfile.write(root / "audio" / f"{sample_id}.wav", 0.3 * np.sin(2 * np.pi * (200 + i) * t), 16000, subtype="PCM_16")


def throughput(dataset, workers: int, batch_size: int = 32) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate,
                        shuffle=not hasattr(dataset, "_plan"), drop_last=True)
    iterator = iter(loader)
    next(iterator)  # start-up
    start, count = time.perf_counter(), 0
    for batch in iterator:
        count += len(batch)
    return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--dir", default="runs/bench_data")
    args = parser.parse_args(argv)
    root = Path(args.dir)
    raw, packed = root / "raw", root / "packed"
    if not (raw / "frames").is_dir() or len(list((raw / "frames").iterdir())) != args.samples:
        shutil.rmtree(root, ignore_errors=True)
        start = time.perf_counter()
        write_raw(raw, args.samples)
        print(f"wrote {args.samples} raw samples in {time.perf_counter() - start:.0f} s")
    if not (packed / "index.json").is_file():
        start = time.perf_counter()
        pack_folder(raw, packed, frame_size=246, shard_samples=128, progress=False)
        print(f"packed them in {time.perf_counter() - start:.0f} s")
    size = lambda p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 2**20  # noqa: E731
    print(f"on disk: raw {size(raw):.0f} MiB, packed {size(packed):.0f} MiB")
    preset = get_preset("ezvsl")
    rows = []
    for workers in args.workers:
        speeds = []
        for dataset in (VGGSound(str(raw)), PackedShards(str(packed), shuffle_buffer=256)):
            dataset.configure(image_size=224, audio=preset, train=True)
            speeds.append(throughput(dataset, workers))
        rows.append((workers, *speeds))
    print(f"\n{'workers':>7} | {'raw samples/s':>13} | {'packed samples/s':>16} | {'raw / worker':>12} | {'packed / worker':>15} | packed / raw")
    print("-" * 90)
    for workers, raw_speed, packed_speed in rows:
        per = max(workers, 1)
        print(f"{workers:>7} | {raw_speed:>13.1f} | {packed_speed:>16.1f} | {raw_speed / per:>12.1f} | {packed_speed / per:>15.1f} | "
              f"{packed_speed / raw_speed:.2f}x")


if __name__ == "__main__":
    main()

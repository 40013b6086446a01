"""``make bench-data``: training loader throughput, raw files vs litdata chunks, by worker count.

Writes ``--samples`` prepared-layout samples (a 640 x 360 JPEG frame, as decoded from a video,
and 10 s of 16 kHz audio each), packs them (``datamodules.packed``: frames at short side 246,
int16 audio), then times a training epoch of each through the training loader (224 px with the
training augmentation, the EZ-VSL 3 s window, batch 32) with 0, 1 and 2 workers, the median of
``--repeats`` interleaved rounds. Prints samples/s, samples/s per worker and the packed / raw
ratio, and apart from the loaders the cost of the audio front-end on the batch (the spectrogram
the data module computes after transfer).

``--reference PATH`` also times the EZ-VSL reference loader (``datasets.py`` of a local clone of
stoneMo/EZ-VSL, imported from there, its scipy spectrogram per item) on the same files.
Timing starts after the first batch (worker start-up is not loading).
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import soundfile
import torch
from PIL import Image, ImageFilter
from torch.utils.data import DataLoader

from datamodules.batch import collate
from datamodules.folder import VGGSound
from datamodules.packed import PACKED, PackedSamples, pack_folder
from sslbench.audio import build_frontend, get_preset


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


def throughput(dataset, workers: int, batch_size: int = 32, collate_fn=collate, worker_init_fn=None) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_fn, shuffle=True,
                        drop_last=True, persistent_workers=False, worker_init_fn=worker_init_fn)
    iterator = iter(loader)
    next(iterator)  # start-up
    start, count = time.perf_counter(), 0
    for _ in iterator:
        count += batch_size
    return count / (time.perf_counter() - start)


def frontend_seconds_per_sample(preset_name: str = "ezvsl", batch: int = 32, repeats: int = 10) -> float:
    """The data module's spectrogram on a batch of waveforms, per sample (not a loader cost)."""
    preset = get_preset(preset_name)
    frontend = build_frontend(preset)
    waves = torch.randn(batch, preset.num_samples) * 0.1
    frontend(waves)
    start = time.perf_counter()
    for _ in range(repeats):
        frontend(waves)
    return (time.perf_counter() - start) / (repeats * batch)


class _OneFrameResampler:
    """PyAV before 9 returned one frame per ``AudioResampler.resample`` call, which EZ-VSL's
    ``audio_io.load_audio_av`` calls ``.to_ndarray()`` on; PyAV 9+ returns a list, and the loader then
    reads nothing. This gives the reference the old shape of the answer on today's PyAV."""

    def __init__(self, resampler_class, *args, **kwargs):
        self._resampler = resampler_class(*args, **kwargs)

    def resample(self, frame):
        frames = self._resampler.resample(frame)
        return SimpleNamespace(to_ndarray=lambda: np.concatenate([f.to_ndarray() for f in frames], axis=1)
                               if frames else np.zeros((1, 0), dtype=np.int16))


def one_frame_resampler(_worker_id: int | None = None) -> None:
    """Give PyAV the pre-9 resampler (``_OneFrameResampler``); also a ``worker_init_fn``, since
    loader workers started by spawn (litdata's ``optimize`` sets that method) import PyAV afresh."""
    import av

    original = av.audio.resampler.AudioResampler
    if not isinstance(original, functools.partial):
        av.audio.resampler.AudioResampler = functools.partial(_OneFrameResampler, original)


def reference_dataset(repo: Path, raw: Path):
    """EZ-VSL's own training dataset over ``raw`` (its ``AudioVisualDataset``, as ``get_train_dataset``
    builds it), imported from a local clone, on today's PyAV (``one_frame_resampler``)."""
    one_frame_resampler()
    sys.path.insert(0, str(repo))
    import datasets as ezvsl  # the clone's module
    from torchvision import transforms

    files = sorted(p.stem for p in (raw / "frames").glob("*.jpg"))
    image_transform = transforms.Compose([
        transforms.Resize(int(224 * 1.1), transforms.InterpolationMode.BICUBIC), transforms.RandomCrop((224, 224)),
        transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])
    audio_transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean=[0.0], std=[12.0])])
    return ezvsl.AudioVisualDataset(
        image_files=[f"{f}.jpg" for f in files], audio_files=[f"{f}.wav" for f in files], image_path=str(raw / "frames"),
        audio_path=str(raw / "audio"), audio_dur=3.0, image_transform=image_transform, audio_transform=audio_transform,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds per worker count; the median is printed")
    parser.add_argument("--dir", default="runs/bench_data")
    parser.add_argument("--reference", help="a local clone of stoneMo/EZ-VSL, to time its loader beside ours")
    args = parser.parse_args(argv)
    root = Path(args.dir)
    raw, packed = root / "raw", root / "packed"
    if not (raw / "frames").is_dir() or len(list((raw / "frames").iterdir())) != args.samples:
        shutil.rmtree(root, ignore_errors=True)
        start = time.perf_counter()
        write_raw(raw, args.samples)
        print(f"wrote {args.samples} raw samples in {time.perf_counter() - start:.0f} s")
    if not (packed / PACKED).is_file():
        start = time.perf_counter()
        pack_folder(raw, str(packed), frame_size=246, rate=16000, jobs=2, progress=False)
        print(f"packed them in {time.perf_counter() - start:.0f} s")
    size = lambda p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 2**20  # noqa: E731
    print(f"on disk: raw {size(raw):.0f} MiB, packed {size(packed):.0f} MiB")
    preset = get_preset("ezvsl")
    rows = []
    for workers in args.workers:
        rounds = []
        for _ in range(args.repeats):  # interleaved rounds, so a slow spell of the machine hits every loader
            speeds = []
            for dataset in (VGGSound(str(raw)), PackedSamples(str(packed))):
                dataset.configure(image_size=224, audio=preset, train=True)
                speeds.append(throughput(dataset, workers))
            if args.reference:
                reference = reference_dataset(Path(args.reference), raw)
                speeds.append(throughput(reference, workers, collate_fn=None, worker_init_fn=one_frame_resampler))
            rounds.append(speeds)
        rows.append((workers, *np.median(np.array(rounds), axis=0).tolist()))
    head = f"{'workers':>7} | {'raw samples/s':>13} | {'packed samples/s':>16} | {'raw / worker':>12} | {'packed / worker':>15} | packed / raw"
    if args.reference:
        head += " | EZ-VSL reference samples/s | packed / reference"
    print("\n" + head + "\n" + "-" * len(head))
    for workers, raw_speed, packed_speed, *reference in rows:
        per = max(workers, 1)
        line = (f"{workers:>7} | {raw_speed:>13.1f} | {packed_speed:>16.1f} | {raw_speed / per:>12.1f} | {packed_speed / per:>15.1f} | "
                f"{packed_speed / raw_speed:.2f}x")
        if reference:
            line += f" | {reference[0]:>26.1f} | {packed_speed / reference[0]:.2f}x"
        print(line)
    per_sample = frontend_seconds_per_sample()
    print(f"\naudio front-end (scipy-equivalent log spectrogram, 3 s, on the batch after transfer, CPU): "
          f"{per_sample * 1e3:.3f} ms per sample = {1 / per_sample:.0f} samples/s, not counted above")


if __name__ == "__main__":
    main()

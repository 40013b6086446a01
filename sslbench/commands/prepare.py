"""``sslbench prepare``: raw videos (or pre-extracted frames and audio) -> the layout the readers read.

    sslbench prepare raw_videos/ data/vggsound --rate 16000 --seconds 10 --jobs 8
    sslbench prepare raw_videos/ data/vggsound --pack            # also pack it (litdata) into data/vggsound/packed
    sslbench prepare data/vggsound s3://bucket/vggsound --pack-only --endpoint-url http://minio:9000

Writes ``OUT/frames/<id>.jpg`` (the frame at the middle of the video) and ``OUT/audio/<id>.wav``
(mono, ``--rate`` Hz, ``--seconds`` around the middle, 16-bit). Sources: video files (mp4, mkv,
webm, avi, mov; decoded with PyAV, which ships its own FFmpeg), or a folder with
``frames/<id>/*.jpg`` (or ``frames/<id>.jpg``) and ``audio/<id>.<wav|flac|...>``.

Resumable: every file is written under a temporary name and renamed when complete, and an id
whose frame and audio both exist is skipped, so a killed run picks up where it stopped. Each id
ends as ``done``, ``skipped`` (already there) or ``failed`` with its reason (unreadable file, no
video or no audio stream, ...); clips whose audio is silent are written and listed as ``silent``.
The report is printed and saved as ``OUT/prepare_report.json`` (failed ids in ``failed.txt``).

``--pack`` then writes the folder as litdata chunks (``datamodules.packed``: uint8 frames at the
training resize side, int16 audio at ``--rate``) to ``--pack-to`` (default ``OUT/packed``; a folder
or an ``s3://`` URL), in parallel and resumable by parts; ``--pack-only`` packs an existing
``frames/`` + ``audio/`` folder SRC into OUT. Train on it with
``data.train: {class_path: PackedSamples, init_args: {root: ...}}``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sslbench.errors import SSLBenchError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
#: peak amplitude under which a clip counts as silent
SILENCE = 1e-4


@dataclass(frozen=True)
class Item:
    """One source: a video file, or a frame (folder) with its audio file."""

    sample_id: str
    video: Path | None = None
    frames: Path | None = None
    audio: Path | None = None


@dataclass(frozen=True)
class Settings:
    rate: int = 16000
    seconds: float = 10.0
    frame_size: int = 0  # 0 keeps the decoded size; else the short side is resized to it
    quality: int = 95


def find_items(source: Path) -> list[Item]:
    """Video files anywhere under ``source``, or its ``frames/`` + ``audio/`` folders."""
    if not source.is_dir():
        raise SSLBenchError(f"prepare: {source} is not a folder")
    frames_dir, audio_dir = source / "frames", source / "audio"
    if frames_dir.is_dir() and audio_dir.is_dir():
        audios = {p.stem: p for p in sorted(audio_dir.iterdir()) if p.suffix.lower() in AUDIO_SUFFIXES}
        items = []
        for entry in sorted(frames_dir.iterdir()):
            sample_id = entry.stem if entry.is_file() else entry.name
            if entry.is_dir() or entry.suffix.lower() in FRAME_SUFFIXES:
                items.append(Item(sample_id, frames=entry, audio=audios.get(sample_id)))
        return items
    videos = sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    seen: dict[str, Path] = {}
    for video in videos:
        if video.stem in seen:
            raise SSLBenchError(f"prepare: two videos share the id {video.stem}: {seen[video.stem]} and {video}")
        seen[video.stem] = video
    return [Item(v.stem, video=v) for v in videos]


# -- decoding --------------------------------------------------------------------------------------


def _centre_frame(container, stream, centre: float):
    """The first decoded frame at or after ``centre`` seconds (the last one if none is)."""
    container.seek(max(int((centre - 1.0) * 1_000_000), 0), any_frame=False, backward=True)
    last = None
    for frame in container.decode(stream):
        last = frame
        if frame.time is not None and frame.time >= centre:
            return frame
    if last is None:
        container.seek(0)
        for frame in container.decode(stream):
            last = frame
    return last


def _decode_audio(container, stream, rate: int) -> tuple[np.ndarray, float]:
    """Every sample of ``stream`` as mono float32 at ``rate`` Hz, and the time of the first one."""
    import av

    # keep the channels and average them ourselves (clipped first, as the readers do): FFmpeg's
    # own stereo-to-mono downmix adds the channels at -3 dB, which is louder than their mean
    resampler = av.AudioResampler(format="fltp", rate=rate)
    chunks, start = [], None
    container.seek(0)

    def mono(out) -> np.ndarray:
        return np.clip(out.to_ndarray(), -1.0, 1.0).mean(axis=0)

    for frame in container.decode(stream):
        if start is None:
            start = float(frame.time or 0.0)
        chunks += [mono(out) for out in resampler.resample(frame)]
    chunks += [mono(out) for out in resampler.resample(None)]
    if not chunks:
        raise ValueError("the audio stream has no samples")
    return np.concatenate(chunks).astype(np.float32), start or 0.0


def window(samples: np.ndarray, rate: int, seconds: float, centre: float, offset: float = 0.0) -> np.ndarray:
    """``seconds`` of ``samples`` (which start at ``offset`` s) centred on ``centre`` s, kept inside
    the clip; a shorter clip is returned whole."""
    n = int(round(seconds * rate))
    if len(samples) <= n:
        return samples
    start = int(round((centre - offset - seconds / 2) * rate))
    start = min(max(start, 0), len(samples) - n)
    return samples[start : start + n]


def decode_video(path: Path, settings: Settings):
    """(centre frame as a PIL image, audio window) of a video file."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        if not container.streams.audio:
            raise ValueError("no audio stream")
        vstream, astream = container.streams.video[0], container.streams.audio[0]
        duration = container.duration / 1_000_000 if container.duration else float(vstream.duration * vstream.time_base)
        centre = duration / 2
        frame = _centre_frame(container, vstream, centre)
        if frame is None:
            raise ValueError("no decodable video frame")
        image = frame.to_image()
        samples, offset = _decode_audio(container, astream, settings.rate)
    return image, window(samples, settings.rate, settings.seconds, centre, offset)


def decode_folder_item(item: Item, settings: Settings):
    """(frame, audio window) from pre-extracted files: the middle frame of a frame folder."""
    from PIL import Image

    if item.audio is None:
        raise ValueError("no audio file of this id")
    frames = sorted(p for p in item.frames.iterdir() if p.suffix.lower() in FRAME_SUFFIXES) if item.frames.is_dir() else [item.frames]
    if not frames:
        raise ValueError("empty frame folder")
    with Image.open(frames[len(frames) // 2]) as img:
        image = img.convert("RGB")
    samples, rate = _read_any_audio(item.audio)
    if rate != settings.rate:
        import torch
        import torchaudio

        samples = torchaudio.functional.resample(torch.from_numpy(samples), rate, settings.rate).numpy()
    return image, window(samples, settings.rate, settings.seconds, len(samples) / settings.rate / 2)


def _read_any_audio(path: Path) -> tuple[np.ndarray, int]:
    try:
        from datamodules.folder import read_audio

        return read_audio(path)
    except Exception:  # formats libsndfile lacks (m4a, some mp3): PyAV
        import av

        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ValueError("no audio stream") from None
            rate = container.streams.audio[0].rate or 16000
            return _decode_audio(container, container.streams.audio[0], rate)[0], rate


# -- one item, written atomically ----------------------------------------------------------------------


def outputs(out: Path, sample_id: str) -> tuple[Path, Path]:
    return out / "frames" / f"{sample_id}.jpg", out / "audio" / f"{sample_id}.wav"


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def prepare_one(item: Item, out: Path, settings: Settings) -> tuple[str, str, str]:
    """(id, status, detail): ``done`` / ``silent`` / ``skipped`` / ``failed`` and why."""
    frame_path, audio_path = outputs(out, item.sample_id)
    if frame_path.is_file() and audio_path.is_file():
        return item.sample_id, "skipped", "already prepared"
    try:
        image, samples = decode_video(item.video, settings) if item.video else decode_folder_item(item, settings)
        if settings.frame_size:
            w, h = image.size
            scale = settings.frame_size / min(w, h)
            image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), resample=3)  # bicubic
        import soundfile

        samples = np.clip(samples, -1.0, 1.0)
        _atomic(frame_path, lambda p: image.save(p, format="JPEG", quality=settings.quality))
        _atomic(audio_path, lambda p: soundfile.write(str(p), samples, settings.rate, subtype="PCM_16", format="WAV"))
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return item.sample_id, "failed", f"{type(err).__name__}: {reason}"[:300]
    if float(np.abs(samples).max(initial=0.0)) < SILENCE:
        return item.sample_id, "silent", f"peak amplitude below {SILENCE:g}"
    return item.sample_id, "done", ""


# -- the command ------------------------------------------------------------------------------------


def run(source: Path, out: Path, settings: Settings, jobs: int = 1, progress: bool = True) -> dict:
    """Prepare every item of ``source`` into ``out``; returns (and saves) the report."""
    items = find_items(source)
    if not items:
        raise SSLBenchError(f"prepare: no videos ({', '.join(VIDEO_SUFFIXES)}) and no frames/ + audio/ folders under {source}")
    for sub in ("frames", "audio"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for leftover in (out / sub).glob(".*.tmp*"):  # half-written by a run that was killed
            leftover.unlink()
    start = time.perf_counter()
    results: dict[str, list] = {"done": [], "silent": [], "skipped": [], "failed": []}
    failed: dict[str, str] = {}
    bar = _progress(len(items), progress)
    todo = []
    for item in items:  # finished ones are counted here, without a trip to a worker
        if all(path.is_file() for path in outputs(out, item.sample_id)):
            results["skipped"].append(item.sample_id)
            bar.update(1)
        else:
            todo.append(item)
    for sample_id, status, detail in _map(todo, out, settings, jobs):
        results[status].append(sample_id)
        if status == "failed":
            failed[sample_id] = detail
        bar.update(1)
        bar.set_postfix(done=len(results["done"]) + len(results["silent"]), failed=len(failed), refresh=False)
    bar.close()
    report = {
        "source": str(source), "out": str(out), "settings": asdict(settings),
        "items": len(items), **{k: len(v) for k, v in results.items()},
        "failed_reasons": failed, "silent_ids": results["silent"], "seconds": round(time.perf_counter() - start, 1),
    }
    (out / "prepare_report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "failed.txt").write_text("".join(f"{k}\t{v}\n" for k, v in failed.items()))
    return report


def _map(items: list[Item], out: Path, settings: Settings, jobs: int):
    """prepare_one over the items, in this process or in ``jobs`` spawned ones (not forked: a
    fork of a process holding torch's or FFmpeg's threads can deadlock)."""
    if jobs <= 1:
        yield from (prepare_one(item, out, settings) for item in items)
        return
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(prepare_one, items, [out] * len(items), [settings] * len(items), chunksize=8)


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="clip", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def summary(report: dict) -> str:
    lines = [
        f"prepare: {report['items']} items in {report['seconds']} s -> {report['out']}",
        f"  done {report['done']}, silent {report['silent']} (written, listed in prepare_report.json), "
        f"skipped {report['skipped']} (already prepared), failed {report['failed']}",
    ]
    reasons: dict[str, int] = {}
    for reason in report["failed_reasons"].values():
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1])[:10]:
        lines.append(f"  failed x{count}: {reason}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sslbench prepare", description=__doc__.split("\n\n")[0].replace("``", "`"))
    parser.add_argument("source", help="folder of videos, or with frames/ and audio/")
    parser.add_argument("out", help="dataset folder to write (frames/, audio/)")
    parser.add_argument("--rate", type=int, default=16000, help="audio sample rate (default 16000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio kept around the middle (default 10)")
    parser.add_argument("--frame-size", type=int, default=0, help="resize frames to this short side (default: keep)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel processes (default: all cores)")
    parser.add_argument("--pack", action="store_true", help="then pack OUT as litdata chunks into --pack-to (default OUT/packed)")
    parser.add_argument("--pack-only", action="store_true", help="SRC is a frames/ + audio/ folder: pack it into OUT (a folder or s3:// URL)")
    parser.add_argument("--pack-to", help="where --pack writes (a folder or an s3:// URL; default OUT/packed)")
    parser.add_argument("--pack-frame-size", type=int, default=246,
                        help="short side of the packed frames (default 246: int(1.1 x 224), what training resizes to)")
    parser.add_argument("--endpoint-url", help="an S3-compatible server for s3:// URLs (MinIO, a local one); AWS needs none")
    parser.add_argument("--region", help="the bucket's region, if the client cannot find it")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.pack_only:
        return pack(Path(args.source), args.out, args)
    settings = Settings(rate=args.rate, seconds=args.seconds, frame_size=args.frame_size)
    report = run(Path(args.source), Path(args.out), settings, args.jobs, progress=not args.no_progress)
    print(summary(report))
    if args.pack:
        pack(Path(args.out), args.pack_to or str(Path(args.out) / "packed"), args)


def pack(folder: Path, out: str, args) -> None:
    from datamodules.packed import pack_folder, storage_options

    if not (folder / "frames").is_dir() or not (folder / "audio").is_dir():
        raise SSLBenchError(f"prepare: {folder} has no frames/ and audio/ to pack (run prepare on the raw videos first)")
    options = storage_options(args.endpoint_url, args.region)
    record = pack_folder(folder, out, frame_size=args.pack_frame_size, rate=args.rate, jobs=args.jobs, options=options,
                         progress=not args.no_progress)
    endpoint = f", endpoint_url: {args.endpoint_url}" if args.endpoint_url else ""
    print(f"prepare: packed {record['samples']} samples in {len(record['parts'])} parts into {out}"
          + (f" ({record['reused']} already packed)" if record["reused"] else "")
          + f"; train on them with data.train: {{class_path: PackedSamples, init_args: {{root: {out}{endpoint}}}}}")

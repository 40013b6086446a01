"""Packed samples: decoded frames and audio in litdata chunks, on a local disk or in object storage
(``s3://``, ``gs://``, ``azure://`` as litdata reads them), served by index like any reader.

``pack_folder`` writes a ``frames/`` + ``audio/`` folder as ``part-00000/``, ``part-00001/``, ...
(each a litdata dataset: uint8 frames at the training resize side, int16 audio at one rate, the
id, the reading error if any) and ``packed.json`` (parts and their ids in order, rate, frame size).
Parts make packing resumable: a part whose ``index.json`` exists is done and skipped on a rerun.
``PackedSamples`` reads them by index, so every method trains from them (extra views, conceptual
neighbours, swapped audio), validation and test read them the same way, the loaders' sampler
splits them over DDP ranks (equal steps per rank, every sample once per epoch) and a run resumes
mid-epoch exactly (``datamodules.sampling``).
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datamodules.base import AVDataset, ListedSamples, unreadable
from datamodules.folder import FRAME_SUFFIXES, files_by_stem, read_id_list, read_waveform
from datamodules.transforms import load_rgb, train_crop, train_resize
from sslbench.audio import cut_window, fit_window, window_slice
from sslbench.errors import DatasetNotFoundError, SSLBenchError

PACKED = "packed.json"
#: samples per part: the unit a rerun skips when it is complete
PART_SAMPLES = 4096


# -- storage: one code path for local folders and object-store URLs ---------------------------------


def _without_version_check() -> None:
    """litdata asks PyPI for a newer release (an HTTP request with a 30 s timeout, once per process)
    each time a ``StreamingDataset`` or ``optimize`` starts, and warns; on a compute node without
    internet every loader process can wait that long. The version is pinned in the lock on purpose."""
    import litdata.processing.functions as processing
    import litdata.streaming.dataset as streaming

    for module in (processing, streaming):
        module._check_version_and_prompt_upgrade = lambda *_args: None


def is_remote(root: str) -> bool:
    return "://" in str(root) and not str(root).startswith("file://")


def join(root: str, *parts: str) -> str:
    return "/".join([str(root).rstrip("/"), *parts]) if is_remote(root) else str(Path(root).expanduser().joinpath(*parts))


def storage_options(endpoint_url: str | None = None, region: str | None = None) -> dict[str, Any]:
    """litdata's (boto3's) options for an S3-compatible endpoint (MinIO, a local server); AWS
    itself needs none beyond the usual ``AWS_*`` credentials in the environment."""
    options: dict[str, Any] = {}
    if endpoint_url:
        options["endpoint_url"] = endpoint_url
    if region:
        options["region_name"] = region
    return options


def _s3(root: str, options: dict[str, Any]):
    import boto3

    kwargs = {k: options[k] for k in ("endpoint_url", "region_name", "aws_access_key_id", "aws_secret_access_key") if k in options}
    return boto3.client("s3", **kwargs)


def _split(url: str) -> tuple[str, str]:
    bucket, _, key = url.split("://", 1)[1].partition("/")
    return bucket, key


def read_text(url: str, options: dict[str, Any]) -> str | None:
    """A small sidecar file, or None when it is not there."""
    if not is_remote(url):
        path = Path(url)
        return path.read_text() if path.is_file() else None
    if not url.startswith("s3://"):
        raise SSLBenchError(f"{url}: packed data in object storage is supported on s3:// URLs (AWS, MinIO, any S3-compatible server)")
    bucket, key = _split(url)
    client = _s3(url, options)
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    except client.exceptions.NoSuchKey:
        return None
    except Exception as err:  # 404 from a HEAD-less server, credentials, network
        if "404" in str(err) or "NoSuchKey" in str(err):
            return None
        raise


def write_text(url: str, text: str, options: dict[str, Any]) -> None:
    if not is_remote(url):
        path = Path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
        return
    bucket, key = _split(url)
    _s3(url, options).put_object(Bucket=bucket, Key=key, Body=text.encode())


# -- packing -----------------------------------------------------------------------------------


def frame_at(path: str | Path, short_side: int) -> np.ndarray:
    """The frame as uint8 H x W x 3, its short side resized to ``short_side`` (bicubic), decoded
    at a reduced JPEG scale when the file is at least twice as large."""
    image = load_rgb(path, min_side=short_side)
    scale = short_side / min(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return np.asarray(image.resize(size, resample=3) if size != image.size else image, dtype=np.uint8)


def pack_sample(item: tuple[str, str, str, int, int]) -> dict[str, Any]:
    """One record: ``id``, ``frame`` (uint8 H x W x 3), ``audio`` (int16 at ``rate``) and ``error``
    ("" when both files read; else why, with empty arrays: the record keeps its place, and the
    reader reports the id as unreadable)."""
    sample_id, frame_path, audio_path, frame_size, rate = item
    try:
        frame = frame_at(frame_path, frame_size)
        wave = read_waveform(Path(audio_path), rate).numpy()
        audio = (np.clip(wave, -1, 1) * 32767).astype(np.int16)
        return {"id": sample_id, "frame": frame, "audio": audio, "error": ""}
    except Exception as err:
        empty_frame, empty_audio = np.zeros((1, 1, 3), np.uint8), np.zeros(1, np.int16)
        return {"id": sample_id, "frame": empty_frame, "audio": empty_audio, "error": f"{type(err).__name__}: {err}"}


def part_done(out: str, part: str, options: dict[str, Any]) -> bool:
    return read_text(join(out, part, "index.json"), options) is not None


def pack_folder(
    folder: str | Path, out: str, frame_size: int = 246, rate: int = 16000, jobs: int = 1,
    part_samples: int = PART_SAMPLES, options: dict[str, Any] | None = None, progress: bool = True,
) -> dict[str, Any]:
    """Pack every id of ``folder`` with a frame and an audio file into ``out`` (a folder or an
    ``s3://`` URL); returns the ``packed.json`` record. Complete parts of an earlier run are kept."""
    from litdata import optimize

    _without_version_check()
    options = dict(options or {})
    folder = Path(folder)
    frames, audios = files_by_stem(folder / "frames", FRAME_SUFFIXES), files_by_stem(folder / "audio", (".wav", ".flac"))
    ids = sorted(set(frames) & set(audios))
    if not ids:
        raise DatasetNotFoundError("pack", folder, "no id has both frames/<id>.jpg and audio/<id>.wav")
    parts, skipped = [], 0
    for p, first in enumerate(range(0, len(ids), part_samples)):
        name, part_ids = f"part-{p:05d}", ids[first : first + part_samples]
        parts.append({"dir": name, "ids": part_ids})
        if part_done(out, name, options):
            skipped += len(part_ids)
            continue
        inputs = [(i, str(frames[i]), str(audios[i]), frame_size, rate) for i in part_ids]
        optimize(
            fn=pack_sample, inputs=inputs, output_dir=join(out, name), chunk_bytes="64MB",
            num_workers=max(1, min(jobs, len(inputs))), keep_data_ordered=True, reorder_files=False,
            mode="overwrite", storage_options=options,
        )
    record = {"format": "sslbench-packed-1", "parts": parts, "samples": len(ids), "rate": rate, "frame_size": frame_size,
              "source": str(folder), "reused": skipped}
    write_text(join(out, PACKED), json.dumps(record, indent=1) + "\n", options)
    return record


# -- reading -----------------------------------------------------------------------------------


class PackedSamples(ListedSamples, AVDataset):
    """Samples written by ``sslbench prepare SRC OUT --pack``, from a folder or an object store.

    Args:
        root: the packed folder or URL (``s3://bucket/vggsound/packed``) holding ``packed.json``.
        ids: optional list restricting and ordering the samples.
        name: logged name.
        endpoint_url: an S3-compatible server (MinIO, a local one); AWS needs none.
        region: the bucket's region, when the client cannot find it.
        cache_dir: where remote chunks are cached (default: litdata's).
    """

    def __init__(
        self, root: str, ids: str | None = None, name: str = "packed", endpoint_url: str | None = None,
        region: str | None = None, cache_dir: str | None = None,
    ):
        super().__init__()
        self.root, self.name, self.cache_dir = str(root), name, cache_dir
        self.options = storage_options(endpoint_url, region)
        if not is_remote(self.root) and not Path(self.root).expanduser().joinpath(PACKED).is_file():
            raise DatasetNotFoundError("PackedSamples", Path(self.root).expanduser() / PACKED,
                                       "Write packed data with `sslbench prepare SRC OUT --pack`.")
        self.ids_file = Path(ids).expanduser() if ids else None
        if self.ids_file is not None and not self.ids_file.is_file():
            raise DatasetNotFoundError("PackedSamples", self.ids_file, "Give the sample list file with `ids:`.")
        self.excluded: list[str] = []

    @cached_property
    def record(self) -> dict[str, Any]:
        text = read_text(join(self.root, PACKED), self.options)
        if text is None:
            raise DatasetNotFoundError("PackedSamples", join(self.root, PACKED), "Write packed data with `sslbench prepare SRC OUT --pack`.")
        return json.loads(text)

    @cached_property
    def _where(self) -> dict[str, tuple[int, int]]:
        """id -> (part, position in the part)."""
        return {i: (p, k) for p, part in enumerate(self.record["parts"]) for k, i in enumerate(part["ids"])}

    @cached_property
    def _wanted(self) -> list[str]:
        return read_id_list(self.ids_file) if self.ids_file else [i for part in self.record["parts"] for i in part["ids"]]

    @cached_property
    def _ids(self) -> list[str]:
        ids = [i for i in self._wanted if i in self._where]
        if not ids:
            raise DatasetNotFoundError("PackedSamples", self.root, "none of the wanted samples is in the packed data")
        return ids

    def manifest(self) -> dict[str, Any]:
        kept = set(self._ids) | set(self.excluded)
        return {"dataset": self.name, "list": str(self.ids_file) if self.ids_file else None, "root": self.root,
                "wanted": len(self._wanted), "available": len(kept), "used": len(self._ids),
                "missing": [i for i in self._wanted if i not in kept], "excluded": self.excluded}

    def __getstate__(self) -> dict[str, Any]:  # loader processes open their own litdata readers
        state = dict(self.__dict__)
        state.pop("_parts", None)
        return state

    @cached_property
    def _parts(self) -> list:
        from litdata import StreamingDataset

        _without_version_check()
        kwargs = {"storage_options": self.options} if self.options else {}
        if self.cache_dir:
            kwargs["cache_dir"] = self.cache_dir
        return [StreamingDataset(join(self.root, part["dir"]), **kwargs) for part in self.record["parts"]]

    def read(self, sample_id: str) -> dict[str, Any]:
        part, position = self._where[sample_id]
        return self._parts[part][position]

    def waveform(self, record: dict[str, Any], shift_seconds: float = 0.0) -> torch.Tensor:
        audio, rate = record["audio"], self.record["rate"]
        if rate != self.audio.sample_rate:
            return cut_window(_resample(pcm16_to_float(audio), rate, self.audio.sample_rate), self.audio, shift_seconds=shift_seconds)
        window = audio[window_slice(len(audio), self.audio, rate, shift_seconds)]  # convert only the window
        return fit_window(pcm16_to_float(window), self.audio, rate)

    def raw_frame(self, index: int) -> torch.Tensor | None:
        record = self.read(self._ids[index])
        return None if record["error"] else frame_tensor(record)

    def shifted_waveform(self, index: int, waveform: torch.Tensor, shift_seconds: float) -> torch.Tensor:
        record = self.read(self._ids[index])
        return waveform.roll(int(round(shift_seconds * self.audio.sample_rate))) if record["error"] else self.waveform(record, shift_seconds)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        sample_id = self._ids[index]
        record = self.read(sample_id)
        if record["error"]:
            return unreadable(sample_id, "packed sample", record["error"])
        frame = frame_tensor(record)
        crop = None
        if self.crops_on_device:  # shipped uncropped, uint8; the device crops and flips
            image, crop = self.frame_and_crop(frame)
        elif self.train and self.train_transform == "ezvsl" and min(frame.shape[-2:]) == train_resize(self.image_size):
            image = train_crop(self.image_size)(frame)  # stored at the training size: crop and flip, still uint8
        else:
            image = self.frame_transform()(frame)
        sample = {"image": image, "waveform": self.waveform(record), "index": index, "sample_id": sample_id, "class_id": -1}
        if crop is not None:
            sample["crop"] = crop
        return sample


def pcm16_to_float(samples: np.ndarray) -> torch.Tensor:
    """Stored int16 audio back to float32 in [-1, 1] (the inverse of ``pack_sample``'s scaling)."""
    return torch.from_numpy(np.asarray(samples, dtype=np.float32) / 32767.0)


def frame_tensor(record: dict[str, Any]) -> torch.Tensor:
    """The record's frame as uint8 3 x H x W, copied: litdata hands out read-only views of its chunk."""
    return torch.from_numpy(np.array(record["frame"], dtype=np.uint8)).permute(2, 0, 1)


def _resample(wave: torch.Tensor, rate: int, target: int) -> torch.Tensor:
    import torchaudio

    return torchaudio.functional.resample(wave, rate, target)

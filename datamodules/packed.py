"""Training shards in WebDataset's format (tar files of decoded samples) for fast loading.

``pack_folder`` turns a ``frames/`` + ``audio/`` folder into ``shard-000000.tar, ...`` holding,
per sample, ``<id>.frame.npy`` (uint8 H x W x 3, short side ``frame_size``), ``<id>.audio.npy``
(int16 mono) and ``<id>.meta.json`` (rate), plus ``index.json`` (shards, ids per shard, rate).
Reading one costs no JPEG decoding and no resampling. ``PackedShards`` streams them: shards are
split across DDP ranks and loader workers, and every rank yields the same number of samples per
epoch (ranks must agree on the number of steps).
"""

from __future__ import annotations

import io
import json
import logging
import random
import tarfile
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torchaudio
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from datamodules.base import AVDataset, ListedSamples
from datamodules.folder import FRAME_SUFFIXES, files_by_stem, read_audio, read_id_list
from datamodules.transforms import train_crop, train_resize
from sslbench.audio import cut_window
from sslbench.errors import DatasetNotFoundError

log = logging.getLogger(__name__)
INDEX = "index.json"


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def pack_folder(folder: Path, out: Path, frame_size: int = 246, shard_samples: int = 1000, progress: bool = True) -> dict:
    """Write ``folder``'s samples (every id with a frame and an audio file) as shards in ``out``.
    ``frame_size``: the short side frames are stored at; the training transform's own resize
    target (``int(1.1 * image_size)``, 246 for 224 px) lets training skip resizing."""
    from tqdm import tqdm

    frames, audios = files_by_stem(folder / "frames", FRAME_SUFFIXES), files_by_stem(folder / "audio", (".wav", ".flac"))
    ids = sorted(set(frames) & set(audios))
    if not ids:
        raise DatasetNotFoundError("pack", folder, "no id has both frames/<id>.jpg and audio/<id>.wav")
    out.mkdir(parents=True, exist_ok=True)
    shards, skipped, rate = [], {}, None
    bar = tqdm(total=len(ids), unit="sample", disable=not progress, desc="pack")
    for s, first in enumerate(range(0, len(ids), shard_samples)):
        name, kept = f"shard-{s:06d}.tar", []
        tmp = out / f".{name}.tmp"
        with tarfile.open(tmp, "w") as tar:
            for sample_id in ids[first : first + shard_samples]:
                bar.update(1)
                try:
                    with Image.open(frames[sample_id]) as img:
                        img = img.convert("RGB")
                        scale = frame_size / min(img.size)
                        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), resample=3)
                    wave, file_rate = read_audio(audios[sample_id])
                except Exception as err:  # counted, never packed half
                    skipped[sample_id] = f"{type(err).__name__}: {err}"
                    continue
                rate = rate or file_rate
                if file_rate != rate:
                    wave = torchaudio.functional.resample(torch.from_numpy(wave), file_rate, rate).numpy()
                _add(tar, f"{sample_id}.frame.npy", _npy(np.asarray(img, dtype=np.uint8)))
                _add(tar, f"{sample_id}.audio.npy", _npy((np.clip(wave, -1, 1) * 32767).astype(np.int16)))
                _add(tar, f"{sample_id}.meta.json", json.dumps({"rate": rate}).encode())
                kept.append(sample_id)
        tmp.replace(out / name)
        shards.append({"file": name, "ids": kept})
    bar.close()
    index = {"shards": shards, "samples": sum(len(s["ids"]) for s in shards), "rate": rate, "frame_size": frame_size,
             "source": str(folder), "skipped": skipped}
    (out / INDEX).write_text(json.dumps(index, indent=1) + "\n")
    return index


def from_npy(data: bytes) -> np.ndarray:
    """A ``.npy`` payload as an array viewing ``data`` (no copy; ``np.load`` on a buffer copies
    and costs more than the rest of reading a sample)."""
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = header(stream)
    array = np.frombuffer(data, dtype=dtype, offset=stream.tell(), count=int(np.prod(shape)))
    return array.reshape(shape, order="F" if fortran else "C")


def read_shard(path: Path):
    """(id, frame uint8 HWC, int16 audio, meta) of each sample of one shard, in order."""
    current: dict[str, Any] = {}
    key = None
    with tarfile.open(path) as tar:
        for member in tar:
            sample_id, _, field = member.name.partition(".")
            if key is not None and sample_id != key:
                yield key, current
                current = {}
            key = sample_id
            data = tar.extractfile(member).read()
            current[field] = json.loads(data) if field.endswith(".json") else from_npy(data)
    if key is not None:
        yield key, current


class PackedShards(ListedSamples, AVDataset, IterableDataset):
    """Training samples streamed from ``pack_folder`` shards (no ground truth: a training set).

    Args:
        root: the folder with ``index.json`` and the shards.
        ids: optional list restricting the samples (as for the folder readers).
        name: logged name.
        shuffle_buffer: samples mixed across shards while training (0: shard order).
        seed: shuffling seed (the epoch is added).
    """

    def __init__(self, root: str, ids: str | None = None, name: str = "packed", shuffle_buffer: int = 1000, seed: int = 0):
        super().__init__()
        self.root, self.name = Path(root).expanduser(), name
        if not (self.root / INDEX).is_file():
            raise DatasetNotFoundError("PackedShards", self.root / INDEX, "Write shards with `sslbench prepare SRC OUT --pack`.")
        self.ids_file = Path(ids).expanduser() if ids else None
        self.shuffle_buffer, self.seed, self.epoch = shuffle_buffer, seed, 0
        self.excluded: list[str] = []

    @cached_property
    def index(self) -> dict:
        return json.loads((self.root / INDEX).read_text())

    @cached_property
    def _wanted(self) -> list[str]:
        packed = [i for shard in self.index["shards"] for i in shard["ids"]]
        if self.ids_file is None:
            return packed
        return read_id_list(self.ids_file)

    @cached_property
    def _ids(self) -> list[str]:
        packed = {i for shard in self.index["shards"] for i in shard["ids"]}
        ids = [i for i in self._wanted if i in packed]
        if not ids:
            raise DatasetNotFoundError("PackedShards", self.root, "none of the wanted samples is in the shards")
        return ids

    def manifest(self) -> dict[str, Any]:
        kept = set(self._ids) | set(self.excluded)
        return {"dataset": self.name, "list": str(self.ids_file) if self.ids_file else None, "root": str(self.root),
                "wanted": len(self._wanted), "available": len(kept), "used": len(self._ids),
                "missing": [i for i in self._wanted if i not in kept], "excluded": self.excluded}

    def __len__(self) -> int:
        """Samples this rank yields per epoch (the loader's progress bar and step count)."""
        return len(self._ids) // _world()[1]

    def __getitem__(self, index):  # an iterable set: the loader iterates, it never indexes
        raise TypeError("PackedShards is streamed; iterate over it")

    def _plan(self, epoch: int, workers: int) -> tuple[list[list[Path]], list[int], bool]:
        """Per reader slot (rank * workers + worker): its shards and its quota of samples.

        Shards (shuffled per epoch when training) go round-robin to the slots; with fewer shards
        than slots every slot reads them all and keeps every slots-th sample. Each rank's quota is
        the same (its share of the wanted samples), spread over its workers by what they hold."""
        rank, world = _world()
        slots = world * workers
        wanted = set(self._ids)
        shards = [(self.root / sh["file"], sum(i in wanted for i in sh["ids"])) for sh in self.index["shards"]]
        if self.train:
            random.Random(self.seed + epoch).shuffle(shards)
        shared = len(shards) < slots
        total = sum(n for _, n in shards)
        if shared:
            plan = [[p for p, _ in shards]] * slots
            counts = [total // slots + (1 if k < total % slots else 0) for k in range(slots)]
        else:
            plan = [[p for p, _ in shards[k::slots]] for k in range(slots)]
            counts = [sum(n for _, n in shards[k::slots]) for k in range(slots)]
        quotas = list(counts)
        for r in range(world):  # every rank takes len(self) samples: top up or trim its workers
            mine = list(range(r * workers, (r + 1) * workers))
            diff, k = len(self) - sum(counts[m] for m in mine), 0
            while diff:
                m = mine[k % workers]
                if diff > 0:
                    quotas[m], diff = quotas[m] + 1, diff - 1
                elif quotas[m] > 0:
                    quotas[m], diff = quotas[m] - 1, diff + 1
                k += 1
        return plan, quotas, shared

    def __iter__(self):
        """This (rank, worker)'s share of the epoch: exactly its quota, cycling over its shards
        when a rank holds fewer samples than the others, so every rank takes the same steps."""
        epoch = self.epoch
        self.epoch += 1  # each iteration (epoch) of a persistent worker reshuffles
        rank, _ = _world()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        plan, quotas, shared = self._plan(epoch, workers)
        slot, slots = rank * workers + worker, len(plan)
        quota, rng = quotas[slot], random.Random(self.seed + epoch * 1009 + slot)
        wanted = set(self._ids)

        def stream():
            while True:
                found = False
                for position, sample in enumerate(self._stream(plan[slot], wanted)):
                    if shared and position % slots != slot:
                        continue
                    found = True
                    yield sample
                if not found:
                    return

        buffer: list[dict] = []
        yielded = 0
        shuffling = self.train and self.shuffle_buffer > 0
        for sample in stream():  # pulls no more than the quota, so a second pass only tops it up
            if yielded + len(buffer) >= quota:
                break
            if not shuffling:
                yielded += 1
                yield sample
                continue
            buffer.append(sample)
            if len(buffer) >= self.shuffle_buffer:
                yielded += 1
                yield buffer.pop(rng.randrange(len(buffer)))
        while buffer:
            yield buffer.pop(rng.randrange(len(buffer)))

    def _stream(self, shards: list[Path], wanted: set[str]):
        transform = self.frame_transform()
        position = {sid: i for i, sid in enumerate(self._ids)}
        for shard in shards:
            try:
                for sample_id, fields in read_shard(shard):
                    if sample_id not in wanted:
                        continue
                    yield self._sample(sample_id, fields, transform, position[sample_id])
            except (OSError, tarfile.TarError, ValueError) as err:  # a damaged shard: say so, go on
                log.warning("skipping the rest of shard %s (%s: %s)", shard, type(err).__name__, err)

    def _sample(self, sample_id: str, fields: dict, transform, index: int) -> dict[str, Any]:
        wave = torch.from_numpy(fields["audio.npy"].astype(np.float32) / 32767.0)
        rate = fields["meta.json"]["rate"]
        if rate != self.audio.sample_rate:
            wave = torchaudio.functional.resample(wave, rate, self.audio.sample_rate)
        frame = torch.from_numpy(fields["frame.npy"].copy()).permute(2, 0, 1)  # the shard's bytes are read-only
        if self.train and self.train_transform == "ezvsl" and min(frame.shape[-2:]) == train_resize(self.image_size):
            image = train_crop(self.image_size)(frame)  # stored at the training size: crop and flip, still uint8
        else:
            image = transform(frame.contiguous())
        return {"image": image, "waveform": cut_window(wave, self.audio), "index": index, "sample_id": sample_id, "class_id": -1}


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1

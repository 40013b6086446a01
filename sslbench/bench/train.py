"""``make bench-train``: training steps per second from packed data, Lightning's loop against a bare
PyTorch loop over the same module and the same loader.

Packs ``--samples`` prepared-layout samples (``bench.data.write_raw``: JPEG frames, 16 kHz audio)
into litdata chunks once, then for each method (EZ-VSL, LVS, SLAVC, SSL-Align) trains ``--steps``
steps twice from the same initial weights and loader settings:

- Lightning: ``Trainer.fit`` with the sslbench data module (uint8 frames, crop and flip on the
  device, the spectrogram computed on the batch), no logger, checkpoint or progress bar;
- bare: ``for batch in loader``: the data module's transfer hook, ``compute_loss``, backward, step.

Per row: samples/s over the timed steps (the first ``--warmup`` are not timed), the share of step
time spent waiting for the loader, the device's busy share (CUDA only: NVML's share of time a
kernel ran, ``torch.cuda.utilization``, sampled after each timed step; needs nvidia-ml-py, else a
dash), peak memory (CUDA allocator, else the
process's peak RSS so far, which only grows from row to row), and the
Lightning / bare ratio. On a CPU it runs at ``--size`` px with narrow ResNets (``--width``); on a
GPU at paper size (224 px, width 64, batch 128, bf16, channels-last).

    python -m sslbench.bench.train [--steps 30] [--size 96] [--width 16] [--batch 32]
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import resource
import sys
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

#: rows: name -> (class name, init arguments; the ResNet width is set per run, vision starts random)
METHODS = {
    "EZ-VSL": ("EZVSL", {}),
    "LVS": ("LVS", {}),
    "SLAVC": ("SLAVC", {}),
    "SSL-Align": ("SSLAlign", {"conceptual_positives": False}),  # its augmented view; neighbours need `sslbench knn`
}


class StepClock(Callback):
    """When each training step ended and how long the loop waited before it began (fetch and transfer)."""

    def __init__(self):
        self.ends, self.waits, self.busy = [], [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.ends:
            self.waits.append(time.perf_counter() - self.ends[-1])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        sync()
        self.ends.append(time.perf_counter())
        self.busy.append(device_busy())


def device_busy() -> float:
    """NVML's GPU utilisation (0-1) over its last sample period; NaN without CUDA or NVML."""
    if not torch.cuda.is_available():
        return float("nan")
    try:
        return torch.cuda.utilization() / 100
    except Exception:  # nvidia-ml-py missing
        return float("nan")


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def packed_data(folder: Path, samples: int) -> Path:
    from datamodules.packed import PACKED, pack_folder
    from sslbench.bench.data import write_raw

    raw, packed = folder / "raw", folder / "packed"
    if not (packed / PACKED).is_file():
        write_raw(raw, samples)
        pack_folder(raw, str(packed), frame_size=246, rate=16000, jobs=2, progress=False)
    return packed


def data_module(packed: Path, size: int, batch: int, workers: int):
    from datamodules import AudioVisualDataModule, PackedSamples

    return AudioVisualDataModule(train=PackedSamples(str(packed)), test=[], image_size=size, batch_size=batch,
                                 num_workers=workers, audio_preset="ezvsl")


def make_model(class_name: str, settings: dict, width: int, gpu: bool):
    import sslbench.methods as methods

    model = getattr(methods, class_name)(vision_weights=None, backbone_width=width, **settings)
    return model.to(memory_format=torch.channels_last) if gpu else model


def lightning_run(model, data, steps: int, warmup: int, gpu: bool, compile: bool, root: Path) -> dict[str, float]:
    import lightning as L

    from sslbench.speed import Speed

    clock = StepClock()
    trainer = L.Trainer(
        max_steps=steps + warmup, default_root_dir=root, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        accelerator="gpu" if gpu else "cpu", devices=1, precision="bf16-mixed" if gpu else "32-true",
        callbacks=[clock, Speed(channels_last=gpu, compile=compile)],
    )
    trainer.fit(model, datamodule=data)
    return summary(clock.ends, clock.waits, clock.busy, warmup, data.batch_size)


def bare_run(model, data, steps: int, warmup: int, gpu: bool, compile: bool) -> dict[str, float]:
    """The same module, optimiser, loader and transfer hook in a plain loop."""
    from sslbench.speed import trunks

    device = torch.device("cuda" if gpu else "cpu")
    model = model.to(device).train()
    for trunk in trunks(model) if compile else ():
        trunk.compile()
    optimizer = model.configure_optimizers()
    if isinstance(optimizer, dict):
        optimizer = optimizer["optimizer"]
    elif isinstance(optimizer, (list, tuple)):
        optimizer = optimizer[0][0] if isinstance(optimizer[0], (list, tuple)) else optimizer[0]
    data.setup("fit")
    loader = data._loader(data.viewed_train_set(model), train=True)
    ends, waits, busy = [], [], []
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=gpu)
    for batch in loader:
        batch = data.on_after_batch_transfer(data.transfer_batch_to_device(batch, device, 0), 0)
        if ends:
            waits.append(time.perf_counter() - ends[-1])
        if gpu:
            batch.image = batch.image.contiguous(memory_format=torch.channels_last)
        with autocast:
            loss = model.compute_loss(batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync()
        ends.append(time.perf_counter())
        busy.append(device_busy())
        if len(ends) >= steps + warmup:
            break
    return summary(ends, waits, busy, warmup, data.batch_size)


def summary(ends: list[float], waits: list[float], busy: list[float], warmup: int, batch: int) -> dict[str, float]:
    """Throughput and data-wait share over the steps after ``warmup`` (``waits[i]`` precedes step i + 1)."""
    wall = ends[-1] - ends[warmup - 1]
    timed = len(ends) - warmup
    return {"samples_per_second": batch * timed / wall, "data_wait": sum(waits[warmup - 1:]) / wall,
            "device_busy": sum(busy[warmup:]) / timed, "peak_memory_mb": peak_memory_mb()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", choices=tuple(METHODS), default=tuple(METHODS))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--size", type=int, help="frame side (default: 224 on a GPU, 96 on a CPU)")
    parser.add_argument("--width", type=int, help="ResNet width (default: 64 on a GPU, 16 on a CPU)")
    parser.add_argument("--batch", type=int, help="batch size (default: 128 on a GPU, 16 on a CPU)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--compile", action="store_true", help="torch.compile the conv trunks in both loops")
    parser.add_argument("--dir", default="runs/bench_train")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--steps and --warmup must be at least 1 (the first step's end starts the clock)")
    os.environ.setdefault("WANDB_MODE", "disabled")
    gpu = torch.cuda.is_available()
    size, width, batch = args.size or (224 if gpu else 96), args.width or (64 if gpu else 16), args.batch or (128 if gpu else 16)
    packed = packed_data(Path(args.dir), args.samples)
    print(f"bench-train: {'cuda bf16' if gpu else 'cpu fp32'}, {size} px, ResNet width {width}, batch {batch}, "
          f"{args.workers} workers, {args.steps} timed steps after {args.warmup}{', compiled' if args.compile else ''}", file=sys.stderr, flush=True)
    lines = ["| method | loop | samples/s | data wait | device busy | peak memory (MB) | Lightning / bare |", "| --- " * 7 + "|"]
    for name in args.methods:
        class_name, settings = METHODS[name]
        torch.manual_seed(0)
        model = make_model(class_name, settings, width, gpu)
        twin = copy.deepcopy(model)
        light = lightning_run(model, data_module(packed, size, batch, args.workers), args.steps, args.warmup, gpu, args.compile,
                             Path(args.dir))
        bare = bare_run(twin, data_module(packed, size, batch, args.workers), args.steps, args.warmup, gpu, args.compile)
        ratio = light["samples_per_second"] / bare["samples_per_second"]
        for loop, r in (("Lightning", light), ("bare PyTorch", bare)):
            busy = "—" if math.isnan(r["device_busy"]) else f"{r['device_busy']:.0%}"
            lines.append(f"| {name} | {loop} | {r['samples_per_second']:.1f} | {r['data_wait']:.1%} | {busy} | "
                         f"{r['peak_memory_mb']:.0f} | {ratio:.3f} |")
        print(lines[-2] + "\n" + lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

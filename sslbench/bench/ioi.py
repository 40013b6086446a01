"""``make bench-ioi``: one IOI step (identification + clustering) on a batch, batched vs one
sample at a time, on the CPU and on a GPU when there is one.

Features are the real sizes (512 channels, 7 x 7 at 224 px, batch 128) with two or three planted
objects per sample, so the loop runs several iterations. Both paths must find the same banks.

    python -m sslbench.bench.ioi [--batch 128] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from sslbench.nn.ioi import cluster_bank, identify_sounding_objects


def planted_batch(batch: int, channels: int = 512, side: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    features = F.normalize(torch.randn(batch, channels, side, side, generator=g), dim=1)
    directions = F.normalize(torch.randn(batch, 3, channels, generator=g), dim=2)
    for b in range(batch):
        for k in range(2 + b % 2):  # two or three objects
            r, c = torch.randint(0, side - 2, (2,), generator=g).tolist()
            features[b, :, r : r + 2, c : c + 2] = directions[b, k][:, None, None]
    audio = F.normalize(directions[:, :2].sum(1) + 0.05 * torch.randn(batch, channels, generator=g), dim=1)
    return features, audio


def ioi_step(features, audio):
    found = identify_sounding_objects(features, audio)
    groups = [cluster_bank(found.bank[b, : int(found.valid[b].sum())], found.negative[b]) for b in range(len(features))]
    return found, groups


def timed(fn, device: str, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    features, audio = planted_batch(args.batch)
    print(f"bench-ioi: batch {args.batch}, 512 x 7 x 7 features, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for device in ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]:
        f, a = features.to(device), audio.to(device)
        batched_s, (found, _) = timed(lambda: ioi_step(f, a), device, args.repeats)  # noqa: B023
        loop_s, alone = timed(lambda: [ioi_step(f[b : b + 1], a[b : b + 1]) for b in range(len(f))], device, args.repeats)  # noqa: B023
        for b, (one, _) in enumerate(alone):
            t = one.bank.shape[1]
            if int(found.valid[b].sum()) != t or not torch.allclose(found.bank[b, :t], one.bank[0], atol=1e-5):
                raise AssertionError(f"sample {b}: batched and per-sample IOI differ")
        iterations = found.bank.shape[1]
        print(f"  {device:<4} batched {batched_s * 1e3:8.1f} ms/batch   per-sample loop {loop_s * 1e3:8.1f} ms/batch   "
              f"loop / batched {loop_s / batched_s:5.1f}x   ({iterations} iterations for the slowest sample)")


if __name__ == "__main__":
    main()

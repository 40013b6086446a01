"""``make bench-eval``: score VGG-SS-sized test sets (5,158 maps) under every protocol, batched
torch vs a straightforward per-sample numpy loop, on the CPU and on a GPU when there is one.

Both paths start from the same maps at 224 x 224 (upsampling is the model's side); the batched
path works in evaluation batches, as the evaluator does. The loop's per-sample numbers must agree
with the batched ones, so a fast wrong answer cannot win.

    python -m sslbench.bench.eval [--n 5158] [--batch 128] [--protocols ezvsl lvs ...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sslbench.bench import reference as ref
from sslbench.eval.functional import (
    gt_map_vggss,
    localization_scores,
    min_max,
    multi_source_scores,
    s4_frame_fscores,
    s4_frame_iou,
    upsample,
)
from sslbench.eval.protocols import PROTOCOLS


def make_set(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw 7 x 7 maps (with constant and tied ones) and VGG-SS-like binary gts at 224."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(n, 7, 7, generator=g) * 3
    raw[::97] = 0.0  # constant maps
    raw[1::89] = torch.round(raw[1::89])  # ties
    boxes = torch.rand(n, 2, 2, generator=g).sort(1).values  # x1 < x2, y1 < y2
    gts = torch.stack([gt_map_vggss([[x1, y1, x2, y2]]) for (x1, y1), (x2, y2) in boxes.tolist()])
    return raw, gts


def timed(fn, device: str) -> tuple[float, object]:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def batched_single(maps, gts, rule, batch):
    return torch.cat([localization_scores(m, g, rule)["n_pred_pixels"] for m, g in zip(maps.split(batch), gts.split(batch))])


def loop_single(maps, gts, rule):
    return np.array([int(ref.single_source_infer(h.copy(), gt, rule).sum()) for h, gt in zip(maps, gts)])


def batched_ioi(maps, gts, batch):
    return [multi_source_scores(list(m[:, None]), list(g[:, None]))["iou"] for m, g in zip(maps.split(batch), gts.split(batch))]


def loop_ioi(maps, gts):
    return [ref.noprior_sample(h[None], gt[None]) for h, gt in zip(maps, gts)]


def batched_s4(maps, gts, batch):
    return [(s4_frame_iou(m, g, True), s4_frame_fscores(m, g, True)) for m, g in zip(maps.split(batch), gts.split(batch))]


def loop_s4(maps, gts):
    thresholds = np.linspace(0, 1 - 1e-10, 255, dtype=np.float32)
    out = []
    for p, gt in zip(maps, gts):
        predicted = p.reshape(1, -1) >= thresholds[:, None]
        tp = (predicted & (gt.reshape(1, -1) > 0)).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = 1.3 * (tp / predicted.sum(1)) * (tp / gt.sum()) / (0.3 * tp / predicted.sum(1) + tp / gt.sum())
        out.append(np.nan_to_num(f).max())
    return out


def run(n: int, batch: int, protocols: list[str], devices: list[str]) -> list[str]:
    raw, gts = make_set(n)
    print(f"bench-eval: {n} maps at 224 x 224, evaluation batches of {batch}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads", flush=True)
    lines = []
    for name in protocols:
        protocol = PROTOCOLS[name]
        maps = upsample(raw, 224, protocol.upsample)
        if protocol.fixed_range:
            maps = (maps / 3).clamp(-1, 1) * 0.5 + 0.5  # cosine-like maps into [0, 1]
        if protocol.family == "s4":
            maps = min_max(maps)
        numpy_maps, numpy_gts = maps.numpy(), gts.numpy()
        if protocol.family == "single":
            loop_s, expected = timed(lambda: loop_single(numpy_maps, numpy_gts, protocol.rule), "cpu")
        elif protocol.family == "s4":
            loop_s, expected = timed(lambda: loop_s4(numpy_maps, numpy_gts), "cpu")
        else:
            loop_s, expected = timed(lambda: loop_ioi(numpy_maps, numpy_gts), "cpu")
        for device in devices:
            m, g = maps.to(device), gts.to(device)
            if protocol.family == "single":
                fn = lambda: batched_single(m, g, protocol.rule, batch)  # noqa: E731
            elif protocol.family == "s4":
                fn = lambda: batched_s4(m, g, batch)  # noqa: E731
            else:
                fn = lambda: batched_ioi(m, g, batch)  # noqa: E731
            timed(fn, device)  # warm-up
            batched_s, got = timed(fn, device)
            if protocol.family == "single" and not np.array_equal(got.cpu().numpy(), expected):
                raise AssertionError(f"{name}: batched and per-sample predicted-pixel counts differ")
            lines.append(
                f"  {name:<18} {device:<4} batched {batched_s:7.3f} s   numpy loop {loop_s:7.3f} s   "
                f"loop / batched {loop_s / batched_s:5.2f}x"
            )
            print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5158, help="maps per protocol (VGG-SS has 5,158)")
    parser.add_argument("--batch", type=int, default=128, help="evaluation batch size")
    parser.add_argument("--protocols", nargs="+", default=[p for p in PROTOCOLS if p != "avgn"], choices=sorted(PROTOCOLS))
    args = parser.parse_args(argv)
    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    run(args.n, args.batch, args.protocols, devices)


if __name__ == "__main__":
    main()

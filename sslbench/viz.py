"""Pictures: heatmap overlays with the ground truth (best, worst and random samples), and success-ratio curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor


def overlay_grid(
    images: Tensor,
    maps: Tensor,
    boxes: Sequence[Tensor],
    path: str | Path,
    titles: Sequence[str] | None = None,
    gt_maps: Tensor | None = None,
    rows: Sequence[tuple[str, Sequence[int]]] | None = None,
) -> Path:
    """Write a PNG: each frame with its map overlaid (jet, 0 blue to 1 red, half transparent), the
    ground truth drawn on it (boxes in white, the gt map's outline in white dashes), one shared
    colour bar; ``rows`` groups the samples under a label each (e.g. best, worst, random).

    ``images`` (N, 3, H, W) in [0, 1]; ``maps`` (N, h, w) in [0, 1] (stretched over the frame);
    ``boxes`` per image (M, 4) normalised ``[x1, y1, x2, y2]``; ``gt_maps`` (N, S, S) or None.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rows = list(rows) if rows else [("", list(range(images.shape[0])))]
    columns = max(1, max(len(members) for _, members in rows))
    fig, axes = plt.subplots(len(rows), columns, figsize=(2.6 * columns + 0.8, 2.7 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    shown = None
    for r, (label, members) in enumerate(rows):
        for c, i in enumerate(members):
            ax = axes[r, c]
            img = images[i].detach().float().permute(1, 2, 0).cpu().numpy()
            h, w = img.shape[:2]
            ax.imshow(img)
            shown = ax.imshow(maps[i].detach().float().cpu().numpy(), cmap="jet", vmin=0, vmax=1, alpha=0.5, extent=(0, w, h, 0))
            for x1, y1, x2, y2 in np.asarray(boxes[i].detach().cpu(), dtype=float).reshape(-1, 4):
                ax.add_patch(Rectangle((x1 * w, y1 * h), (x2 - x1) * w, (y2 - y1) * h, fill=False, ec="white", lw=1.5))
            if gt_maps is not None and float(gt_maps[i].max()) > 0:
                gt = gt_maps[i].detach().float().cpu().numpy()
                ys, xs = np.linspace(0, h, gt.shape[0]), np.linspace(0, w, gt.shape[1])
                ax.contour(xs, ys, gt, levels=[0.25], colors="white", linewidths=1.0, linestyles="dashed")
            if titles:
                ax.set_title(titles[i], fontsize=7, loc="left")
        if label:
            axes[r, 0].text(-0.08, 0.5, label, rotation=90, va="center", ha="right", fontsize=10, transform=axes[r, 0].transAxes)
    if shown is not None:
        fig.colorbar(shown, ax=axes, fraction=0.02, pad=0.01, label="localization score")
    return _save(fig, path, dpi=80, tight=False)


def pick_examples(index: Sequence[int], scores: Sequence[float], per_group: int, seed: int = 0) -> list[tuple[str, list[int]]]:
    """(label, dataset indices) of the best, the worst and a fixed random few by score (NaN counts
    as worst), each group ``per_group`` long and none shown twice."""
    import random

    ranked = sorted(zip(index, scores), key=lambda pair: (-np.inf if np.isnan(pair[1]) else pair[1], pair[0]))
    worst = [i for i, _ in ranked[:per_group]]
    best = [i for i, _ in ranked[::-1] if i not in worst][:per_group]
    rest = sorted(set(index) - set(best) - set(worst))
    draw = sorted(random.Random(seed).sample(rest, min(per_group, len(rest))))
    return [(label, members) for label, members in (("best", best), ("worst", worst), ("random", draw)) if members]


def success_plot(curves: dict[str, tuple[Tensor, Tensor]], path: str | Path, title: str = "") -> Path:
    """Write the success-ratio curve (cIoU threshold vs fraction of samples at or above it) of
    each named source, e.g. the method beside its floors; the legend gives each curve's AUC."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, (x, y) in curves.items():
        x, y = np.asarray(x.cpu(), dtype=float), np.asarray(y.cpu(), dtype=float)
        area = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))
        style = {"lw": 2.2, "color": "black"} if name == "method" else {"lw": 1.2, "ls": "--"}
        ax.plot(x, y, label=f"{name} (AUC {area:.3f})", **style)
    ax.set(xlabel="cIoU threshold", ylabel="success ratio", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path, dpi=90)


def blend_overlay(image, scores: Tensor, path: str | Path, title: str = "") -> Path:
    """The image and, beside it, the image under the jet-coloured map (0 blue, 1 red), at the
    image's own size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    frame = np.asarray(image, dtype=np.float32) / 255.0
    h, w = frame.shape[:2]
    resized = torch.nn.functional.interpolate(scores[None, None].float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    heat = plt.get_cmap("jet")(resized.clamp(0, 1).numpy())[..., :3]
    fig, axes = plt.subplots(1, 2, figsize=(8, 4 * h / w))
    for ax, picture in zip(axes, (frame, 0.5 * frame + 0.5 * heat)):
        ax.imshow(picture)
        ax.axis("off")
    axes[0].set_title(title, fontsize=8, loc="left")
    return _save(fig, path, dpi=100)


def _save(fig, path: str | Path, dpi: int, tight: bool = True) -> Path:
    import matplotlib.pyplot as plt

    if tight:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path

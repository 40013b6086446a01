"""Pictures: heatmap overlays with ground-truth boxes, and success-ratio curves."""

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
    columns: int = 4,
) -> Path:
    """Write a PNG grid: each frame beside its map (jet, 0 blue to 1 red), gt boxes on both.

    ``images`` (N, 3, H, W) in [0, 1]; ``maps`` (N, h, w) in [0, 1] (stretched over the frame);
    ``boxes`` per image (M, 4) normalised ``[x1, y1, x2, y2]``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = images.shape[0]
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, 2 * columns, figsize=(4 * columns, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        frame_ax, map_ax = axes.flat[2 * i], axes.flat[2 * i + 1]
        img = images[i].detach().float().permute(1, 2, 0).cpu().numpy()
        h, w = img.shape[:2]
        frame_ax.imshow(img)
        map_ax.imshow(maps[i].detach().float().cpu().numpy(), cmap="jet", vmin=0, vmax=1, extent=(0, w, h, 0))
        for ax in (frame_ax, map_ax):
            for x1, y1, x2, y2 in np.asarray(boxes[i].detach().cpu(), dtype=float).reshape(-1, 4):
                ax.add_patch(Rectangle((x1 * w, y1 * h), (x2 - x1) * w, (y2 - y1) * h, fill=False, ec="white", lw=1.5))
        if titles:
            frame_ax.set_title(titles[i], fontsize=8, loc="left")
    return _save(fig, path, dpi=80)


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


def _save(fig, path: str | Path, dpi: int) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path

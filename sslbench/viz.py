"""Pictures: heatmap overlays with ground-truth boxes."""

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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path

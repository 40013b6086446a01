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
    """Write a PNG grid: each frame with its map (jet, alpha 0.5) and its gt boxes in white.

    ``images`` (N, 3, H, W) in [0, 1]; ``maps`` (N, h, w) in [0, 1] (stretched over the frame);
    ``boxes`` per image (M, 4) normalised ``[x1, y1, x2, y2]``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = images.shape[0]
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        img = images[i].detach().float().permute(1, 2, 0).cpu().numpy()
        h, w = img.shape[:2]
        ax.imshow(img)
        ax.imshow(maps[i].detach().float().cpu().numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1, extent=(0, w, h, 0))
        for x1, y1, x2, y2 in np.asarray(boxes[i].detach().cpu(), dtype=float).reshape(-1, 4):
            ax.add_patch(Rectangle((x1 * w, y1 * h), (x2 - x1) * w, (y2 - y1) * h, fill=False, ec="white", lw=1.5))
        if titles:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path

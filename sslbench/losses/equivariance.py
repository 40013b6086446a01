"""SSL-TIE's transformation equivariance (Liu et al., ACM MM 2022, https://arxiv.org/abs/2206.12772);
reference jinxiang-liu/SSL-TIE ``utils/tf_equivariance_loss.py`` (``TfEquivarianceLoss``) and
``main.py`` (``train_one_epoch``).

One draw per batch: every sample turns by its own whole number of degrees in [-max, max] about the
canvas centre (side / 2, in pixels), the whole batch is either kept at scale 1 or zoomed out to
0.5 (each with probability 1/2), and the whole batch is flipped left-right or not (1/2). Applied to
a tensor, the transform resizes it to the canvas (bilinear), warps it there (bilinear, zeros
outside, pixel-corner coordinates: kornia's ``warp_affine``), resizes the result to ``scale`` times
the tensor's own size, then flips. An image of the canvas size therefore comes out half as large
after a zoom-out, and so does its map: the consistency term compares the map of the transformed
image with the transformed map of the image (MSE by default), both at that size.

kornia does the warping, as in the reference; the draw uses torch's generator instead of Python's
``random`` (same distributions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class RotateZoomFlip:
    """One batch's transform.

    Attributes:
        angles: (B,) rotation of each sample in degrees (counter-clockwise as displayed).
        scale: 1.0, or the zoom-out factor for the whole batch.
        flip: whether the whole batch is flipped left-right after the warp.
    """

    angles: Tensor
    scale: float = 1.0
    flip: bool = False

    @classmethod
    def draw(cls, batch_size: int, max_angle: int, zoom_scale: float = 0.5, zoom_probability: float = 0.5,
             flip_probability: float = 0.5, generator: torch.Generator | None = None) -> RotateZoomFlip:
        """``TfEquivarianceLoss._get_rotation``: the zoom coin, the angles, then the flip coin."""
        zoom = bool(torch.rand((), generator=generator) < zoom_probability)
        angles = torch.randint(-int(max_angle), int(max_angle) + 1, (batch_size,), generator=generator).float()
        flip = bool(torch.rand((), generator=generator) < flip_probability)
        return cls(angles, zoom_scale if zoom else 1.0, flip)

    def matrices(self, canvas: tuple[int, int]) -> Tensor:
        """(B, 2, 3) pixel-coordinate affine matrices about the centre (w / 2, h / 2)."""
        from kornia.geometry.transform import get_rotation_matrix2d

        b = self.angles.shape[0]
        centre = torch.tensor([[canvas[1] / 2, canvas[0] / 2]]).expand(b, 2)
        return get_rotation_matrix2d(centre, self.angles.float(), torch.full((b, 2), float(self.scale)))

    def apply(self, x: Tensor, canvas: tuple[int, int]) -> Tensor:
        """Transform a (B, C, H, W) image or map; the result is (B, C, int(H * scale), int(W * scale))."""
        from kornia.geometry.transform import resize, warp_affine

        out_size = tuple(int(side * self.scale) for side in x.shape[-2:])
        x = x.float()
        if tuple(x.shape[-2:]) != tuple(canvas):
            x = resize(x, tuple(canvas))
        warped = warp_affine(x, self.matrices(canvas).to(x.device), dsize=tuple(canvas))
        warped = resize(warped, out_size)
        return warped.flip(-1) if self.flip else warped


def consistency(map_of_transformed: Tensor, transformed_map: Tensor, kind: str = "mse") -> Tensor:
    """``TfEquivarianceLoss.forward(heatmap_ts, ts_heatmap)``: the map of the transformed image
    against the transformed map (the latter resized to the former when the sizes differ), mean
    squared or absolute error."""
    from kornia.geometry.transform import resize

    if transformed_map.shape[-2:] != map_of_transformed.shape[-2:]:
        transformed_map = resize(transformed_map, tuple(map_of_transformed.shape[-2:]))
    if kind == "mse":
        return F.mse_loss(map_of_transformed, transformed_map)
    if kind == "l1":
        return F.l1_loss(map_of_transformed, transformed_map)
    raise ValueError(f"consistency must be 'mse' or 'l1', got {kind!r}")

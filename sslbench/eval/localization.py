"""Single-source localization metrics (re-exported by ``sslbench.eval.functional``).

Every rule reproduces a reference repository's evaluation code (``shared/reference/evaluation.md``,
part A): the same ground-truth pixels, thresholds, tie handling and NaN behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

# sklearn.metrics.auc over x = [0.05 * i for i in range(21)]: float products, so 0.05 * 6 is
# 0.30000000000000004 and a cIoU of exactly 0.3 fails that point (evaluation.md A.0.5).
SUCCESS_THRESHOLDS: tuple[float, ...] = tuple(0.05 * i for i in range(21))

UPSAMPLE_MODES = ("bilinear", "bilinear_align_corners", "bicubic", "bicubic_align_corners")
RULES = ("ezvsl", "lvs", "sspl", "sslalign", "sslalign_adaptive", "fixed")


# ---------------------------------------------------------------------------------------------
# Ground-truth maps (evaluation.md A.1). Boxes are few per image: plain Python keeps the exact
# float -> int truncation and slice semantics of the references.


def _fill(gt: Tensor, x0: int, y0: int, x1: int, y1: int, value: float = 1.0) -> None:
    """``gt[y0:y1, x0:x1] += value`` with Python slice semantics (negative indices wrap, ends clip)."""
    rows = range(*slice(y0, y1).indices(gt.shape[0]))
    cols = range(*slice(x0, x1).indices(gt.shape[1]))
    if len(rows) and len(cols):
        gt[rows.start : rows.stop, cols.start : cols.stop] += value


def _as_rows(boxes) -> list[list[float]]:
    rows = boxes.tolist() if isinstance(boxes, Tensor) else [list(b) for b in boxes]
    for row in rows:
        if len(row) != 4:
            raise ValueError(f"boxes must have 4 values each, got {row}")
    return rows


def gt_map_flickr(boxes, size: int = 224, frame: int = 256) -> Tensor:
    """SoundNet-Flickr consensus map from every annotator's boxes of one image.

    ``boxes``: (M, 4) int ``[xmin, ymin, xmax, ymax]`` in the 256 x 256 annotation frame. Each is
    mapped with ``int(size * v / 256)``; the boxes are summed, divided by the constant consensus 2
    (not the number of annotators) and clipped to 1, so pixels are 0, 0.5 or 1 (LVS ``testset_gt``).
    """
    gt = torch.zeros(size, size, dtype=torch.float64)
    for x0, y0, x1, y1 in _as_rows(boxes):
        _fill(gt, *(int(size * int(v) / frame) for v in (x0, y0, x1, y1)))
    return (gt / 2).clamp_(max=1).float()


def gt_map_vggss(boxes, size: int = 224) -> Tensor:
    """Binary union of normalised ``[x1, y1, x2, y2]`` boxes; values clipped to [0, 1] then
    ``int(size * v)`` (EZ-VSL ``bbox2gtmap``; LVS's ``int(224 * max(v, 0))`` gives the same map).
    Reversed or degenerate boxes are empty."""
    gt = torch.zeros(size, size, dtype=torch.float64)
    for box in _as_rows(boxes):
        _fill(gt, *(int(min(max(float(v), 0.0), 1.0) * size) for v in box))
    return (gt > 0).float()


def gt_map_music(boxes, size: int = 224) -> Tensor:
    """Binary union of normalised MUSIC ``[x, y, w, h]`` boxes (NoPrior's reading, not AVGN's
    corner bug): ``x0 = int(size * max(x, 0))``, ``w0 = int(size * max(w, 0))``, slice x0:x0 + w0."""
    gt = torch.zeros(size, size, dtype=torch.float64)
    for x, y, w, h in _as_rows(boxes):
        x0, y0 = int(size * max(float(x), 0.0)), int(size * max(float(y), 0.0))
        w0, h0 = int(size * max(float(w), 0.0)), int(size * max(float(h), 0.0))
        _fill(gt, x0, y0, x0 + w0, y0 + h0)
    return (gt > 0).float()


# ---------------------------------------------------------------------------------------------
# Maps


def upsample(maps: Tensor, size: int | Sequence[int], mode: str = "bilinear_align_corners") -> Tensor:
    """(N, h, w) -> (N, H, W). ``bilinear`` equals cv2 INTER_LINEAR and ``bicubic`` cv2 INTER_CUBIC
    (evaluation.md A.0.1); the ``_align_corners`` variants are EZ-VSL's / SLAVC's ``F.interpolate``."""
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"unknown upsampling mode {mode!r}; choose one of {UPSAMPLE_MODES}")
    if maps.dim() != 3:
        raise ValueError(f"expected maps of shape (N, h, w), got {tuple(maps.shape)}")
    size = (size, size) if isinstance(size, int) else tuple(size)
    interp, _, corners = mode.partition("_")
    out = F.interpolate(maps[:, None].float(), size=size, mode=interp, align_corners=bool(corners))
    return out[:, 0]


def min_max(maps: Tensor) -> Tensor:
    """Per-map ``(v - min) / (max - min)`` over the last two dims; a constant map is returned
    unchanged, as the references' ``normalize_img`` does (neither zeroed nor NaN)."""
    flat = maps.flatten(-2)
    lo, hi = torch.aminmax(flat, dim=-1, keepdim=True)  # one pass; same values as amin and amax
    span = hi - lo
    constant = span == 0
    out = (flat - lo) / span.masked_fill(constant, 1)
    if constant.any():
        out = torch.where(constant, flat, out)
    return out.view_as(maps)


#: buckets of the histogram that locates a rank (rows are processed 256 at a time, so bucket
#: numbers with their row offset stay below 2**20, where float32 still resolves 1/16)
SELECT_BUCKETS = 4096
SELECT_ROWS = 256


def kth_smallest(flat: Tensor, rank: Tensor) -> Tensor:
    """``np.sort(row)[rank]`` for each row of (N, P) finite values, without sorting them.

    A per-row histogram of the values (bucket index monotone in the value, so ranks are kept)
    finds the bucket holding the rank; only that bucket's members are then sorted. About five
    passes over the data instead of a sort: a batched sort is several times slower than a loop of
    numpy's SIMD sorts on the CPU, and ``topk``/``kthvalue`` of half a row are not much better.
    """
    if flat.shape[0] > SELECT_ROWS:
        return torch.cat([kth_smallest(f, r) for f, r in zip(flat.split(SELECT_ROWS), rank.split(SELECT_ROWS))])
    rows, device = flat.shape[0], flat.device
    lo, hi = torch.aminmax(flat, dim=1, keepdim=True)
    span = hi - lo
    scale = torch.where(span > 0, (SELECT_BUCKETS - 1) / span, torch.zeros_like(span))
    offset = torch.arange(rows, device=device, dtype=flat.dtype)[:, None] * SELECT_BUCKETS
    # (v - lo) * scale + row offset + 0.5: rounding is monotone, and truncation stays in the row's range
    bucket = torch.addcmul(offset + 0.5, flat - lo, scale).to(torch.int32)
    counts = torch.bincount(bucket.flatten(), minlength=rows * SELECT_BUCKETS).view(rows, SELECT_BUCKETS)
    below = counts.cumsum(1)
    target = (below <= rank[:, None]).sum(1)  # first bucket whose cumulative count passes the rank
    before = below.gather(1, target[:, None])[:, 0] - counts.gather(1, target[:, None])[:, 0]
    key = (target + torch.arange(rows, device=device) * SELECT_BUCKETS).to(torch.int32)
    member_row, member_col = (bucket == key[:, None]).nonzero(as_tuple=True)
    values = flat[member_row, member_col]
    order = values.argsort(stable=True)
    order = order[member_row[order].argsort(stable=True)]  # by row, then by value
    sizes = counts.gather(1, target[:, None])[:, 0]
    start = sizes.cumsum(0) - sizes
    return values[order][start + (rank - before)]


def upper_median(flat: Tensor) -> Tensor:
    """``np.sort(v)[int(n * 0.5)]`` per row, by :func:`kth_smallest`."""
    n = flat.shape[-1]
    return kth_smallest(flat, torch.full((flat.shape[0],), int(n * 0.5), device=flat.device))


def binarize(heatmaps: Tensor, rule: str, gt_maps: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Predicted pixels of raw (N, H, W) maps under a reference's rule -> (mask, threshold).

    - ``ezvsl``: min-max, upper-median threshold, keep ``>=`` (EZ-VSL, SLAVC relative, AVGN).
    - ``sslalign``: min-max, upper-median, strict ``>`` (SSLalignment ``cal_CIOU``).
    - ``lvs``: ``1 - minmax(-h)``, keep ``> thr`` or ``== 1`` (LVS and NoPrior: pixels at the
      maximum survive a tie; a constant map c predicts everything if c >= 0 and nothing if c < 0).
    - ``sspl``: ``(h - min) / ptp`` (NaN on a constant map, which then predicts nothing), fixed 0.5, ``>=``.
    - ``sslalign_adaptive``: ``thr = sort(pred)[N - #(gt != 0)]`` (N // 2 if gt is empty), strict ``>``.
    - ``fixed``: maps already in [0, 1] kept ``>= 0.5`` with no per-image normalisation (SLAVC's
      absolute prediction on its fixed-range scores).

    A boolean map is taken as the prediction itself under every rule (threshold NaN): the
    ``whole_image`` floor and externally binarised maps use it.
    """
    if rule not in RULES:
        raise ValueError(f"unknown threshold rule {rule!r}; choose one of {RULES}")
    if heatmaps.dtype == torch.bool:
        return heatmaps, torch.full(heatmaps.shape[:1], float("nan"), device=heatmaps.device)
    maps = heatmaps.float()
    n = maps.shape[-1] * maps.shape[-2]
    if rule == "fixed":
        return maps >= 0.5, torch.full((maps.shape[0],), 0.5, device=maps.device)
    if rule == "sspl":
        flat = maps.flatten(1)
        lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
        pred = (flat - lo) / (hi - lo)
        threshold = torch.full((flat.shape[0],), 0.5, device=maps.device)
        return (pred >= 0.5).view_as(maps), threshold
    if rule == "lvs":
        pred = (1 - min_max(-maps)).flatten(1)
        threshold = upper_median(pred)
        mask = (pred > threshold[:, None]) | (pred >= 1)
        return mask.view_as(maps), threshold
    pred = min_max(maps).flatten(1)
    if rule == "sslalign_adaptive":
        if gt_maps is None:
            raise ValueError("the sslalign_adaptive rule needs the gt maps")
        area = (gt_maps.flatten(1) != 0).sum(1)
        index = torch.where(area == 0, torch.full_like(area, n // 2), n - area).clamp(max=n - 1)
        threshold = kth_smallest(pred, index)
    else:
        threshold = upper_median(pred)
    mask = pred >= threshold[:, None] if rule == "ezvsl" else pred > threshold[:, None]
    return mask.view_as(maps), threshold


def localization_scores(heatmaps: Tensor, gt_maps: Tensor, rule: str = "ezvsl") -> dict[str, Tensor]:
    """Per-sample consensus IoU of raw (N, H, W) maps at final resolution against (N, H, W) gt.

    cIoU = sum(pred * gt) / (sum(gt) + sum(pred * (gt == 0))): the whole gt mass is in the union
    (0.5-pixels at 0.5), so empty gt with empty prediction is NaN and with any prediction 0.
    Returns (N,) tensors ``ciou`` (float64), ``intersection``, ``union``, ``threshold``, ``n_pred_pixels``.
    """
    if heatmaps.shape != gt_maps.shape or heatmaps.dim() != 3:
        raise ValueError(f"heatmaps and gt must both be (N, H, W), got {tuple(heatmaps.shape)} and {tuple(gt_maps.shape)}")
    mask, threshold = binarize(heatmaps, rule, gt_maps)
    return {**mask_ciou(mask, gt_maps), "threshold": threshold}


def mask_ciou(mask: Tensor, gt_maps: Tensor) -> dict[str, Tensor]:
    """cIoU of boolean predictions (N, H, W) against (N, H, W) gt: ``ciou``, ``intersection``,
    ``union`` (float64) and ``n_pred_pixels``."""
    pred, gt = mask.flatten(1), gt_maps.flatten(1).float()
    # float32 sums are exact here: gt pixels are 0, 0.5 or 1 and a map has far fewer than 2**24 of them
    intersection = torch.where(pred, gt, 0).sum(1).double()
    union = gt.sum(1).double() + (pred & (gt == 0)).sum(1)
    return {"ciou": intersection / union, "intersection": intersection, "union": union, "n_pred_pixels": pred.sum(1)}


# ---------------------------------------------------------------------------------------------
# Dataset level (evaluation.md A.0.5): NaN counts as a failure everywhere.


def ciou_at(cious: Tensor, threshold: float = 0.5) -> Tensor:
    """Fraction of samples with cIoU >= threshold (the papers' "cIoU"; NaN fails)."""
    return (cious.double() >= threshold).double().mean()


def success_curve(cious: Tensor) -> tuple[Tensor, Tensor]:
    """(thresholds, success ratio) at the 21 reference thresholds ``0.05 * i``."""
    thresholds = torch.tensor(SUCCESS_THRESHOLDS, dtype=torch.float64, device=cious.device)
    success = (cious.double()[None, :] >= thresholds[:, None]).double().mean(1)
    return thresholds, success


def auc(cious: Tensor) -> Tensor:
    """Area under the success curve by the trapezoid rule (``sklearn.metrics.auc``)."""
    x, y = success_curve(cious)
    return ((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0).sum()

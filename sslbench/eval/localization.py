"""Single-source localization metrics (re-exported by ``sslbench.eval.functional``).

Every rule reproduces a reference repository's evaluation code (``shared/reference/evaluation.md``,
part A): the same ground-truth pixels, thresholds, tie handling and NaN behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from sslbench.eval.inputs import SINGLE_GT_VALUES, as_tensor, check_gt_values, non_finite_rows, zero_non_finite

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
    return _min_max_rows(maps.flatten(-2))[0].view_as(maps)


def _min_max_rows(flat: Tensor) -> tuple[Tensor, bool]:
    """:func:`min_max` over the last dim, and whether any row was constant (left unchanged)."""
    # separate amin/amax: on the CPU aminmax over rows is about four times slower than both
    lo, hi = flat.amin(-1, keepdim=True), flat.amax(-1, keepdim=True)
    span = hi - lo
    constant = span == 0
    out = (flat - lo).div_(span.masked_fill(constant, 1))
    has_constant = bool(constant.any())
    return (torch.where(constant, flat, out) if has_constant else out), has_constant


#: buckets of the histogram that locates a rank (at most SELECT_ROWS rows at a time, so bucket
#: numbers with their row offset stay below 2**20, where float32 still resolves 1/16)
SELECT_BUCKETS = 4096
SELECT_ROWS = 256
#: rows per step on the CPU: a few maps' temporaries stay in cache and freed blocks are reused,
#: instead of fresh pages being faulted in on every pass
CPU_ROWS = 16


def _row_chunk(t: Tensor) -> int:
    return CPU_ROWS if t.device.type == "cpu" else SELECT_ROWS


def kth_smallest(flat: Tensor, rank: Tensor, unit_range: bool = False) -> Tensor:
    """``np.sort(row)[rank]`` for each row of (N, P) finite values, without sorting them.

    A per-row histogram of the values (bucket index monotone in the value, so ranks are kept)
    finds the bucket holding the rank; only that bucket's members are then sorted. A handful of
    passes over the data instead of a sort: a batched sort is several times slower than a loop of
    numpy's SIMD sorts on the CPU, and ``topk``/``kthvalue`` of half a row are not much better.
    ``unit_range=True`` promises every row lies in [0, 1] (min-max normalised), which saves the
    per-row range pass.
    """
    step = _row_chunk(flat)
    if flat.shape[0] > step:
        return torch.cat([kth_smallest(f, r, unit_range) for f, r in zip(flat.split(step), rank.split(step))])
    rows, device = flat.shape[0], flat.device
    offset = torch.arange(rows, device=device, dtype=flat.dtype)[:, None] * SELECT_BUCKETS + 0.5
    if unit_range:
        scaled = torch.add(offset, flat, alpha=SELECT_BUCKETS - 1)
    else:
        lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
        span = hi - lo
        scale = torch.where(span > 0, (SELECT_BUCKETS - 1) / span, torch.zeros_like(span))
        scaled = (flat - lo).mul_(scale).add_(offset)
    # v * scale + row offset + 0.5: rounding is monotone, and truncation stays in the row's range
    bucket = scaled.to(torch.int32)
    del scaled
    counts = torch.bincount(bucket.view(-1), minlength=rows * SELECT_BUCKETS).view(rows, SELECT_BUCKETS)
    below = counts.cumsum(1)
    target = (below <= rank[:, None]).sum(1)  # first bucket whose cumulative count passes the rank
    sizes = counts.gather(1, target[:, None])[:, 0]
    before = below.gather(1, target[:, None])[:, 0] - sizes
    key = (target + torch.arange(rows, device=device) * SELECT_BUCKETS).to(torch.int32)
    members = (bucket == key[:, None]).view(-1).nonzero()[:, 0]  # flat positions, row-major
    values = flat.view(-1)[members]
    member_row = members // flat.shape[1]
    order = values.argsort(stable=True)
    order = order[member_row[order].argsort(stable=True)]  # by row, then by value
    start = sizes.cumsum(0) - sizes
    return values[order][start + (rank - before)]


def upper_median(flat: Tensor, unit_range: bool = False) -> Tensor:
    """``np.sort(v)[int(n * 0.5)]`` per row, by :func:`kth_smallest`."""
    n = flat.shape[-1]
    return kth_smallest(flat, torch.full((flat.shape[0],), int(n * 0.5), device=flat.device), unit_range)


#: largest float32 below 1: ``v > ONE_BELOW`` is ``v >= 1`` for float32 values
_ONE_BELOW = float(torch.nextafter(torch.tensor(1.0), torch.tensor(0.0)))


def _decision(heatmaps: Tensor, rule: str, gt_maps: Tensor | None) -> tuple[Tensor, Tensor, Tensor, bool]:
    """The per-pixel scores a rule thresholds, flattened (N, P), its reported threshold (N,), the
    cut (N,) and whether the comparison is strict: pixel predicted iff ``score > cut`` (strict)
    or ``score >= cut``. One comparison per pixel, so callers can write it where they like."""
    maps = heatmaps.float()
    n = maps.shape[-1] * maps.shape[-2]
    if rule in ("fixed", "sspl"):
        flat = maps.flatten(1)
        if rule == "sspl":  # np.ptp: a constant map is NaN everywhere and predicts nothing
            lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
            flat = (flat - lo).div_(hi - lo)
        threshold = torch.full((flat.shape[0],), 0.5, device=maps.device)
        return flat, threshold, threshold, False
    if rule == "lvs":
        pred, has_constant = _min_max_rows(-maps.flatten(1))
        pred = torch.sub(1, pred, out=pred)
        threshold = upper_median(pred, unit_range=not has_constant)
        # (pred > thr) | (pred >= 1) is pred > thr below 1, and pred >= 1 (> the float below 1) above
        cut = torch.where(threshold < 1, threshold, torch.full_like(threshold, _ONE_BELOW))
        return pred, threshold, cut, True
    pred, has_constant = _min_max_rows(maps.flatten(1))
    if rule == "sslalign_adaptive":
        if gt_maps is None:
            raise ValueError("the sslalign_adaptive rule needs the gt maps")
        area = (gt_maps.flatten(1) != 0).sum(1)
        index = torch.where(area == 0, torch.full_like(area, n // 2), n - area).clamp(max=n - 1)
        threshold = kth_smallest(pred, index, unit_range=not has_constant)
    else:
        threshold = upper_median(pred, unit_range=not has_constant)
    return pred, threshold, threshold, rule != "ezvsl"


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
    ``whole_image`` floor and externally binarised maps use it. A map holding NaN or inf predicts
    nothing (threshold NaN). Tensors or numpy arrays.
    """
    if rule not in RULES:
        raise ValueError(f"unknown threshold rule {rule!r}; choose one of {RULES}")
    heatmaps = as_tensor(heatmaps, "heatmaps")
    if heatmaps.dtype == torch.bool:
        return heatmaps, torch.full(heatmaps.shape[:1], float("nan"), device=heatmaps.device)
    heatmaps, bad = zero_non_finite(heatmaps)
    scores, threshold, cut, strict = _decision(heatmaps, rule, None if gt_maps is None else as_tensor(gt_maps, "gt_maps"))
    mask = scores > cut[:, None] if strict else scores >= cut[:, None]
    if bool(bad.any()):
        mask[bad] = False
        threshold = threshold.masked_fill(bad, float("nan"))
    return mask.view_as(heatmaps), threshold


def localization_scores(heatmaps: Tensor, gt_maps: Tensor, rule: str = "ezvsl") -> dict[str, Tensor]:
    """Per-sample consensus IoU of raw (N, H, W) maps at final resolution against (N, H, W) gt.

    cIoU = sum(pred * gt) / (sum(gt) + sum(pred * (gt == 0))): the whole gt mass is in the union
    (0.5-pixels at 0.5), so empty gt with empty prediction is NaN and with any prediction 0.
    A map holding NaN or inf (a diverged model) is a failure: cIoU 0, nothing predicted, threshold
    NaN, and ``non_finite`` True. Inputs are tensors or numpy arrays; gt values must be 0, 0.5 or 1.
    Returns (N,) tensors ``ciou`` (float64), ``intersection``, ``union``, ``threshold``,
    ``n_pred_pixels`` and ``non_finite``.
    """
    heatmaps, gt_maps = as_tensor(heatmaps, "heatmaps"), as_tensor(gt_maps, "gt_maps")
    if heatmaps.shape != gt_maps.shape or heatmaps.dim() != 3:
        raise ValueError(f"heatmaps and gt must both be (N, H, W), got {tuple(heatmaps.shape)} and {tuple(gt_maps.shape)}")
    if rule not in RULES:
        raise ValueError(f"unknown threshold rule {rule!r}; choose one of {RULES}")
    step = _row_chunk(heatmaps)
    parts = [_chunk_scores(h, g, rule) for h, g in zip(heatmaps.split(step), gt_maps.split(step))]
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}


def _chunk_scores(heatmaps: Tensor, gt_maps: Tensor, rule: str) -> dict[str, Tensor]:
    gt = gt_maps.flatten(1).float()
    check_gt_values(gt, SINGLE_GT_VALUES, "single-source")
    if heatmaps.dtype == torch.bool:
        mask, threshold = binarize(heatmaps, rule)
        return {**mask_ciou(mask, gt_maps), "threshold": threshold, "non_finite": non_finite_rows(heatmaps)}
    heatmaps, bad = zero_non_finite(heatmaps)
    scores, threshold, cut, strict = _decision(heatmaps, rule, gt_maps)
    compare = torch.gt if strict else torch.ge
    predicted = compare(scores, cut[:, None], out=torch.empty_like(scores))  # 0/1 floats, summed fast
    if bool(bad.any()):  # a failure: nothing predicted, cIoU 0 even where the gt is empty
        predicted[bad] = 0
        threshold = threshold.masked_fill(bad, float("nan"))
    out = {**_overlap(predicted, gt), "threshold": threshold, "non_finite": bad}
    out["ciou"] = out["ciou"].masked_fill(bad, 0.0)
    return out


def mask_ciou(mask: Tensor, gt_maps: Tensor) -> dict[str, Tensor]:
    """cIoU of boolean predictions (N, H, W) against (N, H, W) gt: ``ciou``, ``intersection``,
    ``union`` (float64) and ``n_pred_pixels``."""
    return _overlap(mask.flatten(1).to(torch.float32, copy=True), gt_maps.flatten(1).float())  # _overlap writes into it


def _overlap(predicted: Tensor, gt: Tensor) -> dict[str, Tensor]:
    """cIoU terms of (N, P) 0/1 float predictions (overwritten) against (N, P) float gt.

    float32 sums are exact here: the terms are 0, 0.5 or 1 and a map has far fewer than 2**23
    pixels. The union's ``sum(pred * (gt == 0))`` is ``n_pred - #(pred and gt != 0)``.
    """
    n_pred = predicted.sum(1)
    hits = predicted.mul_(gt)
    intersection = hits.sum(1).double()
    hits_on_gt = torch.ne(hits, 0, out=hits).sum(1)
    union = gt.sum(1).double() + (n_pred - hits_on_gt).double()
    return {"ciou": intersection / union, "intersection": intersection, "union": union, "n_pred_pixels": n_pred.long()}


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

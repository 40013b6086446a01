"""SLAVC's extended evaluation (Extended Flickr / VGG-SS): AP, max-F1 and LocAcc with
non-sounding samples (``EvaluatorFull``, ``shared/reference/evaluation.md`` A.3).

Re-exported by ``sslbench.eval.functional``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sslbench.eval.localization import auc

#: SLAVC's area bins (gt pixels) among the samples with boxes, [min, max)
AREA_BINS = {"small": (0, 32**2), "medium": (32**2, 96**2), "large": (96**2, 144**2), "huge": (144**2, 10000**2)}
SUBSETS = ("all", "visible", *AREA_BINS)


def slavc_confidence(scores: Tensor) -> Tensor:
    """Mean of the top quarter of each (N, H, W) score map: ``np.sort(s.flatten())[-n//4:].mean()``.

    Python's ``-n//4`` is ``floor(-n / 4)``, so ceil(n / 4) values are averaged (12544 at 224 x 224).
    """
    flat = scores.flatten(1).double()
    n = flat.shape[1]
    return flat.topk(-((-n) // 4), dim=1).values.mean(1)


def precision_recall(n_boxes: Tensor, ciou: Tensor, conf: Tensor, thresholds: Tensor, iou_threshold: float) -> tuple[Tensor, Tensor]:
    """SLAVC ``calc_precision_recall`` at each confidence threshold -> (precision, recall).

    A detection (conf >= thr) without boxes is a false positive; with boxes it is a true positive
    when cIoU >= the IoU threshold (NaN fails) and a false positive otherwise; a sample with boxes
    and no detection is a false negative. Empty denominators give 1."""
    detected = conf[None, :] >= thresholds[:, None]
    sounding = (n_boxes > 0)[None, :]
    hit = (ciou >= iou_threshold)[None, :]
    tp = (detected & sounding & hit).sum(1).double()
    fp = (detected & ~(sounding & hit)).sum(1).double()
    fn = (~detected & sounding).sum(1).double()
    precision = torch.where(tp + fp == 0, 1.0, tp / (tp + fp).clamp(min=1))
    recall = torch.where(tp + fn == 0, 1.0, tp / (tp + fn).clamp(min=1))
    return precision, recall


def _average_precision(n_boxes: Tensor, ciou: Tensor, conf: Tensor, iou_threshold: float) -> Tensor:
    """SLAVC ``calc_ap``: thresholds ``sort(conf)[:-1][::-skip]`` with ``skip = max(1, n // 200)``;
    AP = sum_i max(p[i:]) * (r[i+1] - r[i]) (no segment from recall 0; the last point only ends)."""
    skip = max(1, conf.numel() // 200)
    thresholds = torch.sort(conf).values[:-1].flip(0)[::skip]
    if thresholds.numel() == 0:
        return torch.tensor(0.0, dtype=torch.float64)
    precision, recall = precision_recall(n_boxes, ciou, conf, thresholds, iou_threshold)
    best_after = precision.flip(0).cummax(0).values.flip(0)
    return (best_after[:-1] * (recall[1:] - recall[:-1])).sum()


def _f1_list(n_boxes: Tensor, ciou: Tensor, conf: Tensor, iou_threshold: float) -> Tensor:
    """F1 at ``sorted(conf)[::max(1, n // 10)]`` (about 10 thresholds from the lowest up)."""
    thresholds = torch.sort(conf).values[:: max(1, conf.numel() // 10)]
    p, r = precision_recall(n_boxes, ciou, conf, thresholds, iou_threshold)
    return torch.where(p + r > 0, 2 * r * p / (p + r).clamp(min=1e-300), 0.0)


def _subset(name: str, n_boxes: Tensor, area: Tensor) -> Tensor:
    if name == "all":
        return torch.ones_like(n_boxes, dtype=torch.bool)
    if name == "visible":
        return n_boxes > 0
    low, high = AREA_BINS[name]
    return (area >= low) & (area < high) & (n_boxes > 0)


def extended_scores(
    n_boxes: Tensor, ciou: Tensor, conf: Tensor, area: Tensor, iou_thresholds: tuple[float, ...] = (0.5, 0.75)
) -> dict:
    """SLAVC's ``finalize_stats`` and its headline numbers.

    Args:
        n_boxes: (N,) gt boxes per sample; 0 marks a non-sounding sample (all-zero gt).
        ciou: (N,) per-sample cIoU (NaN allowed).
        conf: (N,) detection confidence (:func:`slavc_confidence`).
        area: (N,) gt pixel mass (``gt.sum()``).
        iou_thresholds: SLAVC uses (0.5, 0.75), AVGN (0.3, 0.5, 0.75).

    Returns ``AP`` (AP-all@50), ``max-F1`` (max of F1-all@50 over its ~10 thresholds), ``LocAcc``
    (Precision-visible@50 at confidence -1000, i.e. cIoU@0.5 of the sounding samples) and ``table``:
    ``Precision-/AP-/AUC-/F1-<subset>@<100 t>`` for each subset; an empty subset gives NaN.
    """
    n_boxes, ciou, conf, area = n_boxes.long().cpu(), ciou.double().cpu(), conf.double().cpu(), area.double().cpu()
    table: dict[str, float | list[float]] = {}
    for t in iou_thresholds:
        for name in SUBSETS:
            keep = _subset(name, n_boxes, area)
            key = f"{name}@{int(t * 100)}"
            if not keep.any():
                for metric in ("Precision", "AP", "AUC", "F1"):
                    table[f"{metric}-{key}"] = float("nan")
                continue
            b, c, s = n_boxes[keep], ciou[keep], conf[keep]
            table[f"Precision-{key}"] = float(precision_recall(b, c, s, torch.tensor([-1000.0], dtype=torch.float64), t)[0][0])
            table[f"AP-{key}"] = float(_average_precision(b, c, s, t))
            visible = c[b > 0]
            table[f"AUC-{key}"] = float(auc(visible)) if visible.numel() else float("nan")
            table[f"F1-{key}"] = _f1_list(b, c, s, t).tolist()
    f1_all = table.get("F1-all@50", [float("nan")])
    return {
        "AP": table.get("AP-all@50", float("nan")),
        "max-F1": max(f1_all) if isinstance(f1_all, list) else float("nan"),
        "LocAcc": table.get("Precision-visible@50", float("nan")),
        "table": table,
    }

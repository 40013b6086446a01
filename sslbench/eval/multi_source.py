"""Multi-source scores: the IOI (NoPrior) protocol and AVGN's per-source evaluation.

Re-exported by ``sslbench.eval.functional``; see ``shared/reference/evaluation.md`` A.4.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from sslbench.eval.inputs import BINARY_GT_VALUES, as_tensor, check_gt_values, zero_non_finite
from sslbench.eval.localization import auc, binarize, ciou_at, mask_ciou, min_max, upper_median


def average_precision(y_true: Tensor, y_score: Tensor) -> Tensor:
    """``sklearn.metrics.average_precision_score`` per row of (N, P) tensors, ties included.

    AP = sum over distinct score thresholds (high to low) of (R_n - R_{n-1}) * P_n. A row with no
    positive is 0 (scikit-learn >= 1.1 warns and sets recall to 1; older versions gave NaN).
    """
    y_true, y_score = y_true.reshape(y_true.shape[0], -1), y_score.reshape(y_score.shape[0], -1)
    order = torch.sort(y_score.double(), dim=1, descending=True, stable=True)
    hits = torch.gather(y_true > 0, 1, order.indices).double()
    positions = torch.arange(hits.shape[1], device=hits.device).expand_as(hits)
    precision = hits.cumsum(1) / (positions + 1)
    # a tie group is one threshold: every member takes the precision at the group's last member
    last_of_group = torch.ones_like(hits, dtype=torch.bool)
    last_of_group[:, :-1] = order.values[:, 1:] != order.values[:, :-1]
    group_end = torch.where(last_of_group, positions, hits.shape[1]).flip(1).cummin(1).values.flip(1)
    positives = hits.sum(1)
    ap = (hits * precision.gather(1, group_end)).sum(1) / positives.clamp(min=1)
    return torch.where(positives > 0, ap, torch.zeros_like(ap))


def binary_score_ap(gt: Tensor, mask: Tensor) -> Tensor:
    """``average_precision_score(gt, mask)`` per row for a binary score: R1 * P1 + (1 - R1) * pos / N.

    An empty or full mask is one tie group (AP = pos / N); a row without positives is 0.
    """
    gt, mask = gt.reshape(gt.shape[0], -1) > 0, mask.reshape(mask.shape[0], -1)
    n = gt.shape[1]
    pos = gt.sum(1).double()
    predicted = mask.sum(1).double()
    tp = (gt & mask).sum(1).double()
    base = pos / n
    recall = tp / pos.clamp(min=1)
    ap = recall * (tp / predicted.clamp(min=1)) + (1 - recall) * base
    ap = torch.where(predicted == 0, base, ap)
    return torch.where(pos > 0, ap, torch.zeros_like(ap))


def ioi_binarize(frames: Tensor) -> Tensor:
    """NoPrior's binarised score of (M, H, W) frames: plain min-max (a constant frame is left as it
    is), then ``pred[pred > thr] = 1; pred[pred < 1] = 0`` with the upper median ``thr``.

    Values are 0 and 1, except that a constant frame c >= 1 stays c. The prediction is ``>= 0.5``:
    pixels above the median or at the maximum 1 (which survives a tie); a constant frame predicts
    everything for c >= 1 and nothing otherwise."""
    pred = min_max(frames.float()).flatten(1)
    threshold = upper_median(pred)
    score = torch.where(pred > threshold[:, None], 1.0, torch.where(pred >= 1, pred, 0.0))
    return score.view(frames.shape)


def _score_ap(gt: Tensor, score: Tensor) -> Tensor:
    """AP of one (P,) score: closed form when it is 0/1, else the general ranking (a constant
    frame c > 1 beside binary frames makes three levels)."""
    if torch.all((score == 0) | (score == 1)):
        return binary_score_ap(gt[None], score[None] > 0)[0]
    return average_precision(gt[None], score[None])[0]


def _split_frames(maps: Tensor, frames: int) -> Tensor:
    """(n, K*H, W) maps stacked vertically -> (n, K, H, W)."""
    n, height, width = maps.shape
    if height % frames:
        raise ValueError(f"object maps of height {height} do not split into {frames} frames")
    return maps.reshape(n, frames, height // frames, width)


def own_frames(maps: Tensor, frames: int) -> Tensor:
    """(K, K*H, W) maps of K sources over K stacked frames -> (1, K*H, W): frame j taken from
    source j's map, the one map per frame AVGN's ``validate_multi`` scores. Any other count of
    maps is returned as it is (its first map is scored, frame by frame)."""
    if maps.shape[0] != frames:
        return maps
    split = _split_frames(maps, frames)
    return torch.cat([split[j, j] for j in range(frames)], dim=0)[None]


def _first_argmax(values: Tensor) -> int:
    """``np.argmax``: the first NaN if there is one, else the first maximum."""
    nan = torch.isnan(values)
    if nan.any():
        return int(nan.nonzero()[0, 0])
    return int(torch.argmax(values))  # torch returns the first of tied maxima too


def multi_source_scores(object_maps: Sequence[Tensor], gt_frames: Sequence[Tensor]) -> dict[str, Tensor]:
    """The IOI protocol (NoPrior ``test_step``) per sample.

    Args:
        object_maps: per sample, (n_i, K*H, W) maps of the sources found, in model order, at the
            final resolution, the K frames stacked vertically; n_i may be 0.
        gt_frames: per sample, (K, H, W) binary ground truth of each frame (for MUSIC-Duet K = 1 and
            the frame's gt is the union of both instruments).

    Returns:
        ``iou`` and ``cap``: one entry per matched map, per missing map (0) and per extra map;
        ``entry_sample``: the sample (position in the inputs) of each entry;
        ``ap``: per-sample pixel AP of the summed maps (PIAP; NaN for a skipped sample);
        ``count_correct``: n_i == K; ``evaluated``: n_i > 0 (an empty list is skipped entirely);
        ``objects``: n_i; ``non_finite``: whether any of the sample's maps holds NaN or inf.

    A map holding NaN or inf (a diverged model) is a failure: it predicts nothing, its entry
    scores cIoU 0 and AP 0 whatever is left of the gt, and a non-finite sum gives PIAP 0.
    Matching is greedy in model order: each map takes the frame of best cIoU (``np.argmax``: the
    first NaN wins), that frame's gt is then zeroed, so later maps see empty gts (cIoU 0, or NaN when
    they predict nothing; AP 0).
    """
    if len(object_maps) != len(gt_frames):
        raise ValueError(f"{len(object_maps)} samples of object maps but {len(gt_frames)} of ground truth")
    iou, cap, entry_sample, ap, count_correct, evaluated, objects, non_finite = [], [], [], [], [], [], [], []
    for sample, (maps, gts) in enumerate(zip(object_maps, gt_frames)):
        maps, gts = as_tensor(maps, "object maps"), as_tensor(gts, "gt frames").float()
        k = gts.shape[0]
        check_gt_values(gts, BINARY_GT_VALUES, "the IOI protocol's binary (scikit-learn rejects a continuous gt)")
        count_correct.append(maps.shape[0] == k)
        objects.append(maps.shape[0])
        evaluated.append(maps.shape[0] > 0)
        maps, bad = zero_non_finite(maps.float())
        non_finite.append(bool(bad.any()))
        if maps.shape[0] == 0:
            ap.append(float("nan"))
            continue
        frames = _split_frames(maps, k)
        ap.append(0.0 if bool(bad.any()) else float(_score_ap(gts.flatten(), ioi_binarize(frames.sum(0)).flatten())))
        masks = ioi_binarize(frames.flatten(0, 1)).view(frames.shape) >= 0.5
        masks[bad] = False
        remaining = gts.clone()
        for failed, obj_masks in zip(bad.tolist(), masks):
            cious = mask_ciou(obj_masks, remaining)["ciou"]
            aps = binary_score_ap(remaining, obj_masks)  # one frame: 0/1 or constant, same ranking
            j = _first_argmax(cious)
            iou.append(0.0 if failed else float(cious[j]))
            cap.append(0.0 if failed else float(aps[j]))
            remaining[j] = 0
        missing = max(k - maps.shape[0], 0)
        iou += [0.0] * missing
        cap += [0.0] * missing
        entry_sample += [sample] * (maps.shape[0] + missing)
    as64 = lambda values: torch.tensor(values, dtype=torch.float64)  # noqa: E731
    return {
        "iou": as64(iou),
        "cap": as64(cap),
        "entry_sample": torch.tensor(entry_sample, dtype=torch.long),
        "ap": as64(ap),
        "count_correct": torch.tensor(count_correct, dtype=torch.bool),
        "evaluated": torch.tensor(evaluated, dtype=torch.bool),
        "objects": torch.tensor(objects, dtype=torch.long),
        "non_finite": torch.tensor(non_finite, dtype=torch.bool),
    }


def multi_source_aggregate(result: dict[str, Tensor]) -> dict[str, Tensor]:
    """Dataset numbers as NoPrior's ``on_test_epoch_end`` logs them (fractions, not percent).

    ``ciou@0.5`` / ``ciou@0.3``: fraction of *entries* with iou >= t (literal 0.3; NaN fails),
    ``auc`` over the entries on the 0.05 * i grid, ``cap``: mean over entries, ``piap``: mean over
    evaluated samples, ``count_accuracy``: fraction of samples with exactly K maps (not in the
    reference's logs: ``objects_per_sample``, the mean number of maps, evaluated or not). Denominators
    count entries, which differ from K x samples when maps are missing, extra or skipped.
    """
    iou, cap = result["iou"], result["cap"]
    ap = result["ap"][result["evaluated"]]
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    return {
        "ciou@0.5": ciou_at(iou, 0.5) if iou.numel() else nan,
        "ciou@0.3": ciou_at(iou, 0.3) if iou.numel() else nan,
        "auc": auc(iou) if iou.numel() else nan,
        "cap": cap.mean() if cap.numel() else nan,
        "piap": ap.mean() if ap.numel() else nan,
        "count_accuracy": result["count_correct"].double().mean() if result["count_correct"].numel() else nan,
        "objects_per_sample": result["objects"].double().mean() if result["objects"].numel() else nan,
    }


def avgn_scores(maps: Tensor, gt_frames: Tensor) -> dict[str, Tensor]:
    """AVGN's per-source evaluation (``EvaluatorFull.update`` per frame, no matching).

    ``maps``: (N, K*H, W) raw maps, frame j scored against ``gt_frames[:, j]`` (N, K, H, W) with the
    EZ-VSL rule (min-max, upper median, ``>=``). Returns (N, K) ``ciou`` and ``piap``, the latter
    with AVGN's swapped arguments: ``average_precision_score(y_true=prediction, y_score=gt)``, and
    (N,) ``non_finite``: a map holding NaN or inf scores 0 on every frame.
    """
    maps, gt_frames = as_tensor(maps, "maps"), as_tensor(gt_frames, "gt_frames")
    if not bool(((gt_frames >= 0) & torch.isfinite(gt_frames)).all()):  # AVGN sums boxes: counts, not 0/1
        raise ValueError("AVGN ground truth must be finite and non-negative (box counts per pixel)")
    n, k = gt_frames.shape[:2]
    maps, bad = zero_non_finite(maps.float())
    frames = _split_frames(maps, k).flatten(0, 1)
    gts = gt_frames.float().flatten(0, 1)
    mask, _ = binarize(frames, "ezvsl")
    ciou = mask_ciou(mask, gts)["ciou"].view(n, k)
    piap = average_precision(mask.flatten(1), gts.flatten(1)).view(n, k)
    failed = bad[:, None].expand(n, k)
    return {"ciou": ciou.masked_fill(failed, 0.0), "piap": piap.masked_fill(failed, 0.0), "non_finite": bad}


def avgn_aggregate(ciou: Tensor, piap: Tensor) -> dict[str, Tensor]:
    """One AVGN evaluator per source j, then their mean (``validate_multi``). Its
    ``precision_at_{10,30,50}`` are strict ``ciou > t``; AUC uses the 0.05 * i grid with ``>=``."""
    per_source = {
        "ciou@0.5": (ciou > 0.5).double().mean(0),
        "ciou@0.3": (ciou > 0.3).double().mean(0),
        "ciou@0.1": (ciou > 0.1).double().mean(0),
        "auc": torch.stack([auc(ciou[:, j]) for j in range(ciou.shape[1])]),
        "piap": piap.mean(0),
    }
    return {name: values.mean() for name, values in per_source.items()}

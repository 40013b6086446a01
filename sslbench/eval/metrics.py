"""torchmetrics wrappers of the functional core: exact per-sample states, DDP de-duplication by
sample index, float32 inputs with autocast off (so mixed precision cannot change a result)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from sslbench.eval.functional import (
    RULES,
    auc,
    avgn_aggregate,
    avgn_scores,
    ciou_at,
    extended_scores,
    localization_scores,
    min_max,
    multi_source_aggregate,
    multi_source_scores,
    s4_frame_fscores,
    s4_frame_iou,
    slavc_confidence,
)
from sslbench.eval.inputs import non_finite_rows


def first_occurrence(index: Tensor) -> Tensor:
    """Positions that keep one entry per sample index, sorted by index.

    DistributedSampler pads the last batch with repeated samples; their scores are identical, so
    keeping any one copy gives the single-process result.
    """
    order = torch.sort(index, stable=True).indices
    sorted_index = index[order]
    keep = torch.ones_like(sorted_index, dtype=torch.bool)
    keep[1:] = sorted_index[1:] != sorted_index[:-1]
    return order[keep]


class _PerSample(Metric):
    """Concatenated per-sample states, read back de-duplicated and sorted by sample index."""

    full_state_update = False
    higher_is_better = True
    _states: tuple[str, ...] = ()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in ("index", *self._states):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def _append(self, **values: Tensor) -> None:
        for name, value in values.items():
            getattr(self, name).append(value)

    def _gathered(self) -> dict[str, Tensor]:
        if isinstance(self.index, list) and not self.index:  # after a DDP sync the state is a tensor
            raise RuntimeError(f"{type(self).__name__}.compute() before any update()")
        index = dim_zero_cat(self.index)
        keep = first_occurrence(index)
        return {"index": index[keep], **{name: dim_zero_cat(getattr(self, name))[keep] for name in self._states}}


class LocalizationMetrics(_PerSample):
    """cIoU@0.5, AUC and mean cIoU of single-source maps under one threshold rule; with
    ``n_boxes`` (extended sets with non-sounding samples) also SLAVC's AP, max-F1 and LocAcc, and
    the cIoU metrics are computed on the sounding samples only.

    ``update(maps, gt_maps, index, n_boxes=None)`` takes (N, H, W) maps at the gt resolution: raw
    maps, fixed-range scores for the ``fixed`` rule, or boolean predictions.
    """

    _states = ("ciou", "threshold", "n_pred_pixels", "conf", "absolute_conf", "n_boxes", "area", "non_finite")

    def __init__(self, rule: str = "ezvsl", iou_thresholds: tuple[float, ...] = (0.5, 0.75), **kwargs):
        super().__init__(**kwargs)
        if rule not in RULES:
            raise ValueError(f"unknown threshold rule {rule!r}; choose one of {RULES}")
        self.rule, self.iou_thresholds = rule, iou_thresholds

    def update(self, maps: Tensor, gt_maps: Tensor, index: Tensor, n_boxes: Tensor | None = None,
               absolute_maps: Tensor | None = None) -> None:
        """``absolute_maps``: the maps on a scale shared by every sample (the method's fixed range),
        whose SLAVC confidence tells true audio from negative audio; default: ``conf``."""
        with torch.autocast(maps.device.type, enabled=False):
            maps = maps if maps.dtype == torch.bool else maps.float()
            scores = localization_scores(maps, gt_maps.float(), self.rule)
            if maps.dtype == torch.bool:
                conf = maps.flatten(1).double().mean(1)  # a mask's confidence: the predicted fraction
            else:
                conf = slavc_confidence(maps if self.rule == "fixed" else min_max(maps))
            conf = conf.masked_fill(scores["non_finite"], float("-inf"))  # a diverged map is never a confident detection
            absolute = conf if absolute_maps is None else slavc_confidence(absolute_maps.float())
            absolute = absolute.masked_fill(scores["non_finite"], float("-inf"))
        no_boxes = torch.full_like(index, -1) if n_boxes is None else n_boxes.long()
        self._append(
            index=index.long(), ciou=scores["ciou"], threshold=scores["threshold"].float(),
            n_pred_pixels=scores["n_pred_pixels"].long(), conf=conf, absolute_conf=absolute, n_boxes=no_boxes,
            area=gt_maps.float().sum((1, 2)).double(),
            non_finite=scores["non_finite"],
        )

    def compute(self) -> dict[str, Any]:
        per_sample = self._gathered()
        ciou, n_boxes = per_sample["ciou"], per_sample["n_boxes"]
        extended = bool((n_boxes >= 0).all())
        scored = ciou[n_boxes != 0]  # non-sounding samples have no place to find
        result: dict[str, Any] = {
            "ciou@0.5": ciou_at(scored, 0.5),
            "auc": auc(scored),
            "mean_ciou": scored.mean(),
            "n": torch.tensor(ciou.numel()),
            "non_finite": per_sample["non_finite"].sum(),
            "per_sample": per_sample,
        }
        if extended:
            table = extended_scores(n_boxes, ciou, per_sample["conf"], per_sample["area"], self.iou_thresholds)
            result.update({k: torch.tensor(table[k], dtype=torch.float64) for k in ("AP", "max-F1", "LocAcc")})
            result["table"] = table["table"]
        return result


class MultiSourceMetrics(_PerSample):
    """Multi-source scores: the IOI protocol (``ioi``: CAP, PIAP, cIoU@0.5/0.3, AUC, count accuracy)
    or AVGN's per-source evaluation (``avgn``).

    ``update(object_maps, gt_frames, index, n_sources=None)``: per sample a (n_i, K*H, W) tensor of
    object maps (``ioi``; AVGN uses the first map, one per sample) and (N, K, H, W) binary gt frames.
    ``count_accuracy`` compares n_i with ``n_sources`` (N,) when given (a duet in one frame holds two
    sources), else with K, as the reference does for its one-source-per-frame stacks.
    Entries are keyed by (sample index, position), so padded duplicates are dropped exactly.
    """

    _states = ("ap", "count_correct", "evaluated", "objects", "avgn_ciou", "avgn_piap", "non_finite")

    def __init__(self, family: str = "ioi", **kwargs):
        super().__init__(**kwargs)
        if family not in ("ioi", "avgn"):
            raise ValueError(f"unknown multi-source family {family!r}")
        self.family = family
        for name in ("entry_key", "iou", "cap"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, object_maps: list[Tensor], gt_frames: Tensor, index: Tensor, n_sources: Tensor | None = None) -> None:
        with torch.autocast(gt_frames.device.type, enabled=False):
            index = index.long()
            if self.family == "avgn":
                scores = avgn_scores(torch.stack([m[0] for m in object_maps]).float(), gt_frames.float())
                empty = torch.zeros_like(index, dtype=torch.float64)
                self._append(index=index, ap=empty, count_correct=empty.bool(), evaluated=empty.bool(), objects=empty.long(),
                             avgn_ciou=scores["ciou"], avgn_piap=scores["piap"], non_finite=scores["non_finite"].to(index.device))
                return
            scores = multi_source_scores([m.float() for m in object_maps], list(gt_frames.float()))
            if n_sources is not None:
                found = torch.tensor([m.shape[0] for m in object_maps])
                scores["count_correct"] = found == n_sources.cpu()
        samples = scores["entry_sample"].to(index.device)
        position = torch.arange(len(samples), device=index.device)
        if len(samples):  # position within the sample: the entry's rank among its sample's entries
            position = position - torch.searchsorted(samples, samples)
        k = gt_frames.shape[1]
        self._append(
            index=index, ap=scores["ap"].to(index.device), count_correct=scores["count_correct"].to(index.device),
            evaluated=scores["evaluated"].to(index.device), objects=scores["objects"].to(index.device),
            non_finite=scores["non_finite"].to(index.device), avgn_ciou=torch.zeros(len(index), k, dtype=torch.float64, device=index.device),
            avgn_piap=torch.zeros(len(index), k, dtype=torch.float64, device=index.device),
            entry_key=index[samples] * 4096 + position, iou=scores["iou"].to(index.device), cap=scores["cap"].to(index.device),
        )

    def compute(self) -> dict[str, Any]:
        per_sample = self._gathered()
        if self.family == "avgn":
            result = avgn_aggregate(per_sample["avgn_ciou"], per_sample["avgn_piap"])
            return {**result, "n": torch.tensor(per_sample["index"].numel()), "non_finite": per_sample["non_finite"].sum(),
                    "per_sample": per_sample}
        key = dim_zero_cat(self.entry_key) if not (isinstance(self.entry_key, list) and not self.entry_key) else torch.zeros(0, dtype=torch.long)
        keep = first_occurrence(key)
        entries = {
            "iou": dim_zero_cat(self.iou)[keep] if keep.numel() else torch.zeros(0, dtype=torch.float64),
            "cap": dim_zero_cat(self.cap)[keep] if keep.numel() else torch.zeros(0, dtype=torch.float64),
        }
        result = multi_source_aggregate({**entries, **{k: per_sample[k] for k in ("ap", "count_correct", "evaluated", "objects")}})
        return {**result, "n": torch.tensor(per_sample["index"].numel()), "non_finite": per_sample["non_finite"].sum(),
                "per_sample": per_sample, "entries": entries}


class SegmentationMetrics(_PerSample):
    """AVSBench S4 mIoU and F-score: per video (``group``), then the mean over videos.

    ``update(maps, masks, index, group)``: (N, H, W) raw maps, min-max normalised and taken as
    probabilities (no second sigmoid), binary masks, each frame's dataset index and video.
    """

    _states = ("group", "frame_iou", "fscores", "valid", "non_finite")

    def update(self, maps: Tensor, masks: Tensor, index: Tensor, group: Tensor) -> None:
        with torch.autocast(maps.device.type, enabled=False):
            probabilities = min_max(maps.float())
            frame_iou = s4_frame_iou(probabilities, masks, probabilities=True)
            fscores, valid = s4_frame_fscores(probabilities, masks, probabilities=True)
        self._append(index=index.long(), group=group.long(), frame_iou=frame_iou, fscores=fscores, valid=valid,
                     non_finite=non_finite_rows(maps))

    def compute(self) -> dict[str, Any]:
        per_sample = self._gathered()
        groups = per_sample["group"].unique()
        miou, fscore = [], []
        for g in groups:
            frames = per_sample["group"] == g
            miou.append(per_sample["frame_iou"][frames].sum() / frames.sum())
            valid = frames & per_sample["valid"]
            fscore.append(per_sample["fscores"][valid].mean(0).max() if valid.any() else torch.tensor(0.0))
        return {
            "miou": torch.stack(miou).double().mean(),
            "fscore": torch.stack(fscore).double().mean(),
            "n": torch.tensor(per_sample["index"].numel()),
            "non_finite": per_sample["non_finite"].sum(),
            "videos": torch.tensor(len(groups)),
            "per_sample": {k: v for k, v in per_sample.items() if k != "fscores"},
        }

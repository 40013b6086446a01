"""torchmetrics wrapper of the functional core: exact per-sample states, DDP de-duplication."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from sslbench.eval.functional import RULES, auc, ciou_at, localization_scores


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


class LocalizationMetrics(Metric):
    """cIoU@0.5, AUC and mean cIoU of single-source maps under one threshold rule.

    ``update(heatmaps, gt_maps, index)`` takes (N, H, W) maps at the gt resolution (any dtype; cast
    to float32 so autocast cannot change a result) and each sample's dataset index.
    ``compute()`` returns the scalars and the de-duplicated per-sample tensors, sorted by index.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, rule: str = "ezvsl", **kwargs):
        super().__init__(**kwargs)
        if rule not in RULES:
            raise ValueError(f"unknown threshold rule {rule!r}; choose one of {RULES}")
        self.rule = rule
        for name in ("index", "ciou", "threshold", "n_pred_pixels"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, heatmaps: Tensor, gt_maps: Tensor, index: Tensor) -> None:
        with torch.autocast(heatmaps.device.type, enabled=False):
            scores = localization_scores(heatmaps.float(), gt_maps.float(), self.rule)
        self.index.append(index.long())
        self.ciou.append(scores["ciou"])
        self.threshold.append(scores["threshold"].float())
        self.n_pred_pixels.append(scores["n_pred_pixels"].long())

    def compute(self) -> dict[str, Tensor]:
        if isinstance(self.index, list) and not self.index:  # after a DDP sync the state is a tensor
            raise RuntimeError("LocalizationMetrics.compute() before any update()")
        index = dim_zero_cat(self.index)
        keep = first_occurrence(index)
        ciou = dim_zero_cat(self.ciou)[keep]
        return {
            "ciou@0.5": ciou_at(ciou, 0.5),
            "auc": auc(ciou),
            "mean_ciou": ciou.mean(),
            "n": torch.tensor(keep.numel()),
            "per_sample": {
                "index": index[keep],
                "ciou": ciou,
                "threshold": dim_zero_cat(self.threshold)[keep],
                "n_pred_pixels": dim_zero_cat(self.n_pred_pixels)[keep],
            },
        }

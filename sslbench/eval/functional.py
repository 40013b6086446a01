"""The public evaluation API: pure, batched torch functions (no Lightning, any device).

Every function reproduces a reference repository's evaluation code (``shared/reference/evaluation.md``,
part A): the same ground-truth pixels, thresholds, tie handling, padding and NaN behaviour.

- single source (A.0-A.1): :func:`gt_map_flickr`, :func:`gt_map_vggss`, :func:`gt_map_music`,
  :func:`upsample`, :func:`min_max`, :func:`binarize`, :func:`localization_scores`,
  :func:`success_curve`, :func:`auc`, :func:`ciou_at`;
- extended sets with non-sounding samples (A.3): :func:`slavc_confidence`, :func:`extended_scores`;
- multiple sources (A.4): :func:`multi_source_scores`, :func:`multi_source_aggregate`,
  :func:`avgn_scores`, :func:`avgn_aggregate`, :func:`average_precision`;
- AVSBench S4 masks (A.5): :func:`s4_miou`, :func:`s4_fscore`;
- retrieval (A.6): :func:`retrieval_recall`.
"""

from sslbench.eval.extended import extended_scores, slavc_confidence
from sslbench.eval.localization import (
    RULES,
    SUCCESS_THRESHOLDS,
    UPSAMPLE_MODES,
    auc,
    binarize,
    ciou_at,
    gt_map_flickr,
    gt_map_music,
    gt_map_vggss,
    localization_scores,
    mask_ciou,
    min_max,
    success_curve,
    upper_median,
    upsample,
)
from sslbench.eval.multi_source import (
    average_precision,
    avgn_aggregate,
    avgn_scores,
    binary_score_ap,
    ioi_binarize,
    multi_source_aggregate,
    multi_source_scores,
)
from sslbench.eval.retrieval import retrieval_recall
from sslbench.eval.segmentation import s4_frame_fscores, s4_frame_iou, s4_fscore, s4_miou

__all__ = [
    "RULES",
    "SUCCESS_THRESHOLDS",
    "UPSAMPLE_MODES",
    "auc",
    "average_precision",
    "avgn_aggregate",
    "avgn_scores",
    "binarize",
    "binary_score_ap",
    "ciou_at",
    "extended_scores",
    "gt_map_flickr",
    "gt_map_music",
    "gt_map_vggss",
    "ioi_binarize",
    "localization_scores",
    "mask_ciou",
    "min_max",
    "multi_source_aggregate",
    "multi_source_scores",
    "retrieval_recall",
    "s4_frame_fscores",
    "s4_frame_iou",
    "s4_fscore",
    "s4_miou",
    "slavc_confidence",
    "success_curve",
    "upper_median",
    "upsample",
]

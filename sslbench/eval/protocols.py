"""Named evaluation protocols: each fixes what one reference repository does to a raw map.

A protocol names the upsampling to the gt resolution, how maps become predicted pixels, the
metric family, and the sample list the reference evaluates, so every reported number can say
exactly which evaluation produced it (``shared/reference/evaluation.md`` part A).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: what a test set asks to be scored with (``AVDataset.evaluation``)
KINDS = ("single", "extended", "multi", "segmentation")


@dataclass(frozen=True)
class Protocol:
    """One reference evaluation.

    Attributes:
        name: the key in :data:`PROTOCOLS`.
        upsample: ``sslbench.eval.functional.upsample`` mode from the feature map to ``size``.
        rule: threshold rule of ``binarize`` (single-source and extended sets).
        family: ``single`` (cIoU/AUC, plus SLAVC's AP/F1 on extended sets), ``ioi``, ``avgn`` or ``s4``.
        fixed_range: scores are the raw map mapped from the method's fixed range (cosine / tau) to
            [0, 1], not min-max per image (SLAVC's absolute prediction).
        iou_thresholds: IoU thresholds of the extended table.
        size: side of the evaluation grid.
        test_lists: the sample lists the reference evaluates (for the record).
        reference: where the behaviour comes from.
        upsample_by_benchmark: (benchmark, mode) pairs where the reference upsamples one published
            set's maps otherwise (``AVDataset.benchmark``).
    """

    name: str
    upsample: str
    rule: str = "ezvsl"
    family: str = "single"
    fixed_range: bool = False
    iou_thresholds: tuple[float, ...] = (0.5, 0.75)
    size: int = 224
    test_lists: str = ""
    reference: str = ""
    upsample_by_benchmark: tuple[tuple[str, str], ...] = ()

    def upsample_for(self, benchmark: str | None) -> str:
        """The upsampling of a set serving ``benchmark`` (``vggss``, ``flickr``, or None)."""
        return dict(self.upsample_by_benchmark).get(benchmark, self.upsample)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Test-set kinds this protocol can score."""
        return {"single": ("single", "extended"), "ioi": ("multi",), "avgn": ("multi",), "s4": ("segmentation",)}[self.family]


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("ezvsl", "bilinear_align_corners", "ezvsl", test_lists="flickr_test.csv (249), vggss_test.csv (5158)",
                 reference="EZ-VSL test.py: bilinear align_corners, min-max, upper median, >="),
        Protocol("lvs", "bilinear", "lvs", test_lists="flickr_test.csv (249), vggss_test.csv (5158)",
                 reference="LVS test.py: cv2 INTER_LINEAR, 1 - minmax(-h), upper median, > or == 1"),
        Protocol("sspl", "bilinear", "sspl", test_lists="flickr_test249_in5k.csv (249), vggss_test_4692.csv (4692)",
                 reference="SSPL eval_cal_ciou: cv2 INTER_LINEAR, np.ptp min-max, fixed 0.5, >="),
        Protocol("sslalign", "bilinear_align_corners", "sslalign", test_lists="test_flickr_250.txt (250), ours_vggss.txt (4654)",
                 reference="SSLalignment test.py validate_lvs + Evaluator.cal_CIOU: VGG-SS cv2 INTER_LINEAR, others "
                           "bilinear align_corners; upper median, strict >",
                 upsample_by_benchmark=(("vggss", "bilinear"),)),
        Protocol("sslalign_adaptive", "bilinear_align_corners", "sslalign_adaptive", test_lists="test_flickr_250.txt (250), ours_vggss.txt (4654)",
                 reference="SSLalignment test.py validate_lvs + Evaluator_iiou: VGG-SS cv2 INTER_LINEAR, others "
                           "bilinear align_corners; threshold at the gt area, strict >",
                 upsample_by_benchmark=(("vggss", "bilinear"),)),
        Protocol("slavc", "bicubic_align_corners", "fixed", fixed_range=True,
                 test_lists="flickr (250) / vggss (5158) + *_test_plus_silent.csv",
                 reference="SLAVC test.py default: (S + 1/tau) / (2/tau) >= 0.5, confidence = top-quarter mean"),
        Protocol("slavc_relative", "bicubic_align_corners", "ezvsl", fixed_range=True,
                 test_lists="flickr (250) / vggss (5158) + *_test_plus_silent.csv",
                 reference="SLAVC test.py --relative_prediction: min-max of the fixed-range scores, median, >="),
        Protocol("ioi", "bicubic", family="ioi", test_lists="music_duet_test.csv (1020), vggsound_duet_test.csv (5158)",
                 reference="NoPrior test_step: cv2 INTER_CUBIC, greedy matching, CAP / PIAP / cIoU@0.3 / AUC"),
        Protocol("avgn", "bicubic", family="avgn", iou_thresholds=(0.3, 0.5, 0.75),
                 test_lists="music_duet_test.csv (1020), vggsound_duet_test.csv (5158)",
                 reference="AVGN train.py validate_multi: bicubic (not align_corners), frame j vs gt j, median >=, "
                           "swapped-argument PIAP, strict precision@t"),
        Protocol("avsbench_s4", "bilinear", family="s4", test_lists="s4_meta_data.csv test split (740 videos x 5 frames)",
                 reference="AVSBench S4 mask_iou / Eval_Fmeasure per video; min-max maps taken as probabilities"),
    )
}

#: protocol names, for typed arguments: single-source / extended, multi-source, segmentation
SingleProtocolName = Literal[tuple(n for n, p in PROTOCOLS.items() if p.family == "single")]
MultiProtocolName = Literal[tuple(n for n, p in PROTOCOLS.items() if p.family in ("ioi", "avgn"))]
SegmentationProtocolName = Literal[tuple(n for n, p in PROTOCOLS.items() if p.family == "s4")]


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown evaluation protocol {name!r}; choose one of {sorted(PROTOCOLS)}") from None

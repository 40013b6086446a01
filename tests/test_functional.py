"""Metric functions against hand-worked cases and a per-sample numpy transcription of the
reference evaluation code (evaluation.md A.0-A.1, in sslbench/bench/reference.py), including its tie and NaN behaviour."""

import numpy as np
import pytest
import torch

from sslbench.bench.reference import cal_ciou as reference_ciou  # noqa: E402
from sslbench.bench.reference import single_source_infer as reference_infer  # noqa: E402
from sslbench.eval.functional import (
    SUCCESS_THRESHOLDS,
    auc,
    binarize,
    ciou_at,
    gt_map_flickr,
    gt_map_music,
    gt_map_vggss,
    localization_scores,
    min_max,
    success_curve,
    upsample,
)


def adversarial_maps(size=224):
    rng = np.random.default_rng(0)
    maps = [
        rng.normal(size=(size, size)),
        np.round(rng.uniform(0, 3, (size, size))),  # heavy ties around the median
        np.zeros((size, size)),  # constant 0
        np.full((size, size), 2.5),  # constant positive
        np.full((size, size), -1.0),  # constant negative
        (rng.uniform(size=(size, size)) < 0.6).astype(float),  # binary, more than half ones
        (rng.uniform(size=(size, size)) < 0.3).astype(float),  # binary, fewer than half ones
        np.tile(np.arange(size, dtype=float), (size, 1)),  # every column tied
    ]
    return np.stack(maps).astype(np.float32)


def adversarial_gts(count, size=224):
    boxes = [[[20, 30, 200, 180], [40, 50, 220, 256]], [[0, 0, 256, 256]], [[0, 0, 128, 256], [0, 0, 128, 256]]]
    gts = [gt_map_flickr(b, size).numpy() for b in boxes]
    gts.append(np.zeros((size, size), np.float32))  # empty gt
    return np.stack([gts[i % len(gts)] for i in range(count)])


@pytest.mark.parametrize("rule", ["ezvsl", "lvs", "sspl", "sslalign", "sslalign_adaptive"])
def test_scores_match_the_reference_per_sample(rule):
    maps = adversarial_maps()
    for shift in range(4):  # pair every map with every kind of gt
        gts = np.roll(adversarial_gts(len(maps)), shift, axis=0)
        got = localization_scores(torch.from_numpy(maps), torch.from_numpy(gts), rule)
        for i, (h, gt) in enumerate(zip(maps, gts)):
            infer = reference_infer(h.copy(), gt, rule)
            assert got["n_pred_pixels"][i].item() == int(infer.sum()), (rule, i)
            expected = reference_ciou(infer, gt)
            if np.isnan(expected):
                assert torch.isnan(got["ciou"][i]), (rule, i)
            else:
                assert got["ciou"][i].item() == pytest.approx(expected, abs=1e-12), (rule, i)


@pytest.mark.parametrize("rule", ["ezvsl", "lvs", "sslalign", "sslalign_adaptive"])
def test_scores_match_the_reference_across_internal_chunks(rule):
    """More maps than one internal row chunk: chunks without any constant map take the
    known-[0, 1] fast path of the rank search, later ones mix constant and varying maps."""
    kinds = adversarial_maps(64)
    varying = [0, 1, 5, 6, 7]
    rng = np.random.default_rng(1)
    order = [varying[i % len(varying)] for i in range(40)] + list(rng.integers(0, len(kinds), 30))
    maps = kinds[order] * rng.uniform(0.5, 2, (len(order), 1, 1)).astype(np.float32)  # other scales, same ties
    gts = np.roll(adversarial_gts(len(maps), 64), 1, axis=0)
    got = localization_scores(torch.from_numpy(maps), torch.from_numpy(gts), rule)
    expected = [int(reference_infer(h.copy(), gt, rule).sum()) for h, gt in zip(maps, gts)]
    assert got["n_pred_pixels"].tolist() == expected
    cious = [reference_ciou(reference_infer(h.copy(), gt, rule), gt) for h, gt in zip(maps, gts)]
    np.testing.assert_allclose(got["ciou"].numpy(), np.array(cious), rtol=0, atol=1e-12)


def test_ties_at_the_median_keep_more_pixels_with_ge_than_with_gt():
    h = torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])  # min-max: 0, 1, 1, 1 -> threshold sort[2] = 1
    ge, _ = binarize(h, "ezvsl")
    strict, _ = binarize(h, "sslalign")
    lvs, _ = binarize(h, "lvs")
    assert ge.sum() == 3 and strict.sum() == 0 and lvs.sum() == 3  # LVS keeps pixels at the maximum


def test_constant_maps_follow_each_reference():
    zero, neg = torch.zeros(1, 4, 4), torch.full((1, 4, 4), -1.0)
    assert binarize(zero, "ezvsl")[0].all()  # unchanged 0 >= threshold 0
    assert binarize(zero, "lvs")[0].all() and not binarize(neg, "lvs")[0].any()  # 1 + c
    assert not binarize(zero, "sspl")[0].any()  # NaN from np.ptp predicts nothing
    assert torch.equal(min_max(torch.full((2, 3, 3), 7.0)), torch.full((2, 3, 3), 7.0))


def test_ciou_hand_worked_with_consensus_half_pixels():
    gt = torch.tensor([[[1.0, 0.5], [0.0, 0.0]]])
    h = torch.tensor([[[3.0, 0.0], [2.0, 1.0]]])  # min-max 1, 0, 2/3, 1/3 -> threshold sort[2] = 2/3
    scores = localization_scores(h, gt, "ezvsl")
    # predicted: (0,0) gt 1 and (1,0) gt 0 -> intersection 1, union 1.5 + 1
    assert scores["intersection"].item() == 1.0 and scores["union"].item() == 2.5
    assert scores["ciou"].item() == pytest.approx(0.4)


def test_empty_gt_gives_nan_only_with_an_empty_prediction():
    gt = torch.zeros(2, 4, 4)
    maps = torch.stack([torch.full((4, 4), -1.0), torch.arange(16.0).view(4, 4)])
    ciou = localization_scores(maps, gt, "lvs")["ciou"]  # constant negative: nothing predicted
    assert torch.isnan(ciou[0]) and ciou[1].item() == 0.0


def test_success_curve_and_auc_use_the_float_grid():
    assert SUCCESS_THRESHOLDS[6] == 0.05 * 6 and SUCCESS_THRESHOLDS[6] > 0.3
    cious = torch.tensor([0.3], dtype=torch.float64)
    x, y = success_curve(cious)
    assert y[5].item() == 1.0 and y[6].item() == 0.0  # exactly 0.3 fails 0.30000000000000004
    expected = np.trapezoid(y.numpy(), np.array(SUCCESS_THRESHOLDS)) if hasattr(np, "trapezoid") else None
    assert auc(cious).item() == pytest.approx(0.275, abs=1e-15)
    if expected is not None:
        assert auc(cious).item() == expected
    assert ciou_at(cious, 0.3).item() == 1.0  # written literally, >= 0.3 counts it


def test_nan_counts_as_failure():
    cious = torch.tensor([float("nan"), 0.9, 0.1, 0.6], dtype=torch.float64)
    assert ciou_at(cious).item() == 0.5
    assert success_curve(cious)[1][0].item() == 0.75


def test_gt_flickr_consensus_and_truncation():
    one = gt_map_flickr([[37, 52, 201, 240]])
    # int(224 * 37 / 256) = 32, int(224 * 52 / 256) = 45, 201 -> 175, 240 -> 210
    assert one[45, 32] == 0.5 and one[44, 32] == 0 and one[45, 31] == 0 and one[209, 174] == 0.5 and one[210, 174] == 0
    two = gt_map_flickr([[0, 0, 128, 128], [64, 64, 256, 256], [0, 0, 128, 128], [0, 0, 128, 128]])
    assert set(two.unique().tolist()) == {0.0, 0.5, 1.0}
    assert two[0, 0] == 1 and two[100, 100] == 1 and two[200, 200] == 0.5 and two[0, 200] == 0


def test_gt_boxes_touching_the_border_reversed_and_negative():
    full = gt_map_vggss([[0.0, 0.0, 1.0, 1.0]])
    assert full.sum() == 224 * 224
    assert gt_map_vggss([[0.6, 0.2, 0.4, 0.8]]).sum() == 0  # x2 < x1: empty
    corrupt = gt_map_vggss([[-2.88e16, 0.5, 0.5, 1.0]])  # clipped to 0
    assert corrupt.sum() == 112 * 112 and corrupt[223, 0] == 1
    assert gt_map_vggss([[0.3, 0.3, 0.6, 0.6]])[67, 67] == 1  # 0.3 * 224 = 67.19999 -> 67
    # a negative Flickr start wraps around like a Python slice: start 216 > stop 17, so empty
    assert gt_map_flickr([[-10, 0, 20, 10]]).sum() == 0


def test_gt_music_reads_xywh():
    gt = gt_map_music([[0.31, 0.12, 0.22, 0.70]])
    ys, xs = torch.nonzero(gt, as_tuple=True)
    assert (xs.min().item(), xs.max().item() + 1) == (69, 69 + 49)
    assert (ys.min().item(), ys.max().item() + 1) == (26, 26 + 156)


def test_upsample_modes_and_errors():
    maps = torch.arange(4.0).view(1, 2, 2)
    corners = upsample(maps, 5, "bilinear_align_corners")
    assert corners[0, 0, 0] == 0 and corners[0, -1, -1] == 3  # corners kept exactly
    plain = upsample(maps, 5, "bilinear")
    assert plain[0, 0, 0] == 0 and plain.shape == (1, 5, 5)
    with pytest.raises(ValueError, match="upsampling mode"):
        upsample(maps, 5, "nearest")
    with pytest.raises(ValueError, match="threshold rule"):
        localization_scores(maps, maps, "median")


def test_fixed_rule_and_boolean_predictions():
    scores = torch.tensor([[[0.5, 0.49999997], [1.0, 0.0]]])  # SLAVC absolute: >= 0.5, no normalisation
    mask, threshold = binarize(scores, "fixed")
    assert mask.tolist() == [[[True, False], [True, False]]] and threshold.item() == 0.5
    whole = torch.ones(1, 2, 2, dtype=torch.bool)
    for rule in ("ezvsl", "sslalign", "sspl"):  # a boolean map is the prediction, whatever the rule
        assert binarize(whole, rule)[0].all()


def test_kth_smallest_equals_a_full_sort_on_adversarial_rows():
    from sslbench.eval.functional import upper_median
    from sslbench.eval.localization import kth_smallest

    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 1000, generator=g)  # more rows than one internal chunk of 256
    x[0] = 0.0  # constant
    x[1] = (torch.rand(1000, generator=g) < 0.7).float()  # binary, ties at the median
    x[2] = torch.round(torch.rand(1000, generator=g) * 3)  # four levels
    x[3, :10] = 1e6  # outliers squeeze everything else into one bucket
    x[4] = -1e6 + torch.rand(1000, generator=g)  # large offset, small span
    rank = torch.randint(0, 1000, (300,), generator=g)
    rank[5], rank[6] = 0, 999
    assert torch.equal(kth_smallest(x, rank), x.sort(1).values.gather(1, rank[:, None])[:, 0])
    assert torch.equal(upper_median(x), x.sort(1).values[:, 500])


def test_mask_ciou_leaves_a_float_mask_untouched():
    from sslbench.eval.functional import mask_ciou

    mask = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    gt = torch.tensor([[[0.5, 0.0], [1.0, 0.0]]])
    scores = mask_ciou(mask, gt)
    assert mask.tolist() == [[[1.0, 0.0], [1.0, 1.0]]]
    assert scores["ciou"].item() == pytest.approx(1.5 / (1.5 + 1))

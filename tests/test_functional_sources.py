"""Multi-source (IOI, AVGN), extended (SLAVC), S4 and retrieval metrics against transcriptions of
the reference code (sslbench/bench/reference.py), on the inputs where implementations drift."""

import numpy as np
import pytest
import torch

from sslbench.bench.reference import avs_fmeasure, avs_mask_iou, noprior_epoch, noprior_sample, sk_ap, slavc_stats
from sslbench.eval.functional import (
    average_precision,
    avgn_scores,
    binary_score_ap,
    extended_scores,
    multi_source_aggregate,
    multi_source_scores,
    retrieval_recall,
    s4_fscore,
    s4_miou,
    slavc_confidence,
)

H = 32  # frame side: small, so the reference loops stay quick; the rules do not depend on it


def frame_maps(rng, kind):
    if kind == "normal":
        return rng.normal(size=(H, H))
    if kind == "ties":
        return np.round(rng.uniform(0, 2, (H, H)))
    if kind == "binary_many":
        return (rng.uniform(size=(H, H)) < 0.7).astype(float)
    if kind == "zero":
        return np.zeros((H, H))
    if kind == "const_pos":
        return np.full((H, H), 3.0)
    return np.full((H, H), 0.7)  # constant below 1: predicts nothing in NoPrior's binarisation


KINDS = ["normal", "ties", "binary_many", "zero", "const_pos", "const_low"]


def random_gt(rng, k):
    gts = np.zeros((k, H, H), np.float32)
    for i in range(k):
        if rng.uniform() < 0.15:
            continue  # an empty frame
        x0, y0 = rng.integers(0, H // 2, 2)
        gts[i, y0 : y0 + rng.integers(2, H // 2), x0 : x0 + rng.integers(2, H // 2)] = 1
    return gts


def random_samples(seed=0, count=40):
    rng = np.random.default_rng(seed)
    samples = []
    for s in range(count):
        k = int(rng.integers(1, 4))
        n = int(rng.integers(0, k + 2))  # missing, exact and extra maps, and empty lists
        maps = np.stack(
            [np.concatenate([frame_maps(rng, KINDS[(s + i + f) % len(KINDS)]) for f in range(k)]) for i in range(n)]
        ).astype(np.float32) if n else np.zeros((0, k * H, H), np.float32)
        samples.append((maps, random_gt(rng, k)))
    return samples


def test_ioi_per_sample_entries_match_the_reference():
    samples = random_samples()
    got = multi_source_scores([torch.from_numpy(m) for m, _ in samples], [torch.from_numpy(g) for _, g in samples])
    entry = 0
    for s, (maps, gts) in enumerate(samples):
        iou, cap, piap, true = noprior_sample(maps, gts)
        assert bool(got["count_correct"][s]) == bool(true)
        if piap is None:
            assert not got["evaluated"][s] and torch.isnan(got["ap"][s])
        else:
            assert got["ap"][s].item() == pytest.approx(piap, abs=1e-9)
        for a, b in zip(iou, cap):
            assert got["entry_sample"][entry] == s
            if np.isnan(a):
                assert torch.isnan(got["iou"][entry]), (s, entry)
            else:
                assert got["iou"][entry].item() == pytest.approx(a, abs=1e-12), (s, entry)
            assert got["cap"][entry].item() == pytest.approx(b, abs=1e-9), (s, entry)
            entry += 1
    assert entry == len(got["iou"])


def test_ioi_aggregate_matches_the_reference_epoch():
    samples = random_samples(seed=1)
    got = multi_source_aggregate(multi_source_scores([torch.from_numpy(m) for m, _ in samples], [torch.from_numpy(g) for _, g in samples]))
    expected = noprior_epoch(samples)
    assert set(got) == set(expected) | {"objects_per_sample"}  # ours: how many maps, not in the reference's logs
    assert got["objects_per_sample"].item() == pytest.approx(np.mean([m.shape[0] for m, _ in samples]))
    for key, value in expected.items():
        assert got[key].item() == pytest.approx(value, abs=1e-9), key


def test_ioi_greedy_matching_quirks():
    gts = torch.zeros(2, H, H)
    gts[0, :16] = 1  # top half of frame 0
    gts[1, :, :16] = 1  # left half of frame 1
    good = torch.zeros(2 * H, H)
    good[H : H + H, :16] = 1  # finds frame 1's source
    empty_frame_1 = torch.zeros(2 * H, H)
    empty_frame_1[:16] = 1  # frame 0 only; constant 0 in frame 1 predicts nothing there
    res = multi_source_scores([torch.stack([good, good, empty_frame_1])], [gts])
    # map 1 takes frame 1; map 2 sees frame 1 zeroed: frame 0 has cIoU 0 (predicts nothing... of
    # its gt) and frame 1 gives NaN or 0; the third map's empty frame 1 against the zeroed gt is NaN
    # and np.argmax picks the NaN even though frame 0 would score 1.
    assert res["iou"][0].item() == 1.0
    assert torch.isnan(res["iou"][2])
    assert not res["count_correct"][0]
    agg = multi_source_aggregate(res)
    assert agg["ciou@0.5"].item() == pytest.approx(1 / 3)


def test_ioi_missing_maps_pad_zero_and_empty_lists_are_skipped():
    gts = torch.ones(2, H, H)
    one = torch.rand(1, 2 * H, H, generator=torch.Generator().manual_seed(0))
    res = multi_source_scores([one, torch.zeros(0, 2 * H, H)], [gts, gts])
    assert res["entry_sample"].tolist() == [0, 0]  # one map + one padded entry; sample 1 adds none
    assert res["iou"][1].item() == 0.0 and res["cap"][1].item() == 0.0
    assert res["evaluated"].tolist() == [True, False] and res["count_correct"].tolist() == [False, False]


def test_ioi_ciou_of_exactly_0_3_counts_at_0_3_but_not_on_the_auc_grid():
    res = {"iou": torch.tensor([0.3], dtype=torch.float64), "cap": torch.zeros(1, dtype=torch.float64),
           "ap": torch.zeros(1, dtype=torch.float64), "evaluated": torch.ones(1, dtype=torch.bool),
           "count_correct": torch.ones(1, dtype=torch.bool), "entry_sample": torch.zeros(1, dtype=torch.long),
           "objects": torch.ones(1, dtype=torch.long)}
    agg = multi_source_aggregate(res)
    assert agg["ciou@0.3"].item() == 1.0 and agg["auc"].item() == pytest.approx(0.275, abs=1e-15)


def test_ioi_rejects_a_continuous_ground_truth():
    with pytest.raises(ValueError, match="binary"):
        multi_source_scores([torch.rand(1, H, H)], [torch.full((1, H, H), 0.5)])


@pytest.mark.parametrize("seed", range(3))
def test_average_precision_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.uniform(size=(6, 300)) < 0.3
    y_true[5] = False  # no positive: scikit-learn >= 1.1 gives 0
    y_score = np.round(rng.uniform(0, 4, (6, 300)))  # 5 levels: heavy ties
    y_score[1] = rng.normal(size=300)
    y_score[2] = 1.0
    got = average_precision(torch.from_numpy(y_true), torch.from_numpy(y_score))
    for i in range(6):
        assert got[i].item() == pytest.approx(sk_ap(y_true[i], y_score[i]), abs=1e-12), i


def test_binary_score_ap_is_the_general_ap_of_a_binary_score():
    rng = np.random.default_rng(3)
    gt = rng.uniform(size=(5, 200)) < 0.4
    mask = rng.uniform(size=(5, 200)) < 0.5
    mask[1], mask[2], gt[3] = False, True, False
    expected = average_precision(torch.from_numpy(gt), torch.from_numpy(mask).double())
    assert torch.allclose(binary_score_ap(torch.from_numpy(gt), torch.from_numpy(mask)), expected, atol=1e-12)


def test_avgn_scores_use_ge_and_swapped_ap_arguments():
    rng = np.random.default_rng(4)
    maps = rng.normal(size=(3, 2 * H, H)).astype(np.float32)
    maps[1, :H] = 0.0  # a constant frame: >= keeps everything
    gts = np.stack([random_gt(rng, 2) for _ in range(3)])
    gts[2, 0] *= 2  # AVGN's vggsound_duet gt is summed, not binarised: a continuous score
    got = avgn_scores(torch.from_numpy(maps), torch.from_numpy(gts))
    for i in range(3):
        for j in range(2):
            pred = maps[i, j * H : (j + 1) * H]
            from sslbench.bench.reference import cal_ciou, normalize_img

            p = normalize_img(pred.copy())
            infer = (p >= np.sort(p.flatten())[int(p.size * 0.5)]).astype(float)
            expected = cal_ciou(infer, gts[i, j])
            if np.isnan(expected):
                assert torch.isnan(got["ciou"][i, j])
            else:
                assert got["ciou"][i, j].item() == pytest.approx(expected, abs=1e-12)
            assert got["piap"][i, j].item() == pytest.approx(sk_ap(infer.reshape(-1), gts[i, j].reshape(-1)), abs=1e-12)


# --- SLAVC extended --------------------------------------------------------------------------------


def extended_case(seed=0, n=523):
    rng = np.random.default_rng(seed)
    bb = rng.integers(0, 4, n)
    bb[: n // 3] = 0  # non-sounding samples
    ciou = rng.uniform(0, 1, n)
    ciou[bb == 0] = np.where(rng.uniform(size=(bb == 0).sum()) < 0.5, np.nan, 0.0)  # empty gt: NaN or 0
    ciou[min(5, n - 1)] = 0.5  # exactly at the IoU threshold: a hit
    conf = np.round(rng.uniform(0.3, 0.8, n), 2).astype(np.float32)  # ties in confidence
    area = np.where(bb > 0, rng.choice([500.0, 2000.0, 12000.0, 30000.0], n), 0.0)
    return bb, ciou, conf, area


@pytest.mark.parametrize("n", [523, 9, 2])
def test_extended_table_matches_slavc(n):
    bb, ciou, conf, area = extended_case(n=n)
    if n == 2:
        bb[:] = 1
    got = extended_scores(torch.from_numpy(bb), torch.from_numpy(ciou), torch.from_numpy(conf), torch.from_numpy(area))
    expected = slavc_stats(bb.tolist(), ciou.tolist(), conf.tolist(), area.tolist())
    for key, value in expected.items():
        if isinstance(value, list):
            assert got["table"][key] == pytest.approx(value, abs=1e-12), key
        elif np.isnan(value):
            assert np.isnan(got["table"][key]), key
        else:
            assert got["table"][key] == pytest.approx(value, abs=1e-12), key
    assert got["AP"] == got["table"]["AP-all@50"] and got["max-F1"] == max(got["table"]["F1-all@50"])
    visible = ciou[bb > 0]
    assert got["LocAcc"] == pytest.approx(np.mean(visible >= 0.5))


def test_slavc_confidence_averages_the_top_quarter_rounding_like_python():
    scores = torch.arange(10.0).view(1, 2, 5)  # n = 10: -10 // 4 = -3, so the top 3 values
    assert slavc_confidence(scores).item() == pytest.approx((7 + 8 + 9) / 3)
    rng = np.random.default_rng(0)
    big = rng.uniform(size=(2, 224, 224)).astype(np.float32)
    expected = [np.sort(m.flatten())[-m.size // 4 :].mean() for m in big]
    assert slavc_confidence(torch.from_numpy(big)).tolist() == pytest.approx(expected, rel=1e-6)


# --- AVSBench S4 -----------------------------------------------------------------------------------


def test_s4_metrics_match_avsbench():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 24, 24, generator=g) * 3
    masks = (torch.rand(5, 24, 24, generator=g) < 0.3).float()
    masks[1] = 0  # empty mask: true negatives over H * W for the IoU, skipped by the F-score
    logits[2] = 0.0  # sigmoid 0.5 exactly: strict > predicts nothing
    assert s4_miou(logits, masks).item() == pytest.approx(avs_mask_iou(logits, masks).item(), abs=1e-7)
    assert s4_fscore(logits, masks).item() == pytest.approx(avs_fmeasure(logits, masks), abs=1e-6)
    assert s4_fscore(logits, torch.zeros_like(masks)).item() == 0.0  # every frame skipped


def test_s4_probabilities_skip_the_sigmoid():
    p = torch.tensor([[[0.2, 0.6], [0.5, 0.9]]])
    mask = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    assert s4_miou(p, mask, probabilities=True).item() == pytest.approx(1.0, abs=1e-6)
    assert s4_miou(p, mask).item() < 0.6  # sigmoid of [0, 1] scores predicts every pixel


# --- retrieval -------------------------------------------------------------------------------------


def test_retrieval_recall_instance_and_class_level():
    image = torch.eye(4)
    audio = torch.eye(4)[[0, 2, 1, 3]]  # pairs 1 and 2 swapped
    r = retrieval_recall(image, audio, ks=(1, 2))
    assert r["a2i@1"].item() == 0.5 and r["i2a@1"].item() == 0.5 and r["a2i@2"].item() == 0.5
    classes = torch.tensor([0, 1, 1, 2])
    assert retrieval_recall(image, audio, ks=(1,), classes=classes)["a2i@1"].item() == 1.0


def test_retrieval_ties_count_against_the_query():
    same = torch.ones(8, 3)
    r = retrieval_recall(same, same, ks=(1, 7, 8))
    assert r["a2i@1"].item() == 0.0 and r["i2a@7"].item() == 0.0  # 7 tied negatives outrank the pair
    assert r["i2a@8"].item() == 1.0

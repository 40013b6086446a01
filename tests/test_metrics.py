import pytest
import torch

from sslbench.eval.functional import auc, ciou_at, localization_scores
from sslbench.eval.metrics import LocalizationMetrics, first_occurrence


def data(n=11, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(n, size, size, generator=g)
    gts = torch.zeros(n, size, size)
    for i in range(n):
        x0, y0 = (int(v) for v in torch.randint(0, size // 2, (2,), generator=g))
        gts[i, y0 : y0 + size // 2, x0 : x0 + size // 2] = 1
        maps[i, y0 : y0 + size // 2, x0 : x0 + size // 2] += 0.5 * (i % 3)
    return maps, gts


def test_batch_by_batch_equals_one_shot_and_the_functional_core():
    maps, gts = data()
    metric = LocalizationMetrics()
    for start in range(0, 11, 4):
        metric.update(maps[start : start + 4], gts[start : start + 4], torch.arange(start, min(start + 4, 11)))
    result = metric.compute()
    cious = localization_scores(maps, gts)["ciou"]
    assert result["ciou@0.5"].item() == ciou_at(cious).item()
    assert result["auc"].item() == auc(cious).item()
    assert torch.equal(result["per_sample"]["ciou"], cious)
    assert result["n"].item() == 11


def test_duplicates_from_distributed_padding_are_counted_once():
    maps, gts = data()
    padded = LocalizationMetrics()
    # two "ranks" of a DistributedSampler: 11 samples padded to 12 by repeating sample 0
    padded.update(maps[[0, 2, 4, 6, 8, 10]], gts[[0, 2, 4, 6, 8, 10]], torch.tensor([0, 2, 4, 6, 8, 10]))
    padded.update(maps[[1, 3, 5, 7, 9, 0]], gts[[1, 3, 5, 7, 9, 0]], torch.tensor([1, 3, 5, 7, 9, 0]))
    single = LocalizationMetrics()
    single.update(maps, gts, torch.arange(11))
    a, b = padded.compute(), single.compute()
    assert a["n"].item() == 11
    for key in ("ciou@0.5", "auc", "mean_ciou"):
        assert a[key].item() == b[key].item()
    assert torch.equal(a["per_sample"]["index"], torch.arange(11))


def test_first_occurrence_sorts_and_deduplicates():
    index = torch.tensor([5, 1, 5, 0, 1])
    assert index[first_occurrence(index)].tolist() == [0, 1, 5]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_and_autocast_do_not_change_results(dtype):
    maps, gts = data()
    maps = maps.to(dtype).float()  # maps representable in half precision: the metric must not round further
    reference = LocalizationMetrics()
    reference.update(maps, gts, torch.arange(11))
    half = LocalizationMetrics()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half.update(maps.to(dtype), gts.to(dtype), torch.arange(11))
    a, b = reference.compute(), half.compute()
    assert torch.equal(a["per_sample"]["ciou"], b["per_sample"]["ciou"])
    assert torch.equal(a["per_sample"]["threshold"], b["per_sample"]["threshold"])


def test_compute_before_update_is_an_error():
    with pytest.raises(RuntimeError, match="before any update"):
        LocalizationMetrics().compute()


def test_multi_source_and_segmentation_metrics_ignore_autocast_and_padding():
    from sslbench.eval.metrics import MultiSourceMetrics, SegmentationMetrics

    g = torch.Generator().manual_seed(1)
    maps = torch.rand(5, 2, 32, 16, generator=g).to(torch.bfloat16).float()  # representable in bf16
    gts = (torch.rand(5, 2, 16, 16, generator=g) < 0.3).float()
    plain, padded = MultiSourceMetrics("ioi"), MultiSourceMetrics("ioi")
    plain.update(list(maps), gts, torch.arange(5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        padded.update(list(maps[[0, 2, 4]].bfloat16()), gts[[0, 2, 4]], torch.tensor([0, 2, 4]))
        padded.update(list(maps[[1, 3, 0]].bfloat16()), gts[[1, 3, 0]], torch.tensor([1, 3, 0]))  # sample 0 repeated
    a, b = plain.compute(), padded.compute()
    for key in ("ciou@0.5", "ciou@0.3", "auc", "cap", "piap", "count_accuracy"):
        assert a[key].item() == b[key].item(), key
    assert torch.equal(a["entries"]["iou"], b["entries"]["iou"])

    seg_plain, seg_half = SegmentationMetrics(), SegmentationMetrics()
    frames, masks = maps[:, 0, :16], gts[:, 0]
    seg_plain.update(frames, masks, torch.arange(5), torch.tensor([0, 0, 1, 1, 1]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        seg_half.update(frames.bfloat16(), masks, torch.arange(5), torch.tensor([0, 0, 1, 1, 1]))
    a, b = seg_plain.compute(), seg_half.compute()
    assert a["miou"].item() == b["miou"].item() and a["fscore"].item() == b["fscore"].item() and a["videos"].item() == 2


def test_count_accuracy_uses_the_number_of_sources_when_known():
    from sslbench.eval.metrics import MultiSourceMetrics

    gt = torch.zeros(2, 1, 8, 8)
    gt[:, 0, :4, :4] = 1
    maps = [torch.randn(2, 8, 8), torch.randn(1, 8, 8)]  # two objects found, then one
    by_frames, by_sources = MultiSourceMetrics(), MultiSourceMetrics()
    by_frames.update(maps, gt, torch.arange(2))
    by_sources.update(maps, gt, torch.arange(2), torch.tensor([2, 2]))  # duets: two sources in one frame
    assert by_frames.compute()["count_accuracy"].item() == 0.5  # n_i == K = 1: only the second
    assert by_sources.compute()["count_accuracy"].item() == 0.5  # n_i == 2: only the first
    assert by_sources.compute()["per_sample"]["count_correct"].tolist() == [True, False]

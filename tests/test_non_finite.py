"""A diverged model's maps (NaN or inf) score as failures under every protocol, are counted and
named, and never stop an evaluation; the functional API says what it accepts."""

import json

import numpy as np
import pytest
import torch

from sslbench.eval.functional import (
    RULES,
    avgn_scores,
    binarize,
    localization_scores,
    multi_source_scores,
    s4_frame_iou,
)

from conftest import TINY_EZVSL


def maps_and_gt(n=4, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(n, size, size, generator=g)
    gt = torch.zeros(n, size, size)
    gt[:, 4:10, 4:10] = 1.0
    gt[:, 4:6, 4:6] = 0.5
    return maps, gt


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_one_non_finite_pixel_fails_that_sample_only(rule, bad):
    maps, gt = maps_and_gt()
    if rule == "fixed":
        maps = maps.clamp(0, 1)
    clean = localization_scores(maps, gt, rule)
    maps[1, 3, 3] = bad
    scores = localization_scores(maps, gt, rule)
    assert scores["non_finite"].tolist() == [False, True, False, False]
    assert scores["ciou"][1] == 0 and scores["n_pred_pixels"][1] == 0 and torch.isnan(scores["threshold"][1])
    keep = torch.tensor([0, 2, 3])
    torch.testing.assert_close(scores["ciou"][keep], clean["ciou"][keep])
    mask, threshold = binarize(maps, rule, gt)
    assert not mask[1].any() and torch.isnan(threshold[1])


def test_an_all_nan_map_under_sspl_is_counted_not_silently_zero():
    maps, gt = maps_and_gt()
    maps[2] = float("nan")
    scores = localization_scores(maps, gt, "sspl")
    assert scores["non_finite"][2] and scores["ciou"][2] == 0


def test_numpy_is_accepted_and_bad_inputs_are_named():
    maps, gt = maps_and_gt()
    from_numpy = localization_scores(maps.numpy(), gt.numpy())
    torch.testing.assert_close(from_numpy["ciou"], localization_scores(maps, gt)["ciou"])
    with pytest.raises(TypeError, match="heatmaps must be a torch.Tensor or a numpy.ndarray, got list"):
        localization_scores(maps.tolist(), gt)
    wrong = gt.clone()
    wrong[0, 0, 0] = 0.3
    with pytest.raises(ValueError, match="must hold only 0, 0.5, 1; found 0.3"):
        localization_scores(maps, wrong)


def test_multi_source_avgn_and_s4_fail_non_finite_maps():
    h = 8
    gts = torch.zeros(2, h, h)
    gts[0, :4] = 1
    gts[1, 4:] = 1
    good, bad = torch.rand(2 * h, h), torch.rand(2 * h, h)
    bad[0, 0] = float("nan")
    scores = multi_source_scores([torch.stack([good, bad])], [gts])
    assert scores["non_finite"].tolist() == [True] and scores["iou"][1] == 0 and scores["cap"][1] == 0 and scores["ap"][0] == 0
    avgn = avgn_scores(torch.stack([good, bad]), torch.stack([gts, gts]))
    assert avgn["non_finite"].tolist() == [False, True] and (avgn["ciou"][1] == 0).all() and (avgn["piap"][1] == 0).all()
    frames = torch.rand(2, h, h)
    frames[1, 2, 2] = float("inf")
    assert s4_frame_iou(frames, gts, probabilities=True)[1] == 0


def test_sslbench_test_scores_a_nan_map_and_names_it(tmp_path, run_root, monkeypatch):
    """Through the command line: one sample's map is NaN; the run finishes, the sample scores 0,
    and the results JSON counts and names it."""
    from sslbench.cli import main
    from sslbench.methods import EZVSL

    forward = EZVSL.forward

    def diverged(self, image, audio):
        maps = forward(self, image, audio)
        return torch.where(torch.arange(len(maps))[:, None, None] == 0, float("nan"), maps)

    monkeypatch.setattr(EZVSL, "forward", diverged)
    sets = json.dumps([{"class_path": "SyntheticScenes", "init_args": {"num_samples": 6}}])
    with pytest.warns(UserWarning, match="maps held NaN or inf"):
        main(["test", *TINY_EZVSL, "--data.image_size", "64", "--data.num_workers", "0", "--data.eval_batch_size", "3",
              "--data.test", sets, *run_root, "--evaluator.results_dir", str(tmp_path / "results")])
    summary = json.loads((tmp_path / "results" / "test_synthetic.json").read_text())
    assert summary["non_finite"] == {"count": 2, "sample_ids": ["test_000000", "test_000003"]}
    assert summary["n"] == 6 and np.isfinite(summary["ciou@0.5"])

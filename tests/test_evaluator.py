"""The evaluator picks the metrics from the test set's kind, scores floors beside the method, and
records protocol, sample list and pictures; checked through the real command line."""

import json

import pytest
import torch

from datamodules import SyntheticScenes
from sslbench.cli import main
from sslbench.eval import LocalizationEvaluator
from sslbench.eval.functional import ciou_at, mask_ciou, multi_source_aggregate, multi_source_scores

from conftest import TINY_EZVSL

SETS = [
    {"class_path": "SyntheticScenes", "init_args": {"num_samples": 6}},
    {"class_path": "SyntheticScenes", "init_args": {"num_samples": 5, "mode": "duet"}},
    {"class_path": "SyntheticScenes", "init_args": {"num_samples": 9, "silent_fraction": 0.4}},
    {"class_path": "SyntheticScenes", "init_args": {"num_samples": 7, "masks": True, "frames_per_video": 3}},
]


def run_test(tmp_path, *extra):
    main([
        "test", *TINY_EZVSL, "--data.image_size", "64", "--data.num_workers", "0", "--data.eval_batch_size", "4",
        "--data.test", json.dumps(SETS), "--trainer.default_root_dir", str(tmp_path),
        "--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false", "--evaluator.results_dir", str(tmp_path / "results"),
        "--evaluator.num_visualized", "2", *extra,
    ])
    return {p.stem.removeprefix("test_"): json.loads(p.read_text()) for p in (tmp_path / "results").glob("test_*.json")}


def dataset(**kwargs):
    d = SyntheticScenes(split="test", **kwargs)
    d.configure(image_size=64, audio=__import__("sslbench.audio", fromlist=["PRESETS"]).PRESETS["ezvsl"], train=False)
    return d


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluator")
    return root, run_test(root)


def test_each_kind_gets_its_metrics_and_floors(results):
    root, summaries = results
    assert set(summaries) == {"synthetic", "synthetic_duet", "synthetic_extended", "synthetic_masks"}
    expected = {
        "synthetic": ("single", "ezvsl", "auc"),
        "synthetic_duet": ("multi", "ioi", "piap"),
        "synthetic_extended": ("extended", "ezvsl", "max-F1"),
        "synthetic_masks": ("segmentation", "avsbench_s4", "fscore"),
    }
    for name, (kind, protocol, metric) in expected.items():
        s = summaries[name]
        assert (s["kind"], s["protocol"]) == (kind, protocol)
        assert set(s["floors"]) == {"centre", "whole_image", "random"} and metric in s["floors"]["random"]
        assert len(s["sample_ids_hash"]) == 16 and s["sample_list"] == name and s["n"] == s["dataset_size"]
        assert (root / "results" / f"heatmaps_{name}.png").exists()
        assert (root / "results" / f"success_{name}.png").exists() == (kind != "segmentation")
    logged = (next(root.rglob("metrics.csv"))).read_text().splitlines()[0].split(",")
    for key in ("test/synthetic_duet/cap", "test/synthetic_duet/centre/cap", "test/synthetic_extended/LocAcc",
                "test/synthetic_masks/random/miou", "test/synthetic/whole_image/ciou@0.5"):
        assert key in logged, key


def test_whole_image_floor_is_the_cIoU_of_predicting_every_pixel(results):
    _, summaries = results
    single = dataset(num_samples=6)
    gts = torch.stack([single[i]["gt_map"] for i in range(6)])
    cious = mask_ciou(torch.ones_like(gts, dtype=torch.bool), gts)["ciou"]
    assert summaries["synthetic"]["floors"]["whole_image"]["ciou@0.5"] == pytest.approx(ciou_at(cious).item())
    duet = dataset(num_samples=5, mode="duet")
    frames = [duet[i]["gt_frames"] for i in range(5)]
    expected = multi_source_aggregate(multi_source_scores([torch.ones(1, *f.shape[1:]) for f in frames], frames))
    assert summaries["synthetic_duet"]["floors"]["whole_image"]["piap"] == pytest.approx(expected["piap"].item())


def test_extended_set_scores_cIoU_on_sounding_samples_only(results):
    _, summaries = results
    s = summaries["synthetic_extended"]
    assert s["LocAcc"] == pytest.approx(s["ciou@0.5"])  # LocAcc is cIoU@0.5 of the visible samples
    assert "AP-all@50" in s["extended_table"] and "F1-visible@75" in s["extended_table"]


def test_slavc_protocol_maps_the_fixed_range(tmp_path):
    summaries = run_test(tmp_path, "--evaluator.protocol", "slavc", "--evaluator.floors", "[]")
    assert summaries["synthetic_extended"]["protocol"] == "slavc"
    assert summaries["synthetic_extended"]["floors"] == {}
    assert summaries["synthetic_duet"]["protocol"] == "ioi"


def test_protocol_must_fit_the_kind_it_is_given_for():
    with pytest.raises(ValueError, match="scores multi sets"):
        LocalizationEvaluator(protocol="ioi")
    with pytest.raises(ValueError, match="unknown floor"):
        LocalizationEvaluator(floors=["oracle"])


def test_sslalign_upsamples_vggss_as_cv2_and_other_sets_with_align_corners():
    """SSLalignment ``test.py`` ``validate_lvs``: ``if args.testset == 'vggss'`` the maps go through
    ``cv2.resize(INTER_LINEAR)``, every other set through ``F.interpolate(bilinear, align_corners=True)``;
    the other protocols upsample one way whatever the set."""
    from types import SimpleNamespace

    from sslbench.eval.protocols import get_protocol

    sets = [SimpleNamespace(benchmark="vggss"), SimpleNamespace(benchmark="flickr"), SimpleNamespace()]
    trainer = SimpleNamespace(datamodule=SimpleNamespace(test_datasets=sets))
    evaluator = LocalizationEvaluator()
    for name in ("sslalign", "sslalign_adaptive"):
        modes = [evaluator.upsample_mode(trainer, "test", i, get_protocol(name)) for i in range(3)]
        assert modes == ["bilinear", "bilinear_align_corners", "bilinear_align_corners"]
    assert [evaluator.upsample_mode(trainer, "test", i, get_protocol("ezvsl")) for i in range(3)] == ["bilinear_align_corners"] * 3


def test_pictures_show_the_best_the_worst_and_a_fixed_random_few():
    from sslbench.viz import pick_examples

    scores = [0.5, float("nan"), 0.9, 0.1, 0.7, 0.3, 0.95, 0.0, 0.6, 0.2]
    groups = dict(pick_examples(list(range(10)), scores, per_group=2))
    assert groups["best"] == [6, 2] and groups["worst"] == [1, 7]  # NaN counts as the worst
    assert len(groups["random"]) == 2 and not set(groups["random"]) & {6, 2, 1, 7}
    assert dict(pick_examples(list(range(10)), scores, per_group=2))["random"] == groups["random"]  # fixed
    assert [label for label, _ in pick_examples([3], [0.4], per_group=2)] == ["worst"]  # nothing shown twice


def test_heatmap_picture_is_written_with_its_rows(results):
    root, _ = results
    from PIL import Image

    for name in ("synthetic", "synthetic_duet", "synthetic_extended", "synthetic_masks"):
        path = root / "results" / f"heatmaps_{name}.png"
        assert path.is_file() and Image.open(path).size[0] > 200, name


def test_avgn_protocol_scores_frame_j_with_source_j_map_for_methods_that_order_their_maps():
    """``validate_multi``: frame j against gt j, frame j's map being source j's (AVGN); a method
    without ordered sources is scored with its first map, frame by frame."""
    from sslbench.eval.multi_source import own_frames

    maps = torch.arange(2 * 4 * 2, dtype=torch.float32).view(2, 4, 2)  # 2 sources over 2 stacked 2 x 2 frames
    got = own_frames(maps, 2)
    assert got.shape == (1, 4, 2)
    assert torch.equal(got[0, :2], maps[0, :2]) and torch.equal(got[0, 2:], maps[1, 2:])
    assert own_frames(maps[:1], 2) is not None and torch.equal(own_frames(maps[:1], 2), maps[:1])

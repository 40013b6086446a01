"""The negative-audio evaluation: every single-source test set scored again with silence, noise
and another sample's audio, and the AP of telling true from negative audio by the map's confidence."""

import csv
import json

import torch

from datamodules import SyntheticScenes
from datamodules.datamodule import NegativeAudio, SwappedAudio
from sslbench.audio import PRESETS
from sslbench.cli import main
from sslbench.eval.functional import average_precision

from conftest import TINY_EZVSL


def test_negative_audio_kinds():
    data = SyntheticScenes("test", 8)
    data.configure(image_size=32, audio=PRESETS["quick"], train=False, eval_size=32)
    true = data[3]
    silence, noise, offscreen = (NegativeAudio(data, k)[3] for k in ("silence", "noise", "offscreen"))
    assert not silence["waveform"].any() and torch.equal(silence["gt_map"], true["gt_map"])
    rms = lambda w: float(w.square().mean().sqrt())  # noqa: E731
    assert abs(rms(noise["waveform"]) - rms(true["waveform"])) < 0.05 * rms(true["waveform"])
    assert torch.equal(noise["waveform"], NegativeAudio(data, "noise")[3]["waveform"])  # seeded by the sample
    assert torch.equal(offscreen["waveform"], data[SwappedAudio(data).partner(3)]["waveform"])
    assert NegativeAudio(data, "noise").name == "synthetic/negative/noise"


def read_column(path, column):
    with open(path, newline="") as f:
        return [float(row[column]) for row in csv.DictReader(f)]


def test_sslbench_test_scores_each_negative_audio_and_the_discrimination_ap(tmp_path, run_root):
    sets = json.dumps([{"class_path": "SyntheticScenes", "init_args": {"num_samples": 12}}])
    out = tmp_path / "results"
    main(["test", *TINY_EZVSL, "--data.image_size", "64", "--data.num_workers", "0", "--data.eval_batch_size", "4",
          "--data.test", sets, *run_root, "--evaluator.results_dir", str(out),
          "--evaluator.negative_audio", "[silence, noise, offscreen]"])
    true_conf = read_column(out / "test_synthetic.csv", "absolute_conf")
    for kind in ("silence", "noise", "offscreen"):
        summary = json.loads((out / f"test_synthetic__negative__{kind}.json").read_text())
        assert summary["dataset"] == f"synthetic/negative/{kind}" and summary["n"] == 12
        assert {"ciou@0.5", "auc", "discrimination_ap"} <= set(summary)
        negative_conf = read_column(out / f"test_synthetic__negative__{kind}.csv", "absolute_conf")
        scores = torch.tensor(true_conf + negative_conf, dtype=torch.float64)[None]
        labels = torch.tensor([1.0] * 12 + [0.0] * 12)[None]
        assert summary["discrimination_ap"] == float(average_precision(labels, scores)[0])
    metrics = (next(tmp_path.rglob("metrics.csv"))).read_text().splitlines()[0]
    assert "test/synthetic/negative/silence/ciou@0.5" in metrics and "test/synthetic/negative/offscreen/discrimination_ap" in metrics

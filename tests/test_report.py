"""Seeds, experiment names and `sslbench report`, checked against the runs' own per-sample files."""

import csv
import json
import re

import pytest
import torch

from sslbench import cli
from sslbench.commands import report, train
from sslbench.errors import SSLBenchError

from conftest import TINY_DATA, TINY_EZVSL

TEST_SET = ["--data.test", '[{"class_path": "SyntheticScenes", "init_args": {"num_samples": 8}}]']
TINY_LVS = ["--model", "LVS", "--model.backbone_width", "4"]


def per_sample_ciou(json_path):
    with open(json_path.with_suffix(".csv"), newline="") as f:
        return torch.tensor([float(r["ciou"]) for r in csv.DictReader(f)], dtype=torch.float64)


def cell(value: float) -> str:
    return f"{value:.4f}"


@pytest.fixture(scope="module")
def two_methods(tmp_path_factory):
    """EZ-VSL over two seeds and LVS over one, one epoch each, tested after fit; then one more
    test of the LVS checkpoint under another protocol."""
    root = tmp_path_factory.mktemp("runs")
    common = [*TINY_DATA, *TEST_SET, "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
              "--trainer.default_root_dir", str(root), "--trainer.logger", "CSVLogger",
              "--trainer.logger.save_dir", str(root), "--evaluator.num_visualized", "0"]
    cli.main(["fit", *TINY_EZVSL, *common, "--seeds", "0,1"])
    cli.main(["fit", *TINY_LVS, *common, "--seed_everything", "3", "--evaluator.experiment", "lvs_tiny"])
    checkpoint = next(p for p in sorted(root.rglob("*.ckpt")) if "version_2" in str(p))
    cli.main(["test", *TINY_LVS, *common, "--evaluator.protocol", "lvs", "--ckpt_path", str(checkpoint),
              "--evaluator.experiment", "lvs_tiny"])
    return root


def test_seeds_each_get_a_run_and_record_what_they_are(two_methods):
    records = [json.loads(p.read_text()) for p in sorted(two_methods.rglob("results/test_synthetic.json"))]
    runs = sorted((r["run"]["method"], r["run"]["experiment"], r["run"]["seed"], r["protocol"]) for r in records)
    assert runs == [("EZVSL", "ezvsl", 0, "ezvsl"), ("EZVSL", "ezvsl", 1, "ezvsl"),
                    ("LVS", "lvs_tiny", 3, "ezvsl"), ("LVS", "lvs_tiny", 3, "lvs")]


def test_report_table_and_curves_match_the_per_sample_files(two_methods, tmp_path):
    out = tmp_path / "cmp.md"
    report.main([str(two_methods), "--out", str(out)])
    text = out.read_text()
    results = {(r.row[0], r.summary["protocol"], r.run["seed"]): r for r in report.collect([str(two_methods)])}

    # EZ-VSL: one row, the two seeds pooled; each number recomputed from the CSVs
    ez = [per_sample_ciou(results[("EZVSL", "ezvsl", s)].json_path) for s in (0, 1)]
    success = torch.stack([(c >= 0.5).double().mean() for c in ez])
    expected = f"{cell(success.mean())} ± {cell(success.std())}"  # sample std over seeds
    ez_row = next(line for line in text.splitlines() if line.startswith("| EZVSL"))
    assert f"| EZVSL | ezvsl | synthetic | 0,1 | 8 | {expected} |" in ez_row

    # LVS under the ezvsl protocol sits in the same table; under the lvs protocol in its own one
    ezvsl_table = text.split("protocol `ezvsl`")[1].split("## ")[0]
    lvs_table = text.split("protocol `lvs`")[1].split("## ")[0]
    lvs_cious = per_sample_ciou(results[("LVS", "ezvsl", 3)].json_path)
    assert f"| LVS | lvs_tiny | synthetic | 3 | 8 | {cell((lvs_cious >= 0.5).double().mean())} |" in ezvsl_table
    assert "| LVS | lvs_tiny |" in lvs_table and "EZVSL" not in lvs_table
    assert re.search(r"Warning:\*\* `synthetic` was scored 2 ways", text)

    # the PNG's curves are the per-sample success ratios
    drawn = report.curves(list(results.values()))
    assert sorted(len(v) for v in drawn.values()) == [1, 3]
    for members in drawn.values():
        for label, x, y in members:
            method, seed = label.split()[0], int(label.rsplit(" ", 1)[1])
            protocol = "lvs" if len(members) == 1 else "ezvsl"
            cious = per_sample_ciou(results[(method, protocol, seed)].json_path)
            torch.testing.assert_close(y, torch.stack([(cious >= t).double().mean() for t in x]))
    png = out.with_suffix(".png")
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_errors(tmp_path):
    with pytest.raises(SSLBenchError, match="does not exist"):
        report.collect([str(tmp_path / "missing")])
    with pytest.raises(SSLBenchError, match="no test results"):
        report.collect([str(tmp_path)])


def test_seed_lists_and_experiment_names():
    assert train.pop_seeds(["fit", "--seeds", "0,1,2", "--x", "1"]) == ([0, 1, 2], ["fit", "--x", "1"])
    assert train.pop_seeds(["fit", "--seeds=4"]) == ([4], ["fit"])
    with pytest.raises(SSLBenchError, match="integers"):
        train.pop_seeds(["fit", "--seeds", "a,b"])
    assert train.experiment_name(["experiments/synthetic/base.yaml", "experiments/synthetic/ezvsl.yaml"]) == "synthetic/ezvsl"
    assert train.experiment_name(["experiments/ezvsl_margin.yaml", "experiments/ogl.yaml", "experiments/trainer/cpu.yaml"]) == "ezvsl_margin+ogl"
    assert train.experiment_name([]) is None


def fake_run(root, name, *, seed, margin, ciou, checkpoint=None, mtime=None):
    """A finished run as sslbench writes one: config.yaml, results/test_synthetic.{json,csv}."""
    import os

    import yaml

    folder = root / name
    (folder / "results").mkdir(parents=True)
    config = {"seed_everything": seed, "model": {"class_path": "sslbench.methods.EZVSL", "init_args": {"margin": margin, "tau": 0.07}},
              "data": {"batch_size": 8, "num_workers": 0}, "trainer": {"default_root_dir": str(folder), "max_epochs": 2}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    cious = [ciou, ciou, 0.0, 1.0]
    summary = {"dataset": "synthetic", "kind": "single", "sample_list": "synthetic", "protocol": "ezvsl", "n": 4,
               "sample_ids_hash": "abc", "ciou@0.5": sum(c >= 0.5 for c in cious) / 4, "auc": ciou, "floors": {},
               "run": {"method": "EZVSL", "experiment": "margin_sweep", "seed": seed, "train_set": "synthetic",
                       "checkpoint": checkpoint}}
    path = folder / "results" / "test_synthetic.json"
    path.write_text(json.dumps(summary))
    with open(path.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "sample_id", "ciou"])
        writer.writerows([i, f"s{i}", c] for i, c in enumerate(cious))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_rows_are_distinct_configurations_and_repeats_count_once(tmp_path, capsys):
    """Seeds 0 and 1 at margin -0.2 pool; margin -0.3 is its own row, named by the setting that
    differs; a re-test of seed 0's checkpoint and a resumed copy of seed 1 (same config and seed)
    are counted once; every curve has its own label."""
    fake_run(tmp_path, "a", seed=0, margin=-0.2, ciou=0.6, checkpoint="/ck/a.ckpt", mtime=1)
    fake_run(tmp_path, "b", seed=1, margin=-0.2, ciou=0.4, mtime=1)
    fake_run(tmp_path, "c", seed=0, margin=-0.3, ciou=0.8, mtime=1)
    fake_run(tmp_path, "a_retest", seed=0, margin=-0.2, ciou=0.6, checkpoint="/ck/a.ckpt", mtime=2)
    fake_run(tmp_path, "b_resumed", seed=1, margin=-0.2, ciou=0.4, mtime=2)
    out = tmp_path / "report.md"
    report.main([str(tmp_path), "--out", str(out)])
    rows = [line for line in out.read_text().splitlines() if line.startswith("| EZVSL")]
    assert len(rows) == 2
    pooled = next(r for r in rows if "margin=-0.2" in r)
    assert "| 0,1 | 4 |" in pooled and "0.5000 ± 0.1414" in pooled  # auc: mean and sample std of 0.6, 0.4
    assert "margin=-0.3" in next(r for r in rows if r is not pooled) and "| 0 | 4 |" in rows[1 - rows.index(pooled)]
    assert "2 repeated results" in capsys.readouterr().err
    labels = [label for members in report.curves(report.collect([str(tmp_path)])).values() for label, _, _ in members]
    assert len(labels) == 3 == len(set(labels))

"""Two CPU processes (gloo) must give the single-process metrics, with a test set of odd size."""

import csv
import json
import os
import subprocess
import sys

import pytest

from conftest import TINY_EZVSL


def run_test(out, devices: int):
    cmd = [
        sys.executable, "-m", "sslbench", "test", *TINY_EZVSL,
        "--data.image_size", "64", "--data.num_workers", "0", "--data.eval_batch_size", "1",
        "--data.test", '[{"class_path": "SyntheticScenes", "init_args": {"num_samples": 7}}]',
        "--trainer.accelerator", "cpu", "--trainer.devices", str(devices),
        "--trainer.strategy", "ddp" if devices > 1 else "auto",
        "--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(out),
        "--trainer.default_root_dir", str(out), "--trainer.enable_progress_bar", "false",
        "--evaluator.results_dir", str(out / "results"), "--evaluator.num_visualized", "0",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "results" / "test_synthetic.csv")))
    return rows, json.loads((out / "results" / "test_synthetic.json").read_text())


@pytest.mark.ddp
def test_two_processes_match_one(tmp_path):
    single_rows, single = run_test(tmp_path / "one", 1)
    ddp_rows, ddp = run_test(tmp_path / "two", 2)
    assert [r["index"] for r in ddp_rows] == [str(i) for i in range(7)]  # the padded duplicate is gone
    assert ddp_rows == single_rows
    assert ddp == single

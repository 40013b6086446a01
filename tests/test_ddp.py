"""Two CPU processes (gloo) must give the single-process metrics on every kind of test set, with
odd sizes so the distributed sampler pads (duplicates must be dropped exactly)."""

import json
import os
import subprocess
import sys

import pytest

from conftest import TINY_EZVSL

SETS = [
    {"class_path": "SyntheticScenes", "init_args": {"num_samples": 7}},
    {"class_path": "SyntheticScenes", "init_args": {"num_samples": 5, "mode": "duet"}},
    {"class_path": "SyntheticScenes", "init_args": {"num_samples": 7, "silent_fraction": 0.4}},
    {"class_path": "SyntheticScenes", "init_args": {"num_samples": 5, "masks": True, "frames_per_video": 2}},
]


def run_test(out, devices: int):
    cmd = [
        sys.executable, "-m", "sslbench", "test", *TINY_EZVSL,
        "--data.image_size", "64", "--data.num_workers", "0", "--data.eval_batch_size", "1",
        "--data.test", json.dumps(SETS),
        "--trainer.accelerator", "cpu", "--trainer.devices", str(devices),
        "--trainer.strategy", "ddp" if devices > 1 else "auto",
        "--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(out),
        "--trainer.default_root_dir", str(out), "--trainer.enable_progress_bar", "false",
        "--evaluator.results_dir", str(out / "results"), "--evaluator.num_visualized", "0",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {p.name: p.read_text() for p in sorted((out / "results").glob("test_*"))}


@pytest.mark.ddp
def test_two_processes_match_one(tmp_path):
    single = run_test(tmp_path / "one", 1)
    ddp = run_test(tmp_path / "two", 2)
    assert len(single) == 2 * len(SETS)
    rows = ddp["test_synthetic.csv"].splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [str(i) for i in range(7)]  # the padded duplicate is gone
    for name, text in single.items():
        assert ddp[name] == text, name

"""A run stopped at an epoch boundary or mid-epoch (SIGTERM, SIGUSR1) and resumed from its
``last.ckpt`` ends exactly where an uninterrupted run ends: same weights, same best checkpoint,
same test metrics, in the same run folder; ``last.ckpt`` always holds the last epoch."""

import json
import signal
from pathlib import Path

import pytest
import torch

from sslbench.cli import main

from conftest import TINY_DATA, TINY_EZVSL

TEST_SET = ["--data.test", json.dumps([{"class_path": "SyntheticScenes", "init_args": {"num_samples": 6}}])]
# 24 training scenes, batch 8: 3 steps per epoch; the best epoch is chosen on validation
CHECKPOINT = json.dumps([{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                          "init_args": {"monitor": "val/ciou@0.5", "mode": "max", "save_last": True}}])


def fit(root: Path, *extra: str) -> None:
    main([
        "fit", *TINY_EZVSL, *TINY_DATA, "--data.train.num_samples", "24", *TEST_SET,
        "--trainer.default_root_dir", str(root), "--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(root),
        "--trainer.enable_progress_bar", "false", "--evaluator.num_visualized", "0", "--trainer.callbacks", CHECKPOINT,
        "--trainer.num_sanity_val_steps", "1", *extra,
    ])


def run_folders(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("config.yaml"))


def run_folder(root: Path) -> Path:
    (folder,) = run_folders(root)
    return folder


def final_state(root: Path) -> tuple[dict, dict, int]:
    folder = run_folder(root)
    last = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=False)
    results = json.loads((folder / "results" / "test_synthetic.json").read_text())
    return last["state_dict"], {k: results[k] for k in ("ciou@0.5", "auc", "mean_ciou", "n")}, last["epoch"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    fit(root, "--trainer.max_epochs", "3")
    return final_state(root)


def assert_same_run(resumed, uninterrupted):
    state, results, epoch = resumed
    expected_state, expected_results, expected_epoch = uninterrupted
    assert epoch == expected_epoch == 2
    assert results == expected_results
    for key, value in expected_state.items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=key)


def test_last_checkpoint_holds_the_last_epoch_with_monitor(uninterrupted):
    assert uninterrupted[2] == 2  # epochs 0, 1, 2: last.ckpt is the third, whichever scored best


def test_resumed_at_an_epoch_boundary_equals_the_uninterrupted_run(tmp_path, uninterrupted):
    fit(tmp_path, "--trainer.max_epochs", "2", "--test_after_fit", "false")
    last = run_folder(tmp_path) / "checkpoints" / "last.ckpt"
    fit(tmp_path, "--trainer.max_epochs", "3", "--ckpt_path", str(last))
    assert len(run_folders(tmp_path)) == 1  # the same run folder, not a new version
    assert_same_run(final_state(tmp_path), uninterrupted)
    epochs = (run_folder(tmp_path) / "epochs.csv").read_text().splitlines()
    assert epochs[0].startswith("epoch,step,train/loss") and len(epochs) == 4  # header + epochs 0, 1, 2


@pytest.mark.parametrize("signum", [signal.SIGTERM, pytest.param(signal.SIGUSR1, marks=pytest.mark.slow)])
def test_a_signal_mid_epoch_saves_exits_non_zero_and_resumes_exactly(tmp_path, uninterrupted, signum, capsys):
    """Step 5 of 9 is the second of epoch 1: the signal saves last.ckpt after it, the exit status
    is 128 + the signal, the test is not run, and one line says how to resume."""
    kill = json.dumps([{"class_path": "conftest.SignalAtStep", "init_args": {"step": 5, "signum": int(signum)}}])
    with pytest.raises(SystemExit) as stop:
        fit(tmp_path, "--trainer.max_epochs", "3", "--trainer.callbacks+", kill)
    assert stop.value.code == 128 + int(signum)
    folder = run_folder(tmp_path)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"saved {folder / 'checkpoints' / 'last.ckpt'}; resume with: sslbench fit" in line
    assert not (folder / "results").exists()
    saved = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=False)
    assert saved["global_step"] == 5 and saved["epoch"] == 1
    fit(tmp_path, "--trainer.max_epochs", "3", "--ckpt_path", str(folder / "checkpoints" / "last.ckpt"))
    assert_same_run(final_state(tmp_path), uninterrupted)


@pytest.mark.slow
def test_a_signal_during_validation_waits_for_it_and_resumes_exactly(tmp_path):
    """SIGTERM during the first of epoch 0's four validation batches: validation finishes first
    (Lightning alone would stop mid-way, and the resumed run would never score epoch 0), then the
    run stops; resumed, it equals an uninterrupted run with the same validation."""
    extra = ["--data.val.num_samples", "16", "--data.eval_batch_size", "4"]
    fit(tmp_path / "whole", "--trainer.max_epochs", "3", *extra)
    kill = json.dumps([{"class_path": "conftest.SignalInValidation", "init_args": {"step": 3}}])
    with pytest.raises(SystemExit) as stop:
        fit(tmp_path / "cut", "--trainer.max_epochs", "3", "--trainer.callbacks+", kill, *extra)
    assert stop.value.code == 128 + int(signal.SIGTERM)
    folder = run_folder(tmp_path / "cut")
    assert (folder / "epochs.csv").read_text().splitlines()[1].split(",")[4] != ""  # epoch 0's validation score
    fit(tmp_path / "cut", "--trainer.max_epochs", "3", "--ckpt_path", str(folder / "checkpoints" / "last.ckpt"), *extra)
    assert_same_run(final_state(tmp_path / "cut"), final_state(tmp_path / "whole"))

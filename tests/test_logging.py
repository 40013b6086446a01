"""W&B when installed (offline without a key), CSV otherwise; the resolved config is recorded."""

import importlib.util
import json

import pytest

from sslbench import cli

from conftest import TINY_DATA, TINY_EZVSL


def test_offline_wandb_without_a_key(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "wandb" else None)
    logger = cli.default_logger()
    assert logger["class_path"].endswith("WandbLogger") and logger["init_args"]["offline"] is True
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert cli.default_logger()["init_args"]["offline"] is False


def test_csv_without_wandb_or_when_disabled(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert cli.default_logger()["class_path"].endswith("CSVLogger")
    monkeypatch.undo()
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert cli.default_logger()["class_path"].endswith("CSVLogger")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb not installed")
def test_offline_wandb_run_records_config_and_results(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    cli.main(["fit", *TINY_EZVSL, *TINY_DATA, "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"])
    import wandb

    recorded = dict(wandb.run.config)["config"]
    wandb.finish()
    assert recorded["model"]["init_args"]["backbone_width"] == 4
    run_dirs = list((tmp_path / "runs" / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 1
    saved = run_dirs[0] / "files" / "config.yaml"
    assert saved.is_file() and "backbone_width: 4" in saved.read_text()
    assert not (tmp_path / "runs" / "config.yaml").exists()  # nothing shared between runs

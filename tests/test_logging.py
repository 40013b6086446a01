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
    test_set = '[{"class_path": "SyntheticScenes", "init_args": {"num_samples": 8}}]'
    cli.build_cli(["fit", *TINY_EZVSL, *TINY_DATA, "--data.test", test_set, "--trainer.max_epochs", "1",
                   "--trainer.enable_progress_bar", "false"])  # not main(): it would finish the run
    import wandb

    run = wandb.run
    recorded = dict(run.config)
    name, group, tags = run.name, run.group, set(run.tags)
    wandb.finish()
    assert recorded["config"]["model"]["init_args"]["backbone_width"] == 4
    assert (name, group) == ("ezvsl-s0", "ezvsl")  # no --config: the method names the experiment
    assert tags == {"EZVSL", "train:SyntheticScenes", "test:SyntheticScenes"}
    assert recorded["test/synthetic"]["n"] == 8 and recorded["test/synthetic"]["protocol"] == "ezvsl"
    assert len(recorded["test/synthetic"]["sample_ids_hash"]) == 16
    run_dirs = list((tmp_path / "runs" / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 1
    saved = run_dirs[0] / "files" / "config.yaml"
    assert saved.is_file() and "backbone_width: 4" in saved.read_text()
    tables = list((run_dirs[0] / "files" / "media" / "table").rglob("per_sample*.table.json"))
    assert len(tables) == 1 and len(json.loads(tables[0].read_text())["data"]) == 8
    assert not (tmp_path / "runs" / "config.yaml").exists()  # nothing shared between runs


def test_wandb_names_groups_and_tags_follow_the_experiment():
    from jsonargparse import Namespace

    init = Namespace(name=None, group=None, job_type=None, tags=None, offline=False, log_model=False)
    data = Namespace(train=Namespace(class_path="datamodules.folder.VGGSound", init_args=Namespace(ids="m/vggss_144k.txt")),
                     test=[Namespace(class_path="VGGSS", init_args=Namespace()), Namespace(class_path="FlickrSoundNet")])
    config = Namespace(evaluator=Namespace(experiment="ezvsl_margin+ogl"), seed_everything=2, data=data)
    cli.wandb_conventions(init, config, "EZVSL", "fit")
    assert (init.name, init.group, init.job_type) == ("ezvsl_margin+ogl-s2", "ezvsl_margin+ogl", "fit")
    assert init.tags == ["EZVSL", "train:VGGSound(vggss_144k)", "test:VGGSS", "test:FlickrSoundNet"]
    assert init.log_model is True  # online: checkpoints become artifacts
    offline = Namespace(name="mine", group=None, job_type=None, tags=None, offline=True, log_model=False)
    cli.wandb_conventions(offline, config, "EZVSL", "test")
    assert offline.name == "mine" and offline.log_model is False  # what the user set stays

"""W&B when installed (offline without a key), CSV otherwise; the resolved config is recorded."""

import importlib.util
import json

import pytest

from sslbench import cli
from sslbench.commands import train

from conftest import TINY_DATA, TINY_EZVSL


def test_offline_wandb_without_a_key(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "wandb" else None)
    logger = train.default_logger()
    assert logger["class_path"].endswith("WandbLogger") and logger["init_args"]["offline"] is True
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert train.default_logger()["init_args"]["offline"] is False


def test_csv_without_wandb_or_when_disabled(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert train.default_logger()["class_path"].endswith("CSVLogger")
    monkeypatch.undo()
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert train.default_logger()["class_path"].endswith("CSVLogger")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb not installed")
def test_offline_wandb_run_records_config_and_results(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    test_set = '[{"class_path": "SyntheticScenes", "init_args": {"num_samples": 8}}]'
    train.build_cli(["fit", *TINY_EZVSL, *TINY_DATA, "--data.test", test_set, "--trainer.max_epochs", "1",
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
    tables = list((run_dirs[0] / "files" / "media" / "table").rglob("per_sample*.table.json"))
    assert len(tables) == 1 and len(json.loads(tables[0].read_text())["data"]) == 8
    # one run folder whatever the logger: beside W&B's own files, runs/sslbench/<run id> holds them all
    folder = tmp_path / "runs" / "sslbench" / run.id
    saved = folder / "config.yaml"
    assert saved.is_file() and "backbone_width: 4" in saved.read_text()
    for part in ("checkpoints/last.ckpt", "results/test_synthetic.json", "manifests/train_synthetic.json", "epochs.csv"):
        assert (folder / part).is_file(), part
    assert not (tmp_path / "runs" / "config.yaml").exists()  # nothing shared between runs

    # predict finds the run's preset and image size from the checkpoint alone
    from PIL import Image

    Image.new("RGB", (40, 30), (90, 120, 30)).save(tmp_path / "x.jpg")
    import soundfile

    soundfile.write(tmp_path / "x.wav", [0.1, -0.1] * 8000, 16000)
    cli.main(["predict", str(folder / "checkpoints" / "last.ckpt"), "--image", str(tmp_path / "x.jpg"),
              "--audio", str(tmp_path / "x.wav"), "--out", str(tmp_path / "preds")])
    assert (tmp_path / "preds" / "x.png").is_file()


def test_run_config_is_found_where_older_wandb_runs_kept_it(tmp_path):
    """Runs logged by W&B before one run folder held everything: checkpoints in
    ``<save_dir>/<project>/<id>/checkpoints``, the config in W&B's own ``files/config.yaml``, in W&B's
    format ({key: {value: ...}}, ours under "config")."""
    from sslbench.runs import saved_run_config

    checkpoint = tmp_path / "runs" / "sslbench" / "abc123" / "checkpoints" / "epoch=3.ckpt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")
    files = tmp_path / "runs" / "wandb" / "offline-run-20261101_120000-abc123" / "files"
    files.mkdir(parents=True)
    (files / "config.yaml").write_text(
        "wandb_version: 1\nconfig:\n  desc: null\n  value:\n    data: {audio_preset: quick, image_size: 64}\n"
    )
    assert saved_run_config(checkpoint)["data"] == {"audio_preset": "quick", "image_size": 64}
    other = tmp_path / "runs" / "sslbench" / "zzz999" / "checkpoints" / "last.ckpt"
    other.parent.mkdir(parents=True)
    assert saved_run_config(other) == {}


def test_wandb_names_groups_and_tags_follow_the_experiment():
    from jsonargparse import Namespace

    init = Namespace(name=None, group=None, job_type=None, tags=None, offline=False, log_model=False)
    data = Namespace(train=Namespace(class_path="datamodules.folder.VGGSound", init_args=Namespace(ids="m/vggss_144k.txt")),
                     test=[Namespace(class_path="VGGSS", init_args=Namespace()), Namespace(class_path="FlickrSoundNet")])
    config = Namespace(evaluator=Namespace(experiment="ezvsl_margin+ogl"), seed_everything=2, data=data)
    train.wandb_conventions(init, config, "EZVSL", "fit")
    assert (init.name, init.group, init.job_type) == ("ezvsl_margin+ogl-s2", "ezvsl_margin+ogl", "fit")
    assert init.tags == ["EZVSL", "train:VGGSound(vggss_144k)", "test:VGGSS", "test:FlickrSoundNet"]
    assert init.log_model is True  # online: checkpoints become artifacts
    offline = Namespace(name="mine", group=None, job_type=None, tags=None, offline=True, log_model=False)
    train.wandb_conventions(offline, config, "EZVSL", "test")
    assert offline.name == "mine" and offline.log_model is False  # what the user set stays

"""The real command line, in-process, on tiny synthetic data generated on the fly."""

import csv
import json
import time
from pathlib import Path

import pytest
import torch
import yaml

from sslbench.cli import main

from conftest import REPO, TINY_DATA, TINY_EZVSL

SMALL_TEST = ["--data.test", '[{"class_path": "SyntheticScenes", "init_args": {"num_samples": 7}}]']


def run_files(root: Path, pattern: str) -> list[Path]:
    return sorted(root.rglob(pattern))


def test_fit_then_test_from_the_checkpoint(tmp_path, run_root):
    main(["fit", *TINY_EZVSL, *TINY_DATA, *SMALL_TEST, "--trainer.max_epochs", "2", *run_root])
    metrics = run_files(tmp_path, "metrics.csv")
    assert metrics, "fit wrote no CSV log"
    rows = list(csv.DictReader(open(metrics[0])))
    assert any(r.get("val/ciou@0.5") for r in rows) and any(r.get("train/loss") for r in rows)
    config = yaml.safe_load(open(run_files(tmp_path, "config.yaml")[0]))
    assert config["model"]["init_args"]["backbone_width"] == 4  # the resolved config is saved

    ckpt = run_files(tmp_path, "*.ckpt")[-1]
    main(["test", *TINY_EZVSL, *TINY_DATA, *SMALL_TEST, "--ckpt_path", str(ckpt), *run_root])
    per_sample = run_files(tmp_path, "test_synthetic.csv")[-1]
    rows = list(csv.DictReader(open(per_sample)))
    assert [int(r["index"]) for r in rows] == list(range(7))
    assert rows[0]["sample_id"] == "test_000000"
    summary = json.loads(per_sample.with_suffix(".json").read_text())
    assert summary["n"] == 7 and summary["protocol"] == "ezvsl"
    hits = sum(float(r["ciou"]) >= 0.5 for r in rows)
    assert summary["ciou@0.5"] == pytest.approx(hits / 7)
    assert run_files(tmp_path, "heatmaps_synthetic.png")


def test_print_config_composes_configs_and_resolves_short_names(tmp_path, capsys):
    base = tmp_path / "base.yaml"
    base.write_text("model:\n  class_path: EZVSL\n  init_args:\n    margin: -0.2\ndata:\n  batch_size: 32\n")
    override = tmp_path / "override.yaml"
    override.write_text("data:\n  batch_size: 8\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(base), "--config", str(override), "--model.tau", "0.07", "--print_config"])
    assert exit_info.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["class_path"].rsplit(".", 1)[-1] == "EZVSL"
    assert config["model"]["init_args"]["margin"] == -0.2 and config["model"]["init_args"]["tau"] == 0.07
    assert config["data"]["batch_size"] == 8
    assert config["evaluator"]["protocol"] is None  # each test set's own protocol


def test_paper_config_without_data_stops_with_one_message(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no data/ folder here
    start = time.perf_counter()
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(REPO / "experiments" / "ezvsl_margin.yaml")])
    assert time.perf_counter() - start < 30
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "data/vggsound does not exist" in err and "root" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_unknown_config_key_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  class_path: EZVSL\n  init_args:\n    marign: -0.2\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(bad)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sslbench: error: --model: EZVSL has no option 'marign'; did you mean margin? (see sslbench fit --help)"]


def test_help_lists_the_subcommands(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    assert all(cmd in out for cmd in ("fit", "validate", "test", "predict"))


def test_missing_required_key_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  test:\n    - class_path: VGGSS\n      init_args:\n        root: somewhere\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["test", "--model", "EZVSL", "--config", str(bad)])
    assert exit_info.value.code == 2
    assert "annotations" in capsys.readouterr().err


def test_root_can_be_pointed_elsewhere_from_the_command_line(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "my_vggsound"
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(REPO / "experiments" / "ezvsl_margin.yaml"), "--data.train.init_args.root", str(elsewhere)])
    assert f"{elsewhere} does not exist" in capsys.readouterr().err


def test_knn_tables_feed_ssl_align_conceptual_positives(tmp_path, run_root):
    """sslbench knn writes tables of the training list; SSL-Align then trains on all nine pairs."""
    from datamodules.views import NeighbourTables

    config = tmp_path / "data.yaml"
    config.write_text("data:\n  image_size: 64\n  num_workers: 0\n  train:\n    class_path: SyntheticScenes\n"
                      "    init_args: {num_samples: 16}\n")
    main(["knn", "--config", str(config), "--image-encoder", "colour", "--audio-encoder", "spectrum", "--k", "3",
          "--out", str(tmp_path / "nn.npz")])
    tables = NeighbourTables.load(tmp_path / "nn.npz")
    assert tables.image.shape == (16, 3) and len(tables.sample_ids) == 16
    assert not (tables.image == torch.arange(16)[:, None]).any()  # never its own neighbour
    tiny_align = ["--model", "SSLAlign", "--model.vision_weights", "null", "--model.backbone_width", "4", "--model.proj_dim", "8"]
    main(["fit", *tiny_align, *TINY_DATA, *run_root, "--trainer.max_epochs", "1", "--evaluator.protocol", "lvs",
          "--data.neighbours", str(tmp_path / "nn.npz")])
    metrics = next(tmp_path.rglob("metrics.csv")).read_text()
    assert "train/alignment" in metrics and "val/ciou@0.5" in metrics
    checkpoint = str(next(tmp_path.rglob("*.ckpt")))  # the trained method's own embeddings, found by its class
    main(["knn", "--config", str(config), "--image-encoder", checkpoint, "--audio-encoder", checkpoint, "--k", "3",
          "--out", str(tmp_path / "nn_ckpt.npz")])
    assert "ckpt" in NeighbourTables.load(tmp_path / "nn_ckpt.npz").source


def test_top_k_is_the_brute_force_ranking():
    from sslbench.neighbours import top_k

    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 5, generator=g)
    got = top_k(x, 4, chunk=7)
    c = torch.nn.functional.normalize(x - x.mean(0), dim=1)
    for i in range(30):
        sims = [(float(c[i] @ c[j]), j) for j in range(30) if j != i]
        assert got[i].tolist() == [j for _, j in sorted(sims, reverse=True)[:4]]


def test_ioi_on_synthetic_duets_end_to_end(tmp_path, run_root):
    """fit, then `sslbench test` on a duet set: CAP, PIAP, cIoU@0.3, AUC and count accuracy logged
    and written, the count checked against the two annotated sources of each duet."""
    tiny_ioi = ["--model", "IOI", "--model.vision_weights", "null", "--model.freeze_vision", "false", "--model.backbone_width", "4"]
    duets = ["--data.train", "SyntheticScenes", "--data.train.num_samples", "16", "--data.train.mode", "duet",
             "--data.test", '[{"class_path": "SyntheticScenes", "init_args": {"num_samples": 6, "mode": "duet"}}]',
             "--data.image_size", "96", "--data.batch_size", "8", "--data.num_workers", "0"]
    main(["fit", *tiny_ioi, *duets, "--trainer.max_epochs", "1", "--trainer.log_every_n_steps", "1", *run_root])
    ckpt = run_files(tmp_path, "*.ckpt")[-1]
    main(["test", *tiny_ioi, *duets, "--ckpt_path", str(ckpt), *run_root])
    summary = json.loads(run_files(tmp_path, "test_synthetic_duet.json")[-1].read_text())
    assert summary["kind"] == "multi" and summary["protocol"] == "ioi" and summary["n"] == 6
    for key in ("cap", "piap", "ciou@0.3", "auc", "count_accuracy"):
        assert key in summary, key
    rows = list(csv.DictReader(open(run_files(tmp_path, "test_synthetic_duet.csv")[-1])))
    assert len(rows) == 6
    metrics = run_files(tmp_path, "metrics.csv")[-1].read_text()
    assert "test/synthetic_duet/cap" in metrics and "train/osc" in run_files(tmp_path, "metrics.csv")[0].read_text()

    # the checkpoint names its method; a flag on top of it is obeyed (Lightning alone applies the
    # checkpoint's hyperparameters last and would drop it)
    main(["test", *duets, "--ckpt_path", str(ckpt), "--model.init_args.single_map", "true", *run_root])
    baseline = json.loads(run_files(tmp_path, "test_synthetic_duet.json")[-1].read_text())
    assert baseline["run"]["method"] == "IOI"
    assert baseline["objects_per_sample"] == 1.0 and baseline["count_accuracy"] == 0.0  # one map for two sources


EXPERIMENTS = sorted(
    p for p in (REPO / "experiments").rglob("*.yaml") if p.parent.name not in ("trainer", "sweeps") and p.name not in ("ogl.yaml", "base.yaml")
)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: str(p.relative_to(REPO / "experiments")))
def test_every_experiment_config_parses(path, capsys):
    """A broken key in any experiment file fails here, not in a user's first run."""
    base = ["--config", str(REPO / "experiments" / "synthetic" / "base.yaml")] if path.parent.name == "synthetic" else []
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *base, "--config", str(path), "--print_config"])
    assert exit_info.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["class_path"].startswith("sslbench.methods.")


@pytest.mark.parametrize("preset,bins", [("ezvsl", 257), ("sslalign", 257), ("mssl", 64), ("quick_mssl", 64)])
def test_knn_spectrum_encoder_averages_over_time_for_every_front_end(preset, bins):
    """Frequency x time spectrograms and time x mel log-mels both give one value per frequency bin."""
    from sslbench.audio import build_frontend, get_preset
    from sslbench.neighbours import mean_spectrum

    p = get_preset(preset)
    audio = build_frontend(p)(torch.randn(2, p.num_samples))
    assert mean_spectrum(audio, p).shape == (2, bins)


def test_an_unwritable_output_folder_stops_at_once_with_one_line(tmp_path, capsys):
    """A folder that cannot be made (its parent is a file, which stops root too) is named before
    any work: fit, predict and report alike, exit status 2, no traceback."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    bad = blocker / "runs"
    for words in (
        ["fit", *TINY_EZVSL, "--trainer.default_root_dir", str(bad), "--trainer.logger", "false"],
        ["fit", *TINY_EZVSL, "--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(bad)],
        ["predict", str(tmp_path / "any.ckpt"), "--pairs", str(tmp_path), "--out", str(bad)],
        ["report", str(tmp_path), "--out", str(bad / "report.md")],
    ):
        with pytest.raises(SystemExit) as stop:
            main(words)
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "cannot write the output folder" in err[0] and str(bad) in err[0], err


def test_help_and_non_training_commands_do_not_import_lightning():
    """`sslbench --help` lists every command in one line each, and the commands that do not train
    answer without importing Lightning (nor torch for --help), in a fresh interpreter."""
    import subprocess
    import sys

    probe = (
        "import sys\nfrom sslbench.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('LOADED', 'lightning' in sys.modules, 'torch' in sys.modules)"
    )
    for words, torch_too in ((["--help"], False), (["report", "--help"], False), (["prepare", "--help"], False),
                             (["data", "check", "--help"], False), (["knn", "--help"], False), (["predict", "--help"], False)):
        out = subprocess.run([sys.executable, "-c", probe, *words], capture_output=True, text=True, cwd=REPO).stdout
        assert out.strip().splitlines()[-1] == f"LOADED False {torch_too}", (words, out[-300:])
    listing = subprocess.run([sys.executable, "-c", probe, "--help"], capture_output=True, text=True, cwd=REPO).stdout
    for command in ("fit", "validate", "test", "predict", "report", "prepare", "data", "knn"):
        assert any(line.startswith(f"  {command} ") and len(line.split()) > 3 for line in listing.splitlines()), command


@pytest.mark.parametrize("words,expected", [
    (["--model.pooling", "maxx"], "--model.pooling: 'maxx' is not one of max, soft_threshold; did you mean max?"),
    (["--model.init_args.marign", "0.1"], "--model: EZVSL has no option 'marign'; did you mean margin?"),
    (["--evaluator.protocol", "ezvls"], "did you mean ezvsl?"),
    (["--data.audio_preset", "quik"], "did you mean quick?"),
    (["--trainr.max_epochs", "3"], "unrecognized option --trainr.max_epochs; did you mean --trainer.max_epochs?"),
    (["--data.train", "SynthticScenes"], "--data.train: unknown class 'SynthticScenes'; did you mean SyntheticScenes?"),
])
def test_misspelled_keys_classes_and_choices_get_one_line_with_the_closest_name(words, expected, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--model", "EZVSL", *words, "--print_config"])
    assert stop.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("sslbench: error: ") and expected in err[0], err


def test_an_unknown_command_is_named_with_the_closest(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["fitt"])
    assert stop.value.code == 2 and "unknown command 'fitt'; did you mean fit?" in capsys.readouterr().err
    main(["--help"])
    assert "commands:" in capsys.readouterr().out

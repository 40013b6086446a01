"""`make smoke`: how a config is made to run one step here, and (slow) real smoke runs."""

import pytest
import yaml

from sslbench import smoke

EXP = smoke.EXPERIMENTS


def test_real_sets_become_named_synthetic_stand_ins_and_weights_are_off(tmp_path):
    config = smoke.merged([EXP / "ezvsl.yaml", EXP / "ogl.yaml"])
    assert config["model"]["init_args"]["object_guidance"]["init_args"]["alpha"] == 0.4  # the overlay merged in
    out = smoke.smoke_config(config, tmp_path / "r18.pth", tmp_path / "nn.npz")
    assert out["data"]["train"] == {"class_path": "SyntheticScenes", "init_args": {"num_samples": 16, "sample_rate": 16000}}
    names = [t["init_args"]["name"] for t in out["data"]["test"]]
    assert names == ["test0_vggss", "test1_flickrsoundnet"]
    assert out["model"]["init_args"]["vision_weights"] is None
    assert out["model"]["init_args"]["object_guidance"]["init_args"]["weights"] == str(tmp_path / "r18.pth")
    assert out["trainer"]["fast_dev_run"] == 1 and out["data"]["batch_size"] == 4
    assert config["data"]["train"]["class_path"] == "VGGSound"  # the input is left alone


def test_a_later_class_path_replaces_the_earlier_entry_and_mixtures_shrink_their_base(tmp_path):
    stacked = yaml.safe_load((EXP / "ioi_synthetic_duet.yaml").read_text())["data"]["val"]  # a StackedMixture
    mixture = tmp_path / "mixture.yaml"
    mixture.write_text(yaml.safe_dump({"data": {"train": stacked}}))
    config = smoke.merged([EXP / "synthetic" / "base.yaml", mixture])
    train = config["data"]["train"]
    assert train["class_path"] == "StackedMixture" and "num_samples" not in train["init_args"]
    out = smoke.smoke_config(config, tmp_path / "r18.pth", None)
    base = out["data"]["train"]["init_args"]["base"]["init_args"]
    assert base["num_samples"] == 48 and base["cache"] is False


def test_stand_ins_draw_no_more_classes_than_a_labelled_method_has_tokens(tmp_path):
    config = smoke.merged([EXP / "avgn_music.yaml"])  # AVGN: 8 class tokens, trains with labels
    out = smoke.smoke_config(config, tmp_path / "r18.pth", None)
    stand_ins = [out["data"]["train"], out["data"]["val"], *out["data"]["test"]]
    assert {s["init_args"]["num_classes"] for s in stand_ins} == {config["model"]["init_args"]["num_classes"]}
    plain = smoke.smoke_config(smoke.merged([EXP / "ezvsl.yaml"]), tmp_path / "r18.pth", None)
    assert "num_classes" not in plain["data"]["train"]["init_args"]  # a label-free method keeps the default


def test_overlays_run_on_their_base_and_every_config_is_covered():
    runs = dict(smoke.configs_to_run(smoke.experiment_configs()))
    assert runs["ogl.yaml"] == [EXP / "ezvsl.yaml", EXP / "ogl.yaml"]
    assert runs["synthetic/lvs.yaml"][0] == EXP / "synthetic" / "base.yaml"
    assert runs["trainer/cpu.yaml"][0] == EXP / smoke.TRAINER_BASE
    assert "synthetic/base.yaml" not in runs  # a budget, run under every synthetic method
    every = {p.relative_to(EXP).as_posix() for p in EXP.rglob("*.yaml") if "sweeps" not in p.parts} - {"synthetic/base.yaml"}
    assert set(runs) == every
    for files in runs.values():  # every file parses
        for file in files:
            assert isinstance(yaml.safe_load(file.read_text()), dict)


@pytest.mark.slow
def test_smoke_runs_a_paper_config_and_a_synthetic_one(tmp_path, capsys):
    status = smoke.main([str(EXP / "sspl.yaml"), str(EXP / "ioi_synthetic_duet.yaml"), "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "2 ok, 0 failed" in out

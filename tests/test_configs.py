"""What the experiment files state, checked against the reference code they follow (resolved
through the real CLI parser, so a key that stops meaning what it says fails here)."""

import pytest
import yaml

from sslbench.cli import main

from conftest import REPO

EXP = REPO / "experiments"


def resolved(capsys, *args) -> dict:
    with pytest.raises(SystemExit):
        main(["fit", *args, "--print_config"])
    return yaml.safe_load(capsys.readouterr().out)


def test_lvs_is_tested_as_its_test_loader_reads(capsys):
    """LVS ``datasets/dataloader.py`` (test): the first 10 s of audio, Resize(224) + CenterCrop(224)."""
    data = resolved(capsys, "--config", str(EXP / "lvs.yaml"))["data"]
    assert (data["test_audio_preset"], data["test_transform"], data["audio_preset"]) == ("lvs_test", "resize_center_crop", "ezvsl")


def test_sspl_configs_take_table_s1_vggsound_rates_and_the_global_batch(capsys):
    """SSPL trains on VGG-Sound here: Table S1's VGG-Sound rates, set in the files (w/ PCM lr1 5e-5,
    lr2 2e-5; w/o PCM lr1 1e-2, lr2 5e-3), the 256 x 256 squash, and the paper's global batch 256."""
    with_pcm = resolved(capsys, "--config", str(EXP / "sspl.yaml"))
    without = resolved(capsys, "--config", str(EXP / "sspl_wo_pcm.yaml"))
    assert {k: with_pcm["model"]["init_args"][k] for k in ("use_pcm", "lr_head", "lr_sound", "lr_pcm")} == {
        "use_pcm": True, "lr_head": 5e-5, "lr_sound": 2e-5, "lr_pcm": 2e-5}
    assert {k: without["model"]["init_args"][k] for k in ("use_pcm", "lr_head", "lr_sound")} == {
        "use_pcm": False, "lr_head": 1e-2, "lr_sound": 5e-3}
    for config in (with_pcm, without):
        assert (config["data"]["train_transform"], config["data"]["global_batch_size"]) == ("sspl", 256)


def test_icl_frames_are_mssl_s_squash_and_flip(capsys):
    data = resolved(capsys, "--config", str(EXP / "icl.yaml"))["data"]
    assert (data["train_transform"], data["image_size"], data["audio_preset"]) == ("mssl", 256, "mssl")


def test_ezvsl_marginnce_recipe_in_the_comment_resolves_to_ezvsl_s_optimiser(capsys):
    """marginNCE Table 5's "EZ-VSL-marginNCE" keeps EZ-VSL's recipe; EZ-VSL's ``train.py`` uses Adam
    without weight decay, so the recipe the file's comment gives must turn it off."""
    text = (EXP / "ezvsl_margin.yaml").read_text()
    recipe = next(line for line in text.splitlines() if "--model.pooling max" in line).split("--", 1)[1]
    flags = ("--" + recipe).split()
    model = resolved(capsys, "--config", str(EXP / "ezvsl_margin.yaml"), *flags)["model"]["init_args"]
    assert (model["pooling"], model["tau"], model["symmetric"], model["weight_decay"], model["margin"]) == ("max", 0.03, True, 0.0, -0.2)

"""Channels-last and compile change no number: the same loss and gradients, and clear errors."""

import pytest
import torch

from sslbench.errors import SSLBenchError
from sslbench.methods import EZVSL, SSPL
from sslbench.speed import Speed, trunks

from conftest import random_batch

TINY = {"vision_weights": None, "backbone_width": 4, "embed_dim": 16}


def test_channels_last_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    plain = EZVSL(**TINY)
    fast = EZVSL(**TINY)
    fast.load_state_dict(plain.state_dict())
    speed = Speed(channels_last=True)
    speed.setup(None, fast, "fit")
    assert fast.visual_net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    b1, b2 = random_batch(4, 64, seed=1), random_batch(4, 64, seed=1)
    speed.on_train_batch_start(None, fast, b2, 0)
    assert b2.image.is_contiguous(memory_format=torch.channels_last)
    loss_plain, loss_fast = plain.compute_loss(b1)["loss"], fast.compute_loss(b2)["loss"]
    torch.testing.assert_close(loss_fast, loss_plain, rtol=1e-5, atol=1e-5)
    loss_plain.backward(), loss_fast.backward()
    for name in ("audio_proj.weight", "visual_proj.weight", "visual_net.conv1.weight"):  # summed in another order
        a, b = dict(fast.named_parameters())[name].grad, dict(plain.named_parameters())[name].grad
        assert float((a - b).norm() / b.norm()) < 1e-4, name


def test_compile_finds_the_trunks_and_explains_when_it_cannot(monkeypatch):
    model = EZVSL(**TINY)
    assert [type(t).__name__ for t in trunks(model)] == ["ResNetTrunk", "ResNetTrunk"]
    sspl = SSPL(vggish_weights=None, projector_dim=16, predictor_dim=4, embed_dim=8, vision_weights=None, backbone_width=4)
    assert {type(t).__name__ for t in trunks(sspl)} == {"VGG16Conv53", "VGGish"}

    def broken(self, *args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch.nn.Module, "compile", broken)
    with pytest.raises(SSLBenchError, match="torch.compile is unavailable here.*no C\\+\\+ compiler"):
        Speed(channels_last=False, compile=True).setup(None, model, "fit")


def test_the_cli_turns_on_channels_last_and_takes_model_compile_as_speed_compile(tmp_path, monkeypatch):
    from sslbench.commands.train import build_cli, compile_alias

    assert compile_alias(["--model.compile", "true", "--model.compile=false", "--model.compiled"]) == [
        "--speed.compile", "true", "--speed.compile=false", "--model.compiled"]
    monkeypatch.chdir(tmp_path)
    cli = build_cli(["--model", "EZVSL", "--model.vision_weights", "null", "--model.backbone_width", "4",
                     "--speed.channels_last", "true", "--trainer.logger", "false"], run=False)
    speed = next(cb for cb in cli.trainer.callbacks if isinstance(cb, Speed))
    assert speed.channels_last and not speed.compile

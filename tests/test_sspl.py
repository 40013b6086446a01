"""SSPL: its frozen encoders, attention, PCM, SimSiam loss and learning-rate groups."""

import numpy as np
import pytest
import torch
import torchvision

from sslbench.errors import WeightsUnavailableError
from sslbench.losses.simsiam import SimSiamLoss
from sslbench.methods import SSPL
from sslbench.nn.pcm import PredictiveCoding
from sslbench.nn.vgg import VGG16Conv53, VGGish

from conftest import random_batch

TINY = {"vision_weights": None, "vggish_weights": None, "backbone_width": 4, "projector_dim": 32, "predictor_dim": 8, "embed_dim": 16}


def sspl_batch(n=4, size=64, examples=2, seed=0):
    return random_batch(n, size, (examples, 96, 64), views=["image_2"], seed=seed)


@pytest.mark.parametrize("use_pcm", [True, False])
def test_contract_and_frozen_encoders(use_pcm):
    model = SSPL(use_pcm=use_pcm, **TINY)
    model.train()
    assert not model.visual_net.training and not model.vggish.training  # frozen BN-free, but eval all the same
    b = sspl_batch()
    assert model(b.image, b.audio).shape == (4, 4, 4)  # VGG16 conv5_3: /16
    scores = model.localize(b.image, b.audio, size=(30, 40))
    assert scores.shape == (4, 30, 40) and not scores.requires_grad and 0 <= scores.min() <= scores.max() <= 1
    model.compute_loss(b)["loss"].backward()
    for name, p in model.named_parameters():
        frozen = name.startswith(("visual_net.", "vggish."))
        assert p.requires_grad != frozen, name
        if frozen:
            assert p.grad is None, name
        elif not name.startswith("predictor.3.bias"):
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_simsiam_loss_against_a_loop_and_its_stop_gradient():
    g = torch.Generator().manual_seed(0)
    p1, p2, z1, z2 = (torch.randn(5, 7, generator=g, requires_grad=True) for _ in range(4))
    loss = SimSiamLoss()(p1, p2, z1, z2)
    cos = lambda a, b: float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    P1, P2, Z1, Z2 = (t.detach().numpy() for t in (p1, p2, z1, z2))
    expected = np.mean([-0.5 * cos(P1[i], Z2[i]) - 0.5 * cos(P2[i], Z1[i]) for i in range(5)])
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.backward()
    assert z1.grad is None and z2.grad is None  # stop-gradient on the projector outputs
    assert p1.grad is not None and p2.grad is not None


def test_attention_pools_unnormalised_features_with_min_max_weights():
    model = SSPL(use_pcm=False, **TINY).eval()
    b = sspl_batch(n=2)
    f_a, g = model.encode_audio(b.audio)
    got = model.attended(b.image, f_a, g)
    visual = model.visual_net(b.image)  # (2, C, 4, 4)
    for i in range(2):
        v = visual[i].flatten(1).T.numpy()  # (P, C)
        a = g[i].detach().numpy()
        s = np.array([np.dot(x, a) / np.linalg.norm(x) / np.linalg.norm(a) for x in v])
        w = (s - s.min()) / (s.max() - s.min() + 1e-10)
        np.testing.assert_allclose(got[i].detach().numpy(), (w[:, None] * v).sum(0), rtol=1e-4, atol=1e-5)


def test_audio_head_averages_over_vggish_examples():
    model = SSPL(use_pcm=False, **TINY).eval()
    audio = torch.randn(2, 3, 96, 64)
    f_a, g = model.encode_audio(audio)
    per_example = model.vggish(audio[1].unsqueeze(1))
    torch.testing.assert_close(f_a[1], per_example.mean(0))
    torch.testing.assert_close(g[1], model.sound_head(per_example).mean(0))
    with pytest.raises(ValueError, match="vggish"):
        model.encode_audio(torch.randn(2, 1, 257, 200))


def test_pcm_shapes_steps_and_per_step_batchnorm():
    pcm = PredictiveCoding(channels=8, audio_dim=4, steps=5).eval()
    visual, audio = torch.randn(2, 8, 14, 14), torch.nn.functional.normalize(torch.randn(2, 4), dim=1)
    assert pcm(visual, audio).shape == (2, 8, 14, 14)
    assert len(pcm.bn_down) == len(pcm.bn_up) == 5
    assert pcm(torch.randn(2, 8, 7, 7), audio).shape == (2, 8, 7, 7)  # 112 px: resized where sizes do not chain
    shorter = PredictiveCoding(channels=8, audio_dim=4, steps=3).eval()
    shorter.load_state_dict(pcm.state_dict(), strict=False)
    assert not torch.allclose(shorter(visual, audio), pcm(visual, audio))  # T matters
    assert pcm(visual, audio + 1).sub(pcm(visual, audio)).abs().sum() > 0  # the audio error reaches the map


def test_learning_rate_groups_follow_table_s1():
    with_pcm = SSPL(**TINY).configure_optimizers()
    lrs = sorted((g["lr"], g["weight_decay"], len(g["params"])) for g in with_pcm.param_groups)
    assert [lr for lr, _, _ in lrs] == [2e-5, 2e-5, 2e-5, 5e-5]
    assert (2e-5, 0.0, 6) in lrs  # a_l and b_l without weight decay
    assert isinstance(with_pcm, torch.optim.AdamW) and with_pcm.defaults["betas"] == (0.9, 0.999)
    without = SSPL(use_pcm=False, **TINY).configure_optimizers()
    assert sorted(g["lr"] for g in without.param_groups) == [5e-4, 2e-3]
    optimised = {id(p) for g in with_pcm.param_groups for p in g["params"]}
    model = SSPL(**TINY)
    assert len({id(p) for p in model.parameters() if p.requires_grad}) == len(optimised)


def test_vgg16_trunk_takes_torchvision_keys_and_stops_before_the_last_relu(tmp_path):
    reference = torchvision.models.vgg16(weights=None)
    torch.save(reference.state_dict(), tmp_path / "vgg16.pth")
    trunk = VGG16Conv53(64, str(tmp_path / "vgg16.pth")).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(trunk(x), reference.features[:29](x))
        assert trunk(x).min() < 0  # conv5_3 without its ReLU
    with pytest.raises(WeightsUnavailableError, match="not found"):
        VGG16Conv53(64, str(tmp_path / "missing.pth"))


def test_vggish_weights_by_key_and_a_wrong_file_names_the_keys(tmp_path):
    source = VGGish(64)
    torch.save(source.state_dict(), tmp_path / "vggish.pth")
    loaded = VGGish(64, str(tmp_path / "vggish.pth"))
    x = torch.randn(2, 1, 96, 64)
    torch.testing.assert_close(loaded(x), source(x))
    assert {k for k in source.state_dict()} >= {"features.0.weight", "features.13.weight", "embeddings.4.weight"}
    assert source.state_dict()["embeddings.0.weight"].shape == (4096, 512 * 6 * 4)
    torch.save({"features.0.weight": torch.zeros(64, 1, 3, 3)}, tmp_path / "bad.pth")
    with pytest.raises(WeightsUnavailableError, match=r"17 keys missing \['embeddings.0.bias'"):
        VGGish(64, str(tmp_path / "bad.pth"))


def test_synthetic_encoder_stand_ins_load_into_sspl(tmp_path):
    from sslbench.bench.encoders import pretrain

    paths = pretrain(width=2, image_size=32, samples=64, epochs=1, out=str(tmp_path))
    model = SSPL(vision_weights=str(paths["vision"]), vggish_weights=str(paths["vggish"]), backbone_width=2,
                 projector_dim=8, predictor_dim=4, embed_dim=4)
    saved = torch.load(paths["vggish"], weights_only=True)
    torch.testing.assert_close(model.vggish.state_dict()["features.0.weight"], saved["features.0.weight"])
    assert not any(p.requires_grad for p in model.vggish.parameters())
    with pytest.raises(WeightsUnavailableError, match="wrong shape"):
        SSPL(vision_weights=None, vggish_weights=str(paths["vggish"]), backbone_width=4)


def test_embeddings_of_one_modality_do_not_see_the_other():
    model = SSPL(**TINY).eval()
    b = sspl_batch(n=3)
    image_emb, audio_emb = model.embeddings(b.image, b.audio)
    other_image, other_audio = model.embeddings(b.views["image_2"], b.audio.flip(0))
    assert image_emb.shape == audio_emb.shape == (3, model.visual_net.out_channels)
    torch.testing.assert_close(model.embeddings(b.image, b.audio.flip(0))[0], image_emb)  # image side ignores the audio
    torch.testing.assert_close(model.embeddings(b.views["image_2"], b.audio)[1], audio_emb)  # and vice versa
    assert not torch.allclose(other_image, image_emb) and not torch.allclose(other_audio, audio_emb)

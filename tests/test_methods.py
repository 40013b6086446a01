"""The method contract: shapes, scores, no-grad localization, gradients, weights, checkpoints."""

from pathlib import Path

import pytest
import torch

from sslbench.errors import WeightsUnavailableError
from sslbench.methods import EZVSL, ICL, LVS, SSPL, ObjectGuidance, SSLAlign
from sslbench.nn.backbones import IMAGENET_FILE, ResNetTrunk, resnet18_trunk

from conftest import random_batch

TINY = {"vision_weights": None, "backbone_width": 4}


def batch(n=3, size=64, seed=0):
    return random_batch(n, size, seed=seed)


@pytest.mark.parametrize("method,feature_side", [(EZVSL(embed_dim=16, **TINY), 2), (LVS(**TINY), 4)])
def test_contract(method, feature_side):
    b = batch()
    raw = method(b.image, b.audio)
    assert raw.shape == (3, feature_side, feature_side)  # 64 px: /32 (torchvision) or /16 (LVS-style)
    scores = method.localize(b.image, b.audio, size=(40, 50))
    assert scores.shape == (3, 40, 50) and not scores.requires_grad
    assert scores.min() >= 0 and scores.max() <= 1
    loss = method.compute_loss(b)["loss"]
    loss.backward()
    for name, p in method.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_feature_resolutions_of_the_two_resnet_families():
    x = torch.zeros(1, 3, 224, 224)
    assert resnet18_trunk(3, 4, 2)(x).shape[-2:] == (7, 7)
    assert resnet18_trunk(3, 4, 1)(x).shape[-2:] == (14, 14)
    assert resnet18_trunk(1, 4, 2)(torch.zeros(1, 1, 257, 200)).shape[-2:] == (9, 7)


def test_margin_and_pooling_reach_the_loss():
    model = EZVSL(embed_dim=16, margin=-0.2, pooling="soft_threshold", tau=0.07, symmetric=False, **TINY)
    crit = model.criterion
    assert (crit.margin, crit.pooling, crit.tau, crit.symmetric) == (-0.2, "soft_threshold", 0.07, False)


def test_imagenet_weights_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache, and no network in tests
    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", _no_network)
    with pytest.raises(WeightsUnavailableError, match=IMAGENET_FILE):
        EZVSL(backbone_width=64, vision_weights="imagenet")


def _no_network(*args, **kwargs):
    raise OSError("network unreachable")


def test_imagenet_weights_load_from_the_local_cache(tmp_path, monkeypatch):
    """The real loading path: torchvision finds the file in $TORCH_HOME/hub/checkpoints."""
    reference = ResNetTrunk(3, 64, 2)
    state = {**reference.state_dict(), "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(state, tmp_path / "hub" / "checkpoints" / IMAGENET_FILE)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = EZVSL(backbone_width=64, vision_weights="imagenet")
    assert torch.equal(model.visual_net.conv1.weight, reference.conv1.weight)


def test_weights_from_a_file_and_a_wrong_file(tmp_path):
    trunk = ResNetTrunk(3, 64, 1)
    path = tmp_path / "r18.pth"
    torch.save(trunk.state_dict(), path)
    model = LVS(backbone_width=64, vision_weights=str(path))
    assert torch.equal(model.visual_net.layer4[0].conv1.weight, trunk.layer4[0].conv1.weight)
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "head.weight": torch.zeros(2)}, tmp_path / "bad.pth")
    with pytest.raises(WeightsUnavailableError, match="head.weight"):
        LVS(backbone_width=64, vision_weights=str(tmp_path / "bad.pth"))
    with pytest.raises(WeightsUnavailableError, match="not found"):
        LVS(backbone_width=64, vision_weights=str(tmp_path / "missing.pth"))


def test_object_guidance_is_frozen_and_mixes_like_ezvsl(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(ResNetTrunk(3, 64, 2).state_dict(), path)
    ogl = ObjectGuidance(alpha=0.4, weights=str(path))
    model = EZVSL(embed_dim=16, object_guidance=ogl, **TINY)
    model.train()
    assert not ogl.net.training and not any(p.requires_grad for p in ogl.parameters())
    b = batch(size=64)
    plain = EZVSL(embed_dim=16, **TINY)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("object_guidance")})
    av = plain.localize(b.image, b.audio)
    obj = ogl.object_map(b.image)
    from sslbench.eval.functional import min_max, upsample

    expected = min_max(0.4 * av + 0.6 * min_max(upsample(obj, 64, model.upsample_mode)))
    torch.testing.assert_close(model.localize(b.image, b.audio), expected)
    assert all(not p.requires_grad for p in model.object_guidance.parameters())
    optimised = {id(p) for group in model.configure_optimizers().param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in ogl.parameters()}


@pytest.mark.parametrize(
    "cls,kwargs,audio_shape",
    [
        (EZVSL, {"embed_dim": 16, "margin": -0.2, **TINY}, (1, 257, 200)),
        (SSPL, {"vggish_weights": None, "projector_dim": 16, "predictor_dim": 4, "embed_dim": 8, **TINY}, (1, 96, 64)),
        (SSLAlign, {"proj_dim": 8, "similarity": "paper", **TINY}, (1, 257, 200)),
        (ICL, {"delta_v": 0.3, "iterative_epoch": 1, **TINY}, (1, 51, 64)),
    ],
)
def test_checkpoint_round_trip(tmp_path: Path, cls, kwargs, audio_shape):
    import lightning as L

    from sslbench.methods.base import load_method

    model = cls(**kwargs)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, max_epochs=0)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = cls.load_from_checkpoint(tmp_path / "m.ckpt")
    assert loaded.hparams == model.hparams
    b = random_batch(audio_shape=audio_shape)
    model.eval(), loaded.eval()
    torch.testing.assert_close(model(b.image, b.audio), loaded(b.image, b.audio))
    with pytest.raises(WeightsUnavailableError, match="does not record its method class"):
        load_method(tmp_path / "m.ckpt")  # saved outside `sslbench fit`: no class path in it


def test_object_guidance_normalisations_of_each_reference(tmp_path):
    from sslbench.eval.functional import min_max, upsample

    path = tmp_path / "r18.pth"
    torch.save(ResNetTrunk(3, 64, 2).state_dict(), path)
    b = batch(size=64)
    model = EZVSL(embed_dim=16, tau=0.05, **TINY).eval()
    raw = upsample(model(b.image, b.audio), 64, model.upsample_mode)
    obj = upsample(ObjectGuidance(weights=str(path)).object_map(b.image), 64, model.upsample_mode)
    fixed = ObjectGuidance(alpha=0.9, weights=str(path), normalization="fixed_range")
    # SLAVC test.py: min_max_norm(x, -1/tau, 1/tau) and min_max_norm(obj, 0, 2.5), never clipped
    expected = 0.9 * (raw + 20) / 40 + 0.1 * obj / 2.5
    torch.testing.assert_close(fixed.refine(raw, b.image, model.upsample_mode, model.raw_score_range), expected)
    # a hand case: av 30 (beyond 1/tau = 20) -> 1.25, obj 5 -> 2.0: 0.9 * 1.25 + 0.1 * 2.0 = 1.325 (clipping gave 1.0)
    fixed.object_map = lambda image: torch.full((image.shape[0], 7, 7), 5.0)
    hand = fixed.refine(torch.full_like(raw, 30.0), b.image, model.upsample_mode, model.raw_score_range)
    torch.testing.assert_close(hand, torch.full_like(raw, 1.325))
    lvs = ObjectGuidance(alpha=0.4, weights=str(path), normalization="lvs")
    constant = torch.full_like(raw, -3.0)  # the one case where 1 - minmax(-x) and minmax(x) differ
    got = lvs.refine(constant, b.image, model.upsample_mode)
    inv = lambda x: 1 - min_max(-x)  # noqa: E731
    torch.testing.assert_close(got, inv(0.4 * inv(constant) + 0.6 * inv(obj)))
    assert not torch.allclose(got, ObjectGuidance(weights=str(path)).refine(constant, b.image, model.upsample_mode))
    with pytest.raises(ValueError, match="normalization"):
        ObjectGuidance(weights=str(path), normalization="zscore")
    with pytest.raises(ValueError, match="fixed range"):
        fixed.refine(raw, b.image, model.upsample_mode, None)


def test_trunk_weights_of_another_width_load_where_they_fit(tmp_path):
    narrow = ResNetTrunk(3, 8, 2)
    torch.save(narrow.state_dict(), tmp_path / "r18_w8.pth")
    model = EZVSL(embed_dim=16, backbone_width=8, vision_weights=str(tmp_path / "r18_w8.pth"))
    assert torch.equal(model.visual_net.layer3[0].conv2.weight, narrow.layer3[0].conv2.weight)
    with pytest.raises(WeightsUnavailableError, match="width 4"):
        EZVSL(embed_dim=16, backbone_width=4, vision_weights=str(tmp_path / "r18_w8.pth"))


def test_object_guidance_mixes_as_each_methods_reference_when_not_told(tmp_path):
    """SLAVC's ``test.py`` mixes OGL over fixed ranges, SSLalignment's with LVS's inverted min-max,
    EZ-VSL's with min-max: with ``experiments/ogl.yaml`` on top of a method's config, each gets its
    own reference's mix; a normalization named in the config wins."""
    from sslbench.methods import SLAVC

    path = tmp_path / "r18.pth"
    torch.save(ResNetTrunk(3, 64, 2).state_dict(), path)
    made = {
        "EZVSL": EZVSL(embed_dim=16, object_guidance=ObjectGuidance(weights=str(path)), **TINY),
        "SLAVC": SLAVC(embed_dim=16, object_guidance=ObjectGuidance(weights=str(path)), **TINY),
        "SSLAlign": SSLAlign(vision_weights=None, backbone_width=4, proj_dim=8, object_guidance=ObjectGuidance(weights=str(path))),
    }
    assert {name: m.object_guidance.normalization for name, m in made.items()} == {
        "EZVSL": "minmax", "SLAVC": "fixed_range", "SSLAlign": "lvs"}
    told = SLAVC(embed_dim=16, object_guidance=ObjectGuidance(weights=str(path), normalization="minmax"), **TINY)
    assert told.object_guidance.normalization == "minmax"

"""Released checkpoints load into the sslbench classes and give the reference's own map.

Each test builds a state dict in the reference repository's layout from its documented module
names and shapes (methods.md; torchvision supplies the ResNet/VGG key names), with random weights
and random BatchNorm statistics, computes the localization map the way the reference forward
does, written here from the papers' descriptions, and checks that the sslbench model with the
remapped weights gives the same map.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from sslbench import cli
from sslbench.checkpoints import ReferenceCheckpointError, detect_layout, load_reference_checkpoint
from sslbench.methods import EZVSL, FNAC, IOI, LVS, SLAVC, SSLTIE, SSPL, SSLAlign


def randomize_statistics(module: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return module.eval()


def torchvision_trunk(audio: bool, lvs_style: bool) -> nn.Module:
    """A torchvision ResNet-18 as the references build it. EZ-VSL/SLAVC: Identity pooling and
    classifier, audio conv1 swapped for a 1-channel one. LVS/SSL-Align (``base_models.py``): all
    three first convs (``conv1``, ``conv1_a``, ``conv1_flow``), the unused ``fc``, layer4 stride 1."""
    net = torchvision.models.resnet18()
    if lvs_style:
        net.conv1_a = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        net.conv1_flow = nn.Conv2d(6, 64, 7, 2, 3, bias=False)
        net.layer4[0].conv1.stride = (1, 1)
        net.layer4[0].downsample[0].stride = (1, 1)
    else:
        net.avgpool, net.fc = nn.Identity(), nn.Identity()
        if audio:
            net.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    return randomize_statistics(net, seed=int(audio) + 2 * int(lvs_style))


def trunk_map(net: nn.Module, x: torch.Tensor, first: str = "conv1") -> torch.Tensor:
    x = net.maxpool(net.relu(net.bn1(getattr(net, first)(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


def save_state(path, state: dict, container: str | None, ddp: bool) -> None:
    state = {("module." if ddp else "") + k: v for k, v in state.items()}
    torch.save({container: state, "epoch": 3} if container else state, path)


@pytest.fixture
def inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, 64, 64, generator=g), torch.randn(2, 1, 64, 48, generator=g)


@torch.no_grad()
@pytest.mark.parametrize("method", [EZVSL, FNAC])
def test_ezvsl_checkpoint(tmp_path, inputs, method):
    """EZ-VSL's ``best.pth``; FNAC_AVL's ``train.py`` saves the same keys (its dropouts hold none)."""
    image, audio = inputs
    ref = nn.Module()
    ref.imgnet, ref.audnet = torchvision_trunk(False, False), torchvision_trunk(True, False)
    ref.img_proj, ref.aud_proj = nn.Conv2d(512, 32, 1), nn.Linear(512, 32)
    save_state(tmp_path / "best.pth", ref.state_dict(), "model", ddp=True)
    img = F.normalize(ref.img_proj(trunk_map(ref.imgnet, image)), dim=1)
    aud = F.normalize(ref.aud_proj(trunk_map(ref.audnet, audio).amax((-2, -1))), dim=1)
    expected = torch.einsum("nchw,nc->nhw", img, aud) / 0.03

    assert detect_layout(tmp_path / "best.pth") == "ezvsl"
    model = method(embed_dim=32, vision_weights=None)
    report = load_reference_checkpoint(model, tmp_path / "best.pth")
    assert "ezvsl layout" in report
    torch.testing.assert_close(model.eval()(image, audio), expected, rtol=1e-4, atol=1e-3)


@torch.no_grad()
@pytest.mark.parametrize("method", ["lvs", "ssl_align", "ssltie"])
def test_lvs_style_checkpoints(tmp_path, inputs, method):
    """LVS's ``model_state_dict``; SSL-Align's AlignmentNet and SSL-TIE's AVENet (``main.py`` saves
    ``{"state_dict": ...}``) carry fusion layers (vision_fc1, conv3, norm3) their maps never use."""
    image, audio = inputs
    ref = nn.Module()
    ref.imgnet, ref.audnet = torchvision_trunk(False, True), torchvision_trunk(True, True)
    if method == "ssl_align":
        ref.img_proj, ref.aud_proj = nn.Linear(512, 512), nn.Linear(512, 512)
    if method != "lvs":
        ref.vision_fc1, ref.conv3, ref.norm3 = nn.Conv2d(1024, 512, 1), nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1)
    container = "state_dict" if method == "ssltie" else "model_state_dict"
    save_state(tmp_path / "model.pth.tar", ref.state_dict(), container, ddp=method == "lvs")
    img = F.normalize(trunk_map(ref.imgnet, image), dim=1)
    aud = F.normalize(trunk_map(ref.audnet, audio, first="conv1_a").amax((-2, -1)), dim=1)
    expected = torch.einsum("nchw,nc->nhw", img, aud)

    assert detect_layout(tmp_path / "model.pth.tar") == method
    model = {"lvs": LVS, "ssl_align": SSLAlign, "ssltie": SSLTIE}[method]()
    assert "ignored" in load_reference_checkpoint(model, tmp_path / "model.pth.tar")
    torch.testing.assert_close(model.eval()(image, audio), expected, rtol=1e-4, atol=1e-4)
    if method == "ssl_align":
        torch.testing.assert_close(model.visual_proj.weight, ref.img_proj.weight)


@torch.no_grad()
def test_slavc_checkpoint_maps_come_from_the_momentum_encoders(tmp_path, inputs):
    image, audio = inputs
    ref = nn.Module()
    for prefix in ("", "momentum_"):
        setattr(ref, prefix + "imgnet", torchvision_trunk(False, False))
        setattr(ref, prefix + "audnet", torchvision_trunk(True, False))
        for head in "12":
            setattr(ref, f"{prefix}img_proj{head}", nn.Conv2d(512, 16, 1))
            setattr(ref, f"{prefix}aud_proj{head}", nn.Linear(512, 16))
    ref.momentum_imgnet.layer1[0].bn1.running_mean.add_(0.3)  # online and momentum nets differ
    save_state(tmp_path / "slavc.pth", ref.state_dict(), "model", ddp=True)

    def head_map(prefix, head):
        features = trunk_map(getattr(ref, prefix + "imgnet"), image)
        img = F.normalize(getattr(ref, f"{prefix}img_proj{head}")(features), dim=1)
        pooled = trunk_map(getattr(ref, prefix + "audnet"), audio).amax((-2, -1))
        aud = F.normalize(getattr(ref, f"{prefix}aud_proj{head}")(pooled), dim=1)
        return torch.einsum("nchw,nc->nhw", img, aud) / 0.03

    model = SLAVC(embed_dim=16, vision_weights=None)
    load_reference_checkpoint(model, tmp_path / "slavc.pth")
    model.eval()
    expected = (head_map("momentum_", 1) + head_map("momentum_", 2)) / 2
    torch.testing.assert_close(model(image, audio), expected, rtol=1e-4, atol=1e-3)
    model.momentum_eval = False
    torch.testing.assert_close(model(image, audio), (head_map("", 1) + head_map("", 2)) / 2, rtol=1e-4, atol=1e-3)


# -- SSPL: four files, one per network -------------------------------------------------------


def vgg_features(config, in_channels: int) -> nn.Sequential:
    layers = []
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(in_channels, item, 3, padding=1), nn.ReLU()]
            in_channels = item
    return nn.Sequential(*layers)


def pcnet_state(channels: int, audio_dim: int, cycles: int, seed: int = 3) -> dict[str, torch.Tensor]:
    """SSPL's ``PCNet`` state dict by its documented names: PredProcess (1x1 audio predictor, two
    3x3 convs in ``pred_module``s), ErrorProcess (two ConvTranspose, one ``error_module``, the
    1x1 output), rates a0/b0, and BatchNorm lists BNPred, BNError, BNPred_step, BNError_step."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    c, a = channels, audio_dim
    state = {
        "PredProcess.0.weight": rand(a, c, 1, 1, scale=c**-0.5), "PredProcess.0.bias": rand(a, scale=0.1),
        "PredProcess.1.conv2d.weight": rand(c, c, 3, 3, scale=(9 * c) ** -0.5),
        "PredProcess.2.conv2d.weight": rand(c, c, 3, 3, scale=(9 * c) ** -0.5),
        "ErrorProcess.0.weight": rand(a, c, 1, 1, scale=a**-0.5),
        "ErrorProcess.1.weight": rand(c, c, 3, 3, scale=(9 * c) ** -0.5),
        "ErrorProcess.2.convtrans2d.weight": rand(c, c, 3, 3, scale=(9 * c) ** -0.5),
        "ErrorProcess.3.weight": rand(c, c, 1, 1, scale=c**-0.5), "ErrorProcess.3.bias": rand(c, scale=0.1),
    }
    for i in range(3):
        state[f"a0.{i}"] = 1 + rand(1, c, 1, 1, scale=0.2)
        state[f"b0.{i}"] = 0.5 + rand(1, c, 1, 1, scale=0.2)
    bns = [f"BNPred.{i}" for i in range(2)] + [f"BNError.{i}" for i in range(3)]
    bns += [f"BNPred_step.{i}" for i in range(2 * cycles)] + [f"BNError_step.{i}" for i in range(3 * cycles)]
    for name in bns:
        state.update({
            f"{name}.weight": 1 + rand(c, scale=0.1), f"{name}.bias": rand(c, scale=0.1),
            f"{name}.running_mean": rand(c, scale=0.1), f"{name}.running_var": 0.5 + torch.rand(c, generator=g),
            f"{name}.num_batches_tracked": torch.tensor(7),
        })
    return state


def reference_pcm(sd: dict, f_v: torch.Tensor, f_a: torch.Tensor, cycles: int) -> torch.Tensor:
    """The PCM forward of methods.md 4, step by step on the reference-layout weights."""

    def bn(x, name):
        return F.batch_norm(x, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"], sd[f"{name}.bias"], False, 0.0, 1e-5)

    def predict(x, level):  # 3x3 conv then 2x2 max pool, top-down
        return F.max_pool2d(F.conv2d(x, sd[f"PredProcess.{level}.conv2d.weight"], padding=1), 2)

    def audio_error(r1):
        p0 = F.gelu(F.conv2d(r1, sd["PredProcess.0.weight"], sd["PredProcess.0.bias"])).mean((-2, -1))
        return (f_a - p0)[:, :, None, None].expand(-1, -1, *r1.shape[-2:])

    a = [F.relu(sd[f"a0.{i}"]) for i in range(3)]
    b = [F.relu(sd[f"b0.{i}"]) for i in range(3)]

    def feedforward(r1, r2, r3, p1, p2, bn1, bn2, bn3):
        r1 = F.gelu(bn(r1 + a[0] * F.conv_transpose2d(audio_error(r1), sd["ErrorProcess.0.weight"]), bn1))
        r2 = F.gelu(bn(r2 + a[1] * F.conv_transpose2d(r1 - p1, sd["ErrorProcess.1.weight"], stride=2), bn2))
        e2 = F.interpolate(r2 - p2, scale_factor=2, mode="bilinear", align_corners=True)
        r3 = F.gelu(bn(r3 + a[2] * F.conv_transpose2d(e2, sd["ErrorProcess.2.convtrans2d.weight"], padding=1), bn3))
        return r1, r2, r3

    p2 = F.gelu(bn(predict(f_v, 2), "BNPred.1"))
    p1 = F.gelu(bn(predict(p2, 1), "BNPred.0"))
    r1, r2, r3 = feedforward(p1, p2, f_v, p1, p2, "BNError.0", "BNError.1", "BNError.2")
    for t in range(cycles):
        r3 = F.gelu((1 - b[2]) * r3 + b[2] * f_v)
        p2 = predict(r3, 2)
        r2 = F.gelu(bn((1 - b[1]) * r2 + b[1] * p2, f"BNPred_step.{2 * t + 1}"))
        p1 = predict(r2, 1)
        r1 = F.gelu(bn((1 - b[0]) * r1 + b[0] * p1, f"BNPred_step.{2 * t}"))
        r1, r2, r3 = feedforward(r1, r2, r3, p1, p2, *(f"BNError_step.{3 * t + i}" for i in range(3)))
    return F.conv_transpose2d(r3, sd["ErrorProcess.3.weight"], sd["ErrorProcess.3.bias"])


@torch.no_grad()
def test_sspl_checkpoint_folder_with_pcm(tmp_path):
    """Width 8 VGGs keep the test fast; key names are the released ones, shapes scale with width."""
    g = torch.Generator().manual_seed(5)
    vgg16 = (8, 8, "M", 16, 16, "M", 32, 32, 32, "M", 64, 64, 64, "M", 64, 64, 64)
    frame = nn.Module()
    frame.feat_extractor = vgg_features(vgg16, 3)[:29]
    sound = nn.Module()
    sound.features = vgg_features((8, "M", 16, "M", 32, 32, "M", 64, 64, "M"), 1)
    sound.embeddings = nn.Sequential(nn.Linear(64 * 4 * 6, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 128), nn.ReLU())
    sound.fc = nn.Sequential(nn.Linear(128, 512), nn.ReLU(), nn.Linear(512, 64))
    pcm = pcnet_state(64, 128, cycles=4)
    head = nn.Module()
    head.projector = nn.Module()
    for i, (n_in, affine) in enumerate([(64, True), (2048, True), (2048, False)], 1):
        layer = [nn.Linear(n_in, 2048, bias=False), nn.BatchNorm1d(2048, affine=affine)] + ([nn.ReLU()] if affine else [])
        setattr(head.projector, f"layer{i}", nn.Sequential(*layer))
    head.predictor = nn.Module()
    head.predictor.layer1 = nn.Sequential(nn.Linear(2048, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU())
    head.predictor.layer2 = nn.Linear(512, 2048)
    torch.save(frame.state_dict(), tmp_path / "frame_best.pth")  # net_frame is not DDP-wrapped
    save_state(tmp_path / "sound_best.pth", sound.state_dict(), None, ddp=True)
    save_state(tmp_path / "pcm_best.pth", pcm, None, ddp=True)
    save_state(tmp_path / "ssl_head_best.pth", randomize_statistics(head).state_dict(), None, ddp=True)

    image = torch.randn(2, 3, 224, 224, generator=g)
    examples = torch.randn(2, 3, 96, 64, generator=g)
    f_v = frame.feat_extractor(image)
    x = sound.features(examples.reshape(6, 1, 96, 64))
    f_a = sound.embeddings(x.permute(0, 2, 3, 1).flatten(1))  # torchvggish flattens channels-last
    g_a = sound.fc(f_a).view(2, 3, -1).mean(1)
    f_a = F.normalize(f_a.view(2, 3, -1).mean(1), dim=1)
    refined = reference_pcm(pcm, f_v, f_a, cycles=4)
    expected = torch.einsum("nchw,nc->nhw", F.normalize(refined, dim=1), F.normalize(g_a, dim=1))

    assert detect_layout(tmp_path) == detect_layout(tmp_path / "sound_best.pth") == "sspl"
    model = SSPL(backbone_width=8, vision_weights=None, vggish_weights=None)
    load_reference_checkpoint(model, tmp_path)
    torch.testing.assert_close(model.eval()(image, examples), expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(model.projector[7].running_var, head.projector.layer3[1].running_var)


# -- errors -----------------------------------------------------------------------------------


def ezvsl_reference(tmp_path, embed_dim=16):
    ref = nn.Module()
    ref.imgnet, ref.audnet = torchvision_trunk(False, False), torchvision_trunk(True, False)
    ref.img_proj, ref.aud_proj = nn.Conv2d(512, embed_dim, 1), nn.Linear(512, embed_dim)
    return ref.state_dict()


def test_a_file_that_does_not_fit_names_its_keys(tmp_path):
    state = ezvsl_reference(tmp_path)
    state.pop("aud_proj.bias")
    state["extra_head.weight"] = torch.zeros(3)
    save_state(tmp_path / "broken.pth", state, "model", ddp=True)
    with pytest.raises(ReferenceCheckpointError) as err:
        load_reference_checkpoint(EZVSL(embed_dim=16, vision_weights=None), tmp_path / "broken.pth")
    message = str(err.value)
    assert "audio_proj.bias" in message and "extra_head.weight" in message and "1 missing" in message

    with pytest.raises(ReferenceCheckpointError, match=r"embed_dim"):  # a width that does not fit
        load_reference_checkpoint(EZVSL(embed_dim=32, vision_weights=None), tmp_path / "broken.pth", layout="ezvsl")
    save_state(tmp_path / "ok.pth", ezvsl_reference(tmp_path), "model", ddp=False)
    with pytest.raises(ReferenceCheckpointError, match=r"--model EZVSL"):
        load_reference_checkpoint(LVS(), tmp_path / "ok.pth")
    (tmp_path / "noise.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ReferenceCheckpointError, match="cannot read"):
        load_reference_checkpoint(EZVSL(vision_weights=None), tmp_path / "noise.pth")


def test_sslbench_test_scores_a_reference_checkpoint(tmp_path, run_root, capsys):
    save_state(tmp_path / "ezvsl.pth", ezvsl_reference(tmp_path), "model", ddp=True)
    args = ["test", "--model", "EZVSL", "--model.vision_weights", "null", "--model.embed_dim", "16",
            "--data.image_size", "64", "--data.batch_size", "4", "--data.num_workers", "0",
            "--data.test", '[{"class_path": "SyntheticScenes", "init_args": {"num_samples": 8}}]',
            "--ckpt_path", str(tmp_path / "ezvsl.pth"), *run_root]
    cli.main(args)
    assert "ezvsl layout" in capsys.readouterr().err
    assert list(tmp_path.rglob("test_synthetic*.json"))


@torch.no_grad()
def test_noprior_lightning_checkpoint(tmp_path, inputs):
    """NoPrior_MultiSSL ``train.py`` saves Lightning checkpoints of ``NoPriorModule``: ``model.imgnet``
    and ``model.audnet`` (torchvision ResNet-18s, Identity pooling), plus Hear-The-Flow's optical-flow
    branch ``model.flownet`` / ``model.flowatt``, which sslbench's IOI has no input for (dropped, and
    said so). The map is the reference's PosLogits, cos(imgnet(x), maxpool(audnet(a)))."""
    image, audio = inputs
    ref = nn.Module()
    ref.imgnet, ref.audnet = torchvision_trunk(False, False), torchvision_trunk(True, False)
    ref.flowatt = nn.Conv2d(512, 64, 1)  # stands for Self_Attn's query/key/value convs
    state = {f"model.{k}": v for k, v in ref.state_dict().items()}
    torch.save({"state_dict": state, "pytorch-lightning_version": "1.9.0", "epoch": 7}, tmp_path / "noprior.ckpt")
    img = F.normalize(trunk_map(ref.imgnet, image), dim=1)
    aud = F.normalize(trunk_map(ref.audnet, audio).amax((-2, -1)), dim=1)
    expected = torch.einsum("nchw,nc->nhw", img, aud)

    assert detect_layout(tmp_path / "noprior.ckpt") == "noprior"
    model = IOI(vision_weights=None)
    report = load_reference_checkpoint(model, tmp_path / "noprior.ckpt")
    assert "optical-flow" in report and "ignored 2 unused" in report
    torch.testing.assert_close(model.eval()(image, audio), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ReferenceCheckpointError, match="loads into IOI"):
        load_reference_checkpoint(EZVSL(vision_weights=None), tmp_path / "noprior.ckpt")

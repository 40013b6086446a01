"""SSL-TIE: its transform against facts from the reference's ``TfEquivarianceLoss.transform`` and a
slow sampler written from kornia's documented conventions, the loss's composition
(``main.py:train_one_epoch``), its SpecAugment (``datasets/dataloader.py``), its front-end, and the
contract."""

import math

import pytest
import torch
import torch.nn.functional as F

from sslbench.audio import build_frontend, cut_window, get_preset
from sslbench.losses.equivariance import RotateZoomFlip, consistency
from sslbench.losses.lvs import LVSLoss
from sslbench.methods import SSLTIE
from sslbench.methods.ssl_tie import MASKED_DB, spec_augment

from conftest import random_batch

TINY = {"vision_weights": None, "backbone_width": 4}


def test_transform_of_a_map_matches_the_reference():
    """jinxiang-liu/SSL-TIE ``utils/tf_equivariance_loss.py`` ``TfEquivarianceLoss.transform`` on a
    14 x 14 ramp (input_hw 224, centre (112, 112)), run in a scratch copy of the reference: the map is
    resized to 224, warped, resized to 14 * scale, then flipped."""
    ramp = (torch.arange(196.0) / 196).view(1, 1, 14, 14)
    zoomed = RotateZoomFlip(torch.tensor([30.0]), 0.5, True).apply(ramp, (224, 224))
    assert zoomed.shape == (1, 1, 7, 7)
    assert float(zoomed.sum()) == pytest.approx(6.20525, abs=1e-4)
    assert zoomed[0, 0, 3].tolist() == pytest.approx([0.0, 0.6399, 0.65416, 0.49363, 0.33309, 0.14899, 0.0], abs=1e-4)
    turned = RotateZoomFlip(torch.tensor([-45.0]), 1.0, False).apply(ramp, (224, 224))
    assert turned.shape == (1, 1, 14, 14) and float(turned.sum()) == pytest.approx(78.10648, abs=1e-4)
    assert turned[0, 0, 7, :3].tolist() == pytest.approx([0.83152, 0.78462, 0.73772], abs=1e-4)


def slow_warp(image, angle_deg, scale):
    """kornia ``warp_affine`` written out: the destination pixel (x, y) reads the source at
    M^-1 (x, y), M the rotation about (w / 2, h / 2) of ``get_rotation_matrix2d`` (counter-clockwise
    as displayed: x' = c x + s y + ..., y' = -s x + c y + ...), bilinear, zeros outside the pixel
    centres 0 .. side - 1."""
    h, w = image.shape
    cx, cy = w / 2, h / 2
    a, b = scale * math.cos(math.radians(angle_deg)), scale * math.sin(math.radians(angle_deg))
    det = a * a + b * b
    out = torch.zeros(h, w, dtype=torch.float64)
    for y in range(h):
        for x in range(w):
            dx, dy = x - cx, y - cy  # invert [[a, b], [-b, a]] about the centre
            sx, sy = cx + (a * dx - b * dy) / det, cy + (b * dx + a * dy) / det
            x0, y0 = math.floor(sx), math.floor(sy)
            value = 0.0
            for yy, wy in ((y0, 1 - (sy - y0)), (y0 + 1, sy - y0)):
                for xx, wx in ((x0, 1 - (sx - x0)), (x0 + 1, sx - x0)):
                    if 0 <= xx < w and 0 <= yy < h:
                        value += wx * wy * float(image[yy, xx])
            out[y, x] = value
    return out


@pytest.mark.parametrize("angle", [90.0, -30.0, 17.0])
def test_warp_turns_the_way_kornia_documents(angle):
    g = torch.Generator().manual_seed(0)
    image = torch.rand(9, 9, generator=g)
    got = RotateZoomFlip(torch.tensor([angle]), 1.0, False).apply(image[None, None], (9, 9))[0, 0]
    torch.testing.assert_close(got.double(), slow_warp(image, angle, 1.0), rtol=1e-5, atol=1e-5)


def test_a_quarter_turn_moves_a_corner_pixel_where_expected():
    """By hand: 90 degrees counter-clockwise about (2, 2) of a 4 x 4 image takes the top-right pixel
    (x 3, y 0) to (x 0, y 1); the flip then mirrors it to (x 3, y 1)."""
    image = torch.zeros(1, 1, 4, 4)
    image[0, 0, 0, 3] = 1.0
    turned = RotateZoomFlip(torch.tensor([90.0]), 1.0, False).apply(image, (4, 4))[0, 0]
    assert turned[1, 0] == pytest.approx(1.0) and float(turned.sum()) == pytest.approx(1.0)
    flipped = RotateZoomFlip(torch.tensor([90.0]), 1.0, True).apply(image, (4, 4))[0, 0]
    assert flipped[1, 3] == pytest.approx(1.0)


def test_draws_are_whole_degrees_one_zoom_and_one_flip_per_batch():
    torch.manual_seed(0)
    draws = [RotateZoomFlip.draw(8, 30) for _ in range(400)]
    angles = torch.cat([d.angles for d in draws])
    assert torch.equal(angles, angles.round()) and angles.min() == -30 and angles.max() == 30
    assert {d.scale for d in draws} == {0.5, 1.0}
    zoomed, flipped = sum(d.scale == 0.5 for d in draws) / 400, sum(d.flip for d in draws) / 400
    assert 0.4 < zoomed < 0.6 and 0.4 < flipped < 0.6


def test_identity_transform_still_compares_the_map_with_its_resampled_self():
    """No turn, no zoom, no flip: the second view is the first (same batch statistics in training
    mode), so both LVS terms agree; the map's own transform still goes up to the canvas and back
    down (bilinear both ways, as the reference's), so the consistency is the map against its
    smoothed self, small but not 0."""
    from kornia.geometry.transform import resize

    torch.manual_seed(0)
    model = SSLTIE(spec_augment=False, **TINY)
    b = random_batch(4, 64, audio_shape=(1, 64, 40))
    parts = model.compute_loss(b, transform=RotateZoomFlip(torch.zeros(4)))
    torch.testing.assert_close(parts["contrast"], parts["contrast_transformed"])
    heat = model(b.image, b.audio)[:, None]
    expected = F.mse_loss(heat, resize(resize(heat, (64, 64)), (4, 4)))
    torch.testing.assert_close(parts["equivariance"], expected)
    assert 0 < float(expected.detach()) < float(heat.detach().var())
    torch.testing.assert_close(parts["loss"], parts["contrast"] + parts["equivariance"])


def test_loss_is_half_the_two_lvs_terms_plus_the_map_consistency():
    """``train_one_epoch``: 0.5 (CE(out) + CE(out_ts)) + w * MSE(heatmap_ts, transform(heatmap)),
    recomputed here from the two views' embeddings with LVS's loss."""
    torch.manual_seed(0)
    model = SSLTIE(spec_augment=False, equivariance_weight=3.0, **TINY)
    b = random_batch(4, 64, audio_shape=(1, 64, 40))
    t = RotateZoomFlip(torch.tensor([10.0, -20.0, 30.0, 0.0]), 0.5, True)
    torch.manual_seed(1)
    parts = model.compute_loss(b, transform=t)
    torch.manual_seed(1)
    v, a = model.embed(b.image, b.audio)
    vt, at = model.embed(t.apply(b.image, (64, 64)), b.audio)
    lvs = LVSLoss()
    heat = torch.einsum("nchw,nc->nhw", v, a)[:, None]
    heat_t = torch.einsum("nchw,nc->nhw", vt, at)[:, None]
    assert heat_t.shape[-1] == 2  # the zoomed-out view is 32 px: a 2 x 2 map, compared with the 4 x 4 map zoomed
    expected = 0.5 * (lvs(v, a) + lvs(vt, at)) + 3.0 * F.mse_loss(heat_t, t.apply(heat, (64, 64)))
    torch.testing.assert_close(parts["loss"], expected, rtol=1e-5, atol=1e-6)
    parts["loss"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_detached_first_map_changes_only_where_the_consistency_gradient_flows():
    """``--heatmap_no_grad``: the first view's map is a fixed target; the consistency's gradient
    then differs, the contrastive terms' does not."""
    b = random_batch(4, 64, audio_shape=(1, 64, 40))
    t = RotateZoomFlip(torch.tensor([45.0, 45.0, 45.0, 45.0]))
    grads = {}
    for detach in (False, True):
        torch.manual_seed(0)
        model = SSLTIE(spec_augment=False, detach_first_map=detach, **TINY)
        parts = model.compute_loss(b, transform=t)
        weight = model.visual_net.conv1.weight
        grads[detach] = [torch.autograd.grad(parts[k], weight, retain_graph=True)[0] for k in ("equivariance", "contrast")]
    assert not torch.allclose(grads[False][0], grads[True][0])
    torch.testing.assert_close(grads[False][1], grads[True][1])
    with pytest.raises(ValueError, match="mse"):
        consistency(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), "huber")


def test_spec_augment_masks_bands_with_the_decibel_floor():
    torch.manual_seed(0)
    audio = torch.zeros(2000, 1, 80, 300)
    masked = spec_augment(audio, 180, 35, 0.8)
    filled = masked == MASKED_DB
    rows, cols = filled[:, 0].all(2), filled[:, 0].all(1)  # whole mel rows (frequency masks), whole frames
    assert int(rows.sum(1).max()) < 35 and int(cols.sum(1).max()) < 180
    untouched = float((~filled.flatten(1).any(1)).float().mean())
    assert 0.15 < untouched < 0.26  # 20% not chosen, plus the rare zero-width pair
    assert torch.equal(masked[~filled], audio[~filled])


def test_ssltie_front_end_reads_the_first_ten_seconds_as_257_by_670():
    preset = get_preset("ssltie")
    assert preset.shape == (1, 257, 670)
    clip = torch.sin(torch.arange(3 * 16000) / 16000 * 2 * math.pi * 440) * 0.5
    window = cut_window(clip, preset)
    assert window.numel() == 160000 and torch.equal(window[48000:96000], clip)  # tiled from the start
    spec = build_frontend(preset)(window[None])
    assert spec.shape == (1, 1, 257, 670) and float(spec.min()) >= MASKED_DB
    loud = spec[0, 0].mean(1).argmax()  # 440 Hz lands in a low mel band, far from the top
    assert int(loud) < 60


def test_contract_and_checkpoint_round_trip(tmp_path):
    import lightning as L

    model = SSLTIE(**TINY)
    b = random_batch(3, 64, audio_shape=(1, 64, 40))
    assert model(b.image, b.audio).shape == (3, 4, 4)
    scores = model.localize(b.image, b.audio, size=(40, 50))
    assert scores.shape == (3, 40, 50) and 0 <= scores.min() and scores.max() <= 1
    model.train()
    parts = model.compute_loss(b)
    assert set(parts) == {"loss", "contrast", "contrast_transformed", "equivariance"}
    parts["loss"].backward()
    trainer = L.Trainer(logger=False, enable_checkpointing=False, max_epochs=0)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = SSLTIE.load_from_checkpoint(tmp_path / "m.ckpt")
    assert loaded.hparams.max_rotation == 45 and loaded.hparams.spec_fill == MASKED_DB
    model.eval(), loaded.eval()
    torch.testing.assert_close(model(b.image, b.audio), loaded(b.image, b.audio))

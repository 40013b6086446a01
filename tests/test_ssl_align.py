"""SSL-Align: s_L in both forms, s_A, the nine positive pairs, and the views it asks for."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from datamodules.views import ViewSpec
from sslbench.methods import SSLAlign
from sslbench.methods.ssl_align import localization_similarity

from conftest import random_batch

TINY = {"vision_weights": None, "backbone_width": 4, "proj_dim": 8}
VIEWS = ["image_aug", "image_conc"]


def align_batch(n=4, size=64, seed=0):
    b = random_batch(n, size, views=VIEWS, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    b.views.update({k: torch.randn(n, 1, 257, 200, generator=g) for k in ("audio_aug", "audio_conc")})
    return b


def slow_s_l(visual, audio, form):
    out = np.zeros((visual.shape[0], audio.shape[0]))
    for i in range(visual.shape[0]):
        for j in range(audio.shape[0]):
            cos = np.einsum("chw,c->hw", visual[i], audio[j])
            if form == "paper":
                out[i, j] = cos.mean()
            else:
                w = 1 / (1 + np.exp(-(cos - 0.65) / 0.03))
                out[i, j] = (w * cos).sum() / w.sum()
    return out


@pytest.mark.parametrize("form", ["code", "paper"])
def test_localization_similarity_both_forms(form):
    g = torch.Generator().manual_seed(0)
    visual = F.normalize(torch.randn(3, 5, 4, 4, generator=g), dim=1)
    audio = F.normalize(torch.randn(2, 5, generator=g), dim=1)
    got = localization_similarity(visual, audio, form).double().numpy()
    np.testing.assert_allclose(got, slow_s_l(visual.double().numpy(), audio.double().numpy(), form), atol=1e-6)


def reference_forward(model, image, audio):
    """kaistmm/ssl_kccv ``Alignment/model.py`` ``AlignmentNet.forward(mode='train')``, written out:
    img_p = normalize(img_proj(maxpool(imgnet(x)))), the map normalised after; aud = maxpool(audnet(a)),
    aud_p = normalize(aud_proj(aud)), aud normalised after. Projections start from raw features."""
    img = model.visual_net(image)
    img_p = F.normalize(model.visual_proj(F.adaptive_max_pool2d(img, 1).flatten(1)), dim=1)
    aud = F.adaptive_max_pool2d(model.audio_net(audio), 1).flatten(1)
    aud_p = F.normalize(model.audio_proj(aud), dim=1)
    return F.normalize(img, dim=1), F.normalize(aud, dim=1), img_p, aud_p


def reference_loss(logits):
    """``train.py``: -log of the softmax mass on the diagonal (``hp_mask``), mean over the batch."""
    return -torch.log((F.softmax(logits, dim=1) * torch.eye(logits.shape[0])).sum(1)).mean()


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_loss_is_train_py_over_the_nine_pairs(mode):
    """``train.py``: one model call per view (original, augmented, conceptual), so in training each
    view's BatchNorm sees only its own batch; then for every (image view, audio view) the s_L
    logits of ``get_logit`` and the s_A logits of ``get_logit_p``, each /0.07, summed."""
    torch.manual_seed(0)
    model = SSLAlign(**TINY).train(mode == "train")
    b = align_batch()
    reference = SSLAlign(**TINY).train(mode == "train")
    reference.load_state_dict(model.state_dict())
    views = [(b.image, b.audio), (b.views["image_aug"], b.views["audio_aug"]), (b.views["image_conc"], b.views["audio_conc"])]
    outs = [reference_forward(reference, image, audio) for image, audio in views]
    expected_loc = sum(reference_loss(localization_similarity(i[0], a[1]) / 0.07) for i in outs for a in outs)
    expected_align = sum(reference_loss(i[2] @ a[3].T / 0.07) for i in outs for a in outs)
    parts = model.compute_loss(b)
    torch.testing.assert_close(parts["localization"], expected_loc, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(parts["alignment"], expected_align, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(parts["loss"], expected_loc + expected_align)
    model.eval(), reference.eval()  # retrieval embeddings are the projections of raw features
    for got, want in zip(model.embeddings(b.image, b.audio), reference_forward(reference, b.image, b.audio)[2:]):
        torch.testing.assert_close(got, want)


def test_projection_starts_from_raw_features_and_normalises_after():
    """A hand case: a raw pooled image vector (3, 4), projection W = I, b = (1, 0): projected
    (4, 4), normalised (0.7071, 0.7071). Projecting the normalised (0.6, 0.8) instead would give
    (1.6, 0.8) -> (0.894, 0.447)."""
    model = SSLAlign(**TINY)
    model.visual_proj, model.audio_proj = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with torch.no_grad():
        for proj in (model.visual_proj, model.audio_proj):
            proj.weight.copy_(torch.eye(2))
            proj.bias.copy_(torch.tensor([1.0, 0.0]))
    visual, audio = model.project(torch.tensor([3.0, 4.0]).view(1, 2, 1, 1), torch.tensor([[3.0, 4.0]]))
    torch.testing.assert_close(visual, torch.tensor([[0.5**0.5, 0.5**0.5]]))
    torch.testing.assert_close(audio, torch.tensor([[0.5**0.5, 0.5**0.5]]))


def test_contract_gradients_and_options():
    model = SSLAlign(**TINY)
    b = align_batch()
    assert model(b.image, b.audio).shape == (4, 4, 4)  # LVS-style trunk: 64 px -> 4 x 4
    scores = model.localize(b.image, b.audio, size=(20, 30))
    assert scores.shape == (4, 20, 30) and not scores.requires_grad and 0 <= scores.min() <= scores.max() <= 1
    model.compute_loss(b)["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    plain = SSLAlign(alignment=False, augmented_positives=False, conceptual_positives=False, **TINY)
    assert plain.train_views == ViewSpec()
    parts = plain.compute_loss(random_batch(4))
    assert parts["alignment"] == 0 and parts["loss"] == parts["localization"]
    assert SSLAlign(**TINY).train_views == ViewSpec(strong_image=True, audio_shift_seconds=3.5, conceptual=True, strong_form="code")
    assert SSLAlign(augmentation="intended", **TINY).train_views.strong_form == "intended"
    with pytest.raises(ValueError, match="augmentation"):
        SSLAlign(augmentation="simclr", **TINY)
    with pytest.raises(ValueError, match="s_L form"):
        SSLAlign(similarity="mean", **TINY)
    avg = SSLAlign(image_pooling="avg", **TINY)
    v, a = avg.features(b.image, b.audio)
    torch.testing.assert_close(avg.project(v, a)[0], F.normalize(avg.visual_proj(v.mean((-2, -1))), dim=1))

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


def test_loss_sums_both_similarities_over_the_nine_pairs():
    model = SSLAlign(**TINY).eval()  # eval: BatchNorm does not depend on how views are batched
    b = align_batch()
    parts = model.compute_loss(b)
    images = [b.image, b.views["image_aug"], b.views["image_conc"]]
    audios = [b.audio, b.views["audio_aug"], b.views["audio_conc"]]
    expected_loc = expected_align = 0.0
    target = torch.arange(4)
    for image in images:
        for audio in audios:
            v, a = model.embed(image, audio)
            expected_loc += F.cross_entropy(localization_similarity(v, a) / 0.07, target)
            pv = F.normalize(model.visual_proj(v.flatten(2).amax(-1)), dim=1)
            pa = F.normalize(model.audio_proj(a), dim=1)
            expected_align += F.cross_entropy(pv @ pa.T / 0.07, target)
    torch.testing.assert_close(parts["localization"], expected_loc, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(parts["alignment"], expected_align, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(parts["loss"], expected_loc + expected_align)


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
    assert SSLAlign(**TINY).train_views == ViewSpec(strong_image=True, audio_shift_seconds=3.5, conceptual=True)
    with pytest.raises(ValueError, match="s_L form"):
        SSLAlign(similarity="mean", **TINY)
    avg = SSLAlign(image_pooling="avg", **TINY)
    v, a = avg.embed(b.image, b.audio)
    torch.testing.assert_close(avg.project(v, a)[0], F.normalize(avg.visual_proj(v.mean((-2, -1))), dim=1))

"""ICL: Eq. (3) and Eq. (7) against loops, the stage schedule, and the previous-epoch snapshot."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sslbench.losses.icl import initial_contrast, iterative_contrast
from sslbench.methods import ICL

from conftest import random_batch

TINY = {"vision_weights": None, "backbone_width": 4}


def phi(v, mask):
    unit = v / np.linalg.norm(v, axis=0, keepdims=True)  # (C, h, w), unit over channels per location
    return unit[:, mask].mean(1) if mask.any() else np.zeros(v.shape[0])


def slow_iterative(visual, audio, positive, negative, related, tau):
    total = 0.0
    for i in range(len(visual)):
        vp = phi(visual[i], positive[i])
        num = sum(math.exp(vp @ audio[j] / tau) for j in range(len(audio)) if related[i, j])
        den = sum(math.exp(vp @ audio[j] / tau) for j in range(len(audio)))
        if negative is not None and negative[i].any():
            vn = phi(visual[i], negative[i])
            den += sum(math.exp(vn @ audio[j] / tau) for j in range(len(audio)))
        total -= math.log(num / den)
    return total / len(visual)


@pytest.mark.parametrize("intra", [True, False])
def test_iterative_contrast_against_a_loop(intra):
    g = torch.Generator().manual_seed(0)
    visual = torch.randn(4, 6, 3, 3, generator=g, dtype=torch.float64)
    audio = F.normalize(torch.randn(4, 6, generator=g, dtype=torch.float64), dim=1)
    response = torch.rand(4, 3, 3, generator=g, dtype=torch.float64)
    positive, negative = response > 0.5, response < 0.5
    negative[2] = False  # a sample without silent patches has no v- term
    related = torch.eye(4, dtype=torch.bool)
    related[0, 3] = related[3, 0] = True
    got = iterative_contrast(visual, audio, positive, negative if intra else None, related, 0.07)
    expected = slow_iterative(visual.numpy(), audio.numpy(), positive.numpy(), negative.numpy() if intra else None, related.numpy(), 0.07)
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_initial_contrast_is_eq3():
    g = torch.Generator().manual_seed(1)
    visual, audio = torch.randn(3, 5, 2, 2, generator=g, dtype=torch.float64), torch.randn(3, 5, generator=g, dtype=torch.float64)
    full = np.ones((3, 2, 2), bool)
    v = np.stack([phi(x, m) for x, m in zip(visual.numpy(), full)])
    logits = v @ audio.numpy().T / 0.1
    expected = -np.mean([logits[i, i] - np.log(np.exp(logits[i]).sum()) for i in range(3)])
    assert initial_contrast(visual, audio, 0.1).item() == pytest.approx(expected, rel=1e-9)


def test_stage_schedule_and_its_validation():
    model = ICL(iterative_epoch=2, intra_epoch=4, inter_epoch=3, **TINY)
    assert model.stage(1) == {"iterative": False, "intra": False, "inter": False}
    assert model.stage(3) == {"iterative": True, "intra": False, "inter": True}
    assert model.stage(4) == {"iterative": True, "intra": True, "inter": True}
    with pytest.raises(ValueError, match="iterative_epoch"):
        ICL(iterative_epoch=3, intra_epoch=2, **TINY)


def test_pseudo_labels_come_from_the_previous_epoch_snapshot():
    model = ICL(iterative_epoch=0, **TINY)
    b = random_batch(4, audio_shape=(1, 51, 64))
    model.on_train_epoch_start()  # epoch 0 >= iterative_epoch: snapshot the current weights
    before, _ = model.pseudo_labels(b.image, b.audio)
    parts = model.compute_loss(b)
    parts["loss"].backward()
    assert all(p.grad is None for net in model._snapshot for p in net.parameters())  # labels carry no gradient
    assert model.visual_net.conv1.weight.grad is not None
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)  # an optimiser step
    after, _ = model.pseudo_labels(b.image, b.audio)
    torch.testing.assert_close(after, before)  # still the epoch-start weights
    model.on_train_epoch_start()
    assert not torch.allclose(model.pseudo_labels(b.image, b.audio)[0], before)
    assert "_snapshot" not in "".join(model.state_dict())  # never checkpointed


def test_sounding_patches_threshold_fallback_and_thinning():
    model = ICL(delta_v=0.5, sampled_patches=2, **TINY)
    response = torch.tensor([[[0.9, 0.8], [0.7, 0.1]], [[0.2, 0.2], [0.2, 0.2]]])
    chosen = model.sounding_patches(response)
    assert chosen[0].sum() == 2 and not chosen[0, 1, 1]  # two of the three above 0.5
    assert chosen[1].sum() == 2  # nothing above: every patch is a candidate
    model.hparams.sampled_patches = None
    assert model.sounding_patches(response)[0].sum() == 3


def test_contract():
    model = ICL(**TINY)
    b = random_batch(3, audio_shape=(1, 51, 64))
    assert model(b.image, b.audio).shape == (3, 4, 4)
    scores = model.localize(b.image, b.audio, size=(20, 24))
    assert scores.shape == (3, 20, 24) and not scores.requires_grad and 0 <= scores.min() <= scores.max() <= 1
    model.compute_loss(b)["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name

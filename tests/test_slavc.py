"""SLAVC: the two-head loss against a per-pair loop, momentum targets without gradients, EMA."""

import torch
import torch.nn.functional as F

from sslbench.methods import SLAVC
from sslbench.methods.slavc import slavc_direction_logits

from conftest import random_batch

TINY = {"vision_weights": None, "backbone_width": 4, "embed_dim": 8}


def test_direction_logits_against_a_loop():
    g = torch.Generator().manual_seed(0)
    v1, v2 = (F.normalize(torch.randn(3, 8, 2, 2, generator=g), dim=1) for _ in range(2))
    a1, a2 = (F.normalize(torch.randn(3, 8, generator=g), dim=1) for _ in range(2))
    tau = 0.1
    expected = torch.zeros(3, 3)
    for n in range(3):
        for m in range(3):
            # head 1: softmax over the audios at each location; head 2: softmax over locations
            over_audios = torch.stack([(v1[n] * a1[k][:, None, None]).sum(0) / tau for k in range(3)]).softmax(0)[m]
            over_space = ((v2[n] * a2[m][:, None, None]).sum(0) / tau).flatten().softmax(0).view(2, 2)
            expected[n, m] = torch.log((over_audios * over_space).sum())
    torch.testing.assert_close(slavc_direction_logits(v1, v2, a1, a2, tau), expected)


def test_gradients_reach_only_the_online_nets_and_the_ema_moves_the_targets():
    model = SLAVC(momentum=0.5, **TINY).train()
    before = [p.clone() for p in model.momentum_encoders.parameters()]
    with torch.no_grad():  # make the online nets differ from their copies
        for p in model.online.parameters():
            p.add_(0.1)
    parts = model.compute_loss(random_batch(n=4))
    assert torch.isfinite(parts["loss"]) and torch.allclose(parts["loss"], parts["image_to_audio"] + parts["audio_to_image"])
    parts["loss"].backward()
    assert all(p.grad is None for p in model.momentum_encoders.parameters())
    assert sum(p.grad.abs().sum() for p in model.online.parameters() if p.grad is not None) > 0
    for old, new, online in zip(before, model.momentum_encoders.parameters(), model.online.parameters()):
        torch.testing.assert_close(new, 0.5 * old + 0.5 * online.detach())


def test_map_is_the_mean_of_both_heads_over_tau():
    model = SLAVC(tau=0.05, **TINY).eval()
    b = random_batch()
    raw = model(b.image, b.audio)
    assert raw.shape == (3, 2, 2) and raw.abs().max() <= 1 / 0.05 + 1e-4
    assert model.score_range == (-20.0, 20.0)

"""Each loss against a slow, obviously-correct computation written here, loop by loop."""

import math

import pytest
import torch
import torch.nn.functional as F

from sslbench.losses import LVSLoss, MarginInfoNCE


def features(batch=4, channels=3, h=3, w=2, seed=0):
    """Few channels, so cosines spread over [-1, 1] and the 0.65 soft threshold is exercised."""
    g = torch.Generator().manual_seed(seed)
    v = F.normalize(torch.randn(batch, channels, h, w, generator=g), dim=1)
    a = F.normalize(torch.randn(batch, channels, generator=g), dim=1)
    return v, a


def cos_map(v, a, i, j):
    _, _, h, w = v.shape
    return [[float((v[i, :, y, x].double() * a[j].double()).sum()) for x in range(w)] for y in range(h)]


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def soft_mean(cells, eps, sharp):
    flat = [c for row in cells for c in row]
    weights = [sigmoid((c - eps) / sharp) for c in flat]
    return sum(wt * c for wt, c in zip(weights, flat)) / sum(weights)


def slow_margin_nce(v, a, tau, margin, pooling, symmetric):
    b = v.shape[0]
    pooled = [[None] * b for _ in range(b)]
    for i in range(b):
        for j in range(b):
            cells = cos_map(v, a, i, j)
            pooled[i][j] = max(max(r) for r in cells) if pooling == "max" else soft_mean(cells, 0.65, 0.03)

    def direction(score):  # score(anchor, other)
        total = 0.0
        for i in range(b):
            pos = math.exp((score(i, i) - margin) / tau)
            neg = sum(math.exp(score(i, j) / tau) for j in range(b) if j != i)
            total += -math.log(pos / (pos + neg))
        return total / b

    loss = direction(lambda i, j: pooled[i][j])
    if symmetric:
        loss += direction(lambda i, j: pooled[j][i])
    return loss


@pytest.mark.parametrize("margin", [0.0, -0.2])
@pytest.mark.parametrize("pooling,tau,symmetric", [("max", 0.03, True), ("soft_threshold", 0.07, False), ("max", 0.07, False)])
def test_margin_infonce_matches_slow_reference(margin, pooling, tau, symmetric):
    v, a = features()
    got = MarginInfoNCE(tau=tau, margin=margin, pooling=pooling, symmetric=symmetric)(v, a)
    assert got.item() == pytest.approx(slow_margin_nce(v, a, tau, margin, pooling, symmetric), rel=1e-5)


def test_negative_margin_lowers_the_loss_of_the_same_features():
    v, a = features(seed=3)
    assert MarginInfoNCE(margin=-0.2)(v, a) < MarginInfoNCE(margin=0.0)(v, a) < MarginInfoNCE(margin=0.2)(v, a)


def slow_lvs(v, a, hard_negative, trimap, eps_pos=0.65, eps_neg=0.4, sharp=0.03, tau=0.07):
    b = v.shape[0]
    total = 0.0
    for n in range(b):
        own = cos_map(v, a, n, n)
        logits = [soft_mean(own, eps_pos, sharp)]
        for k in range(b):
            s = soft_mean(cos_map(v, a, n, k), eps_pos, sharp)
            logits.append(s * (1 - 100) if k == n else s)
        if hard_negative:
            flat = [c for row in own for c in row]
            eps = eps_neg if trimap else eps_pos
            neg = [1 - sigmoid((c - eps) / sharp) for c in flat]
            logits.append(sum(w * c for w, c in zip(neg, flat)) / sum(neg))
        z = [x / tau for x in logits]
        top = max(z)
        total += -(z[0] - top - math.log(sum(math.exp(x - top) for x in z)))
    return total / b


@pytest.mark.parametrize("hard_negative", [True, False])
@pytest.mark.parametrize("trimap", [True, False])
def test_lvs_loss_matches_slow_reference(hard_negative, trimap):
    v, a = features(seed=1)
    got = LVSLoss(hard_negative=hard_negative, trimap=trimap)(v, a)
    assert got.item() == pytest.approx(slow_lvs(v, a, hard_negative, trimap), rel=1e-5)


def test_lvs_hard_negative_adds_a_column_and_gradients_flow_through_masks():
    v, a = features(seed=2)
    v.requires_grad_(True)
    with_hn = LVSLoss(hard_negative=True).logits(v, a)
    without = LVSLoss(hard_negative=False).logits(v, a)
    assert with_hn.shape == (4, 6) and without.shape == (4, 5)
    LVSLoss()(v, a).backward()
    assert v.grad is not None and v.grad.abs().sum() > 0


def test_losses_reject_bad_arguments():
    with pytest.raises(ValueError, match="pooling"):
        MarginInfoNCE(pooling="mean")
    with pytest.raises(ValueError, match="tau"):
        MarginInfoNCE(tau=0)
    with pytest.raises(ValueError, match="eps_neg"):
        LVSLoss(eps_pos=0.3, eps_neg=0.4)


def test_lvs_margin_raises_the_positive_logit_by_margin_over_tau():
    """marginNCE Table 5's "LVS-marginNCE": the LVS loss with (s_pos - m) / tau as its positive
    logit. With m = -0.2 and tau = 0.07, column 0 rises by 0.2 / 0.07 = 2.857; nothing else moves."""
    v, a = features()
    plain, margin = LVSLoss().logits(v, a), LVSLoss(margin=-0.2).logits(v, a)
    torch.testing.assert_close(margin[:, 0] - plain[:, 0], torch.full((4,), 0.2 / 0.07))
    torch.testing.assert_close(margin[:, 1:], plain[:, 1:])
    assert LVSLoss(margin=-0.2)(v, a) < LVSLoss()(v, a)

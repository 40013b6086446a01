"""FNAC: its regularisers against a loop written from OpenNLPLab/FNAC_AVL ``model.py``
(``FNAC.calculate_loss``), its spectrogram masks as ``datasets.py`` draws them, the contract, and
the released-checkpoint path (EZ-VSL's keys)."""

import math

import pytest
import torch
import torch.nn.functional as F

from sslbench.losses.fnac import fnac_regularizers, spectrogram_masks
from sslbench.losses.infonce import MarginInfoNCE
from sslbench.methods import FNAC

from conftest import random_batch

TINY = {"vision_weights": None, "backbone_width": 4, "embed_dim": 16}


def slow_regularizers(v, a, tau):
    """``calculate_loss`` element by element: logits, the three similarity matrices, row softmaxes,
    and the mean absolute differences."""
    b, c, h, w = v.shape
    cos = [[[[float(v[n, :, y, x] @ a[m]) / tau for x in range(w)] for y in range(h)] for m in range(b)] for n in range(b)]
    logits = [[max(max(row) for row in cos[n][m]) for m in range(b)] for n in range(b)]
    own = [cos[n][n] for n in range(b)]
    frg = []
    for n in range(b):
        lo, hi = min(min(r) for r in own[n]), max(max(r) for r in own[n])
        keep = [[(own[n][y][x] - lo) / (hi - lo + 1e-5) > 0.6 for x in range(w)] for y in range(h)]
        frg.append([sum(float(v[n, k, y, x]) * keep[y][x] for y in range(h) for x in range(w)) / (h * w) for k in range(c)])
    pooled = [[float(v[n, k].mean()) for k in range(c)] for n in range(b)]
    dot = lambda p, q: sum(x * y for x, y in zip(p, q))  # noqa: E731
    audio_attn = [[float(a[n] @ a[m]) / tau for m in range(b)] for n in range(b)]
    image_attn = [[dot(pooled[n], pooled[m]) / tau for m in range(b)] for n in range(b)]
    frg_attn = [[dot(frg[n], frg[m]) / tau for m in range(b)] for n in range(b)]

    def softmax(rows):
        out = []
        for row in rows:
            top = max(row)
            e = [math.exp(x - top) for x in row]
            out.append([x / sum(e) for x in e])
        return out

    l1 = lambda p, q: sum(abs(x - y) for rp, rq in zip(p, q) for x, y in zip(rp, rq)) / (b * b)  # noqa: E731
    return {"fns1": l1(softmax(audio_attn), softmax(logits)), "tns": l1(softmax(audio_attn), softmax(frg_attn)),
            "fns2": l1(softmax(image_attn), softmax(logits))}


def test_regularizers_match_a_loop_and_the_reference_on_a_small_case():
    g = torch.Generator().manual_seed(0)
    v = F.normalize(torch.randn(3, 4, 2, 2, generator=g), dim=1)
    a = F.normalize(torch.randn(3, 4, generator=g), dim=1)
    got = fnac_regularizers(v, a, 0.03)
    expected = slow_regularizers(v.double(), a.double(), 0.03)
    for key in ("fns1", "tns", "fns2"):
        assert float(got[key]) == pytest.approx(expected[key], rel=1e-5), key
    # the reference's own calculate_loss on this very case returned [loss, FNS-1, TNS, FNS-2]:
    reference = [33.970802307128906, 0.6665884852409363, 0.21583658456802368, 0.5407491326332092]
    assert float(MarginInfoNCE(tau=0.03)(v, a)) == pytest.approx(reference[0], rel=1e-6)
    assert [float(got[k]) for k in ("fns1", "tns", "fns2")] == pytest.approx(reference[1:], rel=1e-6)


def test_spectrogram_masks_as_the_loader_draws_them():
    """FrequencyMask draws its start over the time length (200 of 257 rows can start a mask) and
    TimeMask over the frequency count (past the 200 columns it masks nothing); widths below 10."""
    torch.manual_seed(0)
    audio = torch.ones(2000, 1, 257, 200)
    masked = spectrogram_masks(audio)
    zero_rows = (masked[:, 0] == 0).all(2)  # (B, F): rows masked whole
    zero_cols = (masked[:, 0] == 0).all(1)  # (B, T)
    assert int(zero_rows.sum(1).max()) <= 9 and int(zero_cols.sum(1).max()) <= 9
    assert not zero_rows[:, 209:].any() and zero_rows[:, :200].any()
    no_time_mask = float((zero_cols.sum(1) == 0).float().mean())
    assert 0.2 < no_time_mask < 0.35  # a start past column 199 (57 / 257) or a width of 0 (1 / 10)
    assert torch.equal(masked[masked != 0], audio[masked != 0])


def test_contract_dropout_warmup_and_gradients():
    model = FNAC(**TINY)
    b = random_batch(4, size=64)
    model.train()
    parts = model.compute_loss(b)
    assert set(parts) == {"loss", "contrast", "fns1", "tns", "fns2"}
    expected = parts["contrast"] + 100 * (parts["fns1"] + parts["tns"] + parts["fns2"])  # no trainer: past warm-up
    torch.testing.assert_close(parts["loss"], expected)
    parts["loss"].backward()
    assert all(p.grad is not None for p in model.audio_net.parameters())
    model.eval()
    torch.testing.assert_close(model(b.image, b.audio), model(b.image, b.audio))  # no dropout at test time
    assert model.image_dropout.p == 0.9 and model.hparams.warmup_epochs == 5

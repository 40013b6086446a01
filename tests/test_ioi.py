"""IOI: the identification loop on planted objects, union-find and OSC against slow references,
batched against one sample at a time, and the method's contract."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sslbench.losses.osc import osc_loss
from sslbench.methods import IOI
from sslbench.nn.ioi import cluster_bank, identify_objects

from conftest import random_batch

C, SIDE = 8, 7


def planted_scene(objects: int, audio_on: tuple[int, ...]):
    """A 7 x 7 map: background cells along e0, object k's cells along e(k+1) (two 2 x 2 blocks in
    opposite corners); the audio points at the objects listed in ``audio_on`` (none: along e7), with
    a weak background component (S about 0.04, below the 0.1 stop) as real backgrounds have: with an
    exactly orthogonal background E_n would be nothing but the objects' leakage through the mask."""
    features = torch.zeros(1, C, SIDE, SIDE)
    features[0, 0] = 1.0
    blocks = [(slice(0, 2), slice(0, 2)), (slice(5, 7), slice(5, 7))]
    for k in range(objects):
        rows, cols = blocks[k]
        features[0, :, rows, cols] = 0.0
        features[0, k + 1, rows, cols] = 1.0
    audio = torch.zeros(1, C)
    for k in audio_on:
        audio[0, k + 1] = 1.0
    if not audio_on:
        audio[0, C - 1] = 1.0
    audio[0, 0] = 0.05 * audio.norm()
    return features, F.normalize(audio, dim=1)


def run_ioi(features, audio, form="code"):
    sim = torch.einsum("bchw,bc->bhw", features, audio)
    background = 1 - torch.sigmoid((sim - 0.4) / 0.03)
    found = identify_objects(features * sim[:, None], sim, background, form)
    groups = [cluster_bank(found.bank[b, : int(found.valid[b].sum())], found.negative[b])[0] for b in range(features.shape[0])]
    return found, groups


@pytest.mark.parametrize("form", ["code", "paper"])
def test_two_planted_sounding_objects_and_a_background_give_two_groups(form):
    found, groups = run_ioi(*planted_scene(2, (0, 1)), form)
    assert len(groups[0]) == 2
    first = found.maps[0, groups[0][0][0]]  # the first object's map peaks on its own block
    assert first[:2, :2].min() > first[5:, 5:].max()


def test_one_sounding_object_gives_one_group_and_the_silent_one_is_left_out():
    found, groups = run_ioi(*planted_scene(2, (1,)))
    assert len(groups[0]) == 1 and int(found.valid[0].sum()) == 1


def test_no_sounding_object_stops_at_once():
    found, groups = run_ioi(*planted_scene(2, ()))
    assert found.bank.shape[1] == 0 and groups == [[]]


def test_batched_loop_equals_one_sample_at_a_time():
    g = torch.Generator().manual_seed(0)
    features = F.normalize(torch.randn(5, C, SIDE, SIDE, generator=g), dim=1)
    audio = F.normalize(torch.randn(5, C, generator=g), dim=1)
    audio[3] = F.normalize(features[3, :, 2, 2] + features[3, :, 5, 1], dim=0)  # some samples with strong objects
    sim = torch.einsum("bchw,bc->bhw", features, audio)
    background = 1 - torch.sigmoid((sim - 0.4) / 0.03)
    batched = identify_objects(features * sim[:, None], sim, background)
    for b in range(5):
        alone = identify_objects(features[b : b + 1] * sim[b : b + 1, None], sim[b : b + 1], background[b : b + 1])
        t = alone.bank.shape[1]
        assert int(batched.valid[b].sum()) == t
        torch.testing.assert_close(batched.bank[b, :t], alone.bank[0])
        torch.testing.assert_close(batched.maps[b, :t], alone.maps[0])
        assert not batched.bank[b, t:].any()  # zero after the sample finished


def components(bank, negative, tau1, tau2, form):
    """Slow reference: connected components of the 'same object' graph, by breadth-first search."""
    unit = bank / np.maximum(np.linalg.norm(bank, axis=1, keepdims=True), 1e-12)
    neg = negative / max(np.linalg.norm(negative), 1e-12)
    background = [float(u @ neg) > tau1 for u in unit]
    edges = {i: set() for i in range(len(bank))}
    for i in range(len(bank)):
        for k in range(i):
            if background[i] or (form == "paper" and background[k]):
                continue
            if float(unit[i] @ unit[k]) > tau2:
                edges[i].add(k)
                edges[k].add(i)
    seen, groups = set(), []
    for start in range(len(bank)):
        if start in seen:
            continue
        stack, comp = [start], set()
        while stack:
            node = stack.pop()
            if node not in comp:
                comp.add(node)
                stack.extend(edges[node])
        seen |= comp
        members = sorted(i for i in comp if not background[i])
        if members:
            groups.append((members, comp))
    return groups


@pytest.mark.parametrize("form", ["code", "paper"])
@pytest.mark.parametrize("seed", range(5))
def test_union_find_matches_connected_components(form, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 6))
    bank = np.concatenate([c + 0.4 * rng.normal(size=(rng.integers(1, 5), 6)) for c in centres])
    bank = bank[rng.permutation(len(bank))]
    negative = centres[0] + 0.1 * rng.normal(size=6)  # one cluster looks like the background
    groups, roots, _ = cluster_bank(torch.tensor(bank), torch.tensor(negative), 0.7, 0.6, form)
    expected = components(bank, negative, 0.7, 0.6, form)
    assert sorted(groups) == sorted(m for m, _ in expected)
    for members, root in zip(groups, roots):
        comp = next(c for m, c in expected if m == members)
        assert root in comp


def slow_osc(bank, negative, groups, roots):
    """Per sample, the loop's L_k for each group whose anchor is not all zero."""
    cos = lambda a, b: float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))  # noqa: E731
    x, n = bank.numpy(), negative.numpy()
    per_sample = []
    for b in range(len(groups)):
        terms = []
        for members, root in zip(groups[b], roots[b]):
            if not x[b, root].any():
                continue
            others = [t for t in range(x.shape[1]) if t not in members]
            neg = np.concatenate([x[b, others], n[b][None]]).mean(0)
            terms.append(1 - cos(x[b, root], x[b, members].mean(0)) + cos(x[b, root], neg))
        per_sample.append(terms)
    code = sum(sum(t) for t in per_sample) / len(groups)
    paper = sum(sum(t) / len(t) for t in per_sample if t) / len(groups)
    return code, paper


def test_osc_loss_against_a_loop():
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(2, 5, 4, generator=g, dtype=torch.float64)
    bank[1, 4] = 0.0  # zero padding after sample 1 finished
    negative = torch.randn(2, 4, generator=g, dtype=torch.float64)
    groups = [[[0, 2], [1]], [[0, 1, 3]]]
    roots = [[2, 1], [0]]
    for zero_anchor in (False, True):
        if zero_anchor:
            bank[0, 2] = 0.0  # the first group's anchor: skipped, as in the code
        code, paper = slow_osc(bank, negative, groups, roots)
        assert osc_loss(bank, negative, groups, roots, "code").item() == pytest.approx(code, rel=1e-9)
        assert osc_loss(bank, negative, groups, roots, "paper").item() == pytest.approx(paper, rel=1e-9)
    assert osc_loss(bank, negative, [[], []], [[], []]).item() == 0.0  # no object anywhere


def test_contract_variable_object_maps_and_frozen_vision():
    model = IOI(vision_weights=None, backbone_width=4)
    model.train()
    assert not model.visual_net.training
    b = random_batch(4, size=64)
    maps = model.object_maps(b.image, b.audio, (64, 64))
    assert len(maps) == 4 and all(m.dim() == 3 and m.shape[1:] == (64, 64) for m in maps)
    parts = model.compute_loss(b)
    parts["loss"].backward()
    assert set(parts) == {"loss", "avc", "osc", "objects"}
    assert all(p.grad is None for p in model.visual_net.parameters())
    assert all(p.grad is not None for p in model.audio_net.parameters())
    paper = IOI(vision_weights=None, backbone_width=4, avc="paper", ioi_form="paper", clustering="paper", osc_normalization="paper")
    assert torch.isfinite(paper.compute_loss(b)["loss"])
    with pytest.raises(ValueError, match="ioi_form"):
        IOI(vision_weights=None, backbone_width=4, ioi_form="dot")


def test_single_map_baseline_scores_the_sound_associated_map_as_one_object():
    torch.manual_seed(0)
    model = IOI(vision_weights=None, backbone_width=4).eval()
    baseline = IOI(vision_weights=None, backbone_width=4, single_map=True).eval()
    baseline.load_state_dict(model.state_dict())
    b = random_batch(3, size=64)
    maps = baseline.object_maps(b.image, b.audio, (64, 64))
    assert [m.shape for m in maps] == [(1, 64, 64)] * 3
    expected = F.interpolate(model(b.image, b.audio)[:, None], size=(64, 64), mode="bilinear", align_corners=True)
    torch.testing.assert_close(torch.stack(maps), expected)

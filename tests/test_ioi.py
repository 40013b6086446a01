"""IOI: the identification loop on planted objects, union-find and OSC against slow references,
batched against one sample at a time, and the method's contract."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sslbench.losses.osc import osc_loss
from sslbench.methods import IOI
from sslbench.nn.ioi import cluster_bank, identify_objects, identify_sounding_objects

from conftest import random_batch

C, SIDE = 512, 7  # the reference hard-codes 512 channels


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


def test_code_form_runs_one_iteration_even_when_nothing_sounds():
    """NoPrior ``model_base.py`` ``lvs_loss``: ``while True`` appends E_p, then tests ``max < 0.1``,
    so a sample whose S_v never reaches 0.1 still banks one entry. Run on this scene (in 512
    channels) the reference banks 1 entry, finds it background (cos with E_n > 0.7) and returns no
    object map. (An earlier issue's "stops at once" was the paper's Algorithm 1, kept as ``paper``.)"""
    found, groups = run_ioi(*planted_scene(2, ()))
    assert found.bank.shape[1] == 1 and bool(found.valid[0, 0]) and groups == [[]]
    found, groups = run_ioi(*planted_scene(2, ()), form="paper")  # "while max(S_v) > eps"
    assert found.bank.shape[1] == 0 and groups == [[]]


def test_union_find_root_is_the_later_entry_as_the_reference_calls_union():
    """NoPrior ``model_base.py``: ``union(parent, j, k)`` sets ``parent[find(k)] = find(j)`` for the
    later entry j. Entries e0, e0 + e1, e1 chain into one group; the reference's root (the OSC
    anchor) is entry 2, where the earlier-absorbs-later reading gave entry 0."""
    bank = torch.zeros(3, C)
    bank[0, 0], bank[1, :2], bank[2, 1] = 1.0, 1.0, 1.0
    negative = torch.zeros(C)
    negative[5] = 1.0
    for form in ("code", "paper"):
        groups, roots, _ = cluster_bank(bank, negative, 0.7, 0.6, form)
        assert groups == [[0, 1, 2]] and roots == [2]


def test_background_entry_bridges_groups_in_the_code_form_only():
    """The reference's k loop does not skip background entries: a later foreground entry unions
    with them, so two foreground entries both similar to one background entry end in one group."""
    bank = torch.zeros(3, C)
    bank[0, 1] = 1.0  # foreground
    bank[1, 0], bank[1, 1] = 1.0, 0.2  # background: close to E_n, and close enough to entries 0 and 2
    bank[2, 1] = 1.0
    bank[2, 2] = 0.2
    negative = torch.zeros(C)
    negative[0] = 1.0
    code, code_roots, background = cluster_bank(bank, negative, 0.7, 0.1, "code")
    paper, _, _ = cluster_bank(bank, negative, 0.7, 0.1, "paper")
    assert background == [False, True, False]
    assert code == [[0, 2]] and code_roots == [2]
    assert paper == [[0, 2]]  # 0 and 2 are similar by themselves here (cos 0.98 > 0.1)


def test_identification_is_float32_under_bf16_autocast():
    """The loop's regions compare R_p with R_n; in bf16 those flip. It runs in float32 whatever
    the autocast, so the result equals the plain float32 run."""
    g = torch.Generator().manual_seed(3)
    features = F.normalize(torch.rand(6, 64, SIDE, SIDE, generator=g) + 0.5, dim=1)
    audio = F.normalize(features[:, :, 3, 3] + 0.3 * torch.rand(6, 64, generator=g), dim=1)
    plain = identify_sounding_objects(features, audio)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = identify_sounding_objects(features, audio)
    assert mixed.bank.dtype == torch.float32
    assert torch.equal(plain.valid, mixed.valid)
    torch.testing.assert_close(mixed.bank, plain.bank)
    torch.testing.assert_close(mixed.maps, plain.maps)


def test_code_form_distances_are_pairwise_distance_with_its_eps():
    """The reference's R_p is ``nn.PairwiseDistance(p=2)``, i.e. ||x - E_p + 1e-6||: at the anchor
    cell itself -R_p is -sqrt(C) * 1e-6, not 0."""
    features, audio = planted_scene(2, (0, 1))
    found, _ = run_ioi(features, audio)
    first = found.maps[0, 0].flatten()
    assert first.max().item() == pytest.approx(-(C**0.5) * 1e-6, rel=1e-3)


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
    """Per sample, L_k for each group as NoPrior ``model_base.py`` ``object_loss`` loops: anchor at
    the root (skipped when it sums to 0), positive the members' mean, negative the mean of all
    other entries plus E_n (skipped when there is no other entry)."""
    cos = lambda a, b: float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))  # noqa: E731
    x, n = bank.numpy(), negative.numpy()
    per_sample = []
    for b in range(len(groups)):
        terms = []
        for members, root in zip(groups[b], roots[b]):
            others = [t for t in range(x.shape[1]) if t not in members]
            if x[b, root].sum() == 0 or not others:
                continue
            neg = x[b, others].mean(0) + n[b]
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


def test_osc_negative_is_the_mean_of_the_other_entries_plus_e_n():
    """A hand case run through NoPrior's ``object_loss``: one sample, bank (e0 | e1 | e1), groups
    {0: [0]} and {1: [1, 2]}, E_n = e0. Group 0: anchor = positive = e0, negative = e1 + e0, so
    L = 0 + cos(e0, e0 + e1) = 0.7071; group 1: anchor e1 (root 1, as given), positive e1,
    negative = e0 + e0, L = 0. The reference returned 0.70710677. Counting E_n as one more
    entry, (e1 + e1 + e0) / 3, would give 1/sqrt(5) = 0.447. A group alone in its bank has no
    negative (NaN in the reference) and is skipped: 0."""
    bank = torch.zeros(1, 3, C)
    bank[0, 0, 0], bank[0, 1, 1], bank[0, 2, 1] = 1.0, 1.0, 1.0
    negative = torch.zeros(1, C)
    negative[0, 0] = 1.0
    assert osc_loss(bank, negative, [[[0], [1, 2]]], [[0, 1]]).item() == pytest.approx(0.70710677, rel=1e-6)
    lone = torch.zeros(1, 1, C)
    lone[0, 0, 0] = 1.0
    assert osc_loss(lone, negative.roll(1, 1), [[[0]]], [[0]]).item() == 0.0


def test_frozen_vision_batchnorm_uses_batch_statistics_as_the_reference():
    """NoPrior freezes its ImageNet ResNet only with ``requires_grad = False`` (``unfreeze_vision``),
    so Lightning's ``train()`` leaves its BatchNorm normalising with batch statistics, and its
    running statistics move; ``vision_batchnorm: frozen`` keeps them fixed."""
    b = random_batch(4, size=64)
    for mode, moves in (("batch", True), ("frozen", False)):
        model = IOI(vision_weights=None, backbone_width=4, vision_batchnorm=mode).train()
        before = model.visual_net.bn1.running_mean.clone()
        model.compute_loss(b)["loss"].backward()
        assert model.visual_net.training is moves
        assert (not torch.equal(before, model.visual_net.bn1.running_mean)) is moves
        assert all(p.grad is None for p in model.visual_net.parameters())
    with pytest.raises(ValueError, match="vision_batchnorm"):
        IOI(vision_weights=None, backbone_width=4, vision_batchnorm="eval")


def test_contract_variable_object_maps_and_frozen_vision():
    model = IOI(vision_weights=None, backbone_width=4)
    model.train()
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


def test_single_source_sets_are_scored_through_the_object_maps_as_mixtures_of_one(tmp_path, run_root):
    """NoPrior tests MUSIC-Solo and VGGSound-Single with ``concat_num=1``: its ``test_step`` matches
    the object maps to the one frame (AP, cIoU entries, count = exactly one map). IOI's single-source
    sets are scored so, under the ``ioi`` protocol; the single-map baseline keeps the single path."""
    from sslbench.cli import main

    sets = json.dumps([{"class_path": "SyntheticScenes", "init_args": {"num_samples": 6}}])
    for single_map, kind in ((False, "multi"), (True, "single")):
        out = tmp_path / f"single_map_{single_map}"
        main([
            "test", "--model", "IOI", "--model.vision_weights", "null", "--model.backbone_width", "4",
            "--model.single_map", str(single_map).lower(), "--data.image_size", "64", "--data.num_workers", "0",
            "--data.eval_batch_size", "3", "--data.test", sets, *run_root, "--evaluator.results_dir", str(out),
        ])
        summary = json.loads((out / "test_synthetic.json").read_text())
        assert summary["kind"] == kind and summary["n"] == 6
        if kind == "multi":
            assert summary["protocol"] == "ioi" and {"cap", "piap", "count_accuracy", "objects_per_sample"} <= set(summary)


def test_stacked_mixture_partners_as_noprior_pairs_them():
    """NoPrior ``datasets_flow.py``: item idx stacks ``idx + i * len(files) // concat_num``, i.e.
    (i * N) // K: with N = 8, K = 3 the partners of 0 are 0, 2, 5 (not 0, 2, 4)."""
    from datamodules.mixtures import StackedMixture
    from datamodules.synthetic import SyntheticScenes

    mix = StackedMixture(SyntheticScenes("test", 8), sources=3)
    assert len(mix) == 2 and mix.partners(0) == [0, 2, 5] and mix.partners(1) == [1, 3, 6]

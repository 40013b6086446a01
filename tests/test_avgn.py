"""AVGN: the map and the three losses against numbers from stoneMo/AVGN's own ``model.py`` (``AVGN.forward``)
run on these very weights, the grouping block's assignment against a loop written from
``grouping.py`` (``AssignAttention``, ``GroupingBlock``), the training targets of mixtures
(``train.py``/``datasets.py``), the per-source maps ``validate_multi`` scores, and the contract."""

import pytest
import torch
import torch.nn.functional as F

from sslbench.methods import AVGN
from sslbench.nn.grouping import AssignAttention, GroupingBlock

from conftest import random_batch

SMALL = {"embed_dim": 32, "depth_audio": 1, "depth_visual": 1, "heads": 8, "vision_weights": None}


def seeded_avgn(num_classes: int = 4) -> AVGN:
    """Full-width trunks (the reference's), every parameter and BN statistic drawn by name from one
    seed, so the reference can be given the same weights key for key."""
    model = AVGN(num_classes=num_classes, **SMALL)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=g) * (0.3 if "grouping" in name or "class_tokens" in name else 0.05))
    return model.eval()


def INPUTS():  # noqa: N802 (shared with the scratch harness that ran the reference)
    g = torch.Generator().manual_seed(1)
    # 224 x 224: the reference unflattens its trunk's output to 512 x 7 x 7
    return torch.randn(3, 3, 224, 224, generator=g), torch.randn(3, 1, 64, 48, generator=g), torch.tensor([2, 0, 3]), 4


@torch.no_grad()
def test_map_and_losses_match_the_reference_forward():
    """Numbers from ``AVGN.forward(image, spec, mode='train', cls_target=one_hot)`` of the reference,
    in eval mode, with these weights loaded key for key (the ``avgn`` layout's names)."""
    model = seeded_avgn()
    image, spec, labels, c = INPUTS()
    maps = model(image, spec, classes=labels)
    assert maps.shape == (3, 7, 7)
    assert maps[:, 0, 0].tolist() == pytest.approx(REFERENCE_CORNER, abs=2e-3)
    assert maps[1].flatten()[:8].tolist() == pytest.approx(REFERENCE_SECOND, abs=2e-3)
    parts = model.losses(image, spec, labels, F.one_hot(labels, c).float())
    assert [float(parts[k]) for k in ("localization", "token", "presence")] == pytest.approx(REFERENCE_LOSSES, rel=1e-4)
    torch.testing.assert_close(parts["loss"], parts["localization"] + parts["token"] + parts["presence"])


REFERENCE_CORNER = [-17.6362, -18.5347, -19.5403]  # Savl[:, 0, 0]
REFERENCE_SECOND = [-18.5347, -21.2278, -21.2663, -21.2736, -21.2869, -21.3798, -19.4214, -14.1754]  # Savl[1], first row + 1
REFERENCE_LOSSES = [2.45757, 1.39334, 1.53418]  # max-MIL loc loss, cls_token_loss, cls_pred_loss


def slow_assign(q, k, v, eps=1.0):
    """``AssignAttention`` soft, one head, by loops: softmax over the queries (groups) for each
    key, then each group's weights divided by (their sum over the keys + eps)."""
    n, s = q.shape[0], k.shape[0]
    scale = q.shape[1] ** -0.5
    logits = [[float(q[i] @ k[j]) * scale for j in range(s)] for i in range(n)]
    soft = [[0.0] * s for _ in range(n)]
    for j in range(s):
        column = torch.tensor([logits[i][j] for i in range(n)]).softmax(0)
        for i in range(n):
            soft[i][j] = float(column[i])
    out = []
    for i in range(n):
        total = sum(soft[i]) + eps
        out.append(sum(soft[i][j] / total * v[j] for j in range(s)))
    return torch.stack(out)


def test_assignment_shares_each_token_among_the_groups():
    torch.manual_seed(0)
    assign = AssignAttention(8).eval()
    groups, tokens = torch.randn(1, 3, 8), torch.randn(1, 5, 8)
    got = assign(groups, tokens)
    q, k, v = assign.q_proj(groups)[0], assign.k_proj(tokens)[0], assign.v_proj(tokens)[0]
    torch.testing.assert_close(got[0], assign.proj(slow_assign(q, k, v)), rtol=1e-5, atol=1e-6)
    hard = AssignAttention(8, hard=True).eval()
    hard.load_state_dict(assign.state_dict())
    weights = hard.weights(torch.randn(1, 3, 5))
    assert torch.equal(weights.sum(1), torch.ones(1, 5)) and set(weights.unique().tolist()) == {0.0, 1.0}


def test_grouping_block_gives_one_embedding_per_output_group():
    block = GroupingBlock(16, group_tokens=6, output_groups=4, heads=4).eval()
    out = block(torch.randn(2, 9, 16), torch.randn(2, 6, 16))
    assert out.shape == (2, 4, 16)


def test_training_targets_of_a_mixture_are_its_first_frame_and_every_class_heard():
    """``datasets.py`` stacks the frames of a mixture and its classes; ``model.py`` keeps the first
    frame and its class for the map, and every class for the audio presence."""
    model = AVGN(num_classes=5, **SMALL)
    b = random_batch(2, 32)
    b.image = torch.cat([b.image, -b.image], dim=-2)  # two frames stacked: (B, 3, 64, 32)
    b.source_classes = torch.tensor([[1, 4], [3, 0]])
    frame, classes, heard = model.training_targets(b)
    assert torch.equal(frame, b.image[..., :32, :]) and classes.tolist() == [1, 3]
    assert heard.tolist() == [[0, 1, 0, 0, 1], [1, 0, 0, 1, 0]]
    b.source_classes = torch.tensor([[1, 4], [-1, 0]])
    with pytest.raises(ValueError, match="class labels"):
        model.training_targets(b)


@torch.no_grad()
def test_object_maps_follow_the_sources_over_every_frame():
    """Source i's token over each stacked frame; frame j of map j is what ``validate_multi`` scores."""
    model = seeded_avgn(num_classes=4)
    image, spec, labels, _ = INPUTS()
    image = F.interpolate(image, size=(64, 64))
    stacked = torch.cat([image, image.flip(-1)], dim=-2)
    model._eval_classes = torch.stack([labels, (labels + 1) % 4], dim=1)
    maps = model.object_maps(stacked, spec, (128, 64))
    assert len(maps) == 3 and maps[0].shape == (2, 128, 64)
    from sslbench.eval.functional import upsample

    for j, frame in enumerate((image, image.flip(-1))):
        expected = upsample(model(frame, spec, classes=model._eval_classes[:, j]), (64, 64), model.upsample_mode)
        got = torch.stack([m[j, 64 * j : 64 * (j + 1)] for m in maps])
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    model._eval_classes = None


def test_contract_and_checkpoint_round_trip(tmp_path):
    import lightning as L

    model = AVGN(num_classes=5, backbone_width=4, **{k: v for k, v in SMALL.items()})
    b = random_batch(3, 64)
    b.class_id = torch.tensor([0, 4, 2])
    parts = model.compute_loss(b)
    assert set(parts) == {"loss", "localization", "token", "presence"}
    parts["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    model._eval_classes = b.class_id[:, None]
    scores = model.localize(b.image, b.audio, size=(40, 50))
    assert scores.shape == (3, 40, 50) and 0 <= scores.min() and scores.max() <= 1
    trainer = L.Trainer(logger=False, enable_checkpointing=False, max_epochs=0)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = AVGN.load_from_checkpoint(tmp_path / "m.ckpt").eval()
    torch.testing.assert_close(model(b.image, b.audio, b.class_id), loaded(b.image, b.audio, b.class_id))
    with pytest.raises(ValueError, match="assignment"):
        AVGN(assignment="gumbel", **SMALL)


REFERENCE_NAMES = [("visual_net.", "imgnet."), ("visual_proj.", "img_proj."), ("audio_net.", "audnet."), ("audio_proj.", "aud_proj."),
                   ("class_tokens", "av_token"), ("audio_grouping.", "audio_encoder."), ("visual_grouping.", "visual_encoder."),
                   ("audio_presence.", "fc_prob_a."), ("visual_presence.", "fc_prob_v."), ("token_classifier.", "fc_cls.")]


@torch.no_grad()
def test_released_checkpoint_layout_is_detected_and_loads(tmp_path):
    """``train.py`` saves ``{"model": DDP state dict, ...}`` with model.py's names, and an audio
    ``han_encoder`` (a second grouping block forward never calls), whose keys are dropped."""
    from sslbench.checkpoints import detect_layout, load_reference_checkpoint

    source = seeded_avgn()
    state = {}
    for key, value in source.state_dict().items():
        ours, theirs = next((a, b) for a, b in REFERENCE_NAMES if key.startswith(a))
        state["module." + theirs + key[len(ours):]] = value
    state["module.audio_encoder.han_encoder.norm_x.weight"] = torch.ones(32)
    torch.save({"model": state, "epoch": 7, "best_Precision": 0.5}, tmp_path / "best.pth")
    assert detect_layout(tmp_path / "best.pth") == "avgn"
    target = AVGN(num_classes=4, **SMALL).eval()
    report = load_reference_checkpoint(target, tmp_path / "best.pth")
    assert "ignored 1 unused" in report
    image, spec, labels, _ = INPUTS()
    torch.testing.assert_close(target(image, spec, classes=labels), source(image, spec, classes=labels))

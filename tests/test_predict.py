"""`sslbench predict` on image and audio files the test writes: overlays, raw maps, bad files."""

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from datamodules.transforms import image_transform
from sslbench import cli
from sslbench.audio import build_frontend, cut_window, get_preset
from sslbench.errors import SSLBenchError
from sslbench.methods.base import load_method

from conftest import TINY_DATA, TINY_EZVSL


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("fit")
    cli.main(["fit", *TINY_EZVSL, *TINY_DATA, "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
              "--trainer.default_root_dir", str(root), "--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(root),
              "--data.audio_preset", "quick", "--test_after_fit", "false"])
    return next(root.rglob("*.ckpt"))


def write_pairs(folder):
    rng = np.random.default_rng(0)
    (folder / "audio").mkdir(parents=True)
    for name, size, rate in [("street", (90, 60), 16000), ("beach", (64, 64), 44100)]:
        Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(folder / f"{name}.jpg")
        soundfile.write(folder / "audio" / f"{name}.wav", rng.uniform(-0.5, 0.5, (rate * 2, 2)), rate)  # stereo
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "broken.png")
    (folder / "audio" / "broken.wav").write_bytes(b"RIFF not really")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "silent_film.jpg")  # no audio at all


def test_pairs_folder_writes_overlays_and_the_raw_maps(checkpoint, tmp_path, capsys):
    write_pairs(tmp_path / "clips")
    cli.main(["predict", str(checkpoint), "--pairs", str(tmp_path / "clips"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert "audio preset quick, images at 64 px" in err  # read from the run's saved config
    assert "skipped broken" in err and "1 images have no audio" in err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["beach.png", "street.png"]
    maps = np.load(tmp_path / "out" / "maps.npz")
    assert sorted(maps.files) == ["beach", "street"]

    # the same map from the model directly, with the file read and cut as the preset says
    model = load_method(str(checkpoint)).eval()
    preset = get_preset("quick")
    data, rate = soundfile.read(tmp_path / "clips" / "audio" / "beach.wav", dtype="float32")
    import torchaudio

    wave = torchaudio.functional.resample(torch.from_numpy(data.mean(1)), rate, 16000)
    audio = build_frontend(preset)(cut_window(wave, preset)[None])
    image = image_transform(64, train=False)(Image.open(tmp_path / "clips" / "beach.jpg").convert("RGB"))[None]
    expected = model.evaluation_maps(image, audio)[0].numpy()
    assert maps["beach"].shape == (64, 64)
    np.testing.assert_allclose(maps["beach"], expected, rtol=1e-4, atol=1e-5)


def test_one_pair_and_usage_errors(checkpoint, tmp_path, capsys):
    write_pairs(tmp_path / "clips")
    clips = tmp_path / "clips"
    cli.main(["predict", str(checkpoint), "--image", str(clips / "street.jpg"), "--audio", str(clips / "audio" / "street.wav"),
              "--out", str(tmp_path / "one"), "--audio-preset", "ezvsl"])
    assert (tmp_path / "one" / "street.png").is_file()
    with pytest.raises(SSLBenchError, match="file not found"):
        from sslbench.commands.predict import main

        main([str(checkpoint), "--image", str(clips / "nope.jpg"), "--audio", str(clips / "audio" / "street.wav")])
    with pytest.raises(SystemExit):
        main([str(checkpoint), "--image", str(clips / "street.jpg")])  # no audio
    with pytest.raises(SSLBenchError, match="checkpoint not found"):
        main([str(tmp_path / "missing.ckpt"), "--pairs", str(clips)])

"""`sslbench prepare` on mp4 files made here with PyAV (a corrupt one, a silent one, one without
audio), its resume after a kill, packed shards (read back with the webdataset library, split over
workers and DDP ranks), training on them, and `sslbench data check`."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from datamodules import AudioVisualDataModule, PackedShards, collate
from datamodules import packed as packed_module
from datamodules.packed import pack_folder
from sslbench import cli
from sslbench.audio import PRESETS
from sslbench.commands.datacheck import check
from sslbench.commands.prepare import Settings, run

from conftest import REPO, write_video


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    for i in range(5):
        write_video(root / f"clip{i}.mp4", seconds=3.0, colour_shift=40 * i)
    write_video(root / "sub" / "quiet.webm".replace(".webm", ".mp4"), audio="silent")
    write_video(root / "mute.mp4", audio=None)
    (root / "broken.mp4").write_bytes((root / "clip0.mp4").read_bytes()[:400])  # truncated download
    return root


def test_prepare_writes_the_middle_frame_and_audio_and_reports_every_clip(raw, tmp_path):
    report = run(raw, tmp_path, Settings(rate=16000, seconds=2.0), jobs=2, progress=False)
    assert (report["items"], report["done"], report["silent"], report["failed"], report["skipped"]) == (8, 5, 1, 2, 0)
    assert set(report["failed_reasons"]) == {"broken", "mute"} and "no audio stream" in report["failed_reasons"]["mute"]
    assert report["silent_ids"] == ["quiet"]
    assert json.loads((tmp_path / "prepare_report.json").read_text())["done"] == 5
    audio, rate = soundfile.read(tmp_path / "audio" / "clip2.wav")
    assert rate == 16000 and audio.shape == (32000,)  # 2 s around the middle of a 3 s clip
    # the written tone grows louder over the clip: a window around the middle peaks near its value at 2.5 s
    assert 0.30 < np.abs(audio).max() < 0.40
    frame = np.asarray(Image.open(tmp_path / "frames" / "clip0.jpg"))
    assert frame.shape == (48, 64, 3) and abs(int(frame[..., 0].mean()) - 128) < 20  # the colour of the middle frame
    again = run(raw, tmp_path, Settings(rate=16000, seconds=2.0), jobs=2, progress=False)
    assert (again["skipped"], again["done"], again["failed"]) == (6, 0, 2)


def test_prepare_from_frame_folders_and_audio_files(tmp_path):
    src = tmp_path / "src"
    for k in range(5):
        path = src / "frames" / "vid" / f"{k:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((20, 30, 3), 50 * k, np.uint8)).save(path)
    (src / "audio").mkdir()
    soundfile.write(src / "audio" / "vid.flac", np.random.default_rng(0).uniform(-0.5, 0.5, (44100 * 4, 2)), 44100)
    report = run(src, tmp_path / "out", Settings(rate=16000, seconds=3.0, frame_size=40), jobs=1, progress=False)
    assert report["done"] == 1
    frame = np.asarray(Image.open(tmp_path / "out" / "frames" / "vid.jpg"))
    assert frame.shape == (40, 60, 3) and abs(int(frame.mean()) - 100) < 5  # the middle of five frames, short side 40
    assert soundfile.info(tmp_path / "out" / "audio" / "vid.wav").frames == 48000


@pytest.mark.slow
def test_prepare_resumes_after_being_killed(tmp_path):
    raw = tmp_path / "raw"
    for i in range(60):
        write_video(raw / f"c{i:03d}.mp4", seconds=1.0, fps=5, size=(32, 24))
    (raw / "z_broken.mp4").write_bytes(b"\x00" * 1000)
    write_video(raw / "z_quiet.mp4", seconds=1.0, audio="silent")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sslbench", "prepare", str(raw), str(out), "--jobs", "1", "--no-progress", "--seconds", "1"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "audio").glob("*.wav"))) < 10:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    complete = {p.stem for p in (out / "audio").glob("*.wav")} & {p.stem for p in (out / "frames").glob("*.jpg")}
    assert 10 <= len(complete) < 60, "the run was not stopped midway"
    for wav in (out / "audio").glob("*.wav"):  # nothing half-written under a final name
        assert soundfile.info(wav).frames == 16000
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["skipped"] == len(complete)
    assert report["done"] + report["silent"] == 61 - len(complete) and report["failed"] == 1
    assert f"skipped {len(complete)} (already prepared), failed 1" in finished.stdout
    assert len(list((out / "audio").glob("*.wav"))) == 61 and not list((out / "audio").glob(".*"))


# -- packed shards ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    rng = np.random.default_rng(0)
    (root / "frames").mkdir()
    (root / "audio").mkdir()
    for i in range(23):
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(root / "frames" / f"s{i:02d}.jpg")
        soundfile.write(root / "audio" / f"s{i:02d}.wav", rng.uniform(-0.5, 0.5, 16000 * 2), 16000, subtype="PCM_16")
    (root / "frames" / "bad.jpg").write_bytes(b"not a jpeg")
    soundfile.write(root / "audio" / "bad.wav", np.zeros(16000), 16000)
    index = pack_folder(root, root / "packed", frame_size=35, shard_samples=5, progress=False)
    return root, index


def configured(ds, train=True):
    ds.configure(image_size=32, audio=PRESETS["quick"], train=train)
    return ds


def test_pack_skips_unreadable_samples_and_webdataset_reads_the_shards(prepared):
    root, index = prepared
    assert index["samples"] == 23 and list(index["skipped"]) == ["bad"] and len(index["shards"]) == 5
    import webdataset as wds

    samples = list(wds.WebDataset(str(root / "packed" / "shard-000000.tar"), shardshuffle=False).decode())
    assert [s["__key__"] for s in samples] == index["shards"][0]["ids"]
    frame = samples[0]["frame.npy"]
    assert frame.dtype == np.uint8 and min(frame.shape[:2]) == 35
    audio, _ = soundfile.read(root / "audio" / f"{samples[0]['__key__']}.wav", dtype="int16")
    assert np.abs(samples[0]["audio.npy"].astype(int) - audio).max() <= 1


@pytest.mark.parametrize("world,workers", [(1, 0), (1, 2), (2, 1), (3, 2), (4, 2)])
def test_every_rank_gets_the_same_share_and_an_epoch_covers_the_set(prepared, monkeypatch, world, workers):
    root, _ = prepared
    per_rank = []
    for rank in range(world):
        monkeypatch.setattr(packed_module, "_world", lambda r=rank: (r, world))
        ds = configured(PackedShards(str(root / "packed"), shuffle_buffer=4))
        ids = []
        for worker in range(max(workers, 1)):
            if workers:
                monkeypatch.setattr(packed_module, "get_worker_info", lambda w=worker: type("I", (), {"id": w, "num_workers": workers}))
            ds.epoch = 0
            ids += [s["sample_id"] for s in ds]
        per_rank.append(ids)
    assert len({len(ids) for ids in per_rank}) == 1 and len(per_rank[0]) == 23 // world
    seen = [i for ids in per_rank for i in ids]
    assert len(set(seen)) >= len(seen) - world * max(workers, 1)  # at most a top-up per reader repeats
    if world == 1:
        assert sorted(seen) == sorted(f"s{i:02d}" for i in range(23))


def test_packed_training_samples_are_uint8_until_the_batch_reaches_the_device(prepared):
    root, _ = prepared
    (root / "some.txt").write_text("s01\ns02\ns03\ns04\nmissing\n")
    ds = configured(PackedShards(str(root / "packed"), ids=str(root / "some.txt")))
    samples = list(ds)
    assert sorted(s["sample_id"] for s in samples) == ["s01", "s02", "s03", "s04"]
    assert samples[0]["image"].dtype == torch.uint8 and samples[0]["image"].shape == (3, 32, 32)
    assert ds.manifest()["missing"] == ["missing"]
    dm = AudioVisualDataModule(train=PackedShards(str(root / "packed")), image_size=32, audio_preset="quick", batch_size=4, num_workers=0)
    dm.setup("fit")
    batch = dm.on_after_batch_transfer(collate(samples), 0)
    assert batch.image.dtype == torch.float32 and -3 < batch.image.min() < 0 < batch.image.max() < 3


def test_fit_on_packed_shards(prepared, tmp_path):
    root, _ = prepared
    cli.main(["fit", "--model", "EZVSL", "--model.vision_weights", "null", "--model.backbone_width", "4", "--model.embed_dim", "8",
              "--data.train", "PackedShards", "--data.train.root", str(root / "packed"), "--data.audio_preset", "quick",
              "--data.image_size", "32", "--data.batch_size", "4", "--data.num_workers", "0", "--trainer.max_epochs", "2",
              "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(tmp_path),
              "--trainer.enable_progress_bar", "false", "--test_after_fit", "false", "--trainer.log_every_n_steps", "1"])
    metrics = next(tmp_path.rglob("metrics.csv")).read_text()
    assert "train/loss" in metrics
    assert json.loads(next(tmp_path.rglob("manifests/train_packed.json")).read_text())["used"] == 23


# -- data check ------------------------------------------------------------------------------------


def test_data_check_names_what_is_wrong(tmp_path, capsys):
    root = tmp_path / "vggss"
    rng = np.random.default_rng(1)
    (root / "frames").mkdir(parents=True)
    (root / "audio").mkdir()
    entries = [{"file": f"v{i}", "class": "c", "bbox": [[0.1, 0.1, 0.5, 0.5]]} for i in range(4)]
    entries[1]["bbox"] = [[0.2, 0.3, -2.88e16, 0.5]]
    for e in entries[:3]:
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / "frames" / f"{e['file']}.jpg")
    for e in entries[:2]:
        soundfile.write(root / "audio" / f"{e['file']}.wav", np.zeros(800), 8000)
    (root / "audio" / "v2.wav").write_bytes(b"RIFF broken")
    (root / "vggss.json").write_text(json.dumps(entries))
    found = check(str(root), "vggss", annotations=str(root / "vggss.json"))
    text = found.report()
    assert "3 of 4 samples usable" in text and "v3" in text  # listed but without files
    assert "v2.wav" in text and "unreadable audio" in text
    assert "1 boxes in vggss.json are corrupt" in text and "v1" in text
    assert "rates {8000: 2}" in text and not found.errors
    with pytest.raises(SystemExit):
        cli.main(["data", "check", str(tmp_path / "nowhere"), "--dataset", "vggsound"])
    assert "not a folder" in capsys.readouterr().out

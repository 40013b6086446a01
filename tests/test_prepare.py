"""`sslbench prepare` on mp4 files made here with PyAV (a corrupt one, a silent one, one without
audio), its resume after a kill, packed data (litdata parts read back by litdata itself, by index
with views, resumed packing), training on them, and `sslbench data check`."""

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

from datamodules import AudioVisualDataModule, PackedSamples, collate
from datamodules.packed import pack_folder
from datamodules.views import ViewedDataset, ViewSpec
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


# -- packed data -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """23 readable clips and one unreadable frame, packed into parts of 10 samples."""
    root = tmp_path_factory.mktemp("prepared")
    rng = np.random.default_rng(0)
    (root / "frames").mkdir()
    (root / "audio").mkdir()
    for i in range(23):
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(root / "frames" / f"s{i:02d}.jpg")
        soundfile.write(root / "audio" / f"s{i:02d}.wav", rng.uniform(-0.5, 0.5, 16000 * 2), 16000, subtype="PCM_16")
    (root / "frames" / "bad.jpg").write_bytes(b"not a jpeg")
    soundfile.write(root / "audio" / "bad.wav", np.zeros(16000), 16000)
    record = pack_folder(root, str(root / "packed"), frame_size=35, rate=16000, part_samples=10, progress=False)
    return root, record


def configured(ds, train=True):
    ds.configure(image_size=32, audio=PRESETS["quick"], train=train)
    return ds


def test_pack_writes_litdata_parts_that_litdata_reads_back(prepared):
    """Every id keeps its place (the unreadable one records why); litdata's own StreamingDataset
    reads the parts; frames are uint8 at the training resize side, audio int16 at the rate."""
    from litdata import StreamingDataset

    root, record = prepared
    assert record["samples"] == 24 and [len(p["ids"]) for p in record["parts"]] == [10, 10, 4]
    first = StreamingDataset(str(root / "packed" / "part-00000"))
    assert [first[k]["id"] for k in range(len(first))] == record["parts"][0]["ids"]
    bad = next(first[k] for k in range(len(first)) if first[k]["id"] == "bad")
    assert "UnidentifiedImageError" in bad["error"] or "cannot identify" in bad["error"]
    sample = first[1]
    assert sample["frame"].dtype == np.uint8 and min(sample["frame"].shape[:2]) == 35 and sample["error"] == ""
    audio, _ = soundfile.read(root / "audio" / f"{sample['id']}.wav", dtype="int16")
    assert np.abs(sample["audio"].astype(int) - audio).max() <= 1


def test_a_rerun_keeps_complete_parts(prepared, tmp_path):
    root, record = prepared
    import shutil

    out = tmp_path / "packed"
    shutil.copytree(root / "packed", out)
    shutil.rmtree(out / "part-00001")  # as if killed while packing the second part
    again = pack_folder(root, str(out), frame_size=35, rate=16000, part_samples=10, progress=False)
    assert again["reused"] == 14 and (out / "part-00001" / "index.json").is_file()


def test_packed_samples_by_index_with_views_and_the_unreadable_one_counted(prepared):
    root, _ = prepared
    (root / "some.txt").write_text("s01\ns02\nbad\ns04\nmissing\n")
    ds = configured(PackedSamples(str(root / "packed"), ids=str(root / "some.txt")))
    assert ds.sample_ids == ["s01", "s02", "bad", "s04"] and ds.manifest()["missing"] == ["missing"]
    samples = [ds[i] for i in range(len(ds))]
    assert samples[2] == {"unreadable": "bad", "reason": samples[2]["reason"]}
    assert samples[0]["image"].dtype == torch.uint8 and samples[0]["image"].shape == (3, 32, 32)
    spec = ViewSpec(second_image=True, strong_image=True, audio_shift_seconds=0.5)
    viewed = ViewedDataset(ds, spec)
    batch = collate([viewed[i] for i in range(len(ds))])
    assert batch.unreadable.keys() == {"bad"} and len(batch) == 3
    dm = AudioVisualDataModule(train=PackedSamples(str(root / "packed")), image_size=32, audio_preset="quick", batch_size=4, num_workers=0)
    dm.setup("fit")
    batch = dm.on_after_batch_transfer(batch, 0)
    assert batch.image.dtype == torch.float32 and batch.views["image_2"].dtype == torch.float32
    assert dm.manifests("fit")["train_packed"]["unreadable_ids"] == ["bad"]


def test_packing_and_reading_never_ask_pypi_for_a_newer_litdata(prepared, tmp_path, monkeypatch):
    """litdata 0.2.50 requests pypi.org (30 s timeout) whenever a StreamingDataset or optimize starts;
    a node without internet would wait in every loader process. Its answer is cached per process,
    so the cache is cleared first: without our switch, the request would be made."""
    import litdata.helpers
    import requests

    asked = []

    def offline(url, *args, **kwargs):
        asked.append(url)
        raise requests.ConnectionError(url)

    monkeypatch.setattr(requests, "get", offline)
    litdata.helpers._get_newer_version.cache_clear()
    root, _ = prepared
    assert configured(PackedSamples(str(root / "packed")))[1]["image"].dtype == torch.uint8  # [0] is the unreadable one
    pack_folder(root, str(tmp_path / "again"), frame_size=35, rate=16000, part_samples=10, jobs=1, progress=False)
    assert asked == []


def fit_packed(packed, out, *extra: str) -> None:
    """A tiny EZ-VSL trained for 2 epochs on the packed parts (24 listed, batch 4: 6 steps an epoch)."""
    cli.main(["fit", "--model", "EZVSL", "--model.vision_weights", "null", "--model.backbone_width", "4", "--model.embed_dim", "8",
              "--data.train", "PackedSamples", "--data.train.root", str(packed), "--data.audio_preset", "quick",
              "--data.image_size", "32", "--data.batch_size", "4", "--data.num_workers", "0", "--trainer.max_epochs", "2",
              "--trainer.default_root_dir", str(out), "--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(out),
              "--trainer.enable_progress_bar", "false", "--test_after_fit", "false", "--trainer.log_every_n_steps", "1", *extra])


def test_fit_on_packed_data(prepared, tmp_path):
    root, _ = prepared
    fit_packed(root / "packed", tmp_path)
    metrics = next(tmp_path.rglob("metrics.csv")).read_text()
    assert "train/loss" in metrics
    manifest = json.loads(next(tmp_path.rglob("manifests/train_packed.json")).read_text())
    assert manifest["used"] == 24 and manifest["unreadable"] == 1 and manifest["unreadable_ids"] == ["bad"]


def test_a_packed_run_killed_mid_epoch_resumes_exactly(prepared, tmp_path):
    """SIGTERM after step 8 (the second of epoch 1), then --ckpt_path last.ckpt: the same weights as
    a run never stopped, bit for bit (the packed set's order and crops are a function of (seed,
    epoch, index), the loader's place is in the checkpoint)."""
    root, _ = prepared
    save_last = json.dumps([{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_last": True}}])
    fit_packed(root / "packed", tmp_path / "whole", "--trainer.callbacks", save_last)
    kill = json.dumps([{"class_path": "conftest.SignalAtStep", "init_args": {"step": 8, "signum": int(signal.SIGTERM)}}])
    with pytest.raises(SystemExit):
        fit_packed(root / "packed", tmp_path / "cut", "--trainer.callbacks", save_last, "--trainer.callbacks+", kill)
    (last,) = (tmp_path / "cut").rglob("last.ckpt")
    assert torch.load(last, weights_only=False)["global_step"] == 8
    fit_packed(root / "packed", tmp_path / "cut", "--trainer.callbacks", save_last, "--ckpt_path", str(last))
    (whole,) = (tmp_path / "whole").rglob("last.ckpt")
    expected, resumed = (torch.load(p, weights_only=False) for p in (whole, last))
    assert resumed["global_step"] == expected["global_step"] == 12
    for key, value in expected["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, rtol=0, atol=0, msg=key)


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


def test_pack_to_and_train_from_a_local_s3_server(prepared, tmp_path, monkeypatch):
    """A real S3-compatible server (moto, in server mode) started here: `prepare --pack-only`
    writes the parts to s3://, and `sslbench fit` trains one epoch streaming from it, with the
    endpoint given in the config."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    root, _ = prepared
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(key, value)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="sslbench")
        cli.main(["prepare", str(root), "s3://sslbench/clips/packed", "--pack-only", "--endpoint-url", endpoint, "--jobs", "1",
                  "--no-progress"])
        listed = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket="sslbench", Prefix="clips/packed/")
        names = {o["Key"].removeprefix("clips/packed/") for o in listed["Contents"]}
        assert {"packed.json", "part-00000/index.json"} <= names
        train = json.dumps({"class_path": "PackedSamples", "init_args": {
            "root": "s3://sslbench/clips/packed", "endpoint_url": endpoint, "cache_dir": str(tmp_path / "cache")}})
        cli.main(["fit", "--model", "EZVSL", "--model.vision_weights", "null", "--model.backbone_width", "4", "--model.embed_dim", "8",
                  "--data.train", train, "--data.audio_preset", "quick", "--data.image_size", "32", "--data.batch_size", "4",
                  "--data.num_workers", "0", "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path),
                  "--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
                  "--test_after_fit", "false"])
        manifest = json.loads(next(tmp_path.rglob("manifests/train_packed.json")).read_text())
        assert manifest["used"] == 24 and manifest["root"] == "s3://sslbench/clips/packed"
        epochs = next(tmp_path.rglob("epochs.csv")).read_text().splitlines()
        assert len(epochs) == 2 and float(epochs[1].split(",")[2]) > 0  # one epoch trained, with a loss
    finally:
        server.stop()


def test_data_check_opens_every_listed_file_and_names_what_each_lacks(tmp_path, capsys):
    """A Flickr root as released (Annotations/ beside training clips): as a test list, ids without
    XML are named as lacking their annotation, and a corrupt wav among them is still reported; as
    a training list (--split train) they are usable; a list with nothing usable exits 1."""
    root = tmp_path / "flickr"
    (root / "frames").mkdir(parents=True)
    (root / "audio").mkdir()
    (root / "Annotations").mkdir()
    for sample_id in ("t1", "train1", "train2"):
        Image.new("RGB", (32, 32), (10, 20, 30)).save(root / "frames" / f"{sample_id}.jpg")
        soundfile.write(root / "audio" / f"{sample_id}.wav", np.zeros(1600), 16000)
    (root / "audio" / "train2.wav").write_bytes(b"RIFF broken")
    (root / "Annotations" / "t1.xml").write_text("<annotation><object><bbox><x0>1</x0><xmin>1</xmin><ymin>1</ymin>"
                                                  "<xmax>9</xmax><ymax>9</ymax></bbox></object></annotation>")
    text = check(str(root), "flickr").report()
    assert "2 listed samples lack their annotation: train1, train2" in text and "train2.wav" in text
    (tmp_path / "train.txt").write_text("train1\ntrain2\n")
    as_training = check(str(root), "flickr", ids=str(tmp_path / "train.txt"), split="train")
    assert not as_training.errors and "2 of 2 samples usable" in as_training.report() and "train2.wav" in as_training.report()
    (tmp_path / "none.txt").write_text("ghost1\nghost2\n")
    with pytest.raises(SystemExit) as stop:
        cli.main(["data", "check", str(root), "--dataset", "flickr", "--ids", str(tmp_path / "none.txt")])
    assert stop.value.code == 1
    assert "2 listed samples lack their frame and audio and annotation: ghost1, ghost2" in capsys.readouterr().out

"""Real-format readers on tiny files written here: jpg frames, wav audio, Flickr XML, vggss.json."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from datamodules import VGGSS, AudioVisualDataModule, FlickrSoundNet, VGGSound, collate
from datamodules.folder import parse_flickr_xml, read_id_list
from sslbench.audio import PRESETS
from sslbench.errors import DatasetNotFoundError
from sslbench.eval.functional import gt_map_flickr, gt_map_vggss

from conftest import SHARED_METADATA


def write_sample(root: Path, sample_id: str, seconds=4.0, rate=16000, channels=1):
    (root / "frames").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(sample_id)) % 2**32)
    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(root / "frames" / f"{sample_id}.jpg")
    wave = 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)
    soundfile.write(root / "audio" / f"{sample_id}.wav", np.stack([wave] * channels, 1), rate)


def write_flickr_xml(path: Path, boxes):
    objects = "".join(
        f"<object><bbox><x0>1</x0><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bbox></object>"
        for b in boxes
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation>{objects}</annotation>")


def configured(ds, train=False):
    ds.configure(image_size=64, audio=PRESETS["ezvsl"], train=train)
    return ds


def test_flickr_reader_builds_the_consensus_gt(tmp_path):
    root = tmp_path / "flickr"
    boxes = {"10000130166": [[37, 52, 201, 240], [40, 50, 200, 230], [30, 60, 190, 250]], "2542659118": [[0, 0, 256, 256]]}
    for sid, b in boxes.items():
        write_sample(root, sid)
        write_flickr_xml(root / "Annotations" / f"{sid}.xml", b)
    write_sample(root, "999")  # no annotation: not a test sample
    (tmp_path / "flickr_test.csv").write_text("10000130166,202\r\n2542659118,7\r\n")
    ds = configured(FlickrSoundNet(str(root), ids=str(tmp_path / "flickr_test.csv")))
    assert ds.sample_ids == ["10000130166", "2542659118"]
    sample = ds[0]
    assert sample["image"].shape == (3, 64, 64) and sample["waveform"].shape == (48000,)
    assert torch.equal(sample["gt_map"], gt_map_flickr(boxes["10000130166"]))
    assert parse_flickr_xml(root / "Annotations" / "2542659118.xml") == [[0, 0, 256, 256]]


def test_vggss_reader_stereo_and_resampled_audio(tmp_path):
    root = tmp_path / "vggss"
    write_sample(root, "abcdEFGhijk_000120", rate=22050, channels=2)
    write_sample(root, "zpWuikVorYg_000032", seconds=1.0)
    entries = [
        {"file": "abcdEFGhijk_000120", "class": "cello", "bbox": [[0.1, 0.2, 0.55, 0.9], [0.6, 0.3, 0.95, 0.8]]},
        {"file": "zpWuikVorYg_000032", "class": "elk bugling", "bbox": [[-2.88e16, 0.25, 0.6, 0.75]]},
    ]
    (tmp_path / "vggss.json").write_text(json.dumps(entries))
    ds = configured(VGGSS(str(root), annotations=str(tmp_path / "vggss.json")))
    assert ds.sample_ids == ["abcdEFGhijk_000120", "zpWuikVorYg_000032"]
    first, short = ds[0], ds[1]
    assert first["waveform"].shape == (48000,)  # 22.05 kHz stereo -> 16 kHz mono
    assert torch.equal(first["gt_map"], gt_map_vggss(entries[0]["bbox"]))
    assert short["waveform"].shape == (48000,)  # 1 s tiled to 3 s
    torch.testing.assert_close(short["waveform"][:16000], short["waveform"][16000:32000])


def test_corrupt_audio_is_skipped_counted_and_warned_once_per_run(tmp_path):
    """The reader marks the sample; collate drops it and lists it; the data module counts it and
    warns once, however many times (and in whichever loader process) it is met."""
    root = tmp_path / "vggsound"
    write_sample(root, "good")
    write_sample(root, "broken")
    (root / "audio" / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    ds = configured(VGGSound(str(root)), train=True)
    items = [ds[i] for i in range(len(ds))]
    bad = items[ds.sample_ids.index("broken")]
    assert bad["unreadable"] == "broken" and "broken.wav" in bad["reason"]
    batch = collate(items)
    assert len(batch) == 1 and batch.sample_id == ["good"] and list(batch.unreadable) == ["broken"]
    dm = AudioVisualDataModule(train=VGGSound(str(root)), batch_size=1, num_workers=0)
    dm.setup("fit")
    with pytest.warns(UserWarning, match="skipping unreadable sample broken") as caught:
        for _ in range(3):  # three epochs, say
            dm.on_after_batch_transfer(collate([ds[i] for i in range(len(ds))]), 0)
    assert len([w for w in caught if "broken" in str(w.message)]) == 1
    assert dm.manifests("fit")["train_vggsound"]["unreadable_ids"] == ["broken"]


def test_flickr_training_list_in_a_root_with_annotations_needs_no_xml(tmp_path):
    """The released Flickr root holds the annotated test images (Annotations/) beside the 10k / 144k
    training clips, which have no XML: a training set uses them all, a test set only annotated ones."""
    root = tmp_path / "flickr"
    write_sample(root, "test1")
    write_flickr_xml(root / "Annotations" / "test1.xml", [[10, 10, 100, 100]])
    for i in range(3):
        write_sample(root, f"train{i}")
    (tmp_path / "train.txt").write_text("train0\ntrain1\ntrain2\n")
    train = configured(FlickrSoundNet(str(root), ids=str(tmp_path / "train.txt")), train=True)
    assert train.sample_ids == ["train0", "train1", "train2"] and not train.has_ground_truth
    test = configured(FlickrSoundNet(str(root)))
    assert test.sample_ids == ["test1"] and test.manifest()["missing_parts"] == {f"train{i}": ["annotation"] for i in range(3)}


def test_a_training_list_that_is_all_test_ids_stops_at_setup(tmp_path, capsys):
    from sslbench.cli import main

    root = tmp_path / "flickr"
    for i in range(2):
        write_sample(root, f"t{i}")
        write_flickr_xml(root / "Annotations" / f"t{i}.xml", [[10, 10, 100, 100]])
    flickr = {"class_path": "FlickrSoundNet", "init_args": {"root": str(root)}}
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--model", "EZVSL", "--model.vision_weights", "null", "--model.backbone_width", "4", "--data.train",
              json.dumps(flickr), "--data.test", json.dumps([flickr]), "--data.batch_size", "2", "--data.num_workers", "0",
              "--trainer.default_root_dir", str(tmp_path / "runs"), "--trainer.logger", "false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and "all 2 training samples of flickr are test samples" in err[-1]
    assert "--data.keep_test_ids_in_train true" in err[-1]


def test_missing_root_names_the_path(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "nowhere")):
        VGGSound(str(tmp_path / "nowhere"))
    (tmp_path / "empty" / "frames").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="audio"):
        VGGSound(str(tmp_path / "empty"))


def test_real_datasets_plug_into_the_data_module(tmp_path):
    root = tmp_path / "vggsound"
    for i in range(4):
        write_sample(root, f"clip{i}")
    dm = AudioVisualDataModule(train=VGGSound(str(root)), image_size=64, batch_size=2, num_workers=0)
    dm.setup("fit")
    assert dm.val_set is None  # a real training set gets validation only when asked
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert batch.audio.shape == (2, 1, 257, 200) and batch.gt_map is None


@pytest.mark.skipif(not (SHARED_METADATA / "EZ-VSL").is_dir(), reason="reference metadata not available")
def test_reference_lists_read_as_published():
    flickr = read_id_list(SHARED_METADATA / "EZ-VSL" / "flickr_test.csv")
    assert len(flickr) == 249 and flickr[0].isdigit()
    assert len(read_id_list(SHARED_METADATA / "SLAVC" / "flickr_test.csv")) == 250
    assert len(read_id_list(SHARED_METADATA / "EZ-VSL" / "vggss_test.csv")) == 5158

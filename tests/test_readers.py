"""Every reader on tiny files in the published formats, written here (evaluation.md part B):
Flickr XML and CRLF lists, vggss.json (with a corrupt value), SLAVC's non-sounding rows, MUSIC
json with [x, y, w, h] boxes and per-video audio, AVSBench S4 PNG frames and masks, AVGN's
VGGSound-Duet list; then the leakage guard, manifests, mixtures and `sslbench test` on them."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from datamodules import MUSIC, VGGSS, AudioVisualDataModule, AVSBenchS4, DuetComposer, FlickrSoundNet, StackedMixture, VGGSound, collate
from datamodules.folder import read_non_sounding
from sslbench import cli
from sslbench.audio import PRESETS
from sslbench.errors import DatasetNotFoundError
from sslbench.eval.functional import gt_map_music, gt_map_vggss

from conftest import SHARED_METADATA


def image(path: Path, size=(64, 48), seed=0, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, format=fmt)


def audio(path: Path, seconds=4.0, rate=16000, freq=440.0, channels=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t) * (0.2 + 0.8 * t / seconds)  # louder over time: windows differ
    soundfile.write(path, np.stack([wave] * channels, 1), rate)


def configured(ds, size=32, train=False):
    ds.configure(image_size=size, audio=PRESETS["quick"], train=train, eval_size=size)
    return ds


def flickr_folder(root: Path, ids, xml=True):
    for i, sid in enumerate(ids):
        image(root / "frames" / f"{sid}.jpg", (256, 256), seed=i)
        audio(root / "audio" / f"{sid}.wav", freq=300 + 50 * i)
        if xml:
            (root / "Annotations").mkdir(parents=True, exist_ok=True)
            (root / "Annotations" / f"{sid}.xml").write_text(
                "<annotation><object><bbox><x0>1</x0><xmin>32</xmin><ymin>64</ymin><xmax>128</xmax><ymax>192</ymax></bbox></object>"
                "<object><bbox><x0>2</x0><xmin>40</xmin><ymin>64</ymin><xmax>160</xmax><ymax>200</ymax></bbox></object></annotation>"
            )


def test_extended_flickr_adds_non_sounding_rows_with_empty_ground_truth(tmp_path):
    flickr_folder(tmp_path, ["111", "222", "333"])
    (tmp_path / "test.csv").write_bytes(b"111,17\r\n222,40\r\n")  # CRLF, a second column never read
    (tmp_path / "plus_silent.csv").write_text("video,audio,label\n111,333,non-sounding\n222,999,non-sounding\n")
    ds = configured(FlickrSoundNet(str(tmp_path), ids=str(tmp_path / "test.csv"), non_sounding=str(tmp_path / "plus_silent.csv")))
    assert ds.evaluation == "extended"
    assert ds.sample_ids == ["111", "222", "silent:111:333"]  # 999 has no audio file: missing, not substituted
    assert ds.manifest()["missing"] == ["silent:222:999"]
    sounding, silent = ds[0], ds[2]
    assert sounding["n_boxes"] == 2 and sounding["gt_map"].max() == 1
    assert silent["n_boxes"] == 0 and silent["gt_map"].sum() == 0 and silent["boxes"].shape == (0, 4)
    assert not torch.equal(silent["waveform"], sounding["waveform"])  # another clip's audio
    torch.testing.assert_close(silent["image"], sounding["image"])  # the same image as 111
    assert collate([sounding, silent]).n_boxes.tolist() == [2, 0]


def test_flickr_training_list_without_annotations(tmp_path):
    flickr_folder(tmp_path, ["1", "2", "3"], xml=False)
    (tmp_path / "flickr_10k.txt").write_text("3\n1\n4\n")
    ds = configured(FlickrSoundNet(str(tmp_path), ids=str(tmp_path / "flickr_10k.txt")), train=True)
    assert ds.sample_ids == ["3", "1"] and not ds.has_ground_truth and "gt_map" not in ds[0]
    assert ds.manifest()["missing"] == ["4"] and ds.manifest()["wanted"] == 3


def vggss_folder(root: Path):
    entries = [
        {"file": "abcdEFGhijk_000120", "class": "playing cello", "bbox": [[0.1, 0.2, 0.55, 0.9], [0.6, 0.3, 0.95, 0.8]]},
        {"file": "zyxwVUTsrqp_000030", "class": "dog barking", "bbox": [[0.2, 0.1, -2.8823037615171176e16, 0.5]]},  # corrupt
        {"file": "qqqqqqqqqqq_000010", "class": "dog barking", "bbox": [[0.0, 0.0, 0.5, 0.5]]},
    ]
    for i, e in enumerate(entries):
        image(root / "frames" / f"{e['file']}.jpg", seed=i)
        audio(root / "audio" / f"{e['file']}.flac", freq=200 + 100 * i, rate=22050, channels=2)  # flac, stereo, resampled
    (root / "vggss.json").write_text(json.dumps(entries))
    return entries


def test_vggss_boxes_corrupt_values_classes_and_flac(tmp_path):
    entries = vggss_folder(tmp_path)
    ds = configured(VGGSS(str(tmp_path), annotations=str(tmp_path / "vggss.json")))
    assert ds.sample_ids == [e["file"] for e in entries]
    for i, e in enumerate(entries):
        torch.testing.assert_close(ds[i]["gt_map"], gt_map_vggss(e["bbox"], 32))
    assert ds[1]["gt_map"].sum() == 0  # x2 corrupt: an empty box, as the reference's conversion gives
    assert ds[0]["waveform"].shape == (16000,)  # 1 s at 16 kHz from a 22.05 kHz stereo flac
    assert ds.class_id(1) == ds.class_id(2) != ds.class_id(0)
    (tmp_path / "silent.csv").write_text("video,audio,label\nabcdEFGhijk_000120,abcdEFGhijk_000120,non-sounding\n")
    extended = configured(VGGSS(str(tmp_path), annotations=str(tmp_path / "vggss.json"), non_sounding=str(tmp_path / "silent.csv")))
    assert len(extended) == 4 and extended[3]["n_boxes"] == 0 and extended[0]["n_boxes"] == 2


def test_vggsound_classes_from_the_official_csv(tmp_path):
    vggss_folder(tmp_path)
    (tmp_path / "vggsound.csv").write_text("abcdEFGhijk,120,playing cello,train\nzyxwVUTsrqp,30,dog barking,test\n")
    ds = VGGSound(str(tmp_path), classes=str(tmp_path / "vggsound.csv"))
    assert [ds.class_id(i) for i in range(3)] == [1, -1, 0]  # sorted labels; one clip not in the csv


def music_folder(root: Path, duet: bool):
    files = ["HnUOaSfTA6c_000_00000", "HnUOaSfTA6c_000_00010", "abcdEFGhijk_002_00070"]
    for i, f in enumerate(files):
        image(root / "frames" / f"{f}.jpg", seed=i)
    audio(root / "audio" / "HnUOaSfTA6c.wav", seconds=6, freq=500)  # one wav per video (AVGN)
    audio(root / "audio" / "abcdEFGhijk_002_00070.wav", freq=900)  # and a per-frame one
    if duet:
        entries = [{"file": f, "class_src1": "cello", "bbox_src1": [0.1497, 0.3083, 0.2056, 0.5833],
                    "class_src2": "acoustic_guitar", "bbox_src2": [0.4885, 0.5333, 0.3618, 0.1806]} for f in files]
        (root / "music_duet_test.csv").write_text("\n".join(files) + "\n")
    else:
        entries = [{"file": f, "class": c, "bbox": [0.31, 0.12, 0.22, 0.70]} for f, c in zip(files, ["flute", "cello", "flute"])]
        (root / "music_solo_test.csv").write_text("".join(f"{e['file']},{e['class']}\n" for e in entries))
    (root / "music.json").write_text(json.dumps(entries))
    return entries


def test_music_solo_xywh_boxes_and_per_video_audio(tmp_path):
    entries = music_folder(tmp_path, duet=False)
    ds = configured(MUSIC(str(tmp_path), annotations=str(tmp_path / "music.json"), ids=str(tmp_path / "music_solo_test.csv")))
    assert ds.evaluation == "single" and ds.name == "music_solo" and len(ds) == 3
    sample = ds[2]
    torch.testing.assert_close(sample["gt_map"], gt_map_music([entries[2]["bbox"]], 32))
    torch.testing.assert_close(sample["boxes"], torch.tensor([[0.31, 0.12, 0.53, 0.82]]))  # x + w, y + h
    assert sample["gt_map"].sum() > 0  # read as corners this box would be empty
    torch.testing.assert_close(ds[0]["waveform"], ds[1]["waveform"])  # both frames of one video hear its file
    assert ds.audio_file(ds.sample_ids[2]).name == "abcdEFGhijk_002_00070.wav"
    assert ds.class_id(0) == ds.class_id(2) != ds.class_id(1)


def test_music_duet_is_a_multi_source_set(tmp_path):
    music_folder(tmp_path, duet=True)
    ds = configured(MUSIC(str(tmp_path), annotations=str(tmp_path / "music.json"), ids=str(tmp_path / "music_duet_test.csv")))
    assert ds.evaluation == "multi" and ds.name == "music_duet"
    sample = ds[0]
    assert sample["boxes"].shape == (2, 4) and sample["gt_frames"].shape == (1, 32, 32)
    batch = collate([ds[0], ds[1]])
    assert batch.gt_frames.shape == (2, 1, 32, 32) and [len(b) for b in batch.boxes] == [2, 2]


def s4_folder(root: Path, videos=(("vidA", "dog_barking", "test"), ("vidB", "male_speech", "test"), ("vidC", "race_car", "train"))):
    lines = ["name,start,category,split"] + [f"{v},0,{c},{s}" for v, c, s in videos]
    root.mkdir(parents=True, exist_ok=True)
    (root / "s4_meta_data.csv").write_text("\n".join(lines) + "\n")
    for n, (v, c, s) in enumerate(videos):
        audio(root / "s4_data" / "audio_wav" / s / c / f"{v}.wav", seconds=5, freq=300 + 200 * n)
        for k in range(1, 6):
            image(root / "s4_data" / "visual_frames" / s / c / v / f"{v}_{k}.png", (224, 224), seed=10 * n + k)
            if s != "train" or k == 1:  # training videos have only the first mask
                mask = np.zeros((224, 224), bool)
                mask[20 * k : 20 * k + 60, 30:120] = True
                path = root / "s4_data" / "gt_masks" / s / c / v / f"{v}_{k}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).convert("1").save(path)


def test_avsbench_s4_frames_masks_groups_and_audio_per_second(tmp_path):
    s4_folder(tmp_path)
    ds = configured(AVSBenchS4(str(tmp_path), split="test"), size=56)
    assert len(ds) == 10 and ds.evaluation == "segmentation" and ds.sample_ids[:2] == ["vidA_1", "vidA_2"]
    first, third = ds[0], ds[2]
    assert first["gt_map"].shape == (56, 56) and set(first["gt_map"].unique().tolist()) == {0.0, 1.0}
    assert first["group"] == third["group"] == 0 and ds[5]["group"] == 1
    assert not torch.equal(first["waveform"], ds[4]["waveform"])  # frame 1 hears second 0-1, frame 5 seconds 4-5
    train = configured(AVSBenchS4(str(tmp_path), split="train"), train=True)
    assert len(train) == 5 and "gt_map" not in train[0]
    with pytest.raises(DatasetNotFoundError, match="s4_meta_data.csv"):
        AVSBenchS4(str(tmp_path / "nowhere"))


def test_vggsound_duet_from_avgn_list_side_by_side(tmp_path):
    entries = vggss_folder(tmp_path)
    (tmp_path / "duet.csv").write_text("abcdEFGhijk_000120,playing_cello,qqqqqqqqqqq_000010,dog_barking\nabcdEFGhijk_000120,x,missing_000001,y\n")
    base = VGGSS(str(tmp_path), annotations=str(tmp_path / "vggss.json"))
    duet = configured(DuetComposer(base, layout="side_by_side", mixtures=str(tmp_path / "duet.csv"), name="vggsound_duet"))
    assert len(duet) == 1 and duet.sample_ids == ["abcdEFGhijk_000120+qqqqqqqqqqq_000010"]
    sample = duet[0]
    a, b = base[0], base[2]
    torch.testing.assert_close(sample["waveform"], a["waveform"] + b["waveform"])  # summed
    assert sample["image"].shape == (3, 32, 32)
    boxes = sample["boxes"]
    assert len(boxes) == 3 and (boxes[:2, 2] <= 0.5).all() and (boxes[2, 0] >= 0.5)  # the second source on the right
    torch.testing.assert_close(boxes[2], torch.tensor([0.5, 0.0, 0.75, 0.5]))
    assert sample["gt_frames"].shape == (1, 32, 32) and sample["source_classes"] == [base.class_id(0), base.class_id(2)]
    _ = entries


def test_grid_and_stacked_mixtures_are_seeded_and_saved(tmp_path):
    from datamodules.synthetic import SyntheticScenes

    base = SyntheticScenes("test", 12)
    grid = configured(DuetComposer(base, layout="grid2x2", seed=3, save_list=str(tmp_path / "grid.csv")))
    sample = grid[0]
    assert sample["image"].shape == (3, 32, 32) and len(sample["source_classes"]) == 2  # two of four sound
    again = configured(DuetComposer(base, layout="grid2x2", mixtures=str(tmp_path / "grid.csv")))
    assert again.sample_ids == grid.sample_ids
    torch.testing.assert_close(again[5]["waveform"], grid[5]["waveform"])
    assert DuetComposer(base, layout="grid2x2", seed=4).sample_ids != grid.sample_ids

    stacked = configured(StackedMixture(base, sources=2))
    mix = stacked[0]
    assert mix["views"]["mix_sources"].shape == (2, 16000)
    dm = AudioVisualDataModule(test=[StackedMixture(SyntheticScenes("test", 4), sources=2)], audio_preset="quick", image_size=32,
                               eval_size=32, batch_size=2, num_workers=0)
    dm.setup("test")
    batch = dm.on_after_batch_transfer(next(iter(dm.test_dataloader()[0])), 0)
    spectra = dm.frontend(collate([dm.test_sets[0][0], dm.test_sets[0][1]]).views["mix_sources"].flatten(0, 1)).unflatten(0, (2, 2))
    torch.testing.assert_close(batch.audio, spectra.mean(1))  # the mean of the log-spectrograms, not of the waveforms
    assert "mix_sources" not in batch.views


def test_leakage_guard_drops_test_ids_from_training_and_writes_manifests(tmp_path):
    flickr_folder(tmp_path / "flickr", ["111", "222", "333", "444"])
    (tmp_path / "train.txt").write_text("111\n222\n333\n555\n")
    (tmp_path / "test.csv").write_text("222,1\n444,1\n")
    root = str(tmp_path / "flickr")

    def module(**kw):
        return AudioVisualDataModule(train=FlickrSoundNet(root, ids=str(tmp_path / "train.txt")),
                                     test=[FlickrSoundNet(root, ids=str(tmp_path / "test.csv"))], num_workers=0, batch_size=1, **kw)

    dm = module()
    dm.setup("fit")
    assert dm.train_set.sample_ids == ["111", "333"] and dm.train_set.excluded == ["222"]
    kept = module(keep_test_ids_in_train=True)
    kept.setup("fit")
    assert kept.train_set.sample_ids == ["111", "222", "333"]
    manifest = dm.manifests()["train_flickr"]
    assert (manifest["wanted"], manifest["used"], manifest["missing"], manifest["excluded"]) == (4, 2, ["555"], ["222"])
    assert len(manifest["ids_hash"]) == 16 and manifest["ids_hash"] != kept.manifests()["train_flickr"]["ids_hash"]


@pytest.mark.skipif(not (SHARED_METADATA / "EZ-VSL").is_dir(), reason="reference metadata not available")
def test_public_flickr_144k_list_holds_20_test_ids(tmp_path):
    from datamodules.folder import read_id_list

    train = set(read_id_list(SHARED_METADATA / "EZ-VSL" / "flickr_144k.txt"))
    test = read_id_list(SHARED_METADATA / "EZ-VSL" / "flickr_test.csv")
    leaked = sorted(train & set(test))
    flickr_folder(tmp_path, test[:5] + leaked[:3] + ["999"], xml=True)
    (tmp_path / "train.txt").write_text("\n".join(leaked[:3] + ["999"]) + "\n")
    (tmp_path / "test.csv").write_text("\n".join(test) + "\n")
    dm = AudioVisualDataModule(train=FlickrSoundNet(str(tmp_path), ids=str(tmp_path / "train.txt")),
                               test=[FlickrSoundNet(str(tmp_path), ids=str(tmp_path / "test.csv"))], num_workers=0, batch_size=1)
    dm.setup("fit")
    assert len(leaked) == 20 and dm.train_set.sample_ids == ["999"]
    rows = read_non_sounding(SHARED_METADATA / "SLAVC" / "flickr_test_plus_silent.csv")
    assert len(rows) == 250


def test_sslbench_test_runs_on_real_format_sets_and_records_manifests(tmp_path):
    flickr_folder(tmp_path / "flickr", ["111", "222", "333"])
    (tmp_path / "silent.csv").write_text("video,audio,label\n111,222,non-sounding\n")
    music_folder(tmp_path / "music", duet=True)
    sets = [
        {"class_path": "FlickrSoundNet", "init_args": {"root": str(tmp_path / "flickr")}},
        {"class_path": "FlickrSoundNet", "init_args": {"root": str(tmp_path / "flickr"), "non_sounding": str(tmp_path / "silent.csv"),
                                                       "name": "flickr_extended"}},
        {"class_path": "MUSIC", "init_args": {"root": str(tmp_path / "music"), "annotations": str(tmp_path / "music" / "music.json")}},
    ]
    cli.main(["test", "--model", "EZVSL", "--model.vision_weights", "null", "--model.backbone_width", "4", "--model.embed_dim", "8",
              "--data.audio_preset", "quick", "--data.image_size", "64", "--data.batch_size", "2", "--data.num_workers", "0",
              "--data.test", json.dumps(sets), "--trainer.default_root_dir", str(tmp_path / "runs"), "--trainer.logger", "CSVLogger",
              "--trainer.logger.save_dir", str(tmp_path / "runs"), "--trainer.enable_progress_bar", "false", "--evaluator.num_visualized", "2"])
    results = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("results/test_*.json")}
    assert results["test_flickr"]["n"] == 3 and results["test_music_duet"]["kind"] == "multi"
    # each set under the protocol it carries: EZ-VSL's, SLAVC's for its extended set, IOI's for duets
    assert [results[f"test_{n}"]["protocol"] for n in ("flickr", "flickr_extended", "music_duet")] == ["ezvsl", "slavc_relative", "ioi"]
    assert results["test_flickr_extended"]["n"] == 4 and "AP" in results["test_flickr_extended"]
    manifests = {p.stem: p for p in (tmp_path / "runs").rglob("manifests/*.json")}
    assert json.loads(manifests["test_flickr"].read_text())["used"] == 3
    assert set(manifests) == {"test_flickr", "test_flickr_extended", "test_music_duet"}  # testing reads no training set

"""``sslbench data check ROOT --dataset NAME``: what is wrong with a dataset folder, exactly.

    sslbench data check data/flickr --dataset flickr --ids metadata/flickr_test.csv
    sslbench data check data/vggss --dataset vggss --annotations metadata/vggss.json
    sslbench data check data/music --dataset music --annotations metadata/music_duet.json
    sslbench data check data/avsbench/Single-source --dataset avsbench_s4 --split test
    sslbench data check data/vggsound/packed --dataset packed

Checks the layout the reader expects, pairs frames with audio, compares the list with what is on
disk, validates the annotations (boxes outside [0, 1], reversed or empty), and opens every frame
and audio file (headers; ``--deep`` decodes them), with the audio rates and durations found.
Prints each problem with the files it concerns; exits 1 when the reader could not use the folder
as asked, 0 when only warnings remain.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from pathlib import Path

from sslbench.errors import SSLBenchError

KINDS = ("folder", "flickr", "vggss", "vggsound", "music", "avsbench_s4", "packed")


class Findings:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.facts: list[str] = []

    def listing(self, items: list[str], limit: int = 5) -> str:
        shown = ", ".join(items[:limit])
        return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")

    def report(self) -> str:
        lines = [f"  {fact}" for fact in self.facts]
        lines += [f"ERROR   {e}" for e in self.errors] + [f"warning {w}" for w in self.warnings]
        verdict = "usable" if not self.errors else "NOT usable as given"
        lines.append(f"data check: {verdict}: {len(self.errors)} errors, {len(self.warnings)} warnings")
        return "\n".join(lines)


def _check_files(found: Findings, frames: dict[str, Path], audios: dict[str, Path], ids: list[str], deep: bool, audio_key=None) -> None:
    """Open every frame and audio file of ``ids``; note unreadable ones, rates and durations."""
    import soundfile
    from PIL import Image
    from tqdm import tqdm

    bad_frames, bad_audio, rates, seconds, channels = [], [], Counter(), [], Counter()
    audio_key = audio_key or (lambda i: i)
    for sample_id in tqdm(ids, desc="opening files", unit="sample", file=sys.stderr, disable=len(ids) < 200):
        frame = frames.get(sample_id)
        if frame is not None:
            try:
                with Image.open(frame) as img:
                    img.load() if deep else img.verify()
            except Exception as err:
                bad_frames.append(f"{frame.name} ({type(err).__name__})")
        audio = audios.get(audio_key(sample_id))
        if audio is not None:
            try:
                info = soundfile.info(str(audio))
                if info.frames == 0:
                    raise ValueError("no samples")
                if deep:
                    soundfile.read(str(audio), dtype="float32")
                rates[info.samplerate] += 1
                channels[info.channels] += 1
                seconds.append(info.frames / info.samplerate)
            except Exception as err:
                bad_audio.append(f"{audio.name} ({type(err).__name__}: {str(err)[:60]})")
    if bad_frames:
        found.warnings.append(f"{len(bad_frames)} unreadable frames (skipped at run time): {found.listing(bad_frames)}")
    if bad_audio:
        found.warnings.append(f"{len(bad_audio)} unreadable audio files (skipped at run time): {found.listing(bad_audio)}")
    if seconds:
        found.facts.append(
            f"audio: rates {dict(rates)} Hz, channels {dict(channels)}, seconds min {min(seconds):.2f} / median "
            f"{statistics.median(seconds):.2f} / max {max(seconds):.2f}"
        )


def _box_problems(entries: dict[str, list], corners: bool) -> list[str]:
    problems = []
    for sample_id, boxes in entries.items():
        for box in boxes:
            values = [float(v) for v in box]
            if len(values) != 4 or any(v < 0 or v > 1 for v in values):
                problems.append(f"{sample_id} {box} (outside [0, 1])")
            elif corners and (values[2] <= values[0] or values[3] <= values[1]):
                problems.append(f"{sample_id} {box} (x2 <= x1 or y2 <= y1: empty)")
            elif not corners and (values[2] <= 0 or values[3] <= 0):
                problems.append(f"{sample_id} {box} (zero width or height)")
    return problems


def check(root: str, kind: str, ids: str | None = None, annotations: str | None = None, non_sounding: str | None = None,
          split: str = "test", deep: bool = False) -> Findings:
    import datamodules as dm

    found = Findings()
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        found.errors.append(f"{root_path} is not a folder")
        return found
    try:
        if kind == "avsbench_s4":
            dataset = dm.AVSBenchS4(root, split=split)
        elif kind == "packed":
            dataset = dm.PackedSamples(root, ids=ids)
        elif kind == "flickr":
            dataset = dm.FlickrSoundNet(root, annotations=annotations, ids=ids, non_sounding=non_sounding)
        elif kind == "vggss":
            if not annotations:
                raise SSLBenchError("--annotations vggss.json is needed for --dataset vggss")
            dataset = dm.VGGSS(root, annotations=annotations, ids=ids, non_sounding=non_sounding)
        elif kind == "music":
            dataset = dm.MUSIC(root, annotations=annotations, ids=ids)
        elif kind == "vggsound":
            dataset = dm.VGGSound(root, ids=ids)
        else:
            dataset = dm.FramesAudioFolder(root, ids=ids)
        from sslbench.audio import PRESETS

        # as the run would use it: a training list asks for no annotation unless one is given
        dataset.configure(image_size=224, audio=PRESETS["ezvsl"], train=split == "train")
    except Exception as err:  # a missing folder or file: the reader's own message says which
        found.errors.append(str(err))
        return found
    if kind in ("avsbench_s4", "packed"):
        return _check_stream_or_s4(found, dataset)
    _check_folder(found, dataset, kind, deep)
    return found


def _check_folder(found: Findings, dataset, kind: str, deep: bool) -> None:
    frames, audios = dataset._frames, dataset._audios
    found.facts.append(f"{dataset.root}: {len(frames)} frames, {len(audios)} audio files")
    orphans = sorted(set(frames) - {k for k in frames if dataset.audio_key(k) in audios})
    if orphans:
        found.warnings.append(f"{len(orphans)} frames without an audio file: {found.listing(orphans)}")
    unheard = sorted(set(audios) - set(frames)) if kind != "music" else []
    if unheard:
        found.warnings.append(f"{len(unheard)} audio files without a frame: {found.listing(unheard)}")
    try:
        ids = dataset.sample_ids
    except Exception as err:  # nothing in the list is usable: say why, part by part, and open what is there
        found.errors.append(str(err))
        ids = []
        for parts, members in _lacking(dataset).items():
            found.errors.append(f"{len(members)} listed samples lack their {parts}: {found.listing(members)}")
        listed = dataset.wanted_ids()
        _check_files(found, {i: dataset.frame_file(i) for i in listed if dataset.frame_key(i) in frames},
                     {dataset.audio_key(i): dataset.audio_file(i) for i in listed if dataset.audio_key(i) in audios},
                     listed, deep, audio_key=dataset.audio_key)
        return
    manifest = dataset.manifest()
    found.facts.append(f"{manifest['used']} of {manifest['wanted']} samples usable" + (f" (list {manifest['list']})" if manifest["list"] else ""))
    if manifest["missing"]:
        by_part: dict[str, list[str]] = {}
        for sample_id, parts in manifest.get("missing_parts", {}).items():
            by_part.setdefault(" and ".join(parts) or "something", []).append(sample_id)
        for parts, members in sorted(by_part.items()):
            found.warnings.append(f"{len(members)} listed samples lack their {parts}: {found.listing(members)}")
    if kind == "vggss":
        corrupt = _box_problems({k: e["bbox"] for k, e in dataset._entries.items()}, corners=True)
        if corrupt:
            found.warnings.append(f"{len(corrupt)} boxes in {dataset.annotations.name} are corrupt or empty (their pixels score as "
                                  f"the reference scores them): {found.listing(corrupt, 3)}")
    if kind == "music" and dataset.annotations is not None:
        raw = {k: [e["bbox_src1"], e["bbox_src2"]] if "bbox_src1" in e else [e["bbox"]] for k, e in dataset._entries.items()}
        bad = _box_problems(raw, corners=False)
        wide = [f"{k} {b}" for k, boxes in raw.items() for b in boxes if float(b[0]) + float(b[2]) > 1.001]
        if bad or wide:
            found.warnings.append(f"{len(bad) + len(wide)} MUSIC boxes are not valid [x, y, w, h]: {found.listing(bad + wide, 3)}")
    if kind == "flickr" and dataset.annotations is not None:
        broken = []
        for sample_id in ids:
            if dataset.is_silent(sample_id):
                continue
            try:
                from datamodules.folder import parse_flickr_xml

                if not parse_flickr_xml(dataset.annotations / f"{sample_id}.xml"):
                    broken.append(f"{sample_id}.xml (no <bbox>)")
            except Exception as err:
                broken.append(f"{sample_id}.xml ({type(err).__name__}: {str(err)[:60]})")
        if broken:
            found.errors.append(f"{len(broken)} annotation files cannot be read: {found.listing(broken)}")
    # every listed id with files on disk, usable or not: a corrupt file is reported wherever it is
    listed = list(dict.fromkeys([*ids, *manifest["missing"]]))
    with_frames = {i: dataset.frame_file(i) for i in listed if dataset.frame_key(i) in frames}
    with_audio = {dataset.audio_key(i): dataset.audio_file(i) for i in listed if dataset.audio_key(i) in audios}
    _check_files(found, with_frames, with_audio, listed, deep, audio_key=dataset.audio_key)


def _lacking(dataset) -> dict[str, list[str]]:
    by_part: dict[str, list[str]] = {}
    for sample_id in dataset.wanted_ids():
        parts = dataset.lacks(sample_id)
        if parts:
            by_part.setdefault(" and ".join(parts), []).append(sample_id)
    return by_part


def _check_stream_or_s4(found: Findings, dataset) -> Findings:
    try:
        ids = dataset.sample_ids
        manifest = dataset.manifest()
    except Exception as err:
        found.errors.append(str(err))
        return found
    found.facts.append(f"{manifest['used']} of {manifest['wanted']} samples usable")
    if manifest.get("missing"):
        found.warnings.append(f"{len(manifest['missing'])} samples missing: {found.listing(manifest['missing'])}")
    if hasattr(dataset, "record"):  # packed: every part readable, every record with its files
        errors = {}
        for sample_id in ids:
            record = dataset.read(sample_id)
            if record["error"]:
                errors[sample_id] = record["error"]
        if errors:
            found.warnings.append(f"{len(errors)} packed samples could not be read when packed (skipped at run time): "
                                  f"{found.listing([f'{k} ({v})' for k, v in errors.items()], 3)}")
    found.facts.append(f"first ids: {', '.join(ids[:3])}")
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sslbench data check", description=__doc__.split("\n\n")[0].replace("``", "`"))
    parser.add_argument("root", help="the dataset folder")
    parser.add_argument("--dataset", required=True, choices=KINDS, help="which reader's layout to check against")
    parser.add_argument("--ids", help="the sample list to check against the folder")
    parser.add_argument("--annotations", help="vggss.json, music_*.json, or Flickr's XML folder")
    parser.add_argument("--non-sounding", help="SLAVC's *_test_plus_silent.csv (extended sets)")
    parser.add_argument("--split", default="test", help="test (default) or train: how the list is used (a Flickr training list "
                        "needs no XML); AVSBench's split")
    parser.add_argument("--deep", action="store_true", help="decode every file, not only its header")
    parser.add_argument("--json", help="also write the findings to this file")
    args = parser.parse_args(argv)
    found = check(args.root, args.dataset, args.ids, args.annotations, args.non_sounding, args.split, args.deep)
    print(found.report())
    if args.json:
        Path(args.json).write_text(json.dumps(vars(found), indent=2) + "\n")
    if found.errors:
        raise SystemExit(1)

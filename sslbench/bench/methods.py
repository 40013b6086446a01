"""``make bench-methods``: every method trained on synthetic scenes with one budget, one table.

Each method runs in its own process (so peak memory is its own) through the CLI objects, with
``experiments/synthetic/base.yaml`` plus its ``experiments/synthetic/<method>.yaml``: scored untrained,
trained (the epoch with the best validation cIoU), with every test image given the audio of
another class, and under negative audio (silence, noise, another sample's clip: cIoU@0.5, and the AP
of telling true from negative audio by the map's confidence). Training throughput counts training batches only (no validation), from the second
epoch on when there is one (the first renders the cached scenes).

    python -m sslbench.bench.methods [--methods LVS SSPL ...] [--epochs 8] [--out runs/bench_methods]
    python -m sslbench.bench.methods --methods SSPL EZ-VSL --control    # trained on swapped audio

``--control`` trains the chosen methods with every training image given another class's audio
(``data.swap_train_audio``): rows ``<method> [control]``. A method whose score comes from listening
falls to its untrained level there; one that keeps its score learnt something else.

Results accumulate in ``<out>/results.json``: rerunning some methods replaces only their rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

REPO = Path(__file__).resolve().parents[2]
SYNTHETIC = REPO / "experiments" / "synthetic"

#: name -> the configuration on top of the shared base
METHODS: dict[str, list[str]] = {
    "LVS": ["--config", str(SYNTHETIC / "lvs.yaml")],
    "EZ-VSL": ["--config", str(SYNTHETIC / "ezvsl.yaml")],
    "EZ-VSL margin -0.2": ["--config", str(SYNTHETIC / "ezvsl_margin.yaml")],
    "FNAC": ["--config", str(SYNTHETIC / "fnac.yaml")],
    "SSL-TIE": ["--config", str(SYNTHETIC / "ssl_tie.yaml")],
    "AVGN": ["--config", str(SYNTHETIC / "avgn.yaml")],
    "SSPL": ["--config", str(SYNTHETIC / "sspl.yaml")],
    "SSPL w/o PCM": ["--config", str(SYNTHETIC / "sspl.yaml"), "--model.use_pcm", "false"],
    "SSL-Align": ["--config", str(SYNTHETIC / "ssl_align.yaml")],
    "ICL": ["--config", str(SYNTHETIC / "icl.yaml")],
}
COLUMNS = ("ciou@0.5", "auc", "untrained_ciou@0.5", "swapped_audio_ciou@0.5", "samples_per_second", "peak_memory_mb", "seconds")
#: negative audio the trained network is also scored with (``--evaluator.negative_audio``)
NEGATIVE = ("silence", "noise", "offscreen")


class TrainingThroughput(Callback):
    """Samples per second over training batches, epoch by epoch (validation excluded)."""

    def __init__(self):
        self.epochs: list[tuple[int, float]] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self._start, self._samples, self._last = time.perf_counter(), 0, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._samples += len(batch) if batch is not None else 0
        self._last = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        if self._last is not None:
            self.epochs.append((self._samples, self._last - self._start))

    @property
    def samples_per_second(self) -> float:
        steady = self.epochs[1:] or self.epochs
        return sum(n for n, _ in steady) / max(sum(s for _, s in steady), 1e-9)


def neighbour_tables() -> Path:
    """SSL-Align's conceptual neighbours of the synthetic training list, from weight-free encoders."""
    path = REPO / "runs" / "neighbours_synthetic.npz"
    if not path.is_file():
        from sslbench.commands.knn import main as knn

        knn(["--config", str(SYNTHETIC / "base.yaml"), "--image-encoder", "colour", "--audio-encoder", "spectrum",
             "--k", "30", "--out", str(path)])
    return path


#: methods whose synthetic rows start from the ResNet-18 stand-in (their references from ImageNet);
#: the others train their synthetic configs from scratch (experiments/synthetic/*.yaml say why)
PRETRAINED_VISION = ("AVGN",)


def synthetic_encoders(folder: Path = REPO / "runs" / "synthetic_encoders") -> dict[str, Path]:
    """Stand-ins for the labelled pretraining some methods start from (``bench.encoders``): VGG16,
    VGGish and a ResNet-18 of width 8, trained with labels on a disjoint synthetic world (once per folder)."""
    paths = {"vision": folder / "vgg16_w8.pth", "vggish": folder / "vggish_w8.pth", "resnet18": folder / "resnet18_w8.pth"}
    if not all(p.is_file() for p in paths.values()):
        from sslbench.bench.encoders import pretrain

        paths = pretrain(width=8, out=str(folder))
    return paths


def stand_in_weights(name: str, folder: Path = REPO / "runs" / "synthetic_encoders") -> list[str]:
    """The pretrained weights a method's reference starts from, as synthetic stand-ins: SSPL's frozen
    VGG16 and VGGish; AVGN's ImageNet ResNet-18, which its class tokens presume (from scratch its
    maps stay at their untrained level within the budget)."""
    if name.startswith("SSPL"):
        paths = synthetic_encoders(folder)
        return ["--model.vision_weights", str(paths["vision"]), "--model.vggish_weights", str(paths["vggish"])]
    if name in PRETRAINED_VISION:
        return ["--model.vision_weights", str(synthetic_encoders(folder)["resnet18"])]
    return []


CONTROL = " [control]"


def run_one(row: str, epochs: int, out: Path) -> dict[str, float]:
    """Train and score one method (``row``: its name, with ``CONTROL`` for the swapped-audio control) in this process."""
    from sslbench.demo import train_and_score

    meter = TrainingThroughput()
    name = row.removesuffix(CONTROL)
    folder = out / row.replace(" ", "_").replace("/", "").replace("[", "").replace("]", "")
    args = [
        "--config", str(SYNTHETIC / "base.yaml"), *METHODS[name],
        "--trainer.max_epochs", str(epochs),
        "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(folder),
        "--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(folder),
    ]
    if name == "SSL-Align":
        args += ["--data.neighbours", str(neighbour_tables())]
    args += stand_in_weights(name)
    if row.endswith(CONTROL):
        args += ["--data.swap_train_audio", "true"]
    result = train_and_score(args, callbacks=[meter], negative_audio=list(NEGATIVE))
    result["samples_per_second"] = meter.samples_per_second
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated() / 2**20
    result["peak_memory_mb"] = peak
    return result


def table(results: dict[str, dict[str, float]]) -> str:
    negative_heads = " | ".join(f"{k} cIoU@0.5" for k in NEGATIVE) + " | " + " | ".join(f"AP true vs {k}" for k in NEGATIVE)
    lines = [
        "| method | cIoU@0.5 | AUC | untrained cIoU@0.5 | swapped-audio cIoU@0.5 | " + negative_heads
        + " | train samples/s | peak memory (MB) | seconds |",
        "| --- " * (8 + 2 * len(NEGATIVE)) + "|",
    ]
    cell = lambda r, key: f"{r[key]:.3f}" if key in r else "-"  # noqa: E731  (rows from before the negative audio)
    for name, r in results.items():
        negative = " | ".join(cell(r, f"{k}_ciou@0.5") for k in NEGATIVE) + " | " + " | ".join(
            cell(r, f"{k}_discrimination_ap") for k in NEGATIVE)
        lines.append(
            f"| {name} | {r['ciou@0.5']:.3f} | {r['auc']:.3f} | {r['untrained_ciou@0.5']:.3f} | "
            f"{r['swapped_audio_ciou@0.5']:.3f} | {negative} | {r['samples_per_second']:.0f} | {r['peak_memory_mb']:.0f} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def save(results: dict[str, dict[str, float]], out: Path) -> str:
    order = [r for name in METHODS for r in (name, name + CONTROL)]
    text = table({name: results[name] for name in order if name in results})
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS), metavar="NAME")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", default=str(REPO / "runs" / "bench_methods"))
    parser.add_argument("--control", action="store_true", help="train on swapped audio (rows '<method> [control]')")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one method, print its JSON
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, args.epochs, out)), flush=True)
        return
    os.environ.setdefault("WANDB_MODE", "disabled")
    saved = out / "results.json"  # a partial rerun (--methods ...) updates its rows of the table
    results = json.loads(saved.read_text()) if saved.is_file() else {}
    rows = [name + CONTROL if args.control else name for name in args.methods]
    for name in rows:
        print(f"bench-methods: training {name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", "sslbench.bench.methods", "--one", name, "--epochs", str(args.epochs), "--out", str(out)],
            capture_output=True, text=True,
        )
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"bench-methods: {name} failed (exit {proc.returncode})")
        results[name] = json.loads(line.removeprefix("RESULT "))
        print(table({name: results[name]}).splitlines()[-1], file=sys.stderr, flush=True)
        text = save(results, out)  # after every row: an interrupted bench keeps what it finished
    print(text)


if __name__ == "__main__":
    main()

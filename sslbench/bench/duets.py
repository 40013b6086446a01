"""``make bench-duets``: IOI on synthetic duets beside the baselines that give its numbers meaning.

IOI trains with ``experiments/ioi_synthetic_duet.yaml`` and is scored on the test duets under the
IOI protocol (CAP, PIAP, cIoU@0.3, AUC, source-count accuracy, objects per sample):

- IOI untrained, trained (the epoch with the best validation CAP), and given another mixture's audio;
  the trained network's stop threshold is re-chosen on the validation duets (``STOP_THRESHOLDS``);
- the single-map baselines: IOI's own sound-associated map S_v scored as one object (same network,
  no iteration), and EZ-VSL trained on the same mixtures, whose map is one object;
- AVGN (``experiments/synthetic/avgn.yaml`` at the duets' frame size) trained on mixtures of two
  training scenes, stacked and mixed as the test duets are, with their class labels: one map per
  source, each picked by that source's class token (labels, as its ``validate_multi``; and the
  classes its audio head predicts);
- the trivial floors (centre, whole image, random) and chance count accuracy: 1/3, a uniform guess
  among one, two or three sources (the paper's counting setting).

    python -m sslbench.bench.duets [--epochs N] [--out runs/bench_duets]

The frozen stand-in ResNet-18 the config names is pretrained first when it is missing (about 10
min on 2 cores). Writes ``<out>/table.md`` and ``<out>/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml

from sslbench.commands.train import finish_wandb_run
from sslbench.demo import scorer

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "experiments" / "ioi_synthetic_duet.yaml"
SYNTHETIC = REPO / "experiments" / "synthetic"
COLUMNS = ("cap", "piap", "ciou@0.3", "auc", "count_accuracy", "objects_per_sample")
CHANCE_COUNT_ACCURACY = 1 / 3
STOP_THRESHOLDS = (0.45, 0.5, 0.55, 0.6)  # around the config's 0.5


def stand_in_encoder() -> None:
    """Pretrain the frozen ResNet-18 stand-in the config names, unless it is there."""
    config = yaml.safe_load(CONFIG.read_text())
    model = config["model"]["init_args"]
    path = REPO / model["vision_weights"]
    if not path.is_file():
        from sslbench.bench.encoders import pretrain

        pretrain(width=model["backbone_width"], image_size=config["data"]["image_size"], epochs=6, out=str(path.parent))


def common_args(folder: Path, epochs: int | None) -> list[str]:
    return [
        *(["--trainer.max_epochs", str(epochs)] if epochs else []), "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(folder),
        "--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(folder),
    ]


def ioi_rows(epochs: int | None, out: Path) -> dict[str, dict]:
    start = time.perf_counter()
    trainer, model, data, score = scorer(["--config", str(CONFIG), *common_args(out / "IOI", epochs)])
    rows = {"IOI untrained": score("untrained")}
    trainer.fit(model, datamodule=data)
    best = trainer.checkpoint_callback.best_model_path or None

    def val_cap(threshold: float) -> float:
        model.hparams.stop_threshold = threshold
        trainer.validate(model, datamodule=data, ckpt_path=best, verbose=False)
        return float(trainer.callback_metrics["val/cap"])

    caps = {t: val_cap(t) for t in STOP_THRESHOLDS}
    model.hparams.stop_threshold = max(caps, key=caps.get)
    print(f"bench-duets: val CAP by stop threshold {caps}; chose {model.hparams.stop_threshold}", file=sys.stderr, flush=True)
    trained = score("trained", best)
    trained["stop_threshold"] = model.hparams.stop_threshold
    rows["IOI"] = trained
    model.hparams.single_map = True
    rows["IOI's S_v as one map"] = score("single_map", best)
    model.hparams.single_map = False
    data.swap_test_audio = True
    rows["IOI, another mixture's audio"] = score("swapped", best)
    data.swap_test_audio = False
    finish_wandb_run()
    for name, floor in trained["floors"].items():
        rows[f"floor: {name}"] = floor
    rows["IOI"]["seconds"] = time.perf_counter() - start
    return rows


def train_on_duets(method_yaml: str, name: str, epochs: int | None, out: Path, overrides: dict):
    """A synthetic method configuration trained with the IOI config's duet data (``overrides`` on
    top of it); returns ``(model, score, best checkpoint)``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}_duet_data.yaml").write_text(yaml.safe_dump(overrides))
    epochs = epochs or yaml.safe_load(CONFIG.read_text())["trainer"]["max_epochs"]
    args = ["--config", str(SYNTHETIC / "base.yaml"), "--config", str(SYNTHETIC / method_yaml),
            "--config", str(out / f"{name}_duet_data.yaml"), *common_args(out / name, epochs)]
    trainer, model, data_module, score = scorer(args)
    trainer.fit(model, datamodule=data_module)
    return model, score, trainer.checkpoint_callback.best_model_path or None


def ezvsl_row(epochs: int | None, out: Path) -> dict[str, dict]:
    """EZ-VSL (the synthetic budget's settings) trained and tested on the IOI config's mixtures."""
    start = time.perf_counter()
    _, score, best = train_on_duets("ezvsl.yaml", "EZ-VSL", epochs, out, {"data": yaml.safe_load(CONFIG.read_text())["data"]})
    row = score("trained", best)
    finish_wandb_run()
    row["seconds"] = time.perf_counter() - start
    return {"EZ-VSL, one map": row}


def avgn_rows(epochs: int | None, out: Path) -> dict[str, dict]:
    """AVGN trained on stacked training mixtures with their labels from IOI's pretrained stand-in
    ResNet-18, checkpoint on validation CAP."""
    start = time.perf_counter()
    config = yaml.safe_load(CONFIG.read_text())
    data = config["data"]
    data["train"] = {"class_path": "StackedMixture", "init_args": {"base": data["train"]}}
    checkpoint = {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"monitor": "val/cap", "mode": "max", "save_last": True}}
    # the ImageNet start of its reference: IOI's stand-in ResNet-18 (fine-tuned here, frozen in IOI)
    ioi = config["model"]["init_args"]
    vision = {"vision_weights": str(REPO / ioi["vision_weights"]), "backbone_width": ioi["backbone_width"]}
    overrides = {"data": data, "evaluator": {"multi_source_protocol": "ioi"}, "trainer": {"callbacks": [checkpoint]},
                 "model": {"class_path": "AVGN", "init_args": vision}}
    model, score, best = train_on_duets("avgn.yaml", "AVGN", epochs, out, overrides)
    rows = {"AVGN, labelled tokens": score("trained", best)}
    model.hparams.test_tokens = "predicted"
    rows["AVGN, predicted tokens"] = score("predicted_tokens", best)
    finish_wandb_run()
    rows["AVGN, labelled tokens"]["seconds"] = time.perf_counter() - start
    return rows


def table(rows: dict[str, dict]) -> str:
    lines = ["| | CAP | PIAP | cIoU@0.3 | AUC | count accuracy | objects per sample |", "| --- " * 7 + "|"]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{r[c]:.3f}" for c in COLUMNS) + " |")
    lines.append(f"\nChance count accuracy (uniform over 1-3 sources): {CHANCE_COUNT_ACCURACY:.3f}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, help="training epochs of both methods (default: the IOI config's)")
    parser.add_argument("--out", default=str(REPO / "runs" / "bench_duets"))
    parser.add_argument("--methods", nargs="+", choices=("IOI", "EZ-VSL", "AVGN"), default=("IOI", "EZ-VSL", "AVGN"),
                        help="rows to train (default: all; the floors come with IOI)")
    args = parser.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    out = Path(args.out)
    rows = {}
    if "IOI" in args.methods:
        stand_in_encoder()
        rows.update(ioi_rows(args.epochs, out))
    if "EZ-VSL" in args.methods:
        rows.update(ezvsl_row(args.epochs, out))
    if "AVGN" in args.methods:
        stand_in_encoder()
        rows.update(avgn_rows(args.epochs, out))
    text = table(rows)
    (out / "table.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps(rows, indent=2, default=str) + "\n")
    print(text)
    sys.stdout.flush()


if __name__ == "__main__":
    main()

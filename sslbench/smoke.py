"""``make smoke``: every experiment config runs one training step, one validation and one test
step on small synthetic data, each in its own ``sslbench fit`` process.

    python -m sslbench.smoke                 # all of experiments/
    python -m sslbench.smoke experiments/sspl.yaml --jobs 1

A config is run as written except for what cannot work here: real datasets become small
synthetic sets of the same role, synthetic sets shrink to a few samples, pretrained weights are
turned off (OGL gets a randomly initialised ResNet-18 file instead), stand-ins have no more classes
than a method trained with labels knows (``num_classes``), conceptual neighbour tables
are computed for the small training set, and the trainer makes one fast step. Overlays (OGL,
trainer files) run on top of a config they are meant for; GPU-only overlays are skipped without
a GPU. The exit status is non-zero when any config fails.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from sslbench.audio import get_preset

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
#: overlays and the config each one is smoke-tested on top of
OVERLAY_BASES = {"ogl.yaml": "ezvsl.yaml", "synthetic/base.yaml": None}
TRAINER_BASE = "demo_synthetic.yaml"
SYNTHETIC = ("SyntheticScenes", "StackedMixture")


def merged(files: list[Path]) -> dict:
    """The YAML files merged as jsonargparse merges them: key by key, later files winning, lists
    replaced, and an entry naming another ``class_path`` replacing the earlier one whole."""

    def merge(a: dict, b: dict) -> dict:
        out = dict(a)
        for key, value in b.items():
            old = out.get(key)
            same_class = not (isinstance(old, dict) and isinstance(value, dict) and "class_path" in value
                              and old.get("class_path") not in (None, value["class_path"]))
            out[key] = merge(old, value) if isinstance(value, dict) and isinstance(old, dict) and same_class else value
        return out

    result: dict = {}
    for file in files:
        result = merge(result, yaml.safe_load(file.read_text()) or {})
    return result


def experiment_configs() -> list[Path]:
    """Every run config under experiments/ (sweep files drive runs; they are not configs)."""
    return sorted(p for p in EXPERIMENTS.rglob("*.yaml") if p.parent.name != "sweeps")


def configs_to_run(paths: list[Path]) -> list[tuple[str, list[Path]]]:
    """(name, config files) for each config; synthetic methods on their base, overlays on theirs."""
    runs = []
    for path in paths:
        rel = path.relative_to(EXPERIMENTS).as_posix()
        if rel in OVERLAY_BASES:
            base = OVERLAY_BASES[rel]
            if base is not None:
                runs.append((rel, [EXPERIMENTS / base, path]))
        elif rel.startswith("trainer/"):
            runs.append((rel, [EXPERIMENTS / TRAINER_BASE, path]))
        elif rel.startswith("synthetic/"):
            runs.append((rel, [EXPERIMENTS / "synthetic" / "base.yaml", path]))
        else:
            runs.append((rel, [path]))
    return runs


def _small(dataset: dict | None, samples: int, name: str | None = None) -> dict:
    """A synthetic set of a few samples in place of ``dataset`` (kept synthetic kinds shrink);
    a real set's stand-in is named after it, so several test sets keep distinct names."""
    if not isinstance(dataset, dict) or not str(dataset.get("class_path", "")).endswith(SYNTHETIC):
        stand_in = {"num_samples": samples}
        if isinstance(dataset, dict) and name:
            stand_in["name"] = f"{name}_{str(dataset.get('class_path', 'set')).rpartition('.')[2].lower()}"
        return {"class_path": "SyntheticScenes", "init_args": stand_in}
    small = copy.deepcopy(dataset)
    args = small.setdefault("init_args", {})
    if "base" in args:  # a mixture: shrink the set it mixes (K sources per item)
        args["base"] = _small(args["base"], samples * 3)
    else:
        args["num_samples"] = samples
        args["cache"] = False
    return small


def _synthetic_entries(node):
    if isinstance(node, dict):
        if str(node.get("class_path", "")).endswith("SyntheticScenes"):
            yield node
        for value in node.values():
            yield from _synthetic_entries(value)
    elif isinstance(node, list):
        for value in node:
            yield from _synthetic_entries(value)


def _no_weights(init_args: dict, random_resnet: Path) -> dict:
    args = copy.deepcopy(init_args)
    for key in list(args):
        if key.endswith("weights"):
            args[key] = None
    guidance = args.get("object_guidance")
    if isinstance(guidance, dict):
        guidance.setdefault("init_args", {})["weights"] = str(random_resnet)
    return args


def smoke_config(config: dict, random_resnet: Path, neighbours: Path | None) -> dict:
    """``config`` (merged) made to run one fast step here (see the module docstring)."""
    config = copy.deepcopy(config)
    data = config.setdefault("data", {})
    data.update(
        train=_small(data.get("train"), 16),
        val=_small(data.get("val"), 8),
        test=[_small(d, 8, f"test{i}") for i, d in enumerate(data.get("test") or [None])],
        batch_size=4, global_batch_size=None, eval_batch_size=4, num_workers=0,
    )
    if data.get("neighbours"):
        data["neighbours"] = str(neighbours)
    rate = get_preset(data.get("audio_preset", "ezvsl")).sample_rate
    model = config.setdefault("model", {})
    classes = (model.get("init_args") or {}).get("num_classes")  # a method trained with labels (AVGN)
    for entry in _synthetic_entries(data):  # render at the rate the config's audio preset reads
        entry.setdefault("init_args", {}).setdefault("sample_rate", rate)
        if classes is not None:  # stand-ins draw as many classes as the method has tokens
            entry["init_args"].setdefault("num_classes", min(classes, entry["init_args"].get("num_classes", classes)))
    model["init_args"] = _no_weights(model.get("init_args") or {}, random_resnet)
    config.setdefault("trainer", {}).update(fast_dev_run=1, logger=False, enable_progress_bar=False)
    return config


def random_resnet18(path: Path) -> Path:
    """A torchvision ResNet-18 state dict with random weights: OGL's stand-in for ImageNet's."""
    if not path.is_file():
        import torch
        import torchvision

        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def run_one(name: str, files: list[Path], out: Path, env: dict) -> tuple[str, str, float, str]:
    """(name, "ok" / "FAILED" / "skipped", seconds, last lines of output)."""
    config = merged(files)
    if (config.get("trainer") or {}).get("accelerator") == "gpu" and not _has_gpu():
        return name, "skipped", 0.0, "needs a GPU"
    folder = out / name.replace("/", "_").removesuffix(".yaml")
    folder.mkdir(parents=True, exist_ok=True)
    neighbours = folder / "neighbours.npz"
    smoke = folder / "smoke_config.yaml"
    smoke.write_text(yaml.safe_dump(smoke_config(config, random_resnet18(out / "random_resnet18.pth"), neighbours)))
    configs = ["--config", str(smoke)]
    commands = []
    if (config.get("data") or {}).get("neighbours"):
        commands.append(["knn", *configs, "--image-encoder", "colour", "--audio-encoder", "spectrum", "--k", "4", "--out", str(neighbours)])
    commands.append(["fit", *configs, "--trainer.default_root_dir", str(folder)])
    start = time.perf_counter()
    for command in commands:
        done = subprocess.run([sys.executable, "-m", "sslbench", *command], cwd=REPO, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-12:])
            return name, "FAILED", time.perf_counter() - start, tail
    return name, "ok", time.perf_counter() - start, ""


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sslbench.smoke", description=__doc__.split("\n\n")[0].replace("``", "`"))
    parser.add_argument("configs", nargs="*", help="config files (default: every .yaml under experiments/)")
    parser.add_argument("--jobs", type=int, default=2, help="configs run at once (default 2)")
    parser.add_argument("--out", default="runs/smoke", help="where the runs write (default runs/smoke)")
    args = parser.parse_args(argv)
    paths = [Path(c).resolve() for c in args.configs] or experiment_configs()
    runs = configs_to_run(paths)
    out = Path(args.out).resolve()
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    print(f"smoke: {len(runs)} configs, one step each, {args.jobs} at a time", flush=True)
    results = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for result in pool.map(lambda r: run_one(*r, out, env), runs):
            name, status, seconds, tail = result
            print(f"  {status:<7} {name:<32} {seconds:6.1f} s" + (f"  ({tail})" if status == "skipped" else ""), flush=True)
            if status == "FAILED":
                print("    " + tail.replace("\n", "\n    "), flush=True)
            results.append(result)
    failed = [r[0] for r in results if r[1] == "FAILED"]
    counts = {s: sum(r[1] == s for r in results) for s in ("ok", "FAILED", "skipped")}
    print(f"smoke: {counts['ok']} ok, {counts['FAILED']} failed, {counts['skipped']} skipped in {time.perf_counter() - start:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

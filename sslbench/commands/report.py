"""``sslbench report RUN_DIR...``: one Markdown table and one picture from finished runs, offline.

    sslbench report runs/                       # every run below runs/
    sslbench report runs/a runs/b --out cmp.md  # writes cmp.md and cmp.png

Reads what each test wrote (``results/test_<dataset>.json`` and ``.csv``) and each run's resolved
``config.yaml``. Rows are grouped into one table per (test set, protocol, sample list): numbers
measured under different protocols or on different samples never share a column, and a test set
that appears under several is named in a warning. Within a table, one row per distinct
configuration: runs pool (mean +- std) only when nothing but the seed differs, and the settings
that tell rows apart name them. A checkpoint tested twice, or a run and its resumed copy with the
same configuration and seed, count once (the newest result).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sslbench.errors import SSLBenchError, ensure_writable
from sslbench.runs import saved_run_config

if TYPE_CHECKING:  # torch loads when curves are drawn, so `sslbench report --help` answers at once
    import torch

#: floors shown beside the method, by the first metric of the table
FLOOR_ORDER = ("centre", "whole_image", "random")
#: config keys that say where and how a run was logged or served, not what was measured
NOT_SETTINGS = ("seed_everything", "ckpt_path", "config", "print_config", "test_after_fit", "seeds", "trainer.logger",
                "trainer.default_root_dir", "trainer.enable_progress_bar", "trainer.enable_model_summary",
                "trainer.log_every_n_steps", "evaluator.results_dir", "evaluator.num_visualized", "evaluator.experiment",
                "data.num_workers", "data.eval_batch_size")
#: columns never shown as metrics
NOT_METRICS = {"dataset", "kind", "sample_list", "protocol", "protocol_reference", "n", "dataset_size",
               "sample_ids_hash", "floors", "extended_table", "run"}


@dataclass
class TestResult:
    """One test set scored by one run."""

    summary: dict
    json_path: Path

    @property
    def run(self) -> dict:
        return self.summary.get("run") or _run_from_config(self.json_path)

    @property
    def group(self) -> tuple[str, str, str]:
        """Numbers are comparable only within one test set, protocol and sample list."""
        return self.summary["dataset"], self.summary["protocol"], self.summary["sample_ids_hash"]

    @property
    def row(self) -> tuple[str, str, str]:
        run = self.run
        return run.get("method") or "?", run.get("experiment") or "?", run.get("train_set") or "?"

    @property
    def settings(self) -> dict[str, str]:
        """The run's resolved config, flattened (``model.margin``), without the keys that only
        say where it logged or how it was served, nor the seed."""
        if not hasattr(self, "_settings"):
            flat = flatten(saved_run_config(self.json_path))
            self._settings = {k: v for k, v in flat.items() if not any(k == n or k.startswith(n + ".") for n in NOT_SETTINGS)}
        return self._settings

    @property
    def seed(self):
        return self.run.get("seed")

    @property
    def metrics(self) -> list[str]:
        return [k for k, v in self.summary.items() if k not in NOT_METRICS and isinstance(v, (int, float))]

    def cious(self) -> torch.Tensor | None:
        """The per-sample cIoUs of the run's CSV (sounding samples only), for the success curve."""
        path = self.json_path.with_suffix(".csv")
        if not path.is_file():
            return None
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or "ciou" not in rows[0]:
            return None
        values = [float(r["ciou"]) for r in rows if r.get("n_boxes", "-1") not in ("0", "0.0")]
        import torch

        return torch.tensor(values, dtype=torch.float64) if values else None


def _run_from_config(json_path: Path) -> dict:
    """Runs written before results recorded their run: the method from the saved config."""
    model = saved_run_config(json_path).get("model") or {}
    return {"method": str(model.get("class_path", "?")).rpartition(".")[2], "experiment": None, "seed": None} if model else {}


def collect(paths: list[str]) -> list[TestResult]:
    results = []
    for root in paths:
        root_path = Path(root)
        if not root_path.exists():
            raise SSLBenchError(f"report: {root} does not exist")
        files = [root_path] if root_path.is_file() else sorted(root_path.rglob("test_*.json"))
        for path in files:
            try:
                summary = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as err:
                print(f"report: skipping {path}: {err}", file=sys.stderr)
                continue
            if {"dataset", "protocol", "sample_ids_hash"} <= summary.keys():
                results.append(TestResult(summary, path))
    if not results:
        raise SSLBenchError(f"report: no test results (results/test_*.json) under {', '.join(paths)}; run `sslbench test` first")
    return results


def flatten(config, prefix: str = "") -> dict[str, str]:
    """``{"model": {"init_args": {"margin": -0.2}}}`` -> ``{"model.margin": "-0.2"}`` (lists as JSON)."""
    if not isinstance(config, dict):
        return {prefix: json.dumps(config, sort_keys=True) if isinstance(config, (list, dict)) else str(config)}
    out: dict[str, str] = {}
    for key, value in config.items():
        name = prefix if key == "init_args" else f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, name))
        else:
            out.update(flatten(value, name) if not isinstance(value, dict) else {name: "{}"})
    return out


def distinct(results: list[TestResult]) -> list[TestResult]:
    """Each measurement once: of the results of one checkpoint on one table, and of runs with
    the same configuration and seed on one table (a re-test, a resumed copy), the newest."""
    newest = sorted(results, key=lambda r: r.json_path.stat().st_mtime, reverse=True)
    seen, kept = set(), []
    for result in newest:
        keys = [("config", result.group, result.row, tuple(sorted(result.settings.items())), str(result.seed))]
        if result.run.get("checkpoint"):
            keys.append(("checkpoint", result.group, result.run["checkpoint"]))
        if not any(key in seen for key in keys):
            kept.append(result)
        seen.update(keys)
    dropped = len(results) - len(kept)
    if dropped:
        print(f"report: {dropped} repeated results (the same checkpoint, or the same configuration and seed) counted once",
              file=sys.stderr)
    return sorted(kept, key=lambda r: str(r.json_path))


def row_names(results: list[TestResult]) -> dict[int, str]:
    """For each result (by id), the settings that set it apart from the other results of the same
    method, experiment and training set (``margin=-0.3``); empty when they all share them (the
    method column already tells methods apart)."""
    clusters: dict[tuple, list[TestResult]] = {}
    for r in results:
        clusters.setdefault(r.row, []).append(r)
    names = {}
    for members in clusters.values():
        keys = sorted({k for r in members for k in r.settings})
        differing = [k for k in keys if len({r.settings.get(k, "-") for r in members}) > 1]
        for r in members:
            names[id(r)] = ", ".join(f"{k.removeprefix('model.').removeprefix('data.')}={r.settings.get(k, '-')}" for k in differing)
    return names


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(results: list[TestResult]) -> list[str]:
    """Markdown rows for one group: one row per distinct configuration, its seeds pooled."""
    metrics = [m for m in results[0].metrics if all(m in r.summary for r in results)]
    floors = [f for f in FLOOR_ORDER if all(f in r.summary.get("floors", {}) for r in results)]
    names = row_names(results)
    named = any(names.values())
    head = ["method", "experiment", *(["setting"] if named else []), "training set", "seeds", "n", *metrics,
            *(f"{f} {metrics[0]}" for f in floors)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows: dict[tuple, list[TestResult]] = {}
    for result in results:
        rows.setdefault((*result.row, names[id(result)]), []).append(result)
    for (method, experiment, train_set, name), runs in sorted(rows.items()):
        seeds = sorted({str(r.seed) for r in runs})
        cells = [method, experiment, *([name or "-"] if named else []), train_set, ",".join(seeds), str(runs[0].summary["n"])]
        cells += [mean_std([r.summary[m] for r in runs]) for m in metrics]
        cells += [mean_std([r.summary["floors"][f][metrics[0]] for r in runs]) for f in floors]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render(results: list[TestResult], sources: list[str]) -> str:
    results = distinct(results)
    groups: dict[tuple, list[TestResult]] = {}
    for result in results:
        groups.setdefault(result.group, []).append(result)
    lines = ["# sslbench report", "", f"{len(results)} test results from {', '.join(sources)}.",
             "A row per distinct configuration, its seeds pooled (mean ± sample std); floors are trivial localizers on the same samples.", ""]
    per_dataset: dict[str, list[tuple]] = {}
    for dataset, protocol, ids in groups:
        per_dataset.setdefault(dataset, []).append((protocol, ids))
    for dataset, variants in sorted(per_dataset.items()):
        if len(variants) > 1:
            what = ", ".join(f"protocol {p} on samples {h}" for p, h in variants)
            lines += [f"> **Warning:** `{dataset}` was scored {len(variants)} ways ({what}). "
                      "Each has its own table below; their numbers are not comparable.", ""]
    for (dataset, protocol, ids), members in sorted(groups.items()):
        first = members[0].summary
        lines += [f"## {dataset}: protocol `{protocol}`, n = {first['n']}, sample list {first['sample_list']} (ids {ids})", ""]
        lines += table(members) + [""]
    return "\n".join(lines)


def curves(results: list[TestResult]) -> dict[tuple, list[tuple[str, torch.Tensor, torch.Tensor]]]:
    """Per table, each run's (label, thresholds, success ratios) from its per-sample file; labels
    name the method, experiment, distinguishing setting and seed, and never repeat."""
    from sslbench.eval.functional import success_curve

    results = distinct(results)
    by_group: dict[tuple, list[TestResult]] = {}
    for result in results:
        by_group.setdefault(result.group, []).append(result)
    groups: dict[tuple, list] = {}
    for group, members in by_group.items():
        names, used = row_names(members), {}
        for result in members:
            cious = result.cious()
            if cious is None:
                continue
            method, experiment, _ = result.row
            label = f"{method} [{experiment}{', ' + names[id(result)] if names[id(result)] else ''}]"
            label += f" seed {result.seed}" if result.seed is not None else ""
            used[label] = used.get(label, 0) + 1
            if used[label] > 1:
                label += f" ({result.json_path.parent.parent.name})"
            groups.setdefault(group, []).append((label, *success_curve(cious)))
    return groups


def plot(results: list[TestResult], path: Path) -> Path | None:
    """Success curves of every run, one panel per table."""
    groups = curves(results)
    if not groups:
        return None
    import matplotlib
    import torch

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for ax, ((dataset, protocol, ids), members) in zip(axes.flat, sorted(groups.items())):
        for label, x, y in members:
            area = float(torch.trapezoid(y, x))
            ax.plot(x.numpy(), y.numpy(), lw=1.5, label=f"{label} (AUC {area:.3f})")
        ax.set(xlabel="cIoU threshold", ylabel="success ratio", xlim=(0, 1), ylim=(0, 1.02), title=f"{dataset} ({protocol}, ids {ids[:8]})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sslbench report", description=__doc__.split("\n\n")[0].replace("``", "`"))
    parser.add_argument("runs", nargs="+", help="run folders (or folders holding many runs, e.g. runs/)")
    parser.add_argument("--out", default="report.md", help="Markdown file to write; the PNG goes beside it (default: report.md)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    ensure_writable(out.parent, "output folder (--out)")
    results = collect(args.runs)
    out.write_text(render(results, args.runs) + "\n")
    picture = plot(results, out.with_suffix(".png"))
    print(out.read_text())
    print(f"report: {len(results)} test results -> {out}" + (f" and {picture}" if picture else ""), file=sys.stderr)

"""``sslbench report RUN_DIR...``: one Markdown table and one picture from finished runs, offline.

    sslbench report runs/                       # every run below runs/
    sslbench report runs/a runs/b --out cmp.md  # writes cmp.md and cmp.png

Reads what each test wrote (``results/test_<dataset>.json`` and ``.csv``). Rows are grouped into
one table per (test set, protocol, sample list): numbers measured under different protocols or
on different samples never share a column, and a test set that appears under several is named
in a warning. Runs of one experiment that differ only by seed become one row, mean +- std.
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


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(results: list[TestResult]) -> list[str]:
    """Markdown rows for one group: one row per (method, experiment, training set), seeds pooled."""
    metrics = [m for m in results[0].metrics if all(m in r.summary for r in results)]
    floors = [f for f in FLOOR_ORDER if all(f in r.summary.get("floors", {}) for r in results)]
    head = ["method", "experiment", "training set", "seeds", "n", *metrics, *(f"{f} {metrics[0]}" for f in floors)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows: dict[tuple, list[TestResult]] = {}
    for result in results:
        rows.setdefault(result.row, []).append(result)
    for (method, experiment, train_set), runs in sorted(rows.items()):
        seeds = sorted({str(r.run.get("seed")) for r in runs})
        cells = [method, experiment, train_set, ",".join(seeds) if len(runs) > 1 else seeds[0], str(runs[0].summary["n"])]
        cells += [mean_std([r.summary[m] for r in runs]) for m in metrics]
        cells += [mean_std([r.summary["floors"][f][metrics[0]] for r in runs]) for f in floors]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render(results: list[TestResult], sources: list[str]) -> str:
    groups: dict[tuple, list[TestResult]] = {}
    for result in results:
        groups.setdefault(result.group, []).append(result)
    lines = ["# sslbench report", "", f"{len(results)} test results from {', '.join(sources)}.",
             "Rows pool the seeds of one experiment (mean ± sample std); floors are trivial localizers on the same samples.", ""]
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
    """Per table, each run's (label, thresholds, success ratios) from its per-sample file."""
    from sslbench.eval.functional import success_curve

    groups: dict[tuple, list] = {}
    for result in results:
        cious = result.cious()
        if cious is None:
            continue
        method, experiment, _ = result.row
        seed = result.run.get("seed")
        label = f"{method} [{experiment}]" + (f" seed {seed}" if seed is not None else "")
        groups.setdefault(result.group, []).append((label, *success_curve(cious)))
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

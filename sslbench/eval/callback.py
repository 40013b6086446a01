"""LocalizationEvaluator: one evaluation for every method, on validation and test sets."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from datamodules.batch import AVBatch, collate
from datamodules.transforms import denormalize
from sslbench.eval.metrics import LocalizationMetrics
from sslbench.eval.protocols import get_protocol


def run_dir(trainer: L.Trainer) -> Path:
    """The folder of this run's logs: CSV/TensorBoard version dir, W&B run dir, or the root dir."""
    logger = trainer.logger
    if logger is not None:
        if getattr(logger, "log_dir", None):
            return Path(logger.log_dir)
        experiment_dir = getattr(getattr(logger, "experiment", None), "dir", None)
        if isinstance(experiment_dir, str):
            return Path(experiment_dir)
    return Path(trainer.default_root_dir)


def ids_hash(sample_ids: list[str]) -> str:
    """Short hash of the evaluated sample ids: equal hashes mean the same test list."""
    return hashlib.sha256("\n".join(sample_ids).encode()).hexdigest()[:16]


class LocalizationEvaluator(Callback):
    """Scores every validation and test set with the same metrics, whatever the method.

    Logs ``val/ciou@0.5``, ``val/auc``, ``val/mean_ciou`` and ``test/<dataset>/<metric>``; after
    each test set writes ``results/test_<dataset>.csv`` (one row per sample), a JSON summary
    (protocol, n, hash of the sample ids, metrics) and a heatmap figure of its first samples.

    Args:
        protocol: evaluation protocol (``sslbench.eval.protocols.PROTOCOLS``; default EZ-VSL's).
        num_visualized: test samples drawn with their ground truth (0 turns pictures off).
        results_dir: where per-sample files go (default: ``<run dir>/results``).
    """

    def __init__(self, protocol: str = "ezvsl", num_visualized: int = 8, results_dir: str | None = None):
        self.protocol = get_protocol(protocol)
        self.num_visualized = num_visualized
        self.results_dir = results_dir
        self.metrics: dict[tuple[str, int], LocalizationMetrics] = {}
        self.last_results: dict[str, dict[str, Any]] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.upsample_mode = self.protocol.upsample

    # -- accumulation -----------------------------------------------------------------------

    def _update(self, stage: str, pl_module, outputs, batch: AVBatch | None, dataloader_idx: int) -> None:
        if not outputs or batch is None or batch.gt_map is None:
            return
        key = (stage, dataloader_idx)
        if key not in self.metrics:
            self.metrics[key] = LocalizationMetrics(self.protocol.rule)
        metric = self.metrics[key].to(pl_module.device)
        metric.update(outputs["maps"], batch.gt_map, batch.index)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._update("val", pl_module, outputs, batch, dataloader_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._update("test", pl_module, outputs, batch, dataloader_idx)

    def _finish(self, stage: str) -> dict[int, dict[str, Any]]:
        """Compute (synced across processes) and reset every metric of ``stage``."""
        results = {}
        for (s, idx), metric in sorted(self.metrics.items()):
            if s == stage and metric.update_count:
                results[idx] = metric.compute()
                metric.reset()
        return results

    # -- epoch ends ---------------------------------------------------------------------------

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        results = self._finish("val")
        if trainer.sanity_checking or not results:
            return
        for idx, result in results.items():
            prefix = "val" if idx == 0 else f"val_{idx}"
            for name in ("ciou@0.5", "auc", "mean_ciou"):
                pl_module.log(f"{prefix}/{name}", result[name].float(), prog_bar=name == "ciou@0.5", add_dataloader_idx=False)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        datasets = getattr(trainer.datamodule, "test_datasets", None) or []
        for idx, result in self._finish("test").items():
            dataset = datasets[idx] if idx < len(datasets) else None
            name = getattr(dataset, "name", f"test{idx}")
            for metric in ("ciou@0.5", "auc", "mean_ciou"):
                pl_module.log(f"test/{name}/{metric}", result[metric].float(), add_dataloader_idx=False)
            summary = self._summary(name, dataset, result)
            self.last_results[name] = summary
            if trainer.is_global_zero:
                self._write(trainer, name, dataset, result, summary)
                self._draw(trainer, pl_module, name, dataset, result)

    # -- records and pictures (rank 0) ----------------------------------------------------------

    def _summary(self, name: str, dataset, result: dict[str, Any]) -> dict[str, Any]:
        ids = getattr(dataset, "sample_ids", None)
        used = [ids[i] for i in result["per_sample"]["index"].tolist()] if ids else []
        return {
            "dataset": name,
            "protocol": self.protocol.name,
            "n": int(result["n"]),
            "dataset_size": len(dataset) if dataset is not None else None,
            "sample_ids_hash": ids_hash(used),
            **{k: float(result[k]) for k in ("ciou@0.5", "auc", "mean_ciou")},
        }

    def _out_dir(self, trainer) -> Path:
        return Path(self.results_dir) if self.results_dir else run_dir(trainer) / "results"

    def _write(self, trainer, name: str, dataset, result: dict[str, Any], summary: dict[str, Any]) -> None:
        out = self._out_dir(trainer)
        out.mkdir(parents=True, exist_ok=True)
        per_sample = {k: v.tolist() for k, v in result["per_sample"].items()}
        ids = getattr(dataset, "sample_ids", None)
        with open(out / f"test_{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["index", "sample_id", "ciou", "threshold", "n_pred_pixels"])
            for i, index in enumerate(per_sample["index"]):
                sample_id = ids[index] if ids else ""
                writer.writerow([index, sample_id, repr(per_sample["ciou"][i]), per_sample["threshold"][i], per_sample["n_pred_pixels"][i]])
        (out / f"test_{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
        rank_zero_info(
            f"test/{name}: ciou@0.5={summary['ciou@0.5']:.4f} auc={summary['auc']:.4f} n={summary['n']} "
            f"protocol={summary['protocol']} -> {out / f'test_{name}.csv'}"
        )

    def _draw(self, trainer, pl_module, name: str, dataset, result: dict[str, Any]) -> None:
        """Heatmaps of the first samples; a failure here warns and never stops a run."""
        if not self.num_visualized or dataset is None:
            return
        try:
            from sslbench.viz import overlay_grid

            samples = [dataset[i] for i in range(min(self.num_visualized, len(dataset)))]
            batch = collate(samples)
            if batch is None:
                return
            batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
            batch = trainer.datamodule.on_after_batch_transfer(batch, 0)
            maps = pl_module.localize(batch.image, batch.audio)
            scores = dict(zip(result["per_sample"]["index"].tolist(), result["per_sample"]["ciou"].tolist()))
            titles = [f"{sid}  cIoU {scores.get(i, float('nan')):.2f}" for sid, i in zip(batch.sample_id, batch.index.tolist())]
            path = overlay_grid(denormalize(batch.image), maps, batch.boxes, self._out_dir(trainer) / f"heatmaps_{name}.png", titles)
            if hasattr(trainer.logger, "log_image"):
                trainer.logger.log_image(key=f"test/{name}/heatmaps", images=[str(path)])
        except Exception as err:  # pictures must never break a run
            rank_zero_warn(f"could not draw heatmaps for {name}: {type(err).__name__}: {err}")

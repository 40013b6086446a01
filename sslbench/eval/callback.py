"""LocalizationEvaluator: one evaluation for every method, on validation and test sets."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor

from datamodules.base import ids_hash
from datamodules.batch import AVBatch, collate
from datamodules.transforms import denormalize
from sslbench.eval.floors import FLOORS, floor_maps
from sslbench.eval.functional import average_precision, success_curve
from sslbench.eval.metrics import LocalizationMetrics, MultiSourceMetrics, SegmentationMetrics
from sslbench.eval.multi_source import own_frames
from sslbench.eval.protocols import MultiProtocolName, Protocol, SegmentationProtocolName, SingleProtocolName, get_protocol

#: what is logged, per protocol family (extended sets add AP, max-F1 and LocAcc)
HEADLINE = {
    "single": ("ciou@0.5", "auc", "mean_ciou"),
    "ioi": ("ciou@0.5", "ciou@0.3", "auc", "cap", "piap", "count_accuracy", "objects_per_sample"),
    "avgn": ("ciou@0.5", "ciou@0.3", "ciou@0.1", "auc", "piap"),
    "s4": ("miou", "fscore"),
}
EXTENDED = ("AP", "max-F1", "LocAcc")
#: the protocol of a set that carries none, by kind
DEFAULT_PROTOCOLS = {"single": "ezvsl", "extended": "ezvsl", "multi": "ioi", "segmentation": "avsbench_s4"}


def _dataset(trainer, stage: str, idx: int):
    """The dataset behind loader ``idx`` of ``stage`` (None when the data module does not say)."""
    data = getattr(trainer, "datamodule", None)
    if stage == "test":
        sets = getattr(data, "test_datasets", None) or []
        return sets[idx] if idx < len(sets) else None
    return getattr(data, "val_set", None) if idx == 0 else None


def run_dir(trainer: L.Trainer) -> Path:
    """The one folder of this run: ``<save_dir>/<name>/<version>``, where Lightning also puts its
    checkpoints (the CSV logger's version folder, ``runs/sslbench/<id>`` for W&B), so config,
    checkpoints, results, manifests and ``epochs.csv`` sit together whatever the logger; the
    trainer's root folder without a logger."""
    logger = trainer.logger
    if logger is not None:
        if logger.version is None and hasattr(logger, "experiment"):
            logger.experiment  # noqa: B018  (W&B knows its run id once the run exists)
        save_dir, name, version = logger.save_dir, logger.name, logger.version
        if save_dir and name and version is not None:
            return Path(save_dir) / str(name) / (version if isinstance(version, str) else f"version_{version}")
        if getattr(logger, "log_dir", None):
            return Path(logger.log_dir)
    return Path(trainer.default_root_dir)


def file_name(name: str) -> str:
    """A set's name as part of a file name (``synthetic/negative/noise`` -> ``synthetic__negative__noise``)."""
    return name.replace("/", "__")


def non_finite_ids(dataset, result: dict[str, Any]) -> list[str]:
    """Ids (or indices) of the samples whose map held NaN or inf, scored as failures."""
    per_sample = result["per_sample"]
    flags = per_sample.get("non_finite")
    if flags is None:
        return []
    ids = getattr(dataset, "sample_ids", None)
    return [ids[i] if ids else str(i) for i, bad in zip(per_sample["index"].tolist(), flags.tolist()) if bad]


def warn_non_finite(where: str, dataset, result: dict[str, Any]) -> None:
    bad = non_finite_ids(dataset, result)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        rank_zero_warn(f"{where}: {len(bad)} of {int(result['n'])} maps held NaN or inf (a diverged model?) and "
                       f"scored as failures: {shown}")


def batch_kind(batch: AVBatch) -> str:
    """The kind of test set a batch comes from (``sslbench.eval.protocols.KINDS``)."""
    if batch.gt_frames is not None:
        return "multi"
    if batch.group is not None:
        return "segmentation"
    return "extended" if batch.n_boxes is not None else "single"


class LocalizationEvaluator(Callback):
    """Scores every validation and test set, whatever the method, by the set's kind.

    Single-source sets get cIoU@0.5 / AUC / mean cIoU under ``protocol``; extended sets (with
    non-sounding samples) add SLAVC's AP, max-F1 and LocAcc; multi-source sets are scored under
    ``multi_source_protocol`` and segmentation sets under ``segmentation_protocol``. Test sets are
    also scored for the ``floors`` (trivial localizers), printed and logged beside the method as
    ``test/<dataset>/<floor>/<metric>``. After each test set: ``results/test_<dataset>.csv`` (one
    row per sample), ``.json`` (protocol, sample list, n, hash of the sample ids, metrics, floors),
    ``success_<dataset>.png`` (method vs floors) and ``heatmaps_<dataset>.png``.

    Each set is scored under the protocol it carries (``dataset.protocol``: the one its papers
    report with) unless one is named here for its kind; sets that carry none get ``ezvsl``,
    ``ioi`` or ``avsbench_s4`` by kind.

    Args:
        protocol: protocol for every single-source and extended set (``sslbench.eval.protocols.PROTOCOLS``).
        multi_source_protocol: ``ioi`` or ``avgn``, for every multi-source set.
        segmentation_protocol: ``avsbench_s4``.
        floors: trivial localizers to score on test sets (``centre``, ``whole_image``, ``random``).
        num_visualized: test samples drawn with their ground truth (0 turns pictures off).
        results_dir: where per-sample files go (default: ``<run dir>/results``).
        experiment: the experiment's name in result files, reports and W&B groups (the CLI sets it
            from the ``--config`` files when left unset).
        negative_audio: score every single-source test set again with ``silence``, ``noise`` and / or
            ``offscreen`` audio (another sample's, of another class when known): cIoU@0.5 and AUC
            under each, and ``discrimination_ap``, the AP of telling true from negative audio by the
            map's confidence (SLAVC's rule), as ``test/<dataset>/negative/<kind>/<metric>``.
    """

    def __init__(
        self,
        protocol: SingleProtocolName | None = None,
        multi_source_protocol: MultiProtocolName | None = None,
        segmentation_protocol: SegmentationProtocolName | None = None,
        floors: list[Literal["centre", "whole_image", "random"]] | None = None,
        num_visualized: int = 8,
        results_dir: str | None = None,
        experiment: str | None = None,
        negative_audio: list[Literal["silence", "noise", "offscreen"]] | None = None,
    ):
        self.experiment = experiment
        self.negative_audio = list(negative_audio or [])  # the data module adds the passes (the CLI links the two)
        named = {"single": protocol, "extended": protocol, "multi": multi_source_protocol, "segmentation": segmentation_protocol}
        self.forced = {kind: get_protocol(name) for kind, name in named.items() if name is not None}
        for kind, chosen in self.forced.items():
            if kind not in chosen.kinds:
                raise ValueError(f"protocol {chosen.name!r} scores {'/'.join(chosen.kinds)} sets, not {kind} ones")
        self.chosen: dict[tuple[str, int], Protocol] = {}
        self.floors = list(FLOORS if floors is None else floors)
        for floor in self.floors:
            if floor not in FLOORS:
                raise ValueError(f"unknown floor {floor!r}; choose from {FLOORS}")
        self.num_visualized = num_visualized
        self.results_dir = results_dir
        self.metrics: dict[tuple[str, int, str], Any] = {}
        self.kinds: dict[tuple[str, int], str] = {}
        self.last_results: dict[str, dict[str, Any]] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.upsample_mode = (self.forced.get("single") or get_protocol(DEFAULT_PROTOCOLS["single"])).upsample
        self.chosen.clear()

    def protocol_for(self, trainer, stage: str, idx: int, kind: str) -> Protocol:
        """The protocol of set ``idx`` of ``stage``: named here for its kind, else the set's own,
        else the kind's default."""
        key = (stage, idx)
        if key not in self.chosen:
            own = getattr(_dataset(trainer, stage, idx), "protocol", None)
            fallback = get_protocol(DEFAULT_PROTOCOLS[kind])
            if kind in self.forced:
                chosen = self.forced[kind]
            elif own and kind in get_protocol(own).kinds:
                chosen = get_protocol(own)
                if chosen.fixed_range and getattr(trainer.lightning_module, "score_range", None) is None:
                    rank_zero_warn(f"{type(trainer.lightning_module).__name__}'s maps have no fixed range for the set's own "
                                   f"protocol {chosen.name!r}; scoring it under {fallback.name!r}")
                    chosen = fallback
            else:
                chosen = fallback
            self.chosen[key] = chosen
        return self.chosen[key]

    # -- accumulation -----------------------------------------------------------------------

    def _new_metric(self, protocol: Protocol):
        if protocol.family == "single":
            return LocalizationMetrics(protocol.rule, protocol.iou_thresholds)
        if protocol.family == "s4":
            return SegmentationMetrics()
        return MultiSourceMetrics(protocol.family)

    def _metric(self, stage: str, idx: int, source: str, protocol: Protocol, device):
        key = (stage, idx, source)
        if key not in self.metrics:
            self.metrics[key] = self._new_metric(protocol)
        return self.metrics[key].to(device)

    def upsample_mode(self, trainer, stage: str, idx: int, protocol: Protocol) -> str:
        """How set ``idx`` upsamples under ``protocol`` (some references treat VGG-SS apart)."""
        return protocol.upsample_for(getattr(_dataset(trainer, stage, idx), "benchmark", None))

    def _on_batch_start(self, trainer, pl_module, batch: AVBatch | None, stage: str, idx: int) -> None:
        if isinstance(batch, AVBatch):  # each set upsamples as its protocol's reference does
            protocol = self.protocol_for(trainer, stage, idx, batch_kind(batch))
            pl_module.upsample_mode = self.upsample_mode(trainer, stage, idx, protocol)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._on_batch_start(trainer, pl_module, batch, "val", dataloader_idx)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._on_batch_start(trainer, pl_module, batch, "test", dataloader_idx)

    def _fixed_range(self, pl_module, maps: Tensor, protocol: Protocol) -> Tensor:
        score_range = getattr(pl_module, "score_range", None)
        if score_range is None:
            raise ValueError(f"protocol {protocol.name!r} needs maps with a fixed range; {type(pl_module).__name__} has none")
        low, high = score_range
        return (maps - low) / (high - low)

    def _feed(self, metric, kind: str, maps, batch: AVBatch, one_source: bool = False, absolute=None) -> None:
        if kind == "multi":  # sources counted from the boxes, unless a single-source set is scored as a mixture of one
            known = not one_source and len(batch.boxes) == len(batch) and all(len(b) for b in batch.boxes)
            sources = torch.tensor([len(b) for b in batch.boxes]) if known else None
            metric.update(maps, batch.gt_frames, batch.index, sources)
        elif kind == "segmentation":
            metric.update(maps, batch.gt_map, batch.index, batch.group)
        else:
            metric.update(maps, batch.gt_map, batch.index, batch.n_boxes, absolute_maps=absolute)

    def _update(self, trainer, stage: str, pl_module, outputs, batch: AVBatch | None, dataloader_idx: int) -> None:
        if not outputs or not isinstance(batch, AVBatch) or (batch.gt_map is None and batch.gt_frames is None):
            return
        kind = batch_kind(batch)
        protocol = self.protocol_for(trainer, stage, dataloader_idx, kind)
        self.kinds[(stage, dataloader_idx)] = kind
        one_source = getattr(_dataset(trainer, stage, dataloader_idx), "evaluation", "multi") != "multi"
        maps = outputs["object_maps"] if kind == "multi" else outputs["maps"]
        if kind == "multi" and protocol.family == "avgn" and getattr(pl_module, "maps_follow_sources", False):
            maps = [own_frames(m, batch.gt_frames.shape[1]) for m in maps]  # frame j against source j's map
        if protocol.fixed_range:
            maps = self._fixed_range(pl_module, maps, protocol)
        absolute = None  # maps on one scale for every sample: their confidence tells true from negative audio
        if kind in ("single", "extended"):
            fixed = protocol.fixed_range or getattr(pl_module, "score_range", None) is None
            absolute = maps if fixed else self._fixed_range(pl_module, maps, protocol)
        self._feed(self._metric(stage, dataloader_idx, "method", protocol, pl_module.device), kind, maps, batch, one_source, absolute)
        if stage != "test":
            return
        frames = batch.gt_frames.shape[1] if kind == "multi" else 1
        size = (batch.gt_frames if kind == "multi" else batch.gt_map).shape[-1]
        for floor in self.floors:
            floor_map = floor_maps(floor, batch.index, frames, size, self.upsample_mode(trainer, stage, dataloader_idx, protocol))
            if kind == "multi":
                floor_map = list(floor_map.float()[:, None])  # one object map per sample
            elif kind == "segmentation" and floor_map.dtype == torch.bool:
                floor_map = floor_map.float()  # a constant 1 stays 1 under min-max: every pixel
            self._feed(self._metric(stage, dataloader_idx, floor, protocol, pl_module.device), kind, floor_map, batch, one_source)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._update(trainer, "val", pl_module, outputs, batch, dataloader_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._update(trainer, "test", pl_module, outputs, batch, dataloader_idx)

    def _finish(self, stage: str) -> dict[int, dict[str, dict[str, Any]]]:
        """Compute (synced across processes) and reset every metric of ``stage``: {idx: {source: result}}."""
        results: dict[int, dict[str, dict[str, Any]]] = {}
        for (s, idx, source), metric in sorted(self.metrics.items()):
            if s == stage and metric.update_count:
                results.setdefault(idx, {})[source] = metric.compute()
                metric.reset()
        return results

    def _headline(self, protocol: Protocol, result: dict[str, Any]) -> list[str]:
        names = list(HEADLINE[protocol.family])
        return names + [n for n in (*EXTENDED, "discrimination_ap") if n in result]

    # -- epoch ends ---------------------------------------------------------------------------

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        results = self._finish("val")
        if trainer.sanity_checking or not results:
            return
        for idx, by_source in results.items():
            prefix = "val" if idx == 0 else f"val_{idx}"
            result = by_source["method"]
            warn_non_finite(prefix, _dataset(trainer, "val", idx), result)
            for i, name in enumerate(self._headline(self.chosen[("val", idx)], result)):
                pl_module.log(f"{prefix}/{name}", result[name].float(), prog_bar=i == 0, add_dataloader_idx=False)

    def on_test_end(self, trainer, pl_module) -> None:
        data = getattr(trainer, "datamodule", None)
        if hasattr(data, "write_manifests"):  # now with what could not be read
            data.write_manifests("test", announce=False)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        finished = self._finish("test")
        self._negative_audio_ap(trainer, finished)
        for idx, by_source in finished.items():
            dataset = _dataset(trainer, "test", idx)
            name = getattr(dataset, "name", f"test{idx}")
            kind, protocol = self.kinds[("test", idx)], self.chosen[("test", idx)]
            metrics = self._headline(protocol, by_source["method"])
            for source, result in by_source.items():
                prefix = f"test/{name}" if source == "method" else f"test/{name}/{source}"
                for metric in (m for m in metrics if m in result):  # floors have no discrimination AP
                    pl_module.log(f"{prefix}/{metric}", torch.as_tensor(result[metric]).float(), add_dataloader_idx=False)
            warn_non_finite(f"test/{name}", dataset, by_source["method"])
            summary = self._summary(name, kind, protocol, dataset, by_source, metrics)
            summary["run"] = self._run_record(trainer, pl_module)
            data = getattr(trainer, "datamodule", None)
            bad = getattr(data, "unreadable", {}).get(f"test_{name}", {})
            summary["unreadable"] = {"count": len(bad), "sample_ids": sorted(bad)}
            self.last_results[name] = summary
            if trainer.is_global_zero:
                self._write(trainer, name, dataset, by_source["method"], summary)
                self._log_wandb(trainer, name, summary)
                self._plot_success(trainer, name, protocol, by_source)
                self._draw(trainer, pl_module, name, dataset, by_source["method"])

    def _negative_audio_ap(self, trainer, finished: dict[int, dict[str, dict[str, Any]]]) -> None:
        """For each negative-audio pass, the AP of telling each sample's true audio (positive) from
        its negative audio by the map's confidence (SLAVC's top-quarter mean of the fixed-range
        scores), ``discrimination_ap``, added to that pass's results."""
        names = {getattr(_dataset(trainer, "test", idx), "name", None): idx for idx in finished}
        for idx, by_source in finished.items():
            base = getattr(_dataset(trainer, "test", idx), "base_name", None)
            if base is None or names.get(base) not in finished:
                continue
            true, negative = finished[names[base]]["method"], by_source["method"]
            if "absolute_conf" not in true.get("per_sample", {}):
                continue
            scores = torch.cat([true["per_sample"]["absolute_conf"], negative["per_sample"]["absolute_conf"]]).double()
            labels = torch.cat([torch.ones(len(true["per_sample"]["index"])), torch.zeros(len(negative["per_sample"]["index"]))])
            scores = torch.nan_to_num(scores, nan=float("-inf"))
            negative["discrimination_ap"] = average_precision(labels[None], scores[None])[0]

    # -- records and pictures (rank 0) ----------------------------------------------------------

    def _summary(self, name: str, kind: str, protocol: Protocol, dataset, by_source: dict[str, dict[str, Any]],
                 metrics: list[str]) -> dict[str, Any]:
        result = by_source["method"]
        ids = getattr(dataset, "sample_ids", None)
        used = [ids[i] for i in result["per_sample"]["index"].tolist()] if ids else []
        summary = {
            "dataset": name,
            "kind": kind,
            "sample_list": getattr(dataset, "list_name", name),
            "protocol": protocol.name,
            "protocol_reference": protocol.reference,
            "n": int(result["n"]),
            "dataset_size": len(dataset) if dataset is not None else None,
            "sample_ids_hash": ids_hash(used),
            **{k: float(result[k]) for k in metrics},
            "floors": {s: {k: float(r[k]) for k in metrics if k in r} for s, r in by_source.items() if s != "method"},
            "non_finite": {"count": len(non_finite_ids(dataset, result)), "sample_ids": non_finite_ids(dataset, result)},
        }
        if "table" in result:
            summary["extended_table"] = result["table"]
        return summary

    def _run_record(self, trainer, pl_module) -> dict[str, Any]:
        """What ``sslbench report`` groups by: method, experiment, seed, training set, checkpoint."""
        train_set = getattr(trainer.datamodule, "train_set", None)
        trained = getattr(pl_module, "trained_run", None) if trainer.ckpt_path else None
        seed = os.environ.get("PL_GLOBAL_SEED")
        return {
            "method": type(pl_module).__name__,
            "experiment": self.experiment or type(pl_module).__name__.lower(),
            "seed": trained["seed"] if trained else int(seed) if seed is not None else None,
            "train_set": getattr(train_set, "list_name", None),
            # absolute, so two tests of one checkpoint are recognised as one in reports
            "checkpoint": str(Path(trainer.ckpt_path).resolve()) if trainer.ckpt_path else None,
        }

    def _log_wandb(self, trainer, name: str, summary: dict[str, Any]) -> None:
        """W&B: what was evaluated goes in the run config; the per-sample rows in a table."""
        logger = trainer.logger
        if type(logger).__name__ != "WandbLogger":
            return
        try:
            record = {k: summary[k] for k in ("protocol", "n", "sample_list", "sample_ids_hash", "dataset_size")}
            logger.experiment.config.update({f"test/{name}": record}, allow_val_change=True)
            with open(self._out_dir(trainer) / f"test_{file_name(name)}.csv") as f:
                rows = list(csv.reader(f))
            logger.log_table(key=f"test/{name}/per_sample", columns=rows[0], data=rows[1:])
        except Exception as err:  # logging extras must never break a run
            rank_zero_warn(f"could not log {name}'s results to W&B: {type(err).__name__}: {err}")

    def _out_dir(self, trainer) -> Path:
        return Path(self.results_dir) if self.results_dir else run_dir(trainer) / "results"

    def _write(self, trainer, name: str, dataset, result: dict[str, Any], summary: dict[str, Any]) -> None:
        out = self._out_dir(trainer)
        name = file_name(name)
        out.mkdir(parents=True, exist_ok=True)
        columns: dict[str, list] = {}
        for key, values in result["per_sample"].items():
            if values.dim() == 1:
                columns[key] = values.tolist()
            else:  # (N, K) per-source values
                columns.update({f"{key}_{j}": values[:, j].tolist() for j in range(values.shape[1])})
        ids = getattr(dataset, "sample_ids", None)
        with open(out / f"test_{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["index", "sample_id", *[c for c in columns if c != "index"]])
            for row, index in enumerate(columns["index"]):
                values = [repr(v) if isinstance(v, float) else v for c, col in columns.items() if c != "index" for v in [col[row]]]
                writer.writerow([index, ids[index] if ids else "", *values])
        (out / f"test_{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
        metrics = [k for k in (*HEADLINE[get_protocol(summary["protocol"]).family], *EXTENDED, "discrimination_ap") if k in summary]
        lines = [f"test/{name} ({summary['kind']}, protocol {summary['protocol']}, n={summary['n']}, list {summary['sample_list']}):"]
        for source, values in [("method", summary), *summary["floors"].items()]:
            lines.append(f"  {source:<12}" + "  ".join(f"{k}={values[k]:.4f}" for k in metrics if k in values))
        rank_zero_info("\n".join(lines) + f"\n  -> {out / f'test_{name}.csv'}")

    def _plot_success(self, trainer, name: str, protocol: Protocol, by_source: dict[str, dict[str, Any]]) -> None:
        """Success-ratio curves of the method and its floors (sets scored by cIoU)."""
        family = protocol.family
        if family == "s4":
            return
        try:
            from sslbench.viz import success_plot

            def cious(result):
                if family == "ioi":
                    return result["entries"]["iou"]
                if family == "avgn":
                    return result["per_sample"]["avgn_ciou"].flatten()
                return result["per_sample"]["ciou"][result["per_sample"]["n_boxes"] != 0]

            curves = {source: success_curve(cious(result)) for source, result in by_source.items()}
            path = success_plot(curves, self._out_dir(trainer) / f"success_{file_name(name)}.png", f"{name} ({protocol.name})")
            if hasattr(trainer.logger, "log_image"):
                trainer.logger.log_image(key=f"test/{name}/success", images=[str(path)])
        except Exception as err:  # pictures must never break a run
            rank_zero_warn(f"could not plot the success curve of {name}: {type(err).__name__}: {err}")

    def _draw(self, trainer, pl_module, name: str, dataset, result: dict[str, Any]) -> None:
        """Heatmaps of the best, the worst and a fixed random few samples by their score, overlaid
        on the frames with the ground truth; a failure here warns and never stops a run."""
        if not self.num_visualized or dataset is None:
            return
        try:
            from sslbench.viz import overlay_grid, pick_examples

            per_sample = result["per_sample"]
            score_name = "ciou" if "ciou" in per_sample else "frame_iou" if "frame_iou" in per_sample else "ap"
            index, values = per_sample["index"].tolist(), per_sample[score_name].double().tolist()
            groups = pick_examples(index, values, max(1, self.num_visualized // 3))
            chosen = [i for _, members in groups for i in members]
            batch = collate([dataset[i] for i in chosen])
            if not isinstance(batch, AVBatch):
                return
            batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
            batch = trainer.datamodule.on_after_batch_transfer(batch, 0)
            maps = pl_module.localize(batch.image, batch.audio)
            position = {i: p for p, i in enumerate(batch.index.tolist())}
            scores = dict(zip(index, values))
            titles = [f"{sid}  {score_name} {scores.get(i, float('nan')):.2f}" for sid, i in zip(batch.sample_id, batch.index.tolist())]
            rows = [(label, [position[i] for i in members if i in position]) for label, members in groups]
            path = overlay_grid(denormalize(batch.image), maps, batch.boxes, self._out_dir(trainer) / f"heatmaps_{file_name(name)}.png",
                                titles, gt_maps=batch.gt_map, rows=rows)
            if hasattr(trainer.logger, "log_image"):
                trainer.logger.log_image(key=f"test/{name}/heatmaps", images=[str(path)])
        except Exception as err:  # pictures must never break a run
            rank_zero_warn(f"could not draw heatmaps for {name}: {type(err).__name__}: {err}")

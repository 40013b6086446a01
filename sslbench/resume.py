"""Runs that can stop anywhere and go on as if they never had.

- :class:`RunCheckpoint`: Lightning's ModelCheckpoint, except that ``last.ckpt`` is rewritten after
  every epoch (Lightning rewrites it only when a top-k checkpoint is saved, so with ``monitor`` the
  final weights could be missing from it).
- :class:`ResumableRun`: puts the global random generators in the checkpoint and restores them
  when training resumes (the loaders' own order and augmentation are ``datamodules.sampling``'s);
  turns SIGTERM (what SLURM sends before a kill) and SIGUSR1 into a checkpoint at the end of the
  current step and an exit status of 128 + the signal, with one line saying how to resume. Under
  SLURM with auto-requeue, Lightning's own SIGUSR1 handling (checkpoint, then ``scontrol requeue``)
  is left in charge.
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

LAST = ModelCheckpoint.CHECKPOINT_NAME_LAST + ModelCheckpoint.FILE_EXTENSION


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose ``last.ckpt`` is always the last completed state (with ``save_last``)."""

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def _refresh_last(self, trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer) and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def rng_states() -> dict[str, Any]:
    """The global generators: torch (CPU and every CUDA device), numpy and Python's ``random``, as
    tensors and plain numbers (a checkpoint stays loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, mt, gauss_next = random.getstate()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["state"].tolist()), p["gauss_next"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def checkpoint_path(trainer) -> Path:
    """Where the run's ``last.ckpt`` goes: its checkpoint folder, else ``<run dir>/checkpoints``."""
    from sslbench.eval.callback import run_dir

    callback = trainer.checkpoint_callback
    folder = Path(callback.dirpath) if callback is not None and callback.dirpath else run_dir(trainer) / "checkpoints"
    return folder / LAST


class ResumableRun(Callback):
    """RNG states in every checkpoint, restored on resume; SIGTERM / SIGUSR1 save and stop."""

    def __init__(self) -> None:
        self._states_to_restore: dict[str, Any] | None = None
        self.stopped_by: str | None = None
        self.saved: Path | None = None
        self._previous_usr1 = None

    # -- random generators -----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._states_to_restore = state_dict.get("rng")

    def on_train_start(self, trainer, pl_module) -> None:
        # after the sanity check and the loaders' setup, right before the first resumed step: the
        # same point in the generators' sequence as the uninterrupted run
        if self._states_to_restore is not None:
            set_rng_states(self._states_to_restore)
            self._states_to_restore = None
        self._defer_sigterm_during_validation(trainer)

    def _defer_sigterm_during_validation(self, trainer) -> None:
        """Wrap Lightning's SIGTERM handler (registered by now): a signal that arrives while the
        epoch's validation runs takes effect when it ends, so the stop comes after a complete
        validation (Lightning would stop mid-way and, resumed, never score that epoch)."""
        self._deferred = False
        try:
            lightning_handler = signal.getsignal(signal.SIGTERM)
        except ValueError:
            return
        if not callable(lightning_handler):
            return

        def handler(signum, frame):
            if trainer.validating and not trainer.sanity_checking:
                self._deferred = True
            else:
                lightning_handler(signum, frame)

        self._lightning_sigterm = lightning_handler
        try:
            signal.signal(signal.SIGTERM, handler)
        except ValueError:  # not the main thread
            pass

    def on_validation_end(self, trainer, pl_module) -> None:
        if getattr(self, "_deferred", False):
            self._deferred = False
            self._lightning_sigterm(signal.SIGTERM, None)

    # -- signals -----------------------------------------------------------------------------

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit" or not hasattr(signal, "SIGUSR1"):
            return
        self.stopped_by, self.saved = None, None
        environment = trainer._accelerator_connector.cluster_environment
        slurm_requeue = type(environment).__name__ == "SLURMEnvironment" and getattr(environment, "auto_requeue", False)
        if not slurm_requeue:
            try:  # SIGUSR1 as SIGTERM: Lightning's handler stops the loop after the current step
                self._previous_usr1 = signal.signal(signal.SIGUSR1, self._on_usr1)
            except ValueError:  # not the main thread
                self._previous_usr1 = None

    def _on_usr1(self, signum, frame) -> None:
        self.stopped_by = "SIGUSR1"
        os.kill(os.getpid(), signal.SIGTERM)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._previous_usr1 is not None:
            signal.signal(signal.SIGUSR1, self._previous_usr1)
            self._previous_usr1 = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        self.stopped_by = self.stopped_by or "SIGTERM"
        path = checkpoint_path(trainer)
        callback = trainer.checkpoint_callback
        if isinstance(callback, ModelCheckpoint) and callback.save_last:
            callback.last_model_path = str(path)  # recorded in the checkpoint: the resumed run rewrites this file
        trainer.save_checkpoint(path)  # every rank takes part; rank 0 writes
        self.saved = path
        rank_zero_info(f"{self.stopped_by}: saved epoch {trainer.current_epoch}, step {trainer.global_step} to {path}")

    @property
    def exit_code(self) -> int:
        return 128 + int(signal.SIGUSR1 if self.stopped_by == "SIGUSR1" else signal.SIGTERM)


class EpochMetrics(Callback):
    """``<run dir>/epochs.csv``: one row per epoch (epoch, step, mean training loss, and every
    scalar validation logged), whatever the logger, so a run's curve is readable without W&B."""

    FILE = "epochs.csv"

    def __init__(self) -> None:
        self._loss_sum: torch.Tensor | None = None
        self._batches = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._loss_sum, self._batches = None, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):  # summed on the device: no sync inside the epoch
            loss = loss.detach().float()
            self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
            self._batches += 1

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and self._batches:  # stopped: keep what this epoch has so far
            self.on_train_epoch_end(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        data = getattr(trainer, "datamodule", None)
        if hasattr(data, "write_manifests"):  # the manifests too, with what could not be read so far
            data.write_manifests("fit", announce=False)
        if not trainer.is_global_zero:
            return
        import csv

        from sslbench.eval.callback import run_dir

        row: dict[str, Any] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        if self._loss_sum is not None:
            row["train/loss"] = float(self._loss_sum) / self._batches
        for key, value in sorted(trainer.callback_metrics.items()):
            if key.startswith("val") and isinstance(value, torch.Tensor) and value.numel() == 1:
                row[key] = float(value)
        path = run_dir(trainer) / self.FILE
        rows = list(csv.DictReader(path.open())) if path.is_file() else []
        rows = [r for r in rows if int(r["epoch"]) != row["epoch"]] + [row]  # a resumed epoch replaces its row
        columns = list(dict.fromkeys(k for r in rows for k in r))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

"""The ``sslbench`` command: LightningCLI over every method and the one data module.

    sslbench fit --config experiments/ezvsl_margin.yaml
    sslbench test --config experiments/ezvsl_margin.yaml --ckpt_path runs/.../last.ckpt
    sslbench fit --model EZVSL --model.margin -0.2 --print_config
"""

from __future__ import annotations

import importlib.util
import netrc
import os
import sys
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

import datamodules  # noqa: F401  (registers the dataset classes for short names)
import sslbench.methods  # noqa: F401  (registers the methods for short names)
from datamodules.datamodule import AudioVisualDataModule
from sslbench.checkpoints import detect_layout, load_reference_checkpoint
from sslbench.errors import SSLBenchError
from sslbench.eval.callback import LocalizationEvaluator, run_dir
from sslbench.methods.base import LocalizationMethod

RUNS_DIR = "runs"


def wandb_has_key() -> bool:
    """An API key in the environment or in ~/.netrc (where ``wandb login`` puts it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def default_logger(save_dir: str = RUNS_DIR) -> dict[str, Any]:
    """W&B when installed (offline by itself without an API key), else CSV."""
    use_wandb = importlib.util.find_spec("wandb") is not None and os.environ.get("WANDB_MODE") != "disabled"
    if use_wandb:
        return {
            "class_path": "lightning.pytorch.loggers.WandbLogger",
            "init_args": {"project": "sslbench", "save_dir": save_dir, "offline": not wandb_has_key()},
        }
    return {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": save_dir, "name": "sslbench"}}


class LoggerSaveConfigCallback(SaveConfigCallback):
    """Writes the resolved ``config.yaml`` into this run's folder (the CSV version dir or the W&B
    run's files, never a folder shared by runs) and records it in the logger (rank 0)."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
        folder = run_dir(trainer)
        folder.mkdir(parents=True, exist_ok=True)
        self.parser.save(self.config, folder / self.config_filename, skip_none=False, overwrite=True, multifile=False)
        if trainer.logger is not None:
            trainer.logger.log_hyperparams({"config": self.config.as_dict()})


class SSLBenchParser(LightningArgumentParser):
    """Reports a bad argument or config key in a few lines, without the 60-line usage dump."""

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error or os.environ.get("JSONARGPARSE_DEBUG"):
            return super().error(message, ex)
        prog = (getattr(ex, "subcommand_parser", None) or self).prog.replace(" [options]", "")
        sys.stderr.write(f"sslbench: error: {message}\n(the accepted keys: {prog} --help)\n")
        self.exit(2)


class SSLBenchCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # Always present, configured under ``evaluator:``: every method is scored the same way.
        parser.add_lightning_class_args(LocalizationEvaluator, "evaluator")

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        """A released checkpoint of a reference repository as ``--ckpt_path``: remap it into the
        model here; Lightning then runs from the model as it is."""
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        path = kwargs.get("ckpt_path")
        if path and subcommand != "fit" and Path(path).exists() and detect_layout(path) is not None:
            print(f"sslbench: {load_reference_checkpoint(self.model, path)}", file=sys.stderr)
            kwargs["ckpt_path"] = None
        return kwargs


def build_cli(args: list[str] | None = None, run: bool = True) -> SSLBenchCLI:
    return SSLBenchCLI(
        LocalizationMethod,
        AudioVisualDataModule,
        subclass_mode_model=True,
        save_config_callback=LoggerSaveConfigCallback,
        save_config_kwargs={"save_to_log_dir": False},
        trainer_defaults={"logger": default_logger(), "default_root_dir": RUNS_DIR},
        seed_everything_default=0,
        auto_configure_optimizers=False,
        parser_class=SSLBenchParser,
        parser_kwargs={
            "description": "Self-supervised sound source localization: train, evaluate, predict. "
            "Also: `sslbench knn --help` (neighbour tables for SSL-Align's conceptual positives)."
        },
        args=args,
        run=run,
    )


def user_error(err: BaseException) -> SSLBenchError | None:
    """The SSLBenchError behind ``err``, also when jsonargparse wrapped it while instantiating."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, SSLBenchError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def main(args: list[str] | None = None) -> None:
    """Entry point; errors a user can fix are printed as one line (JSONARGPARSE_DEBUG=1 for tracebacks)."""
    words = sys.argv[1:] if args is None else args
    try:
        if words[:1] == ["knn"]:
            from sslbench.knn import main as knn

            return knn(words[1:])
        build_cli(args)
    except Exception as err:
        cause = user_error(err)
        if cause is None or os.environ.get("JSONARGPARSE_DEBUG"):
            raise
        print(f"sslbench: error: {cause}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

"""``sslbench fit | validate | test``: LightningCLI over every method and the one data module.

    sslbench fit --config experiments/ezvsl_margin.yaml
    sslbench test --config experiments/ezvsl_margin.yaml --ckpt_path runs/.../last.ckpt
    sslbench fit --model EZVSL --model.margin -0.2 --print_config
"""

from __future__ import annotations

import importlib.util
import netrc
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities.exceptions import SIGTERMException

import datamodules
import sslbench.methods  # noqa: F401  (registers the methods for short names)
from datamodules.datamodule import AudioVisualDataModule
from sslbench.checkpoints import detect_layout, load_reference_checkpoint
from sslbench.cli import debugging
from sslbench.commands.parse_errors import one_line
from sslbench.errors import SSLBenchError, ensure_writable
from sslbench.eval.callback import LocalizationEvaluator, run_dir
from sslbench.methods.base import LocalizationMethod
from sslbench.resume import EpochMetrics, ResumableRun, RunCheckpoint
from sslbench.speed import Speed

datamodules.import_all()  # every reader, for short class names in configs
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


def experiment_name(config_files: list) -> str | None:
    """``experiments/ezvsl_margin.yaml`` + ``experiments/ogl.yaml`` -> ``ezvsl_margin+ogl``;
    ``synthetic/base.yaml`` + ``synthetic/ezvsl.yaml`` -> ``synthetic/ezvsl``. Shared budgets
    (``base``) and hardware files (``experiments/trainer/``) do not name an experiment."""
    parts = []
    for file in config_files:
        path = Path(str(file))
        if path.stem == "base" or path.parent.name == "trainer":
            continue
        prefix = "" if path.parent.name in ("experiments", "") else f"{path.parent.name}/"
        parts.append(prefix + path.stem)
    return "+".join(parts) or None


def _dataset_tag(dataset) -> str:
    """``VGGSound(vggss_144k)`` from a dataset's config entry (class and id list)."""
    if not isinstance(dataset, Namespace):
        return "SyntheticScenes"
    name = str(dataset.get("class_path", "dataset")).rpartition(".")[2]
    ids = (dataset.get("init_args") or Namespace()).get("ids")
    return f"{name}({Path(str(ids)).stem})" if ids else name


def wandb_conventions(init: Namespace, config: Namespace, method: str, subcommand: str) -> None:
    """Runs named ``<experiment>-s<seed>``, grouped by experiment, tagged by method, training set
    and test sets; checkpoints uploaded as artifacts when online. Anything set by hand stays."""
    experiment = config.evaluator.experiment
    seed = config.get("seed_everything")
    init.group = init.group or experiment
    init.job_type = init.job_type or subcommand
    init.name = init.name or f"{experiment}-s{seed}" + ("" if subcommand == "fit" else f"-{subcommand}")
    data = config.data.get("init_args", config.data) if isinstance(config.data, Namespace) else Namespace()
    tests = data.get("test") or [None]
    init.tags = init.tags or [method, f"train:{_dataset_tag(data.get('train'))}", *(f"test:{_dataset_tag(t)}" for t in tests)]
    if not init.get("offline") and init.get("log_model") is False:
        init.log_model = True


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
    """Reports a bad argument, key, class or choice in one line with the closest valid names,
    without the usage dump (``JSONARGPARSE_DEBUG=true`` for the whole story)."""

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error or debugging():
            return super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        options = [o for o in getattr(parser, "_option_string_actions", {}) if o.startswith("--")]
        sys.stderr.write(f"sslbench: error: {one_line(message, options)} (see {prog} --help)\n")
        self.exit(2)


class SSLBenchCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # Always present, configured under ``evaluator:``: every method is scored the same way.
        parser.add_lightning_class_args(LocalizationEvaluator, "evaluator")
        # channels-last and torch.compile, off unless asked (experiments/trainer/gpu_bf16.yaml turns on channels-last)
        parser.add_lightning_class_args(Speed, "speed")
        # the evaluator names the negative-audio passes; the data module serves them
        parser.link_arguments("evaluator.negative_audio", "data.negative_audio")

    def _prepare_subcommand_parser(self, klass, subcommand: str, **kwargs):
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand == "fit":
            parser.add_argument(
                "--test_after_fit", type=bool, default=True,
                help="after training, score the test sets with the checkpoint chosen on validation (else the last weights)",
            )
            parser.add_argument(  # taken out of the command line before parsing; here for --help
                "--seeds", type=str | None, default=None,
                help="comma-separated seeds, e.g. 0,1,2: the same run once per seed, one after another, each its own run "
                "folder and results (sslbench report pools them)",
            )
        return parser

    def before_instantiate_classes(self) -> None:
        """Name the experiment once (result files, reports, W&B) and line W&B runs up by it; a fit
        resumed from a run's checkpoint logs into that run's folder."""
        config = self.config[self.config.subcommand] if self.config.get("subcommand") else self.config
        method = str(config.model.class_path).rpartition(".")[2]
        if config.evaluator.experiment is None:
            config.evaluator.experiment = experiment_name(config.get("config") or []) or method.lower()
        logger = config.trainer.get("logger")
        if config.get("ckpt_path") and not Path(str(config.ckpt_path)).expanduser().exists():
            raise SSLBenchError(f"--ckpt_path: checkpoint not found: {config.ckpt_path}")
        check_output_folders(config)
        if self.config.get("subcommand") == "fit" and config.get("ckpt_path"):
            resume_into_run_folder(logger, config.ckpt_path)
        if isinstance(logger, Namespace) and str(logger.get("class_path", "")).endswith("WandbLogger"):
            wandb_conventions(logger.init_args, config, method, self.config.get("subcommand") or "run")

    def instantiate_trainer(self, **kwargs):
        trainer = super().instantiate_trainer(**kwargs)
        for callback in trainer.callbacks:  # last.ckpt after every epoch, whatever the config named
            if type(callback) is ModelCheckpoint:
                callback.__class__ = RunCheckpoint
                callback.save_last = True if callback.save_last is None else callback.save_last
        return trainer

    def after_fit(self) -> None:
        config = self.config.get("fit") or self.config
        if not config.get("test_after_fit", True) or self.trainer.interrupted or not self.datamodule.test_datasets:
            return
        callback = self.trainer.checkpoint_callback
        best = callback.best_model_path if callback is not None and callback.best_model_path else None
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best)

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        """With ``--ckpt_path``, the checkpoint's model settings are the starting point and the
        config files and flags given apply on top: ``sslbench test --ckpt_path ckpt
        --model.init_args.single_map true`` changes what it says. Lightning itself applies the
        checkpoint's hyperparameters last, silently undoing such flags (Lightning PR #21455)."""
        subcommand, path = subcommand_and_checkpoint(args, self.subcommands())
        model = checkpoint_model_config(path)
        if model is not None:
            self._subcommand_parsers[subcommand].set_defaults({"model": model})
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        late = checkpoint_model_config(self.config[subcommand].get("ckpt_path")) if subcommand and model is None else None
        if late is not None:  # named in a config file: the same, once it is known
            self._subcommand_parsers[subcommand].set_defaults({"model": late})
            super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        """Done in :meth:`parse_arguments`, under the user's settings."""

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        """A released checkpoint of a reference repository as ``--ckpt_path``: remap it into the
        model here; Lightning then runs from the model as it is."""
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        path = kwargs.get("ckpt_path")
        if path and subcommand != "fit" and Path(path).exists() and detect_layout(path) is not None:
            print(f"sslbench: {load_reference_checkpoint(self.model, path)}", file=sys.stderr)
            kwargs["ckpt_path"] = None
        return kwargs


def check_output_folders(config: Namespace) -> None:
    """Every folder the run will write (trainer root, logger, results) takes a file, before any work."""
    folders = {"trainer.default_root_dir": config.trainer.get("default_root_dir") or RUNS_DIR}
    logger = config.trainer.get("logger")
    if isinstance(logger, Namespace) and (logger.get("init_args") or Namespace()).get("save_dir"):
        folders["trainer.logger.save_dir"] = logger.init_args.save_dir
    if config.evaluator.get("results_dir"):
        folders["evaluator.results_dir"] = config.evaluator.results_dir
    for option, folder in folders.items():
        ensure_writable(folder, f"output folder (--{option})")


def resume_into_run_folder(logger, ckpt_path: str) -> None:
    """``--ckpt_path <run>/checkpoints/last.ckpt``: the logger writes on in ``<run>`` (CSV: its
    version folder; W&B: the same run id, resumed), so metrics, results and the best score so far
    stay with the run instead of starting a new version."""
    path = Path(str(ckpt_path))
    if not isinstance(logger, Namespace) or path.parent.name != "checkpoints":
        return
    folder = path.parent.parent
    # both say the folder is not empty, which is the point; the CSV logger appends, it deletes nothing
    warnings.filterwarnings("ignore", message=".*Experiment logs directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    args = logger.init_args
    if str(logger.get("class_path", "")).endswith("CSVLogger"):
        args.save_dir, args.name, args.version = str(folder.parent.parent), folder.parent.name, folder.name
    elif str(logger.get("class_path", "")).endswith("WandbLogger"):
        args.save_dir, args.project, args.id = str(folder.parent.parent), folder.parent.name, folder.name
        args.resume = "allow"


def subcommand_and_checkpoint(args, subcommands) -> tuple[str | None, str | None]:
    """The subcommand and ``--ckpt_path`` of a command line (``args``, else ``sys.argv``)."""
    if isinstance(args, (dict, Namespace)):
        return None, None
    argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
    subcommand = next((a for a in argv if a in subcommands), None)
    path = None
    for i, arg in enumerate(argv):
        if arg == "--ckpt_path" and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith("--ckpt_path="):
            path = arg.partition("=")[2]
    return subcommand, path


def checkpoint_model_config(path: str | None) -> dict[str, Any] | None:
    """``{"class_path", "init_args"}`` of a Lightning checkpoint saved through the CLI, else None
    (no file, a released reference checkpoint, or no recorded class)."""
    if not path or not Path(path).is_file() or detect_layout(path) is not None:
        return None
    hparams = dict(torch.load(path, weights_only=True, map_location="cpu").get("hyper_parameters") or {})
    hparams.pop("_instantiator", None)
    class_path = hparams.pop("_class_path", None)
    return None if class_path is None else {"class_path": class_path, "init_args": hparams}


def build_cli(args: list[str] | None = None, run: bool = True, resumable: ResumableRun | None = None) -> SSLBenchCLI:
    return SSLBenchCLI(
        LocalizationMethod,
        AudioVisualDataModule,
        subclass_mode_model=True,
        save_config_callback=LoggerSaveConfigCallback,
        save_config_kwargs={"save_to_log_dir": False},
        trainer_defaults={
            "logger": default_logger(), "default_root_dir": RUNS_DIR,
            "callbacks": [resumable or ResumableRun(), EpochMetrics()],  # added to the config's own
        },
        seed_everything_default=0,
        auto_configure_optimizers=False,
        parser_class=SSLBenchParser,
        parser_kwargs={
            "prog": "sslbench",
            "description": "Self-supervised sound source localization: train, evaluate, predict. "
            "`sslbench fit ... --seeds 0,1,2` runs one seed after another. Also: `sslbench report RUN_DIR...` "
            "(tables and success curves of finished runs), `sslbench predict --help` (heatmaps for your own "
            "image and audio files), `sslbench prepare --help` (raw videos to frames, audio and packed chunks), "
            "`sslbench data check ROOT --dataset NAME` (what is wrong with a dataset folder), "
            "`sslbench knn --help` (neighbour tables for SSL-Align)."
        },
        args=args,
        run=run,
    )


def compile_alias(words: list[str]) -> list[str]:
    """``--model.compile X`` is ``--speed.compile X``: compiling is a property of the run, not of a method."""
    return [w.replace("--model.compile", "--speed.compile", 1) if w == "--model.compile" or w.startswith("--model.compile=") else w
            for w in words]


def pop_seeds(words: list[str]) -> tuple[list[int], list[str]]:
    """``--seeds 0,1,2`` (or ``--seeds=0,1,2``): the seeds to run one after another, and the rest."""
    rest, seeds = [], []
    it = iter(words)
    for word in it:
        if word == "--seeds" or word.startswith("--seeds="):
            value = word.partition("=")[2] if "=" in word else next(it, "")
            try:
                seeds = [int(s) for s in value.split(",") if s.strip()]
            except ValueError:
                raise SSLBenchError(f"--seeds takes comma-separated integers, got {value!r}") from None
            if not seeds:
                raise SSLBenchError("--seeds needs at least one seed, e.g. --seeds 0,1,2")
        else:
            rest.append(word)
    return seeds, rest


def finish_wandb_run() -> None:
    """End the current W&B run (if any), so that the next seed starts its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def stopped(resumable: ResumableRun, words: list[str]) -> int:
    """One line on how to go on after a SIGTERM / SIGUSR1, and the exit status (128 + signal)."""
    import shlex

    if resumable.saved is None:
        print(f"sslbench: stopped by {resumable.stopped_by or 'SIGTERM'} before a checkpoint could be saved", file=sys.stderr)
        return resumable.exit_code
    rest = [w for i, w in enumerate(words) if w != "--ckpt_path" and not w.startswith("--ckpt_path=")
            and not (i > 0 and words[i - 1] == "--ckpt_path")]
    command = shlex.join(["sslbench", *rest, "--ckpt_path", str(resumable.saved)])
    print(f"sslbench: stopped by {resumable.stopped_by}; saved {resumable.saved}; resume with: {command}", file=sys.stderr, flush=True)
    return resumable.exit_code


def main(words: list[str]) -> None:
    """``sslbench fit | validate | test ...`` (``--seeds`` runs one seed after another)."""
    # main passes the words on itself (after taking --seeds out): not the mistake this warns of
    warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
    seeds, words = pop_seeds(compile_alias(words))
    for i, seed in enumerate(seeds or [None]):
        if seed is not None:
            print(f"sslbench: seed {seed} ({i + 1} of {len(seeds)})", file=sys.stderr, flush=True)
        seed_words = words + (["--seed_everything", str(seed)] if seed is not None else [])
        resumable = ResumableRun()
        try:
            build_cli(seed_words, resumable=resumable)
        except SIGTERMException:
            raise SystemExit(stopped(resumable, seed_words)) from None
        finish_wandb_run()

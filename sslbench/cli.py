"""The ``sslbench`` command: a light dispatcher, so ``sslbench --help`` and the commands that do not
train (report, prepare, data check, knn --help) answer without importing Lightning.

    sslbench --help
    sslbench fit --config experiments/ezvsl_margin.yaml
    sslbench report runs/

The commands live in ``sslbench/commands/``; each one's module has a ``main(words)``.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys

from sslbench.errors import SSLBenchError

#: command -> (module in sslbench.commands, one line for --help)
COMMANDS: dict[str, tuple[str, str]] = {
    "fit": ("train", "train a method, then test the checkpoint chosen on validation (--config, --seeds 0,1,2, --ckpt_path to resume)"),
    "validate": ("train", "score the validation split with a checkpoint"),
    "test": ("train", "score the test sets with a checkpoint (sslbench's or a reference repository's released one)"),
    "predict": ("predict", "heatmaps and raw maps for your own image and audio files"),
    "report": ("report", "one table and one picture of success curves from finished runs"),
    "prepare": ("prepare", "raw videos to frames/ + audio/, and packed litdata chunks (local or s3://), resumable and parallel"),
    "data": ("datacheck", "data check ROOT --dataset NAME: what is wrong with a dataset folder"),
    "knn": ("knn", "top-k neighbour tables of a training set (SSL-Align's conceptual positives)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: sslbench <command> [options]",
        "",
        "Self-supervised visual sound source localization: every method on one data module, one",
        "evaluation and one command line.",
        "",
        "commands:",
        *(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()),
        "",
        "sslbench <command> --help lists a command's options (fit --help: every argument, with the paper defaults).",
        "Errors you can fix are one line; JSONARGPARSE_DEBUG=true shows the traceback.",
    ]
    return "\n".join(lines)


def user_error(err: BaseException) -> SSLBenchError | None:
    """The SSLBenchError behind ``err``, also when jsonargparse wrapped it while instantiating."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, SSLBenchError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def debugging() -> bool:
    return os.environ.get("JSONARGPARSE_DEBUG", "").lower() in ("1", "true", "yes", "on")


def main(args: list[str] | None = None) -> None:
    """Entry point; errors a user can fix are printed as one line."""
    words = list(sys.argv[1:] if args is None else args)
    if not words or words[0] in ("-h", "--help", "help"):
        print(usage())
        return
    command = words[0]
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        print(f"sslbench: error: unknown command {command!r}{hint} (commands: {', '.join(COMMANDS)})", file=sys.stderr)
        raise SystemExit(2)
    module = importlib.import_module(f"sslbench.commands.{COMMANDS[command][0]}")
    rest = words[1:]
    if command == "data":
        if rest[:1] != ["check"]:
            print("sslbench: error: the data command has one verb: sslbench data check ROOT --dataset NAME", file=sys.stderr)
            raise SystemExit(2)
        rest = rest[1:]
    if module.__name__.endswith(".train"):
        rest = words  # LightningCLI reads the subcommand itself
    try:
        module.main(rest)
    except Exception as err:
        cause = user_error(err)
        if cause is None or debugging():
            raise
        print(f"sslbench: error: {cause}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

"""``make demo``: train EZ-VSL with a negative margin on synthetic scenes on the CPU and test it.

Three evaluations of the same network on the same test scenes, through the normal CLI objects:
before training, after training (the epoch with the best validation cIoU), and the same trained
network with every image given the audio of a sample of another class (a model that listens
must lose its score there). Ends with one line:

    demo: ciou@0.5=<x> auc=<y> untrained_ciou@0.5=<z> swapped_audio_ciou@0.5=<w> seconds=<s>
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from sslbench.commands.train import build_cli, finish_wandb_run
from sslbench.eval.callback import LocalizationEvaluator, run_dir

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "demo_synthetic.yaml"


def run(args: list[str] | None = None) -> dict[str, float]:
    return train_and_score(["--config", str(DEMO_CONFIG), *(args or [])])


def scorer(cli_args: list[str], callbacks: list | None = None):
    """``(trainer, model, data, score)`` of one configured run; ``score(phase, checkpoint)`` tests
    on the first test set, keeps that phase's files apart and returns its summary."""
    cli = build_cli(cli_args, run=False)
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    trainer.callbacks.extend(callbacks or [])
    evaluator = next(cb for cb in trainer.callbacks if isinstance(cb, LocalizationEvaluator))

    def score(phase: str, checkpoint: str | None = None) -> dict:
        evaluator.results_dir = str(run_dir(trainer) / "results" / phase)  # keep each phase's files
        trainer.test(model, datamodule=data, verbose=False, ckpt_path=checkpoint)
        return evaluator.last_results[data.test_datasets[0].name]  # the method's numbers; floors inside

    return trainer, model, data, score


def train_and_score(cli_args: list[str], callbacks: list | None = None, negative_audio: list[str] | None = None) -> dict[str, float]:
    """Score the configured model on its first test set untrained, train it, score the epoch with
    the best validation cIoU, then the same with every test image given another class's audio;
    with ``negative_audio`` kinds, the trained network also under each (``<kind>_ciou@0.5`` and
    ``<kind>_discrimination_ap``)."""
    start = time.perf_counter()
    trainer, model, data, score = scorer(cli_args, callbacks)
    untrained = score("untrained")
    trainer.fit(model, datamodule=data)
    best = trainer.checkpoint_callback.best_model_path or None  # chosen on the validation split
    data.negative_audio = list(negative_audio or [])
    trained = score("trained", best)
    evaluator = next(cb for cb in trainer.callbacks if isinstance(cb, LocalizationEvaluator))
    negatives = {kind: evaluator.last_results[f"{data.test_sets[0].name}/negative/{kind}"] for kind in data.negative_audio}
    data.negative_audio = []
    data.swap_test_audio = True
    swapped = score("swapped", best)
    data.swap_test_audio = False
    finish_wandb_run()  # now, so nothing prints after the summary line
    return {
        "ciou@0.5": trained["ciou@0.5"],
        "auc": trained["auc"],
        "untrained_ciou@0.5": untrained["ciou@0.5"],
        "swapped_audio_ciou@0.5": swapped["ciou@0.5"],
        **{f"{kind}_{metric}": r[metric] for kind, r in negatives.items() for metric in ("ciou@0.5", "discrimination_ap")},
        "seconds": time.perf_counter() - start,
    }


def summary_line(result: dict[str, float]) -> str:
    return (
        f"demo: ciou@0.5={result['ciou@0.5']:.3f} auc={result['auc']:.3f} "
        f"untrained_ciou@0.5={result['untrained_ciou@0.5']:.3f} "
        f"swapped_audio_ciou@0.5={result['swapped_audio_ciou@0.5']:.3f} seconds={result['seconds']:.0f}"
    )


def main() -> None:
    os.environ.setdefault("WANDB_SILENT", "true")
    result = run(sys.argv[1:])
    sys.stderr.flush()
    print(summary_line(result), flush=True)


if __name__ == "__main__":
    main()

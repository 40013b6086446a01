"""Where a run keeps its files, found from any file it wrote (no Lightning needed)."""

from __future__ import annotations

from pathlib import Path


def run_config_file(path: str | Path) -> Path | None:
    """The ``config.yaml`` of the run that wrote ``path`` (a checkpoint or a results file), wherever
    the logger put it: the run folder (sslbench's layout for every logger), its ``files/`` (a W&B run
    folder), or, for checkpoints of runs logged by W&B before that, the W&B folder of the same run id
    (``<save_dir>/wandb/*run-*-<id>/files/config.yaml``)."""
    parents = list(Path(path).expanduser().resolve().parents)[:4]
    for folder in parents:
        for candidate in (folder / "config.yaml", folder / "files" / "config.yaml"):
            if candidate.is_file():
                return candidate
    for folder in parents:  # <save_dir>/<project>/<id>/checkpoints/x.ckpt
        if folder.parent.parent.is_dir():
            found = sorted(folder.parent.parent.glob(f"wandb/*run-*-{folder.name}/files/config.yaml"))
            if found:
                return found[-1]
    return None


def saved_run_config(path: str | Path) -> dict:
    """The run's saved config (:func:`run_config_file`) as a dict, or {} when there is none."""
    import yaml

    found = run_config_file(path)
    config = (yaml.safe_load(found.read_text()) or {}) if found is not None else {}
    if "wandb_version" in config:  # W&B's own config.yaml: {key: {value: ...}}; the CLI logged ours as "config"
        config = (config.get("config") or {}).get("value") or {}
    return config

"""W&B sweep files, offline: every parameter is a key `sslbench fit` accepts, values reach the
resolved config, and the objective is a metric the evaluator logs on validation."""

import math
import random
from pathlib import Path

import pytest
import yaml

from sslbench.commands import train
from sslbench.eval.callback import HEADLINE

SWEEPS = sorted((Path(__file__).resolve().parents[1] / "experiments" / "sweeps").glob("*.yaml"))


def draw(spec: dict, rng: random.Random):
    """One value of a W&B parameter spec (values, value, uniform / log-uniform ranges)."""
    if "values" in spec:
        return rng.choice(spec["values"])
    if "value" in spec:
        return spec["value"]
    low, high = spec["min"], spec["max"]
    if spec.get("distribution") == "log_uniform_values":
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    if spec.get("distribution", "uniform") in ("uniform", "int_uniform"):
        value = rng.uniform(low, high)
        return round(value) if spec.get("distribution") == "int_uniform" else value
    raise AssertionError(f"distribution {spec.get('distribution')} not handled by this test")


def agent_command(sweep: dict, values: dict) -> list[str]:
    """The argument list the W&B agent runs: ${args} becomes --key=value per parameter."""
    words = []
    for word in sweep["command"]:
        if word == "${args}":
            words += [f"--{k}={v}" for k, v in values.items()]
        elif word not in ("${env}", "${program}", "${interpreter}"):
            words.append(word)
    return words


def get(config: dict, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_sweep_drives_sslbench_fit(path, capsys, monkeypatch):
    monkeypatch.chdir(path.parents[2])  # the command's config paths are relative to the repository
    sweep = yaml.safe_load(path.read_text())
    assert sweep["program"] == "sslbench" and "${args}" in sweep["command"] and sweep["command"][2] == "fit"
    stage, _, metric = sweep["metric"]["name"].partition("/")
    assert stage == "val" and metric in {m for names in HEADLINE.values() for m in names}  # never tuned on test
    rng = random.Random(0)
    for _ in range(3):
        values = {k: draw(spec, rng) for k, spec in sweep["parameters"].items()}
        with pytest.raises(SystemExit) as done:
            train.build_cli([*agent_command(sweep, values), "--print_config"], run=True)
        assert done.value.code in (0, None)
        resolved = yaml.safe_load(capsys.readouterr().out)
        for key, value in values.items():
            assert get(resolved, key) == pytest.approx(value), key

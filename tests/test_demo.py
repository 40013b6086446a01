"""The demo's pipeline end to end, shortened: untrained, trained and swapped-audio scores."""

import re

import pytest

from sslbench.demo import run, summary_line

LINE = re.compile(
    r"^demo: ciou@0\.5=[01]\.\d{3} auc=[01]\.\d{3} untrained_ciou@0\.5=[01]\.\d{3} "
    r"swapped_audio_ciou@0\.5=[01]\.\d{3} seconds=\d+$"
)


@pytest.mark.slow
def test_demo_learns_and_listens(tmp_path, monkeypatch):
    """The issue's acceptance bar: cIoU@0.5 >= 0.5, untrained and swapped audio at most half of it."""
    monkeypatch.chdir(tmp_path)
    result = run(["--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(tmp_path), "--trainer.enable_progress_bar", "false"])
    assert LINE.match(summary_line(result)), summary_line(result)
    assert result["ciou@0.5"] >= 0.5
    assert result["untrained_ciou@0.5"] <= result["ciou@0.5"] / 2
    assert result["swapped_audio_ciou@0.5"] <= result["ciou@0.5"] / 2
    phases = sorted(p.parent.name for p in tmp_path.rglob("test_synthetic*.csv"))
    assert phases == ["swapped", "trained", "untrained"]  # each phase keeps its own per-sample file


def test_summary_line_format():
    line = summary_line({"ciou@0.5": 0.7126, "auc": 0.5732, "untrained_ciou@0.5": 0.19, "swapped_audio_ciou@0.5": 0.2236, "seconds": 250.4})
    assert line == "demo: ciou@0.5=0.713 auc=0.573 untrained_ciou@0.5=0.190 swapped_audio_ciou@0.5=0.224 seconds=250"
    assert LINE.match(line)

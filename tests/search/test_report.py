"""Reports: a comparison's report.md and plots, and `hpo report` of a single run dir."""

from __future__ import annotations

from pathlib import Path

from hpo.core.storage import StorageDir
from hpo.search.report import write_run_report


def test_report_has_table_curves_and_importance(comparison: Path) -> None:
    report = (comparison / "report.md").read_text()
    assert "| asha | tpe |" in report and "| fifo | random |" in report
    assert "seed-to-seed standard deviation" in report
    assert "| learning_rate |" in report  # fANOVA importance table
    for picture in (
        "curves_fifo.png",
        "curves_asha.png",
        "importance.png",
        "parallel_coordinates.png",
    ):
        assert (comparison / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({picture})" in report


def test_hpo_report_of_a_single_run(comparison: Path) -> None:
    report = write_run_report(StorageDir.at(comparison / "arms" / "tpe-asha-seed0"))
    text = report.read_text()
    assert "Best loss" in text and "![curve.png](curve.png)" in text
    assert (report.parent / "curve.png").is_file() and (report.parent / "importance.png").is_file()

"""Compute and the best-so-far curve: a torn last row is skipped, a resumed curve is cut back
to the point Tune's snapshot had reached."""

from __future__ import annotations

from pathlib import Path

from hpo.search.compute import CurvePoint, CurveTracker, append_point, keep_points, read_curve


def test_a_row_torn_by_a_crash_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "curve.csv"
    append_point(path, CurvePoint(128, 1.0, "a", 0.6, 0.6))
    append_point(path, CurvePoint(256, 2.0, "a", 0.7, 0.7))
    with open(path, "a") as handle:
        handle.write("384,3.0,b,0.")  # the crash
    assert [p.samples for p in read_curve(path)] == [128, 256]


def test_a_resumed_curve_goes_on_from_the_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "curve.csv"
    tracker = CurveTracker("accuracy", "max")
    for samples in (128, 256):
        append_point(path, tracker.add("a", {"accuracy": 0.5, "samples": samples}))
    snapshot = tracker.get_state()
    append_point(path, tracker.add("a", {"accuracy": 0.6, "samples": 384}))  # after it
    resumed = CurveTracker("accuracy", "max")
    resumed.set_state(snapshot)
    keep_points(path, snapshot["points"])
    append_point(path, resumed.add("a", {"accuracy": 0.6, "samples": 384}))
    assert [(p.samples, p.best) for p in read_curve(path)] == [(128, 0.5), (256, 0.5), (384, 0.6)]

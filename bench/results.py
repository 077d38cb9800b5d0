"""What every benchmark writes: `bench/results/<name>.json` with its figures, the goal as
text, whether it was met, the ratio where the goal is one, the command, and the machine and
versions it ran on; `bench/README.md`'s table is rebuilt from these files
(`python bench/results.py`). `make bench-quick` sets BENCH_QUICK=1: its smaller runs go to
`bench/results/quick/` and leave the table to the full runs."""

from __future__ import annotations

import datetime
import json
import os
import statistics
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

QUICK = bool(os.environ.get("BENCH_QUICK"))
RESULTS = Path(__file__).resolve().parent / "results" / ("quick" if QUICK else "")
README = Path(__file__).resolve().parent / "README.md"
TABLE_START, TABLE_END = "<!-- results -->", "<!-- /results -->"


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements (≥ 3 on this noisy machine)."""
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "runs": len(values),
    }


def write_result(
    name: str,
    *,
    goal: str,
    met: bool,
    figures: dict[str, Any],
    ratio: float | None = None,
    summary: str,
) -> Path:
    """Writes bench/results/<name>.json and refreshes the README table. `summary`: the
    measured value in a few words, for the table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "name": name,
        "goal": goal,
        "met": met,
        "ratio": ratio,
        "summary": summary,
        "figures": figures,
        "command": " ".join(["python", f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
        "machine": {
            "cores": os.cpu_count(),
            "torch": _version("torch"),
            "ray": _version("ray"),
            "transformers": _version("transformers"),
        },
        "date": datetime.date.today().isoformat(),
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    if not QUICK:
        update_readme()
    return path


def update_readme() -> None:
    """Rewrites the table between the README's markers from every result file."""
    rows = [
        "| benchmark | goal | measured | met | run |",
        "| --- | --- | --- | --- | --- |",
    ]
    for path in sorted(RESULTS.glob("*.json")):
        result = json.loads(path.read_text())
        rows.append(
            f"| {result['name']} | {result['goal']} | {result['summary']} | "
            f"{'yes' if result['met'] else '**no**'} | "
            + (f"`{result['command']}`, " if result.get("command") else "")
            + f"{result['date']} |"
        )
    text = README.read_text()
    before, rest = text.split(TABLE_START, 1)
    after = rest.split(TABLE_END, 1)[1]
    README.write_text(f"{before}{TABLE_START}\n" + "\n".join(rows) + f"\n{TABLE_END}{after}")


if __name__ == "__main__":
    update_readme()

"""The package's layers, checked with import-linter's contracts (pyproject.toml): they hold, and
they break when a lower layer imports a higher one, even from inside a function. import-linter
reads packages from disk, where hpo.search lives in search/, so it checks a copy of the package
laid out as it imports (the same copy a Ray Job ships). And reports read a run dir without Ray.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hpo.cluster.jobs import copy_package
from tests.conftest import REPO
from tests.helpers import python_output

LAYERS = "Each layer imports only the layers below it"
NO_RAY = "Bookkeeping, analysis and reports read run dirs without Ray"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def add_function(module: Path, body: str) -> None:
    module.write_text(module.read_text() + f"\n\ndef _added():\n    {body}\n")


@pytest.fixture
def package(tmp_path: Path) -> Path:
    copy_package(tmp_path)
    return tmp_path


def test_the_contracts_hold(package: Path) -> None:
    done = lint_imports(package)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{LAYERS} KEPT" in done.stdout and f"{NO_RAY} KEPT" in done.stdout


def test_a_lower_layer_importing_a_higher_one_inside_a_function_breaks_them(
    package: Path,
) -> None:
    add_function(package / "hpo" / "trainables" / "loop.py", "from hpo.search import runner")
    add_function(package / "hpo" / "serve" / "gate.py", "from hpo.search import results")
    done = lint_imports(package)
    assert done.returncode == 1
    assert f"{LAYERS} BROKEN" in done.stdout
    assert "hpo.trainables.loop -> hpo.search.runner" in done.stdout
    assert "hpo.serve.gate -> hpo.search.results" in done.stdout


def test_a_report_importing_ray_breaks_them(package: Path) -> None:
    add_function(package / "hpo" / "search" / "report.py", "import ray.tune")
    done = lint_imports(package)
    assert done.returncode == 1
    assert f"{NO_RAY} BROKEN" in done.stdout and "hpo.search.report -> ray" in done.stdout


def test_reading_a_finished_run_imports_no_ray(finished_run: Path) -> None:
    output = python_output(
        "import sys",
        "from rich.console import Console",
        "from hpo.core.storage import StorageDir",
        "from hpo.search.report import write_run_report",
        "from hpo.search.status import show_status",
        f"run = StorageDir.at({str(finished_run)!r})",
        "print(write_run_report(run))",
        "show_status(run, console=Console(), watch=False, interval=1)",
        "print('RAY', 'ray' in sys.modules)",
    )
    assert "RAY False" in output
    assert "2/2 trials (2 completed)" in output

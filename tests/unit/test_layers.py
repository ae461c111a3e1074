"""The provider's modules form layers without cycles (``.importlinter``): a module imports only from
the layers below it, and no two sibling modules or packages import each other, at any depth."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REPO, VENV_BIN

pytestmark = pytest.mark.slow  # each runs import-linter in a process of its own


def test_the_import_contracts_hold() -> None:
    run = subprocess.run([str(VENV_BIN / "lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)

    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in run.stdout  # both contracts were read and checked


def test_a_back_edge_breaks_the_layers(tmp_path) -> None:
    """The contract can fail: the same check on a copy of the package where the bottom layer imports the top one."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(REPO / "airflow_mlops", copy / "airflow_mlops", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".importlinter", copy / ".importlinter")
    values = copy / "airflow_mlops" / "values.py"
    values.write_text(values.read_text() + "\nfrom airflow_mlops import task_groups  # a back-edge\n")

    run = subprocess.run(
        [str(VENV_BIN / "lint-imports"), "--no-cache"], cwd=copy, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(copy), "PATH": str(VENV_BIN)},
    )  # fmt: skip

    assert run.returncode == 1, run.stdout[-2000:]
    assert "airflow_mlops.values is not allowed to import airflow_mlops.task_groups" in run.stdout

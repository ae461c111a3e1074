"""Parse time is sacred: importing the provider or a DAG file must not load the heavy ML libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

HEAVY = ("sklearn", "mlflow", "great_expectations", "evidently", "pandas", "pyarrow", "numpy", "scipy", "openlineage", "duckdb")

PROBE = r"""
import importlib, json, pathlib, runpy, sys
HEAVY = ("sklearn", "mlflow", "great_expectations", "evidently", "pandas", "pyarrow", "numpy", "scipy", "openlineage", "duckdb")
loaded = []
importlib.import_module("airflow_mlops")
for f in sorted(pathlib.Path("airflow_mlops").rglob("*.py")):
    parts = f.with_suffix("").parts
    if "example_data" in parts or parts[-1] == "__main__":
        continue
    mod = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    importlib.import_module(mod)
    loaded.append(mod)
for f in sorted(pathlib.Path("dags").glob("*.py")) + sorted(pathlib.Path("examples").glob("team_*_dag.py")):
    runpy.run_path(str(f))
    loaded.append(str(f))
print(json.dumps({"loaded": loaded, "heavy": sorted(m for m in HEAVY if m in sys.modules)}))
"""


@pytest.mark.slow  # spawns a process
def test_provider_modules_and_dags_import_no_heavy_library() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=300)

    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "airflow_mlops.hooks.mlflow" in result["loaded"]
    assert "airflow_mlops.tables" in result["loaded"] and "airflow_mlops.spec_inference" in result["loaded"]
    assert "airflow_mlops.lineage" in result["loaded"]
    assert "examples/team_penguins_dag.py" in result["loaded"]
    assert result["heavy"] == []


def test_ruff_bans_heavy_module_level_imports() -> None:
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    banned = config["tool"]["ruff"]["lint"]["flake8-tidy-imports"]["banned-module-level-imports"]

    assert set(HEAVY) <= set(banned)
    assert "TID" in config["tool"]["ruff"]["lint"]["select"]

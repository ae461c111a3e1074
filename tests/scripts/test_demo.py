"""``make demo`` runs the repository's DAGs in its own home whatever the calling shell exported, and
ends by saying where every report is and how to open MLflow and the Airflow UI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.scripts.conftest import SCRIPTS, load

REPO = SCRIPTS.parent

#: What docs/bring-your-own-data.md used to export in the shell before `make demo` was run in it.
WALK_THROUGH = {
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "examples"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__MLOPS__DATA_ROOT": "file:///somewhere/else",
    "MLFLOW_TRACKING_URI": "sqlite:////somewhere/else/mlflow.db",
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
}


def test_the_demo_sets_what_it_relies_on_and_names_what_it_ignored(tmp_path: Path) -> None:
    demo = load("demo")
    shell = {"AIRFLOW_HOME": str(tmp_path / "demo-home"), "PATH": "/usr/bin", **WALK_THROUGH}

    home, ignored = demo.configure(shell)

    assert home == tmp_path / "demo-home" and home.is_dir()
    assert shell["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO / "dags")
    assert shell["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert shell["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{home}/airflow.db"
    assert "AIRFLOW__MLOPS__DATA_ROOT" not in shell and "MLFLOW_TRACKING_URI" not in shell
    assert ignored == ["AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__EXECUTOR", "AIRFLOW__MLOPS__DATA_ROOT", "MLFLOW_TRACKING_URI"]
    assert shell["PATH"] == "/usr/bin"  # the rest of the environment is the caller's


def test_after_the_walk_through_exports_the_demo_still_finds_the_reference_dags(tmp_path: Path) -> None:
    """The failure this guards against: `'NoneType' object has no attribute 'test'`, the demo asking a
    DagBag of examples/ for mlops_retraining."""
    probe = (
        "import runpy, sys; demo = runpy.run_path(sys.argv[1]); demo['configure']();"
        "from airflow.dag_processing.dagbag import DagBag; bag = DagBag();"
        "print(sorted(d for d in bag.dag_ids if d.startswith('mlops_')))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "MLFLOW_"))}
    env |= {"AIRFLOW_HOME": str(tmp_path / "demo-home"), **WALK_THROUGH}

    done = subprocess.run([sys.executable, "-c", probe, str(SCRIPTS / "demo.py")], env=env, capture_output=True, text=True, timeout=300, check=False)

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "['mlops_batch_prediction', 'mlops_model_monitoring', 'mlops_retraining']"


def test_the_closing_lines_name_every_report_and_how_to_open_mlflow_and_the_ui(tmp_path: Path) -> None:
    demo = load("demo")
    where = {
        "champion": "2", "months": ["2025-01"], "tracking_uri": f"sqlite:///{tmp_path}/mlflow.db",
        "reports": {
            "validation": [f"file://{tmp_path}/reports/validation/mlops_batch_prediction/r1/validate/data_docs.html"],
            "drift": [f"file://{tmp_path}/reports/drift/churn/period=2025-01/report.html"],
            "quality": [f"file://{tmp_path}/reports/quality/churn/period=2025-01/report.html"],
            "predictions": [f"file://{tmp_path}/churn/predictions/month=2025-01"],
        },
    }  # fmt: skip

    text = demo.where_to_look(tmp_path, where)

    for uris in where["reports"].values():
        assert uris[0] in text
    assert f"mlflow ui --backend-store-uri sqlite:///{tmp_path}/mlflow.db --host 127.0.0.1" in text
    assert "make airflow" in text and "Browse > MLOps" in text

"""The README's own-DAG example, run exactly as shipped, on a different (regression) dataset."""

from __future__ import annotations

import pytest

from airflow_mlops.hooks.mlflow import MlflowHook
from tests.conftest import REPO
from tests.e2e.conftest import task_states, xcom

pytestmark = pytest.mark.e2e


def test_readme_example_dag_trains_and_promotes_a_regressor(airflow_db) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "examples"))
    assert bag.import_errors == {}

    run = bag.get_dag("team_diabetes").test()

    states = task_states(run)
    assert str(run.state) == "success", states
    assert xcom(run, "validate")["rows"] == 442
    trained = xcom(run, "train")
    assert set(trained["metrics"]) >= {"rmse", "mae", "r2"}
    decision = xcom(run, "promote")
    assert decision["decision"] == "promoted" and decision["metric"] == "rmse"
    client = MlflowHook().client
    assert str(client.get_model_version_by_alias("diabetes", "champion").version) == trained["version"]
    # The README shows this very file (after its docstring).
    body = (REPO / "examples" / "team_diabetes_dag.py").read_text().split('"""', 2)[2].strip()
    assert body in (REPO / "README.md").read_text()


def test_readme_penguins_dags_run_on_real_marker_free_data(airflow_db, capfd) -> None:
    """Bring your own data: the README's team DAGs, as shipped, on a real table written by pandas."""
    import datetime as dt
    import os
    import runpy
    import time
    from pathlib import Path

    import pandas as pd
    from airflow.dag_processing.dagbag import DagBag

    from airflow_mlops import settings
    from tests.e2e.conftest import error_lines

    root = Path(settings.data_root().removeprefix("file://")) / "penguins"
    runpy.run_path(str(REPO / "examples" / "penguins_data.py"))["write_layout"](str(root))
    landed = time.time() - 120  # the months landed two minutes ago: the sensor's 60 s quiet time has passed
    for part in root.rglob("*.parquet"):
        os.utime(part, (landed, landed))
    bag = DagBag(dag_folder=str(REPO / "examples"))
    assert bag.import_errors == {}
    capfd.readouterr()

    trained = bag.get_dag("team_penguins_training").test()
    gentoo = bag.get_dag("team_penguins_monthly").test(logical_date=dt.datetime(2009, 4, 1, tzinfo=dt.UTC))  # scores March
    # dag.test() keeps a run's conf in the DAG object's params: the run with a conf goes last.
    stable = bag.get_dag("team_penguins_monthly").test(logical_date=dt.datetime(2009, 5, 1, tzinfo=dt.UTC), run_conf={"month": "2009-01"})

    logged = capfd.readouterr()
    assert error_lines(logged.out + logged.err) == []
    for run in (trained, stable, gentoo):
        assert str(run.state) == "success", task_states(run)
    assert xcom(trained, "promote")["decision"] == "promoted" and xcom(trained, "train")["metrics"]["f1"] > 0.9
    assert xcom(stable, "drift")["drift_detected"] is False
    assert xcom(gentoo, "drift")["period"] == "2009-03" and xcom(gentoo, "drift")["drift_detected"] is True
    scored = pd.read_parquet(root / "predictions" / "month=2009-03" / "part-0.parquet")
    assert len(scored) == 44 and (scored["prediction"] == "Gentoo").mean() > 0.9
    body = (REPO / "examples" / "team_penguins_dag.py").read_text().split('"""', 2)[2].strip()
    assert body in (REPO / "README.md").read_text()

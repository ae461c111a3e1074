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

"""Fixtures of the reliability suite: small data and models made once per session.

Everything here is small on purpose (a few thousand rows, models of a few boosting rounds): the whole
folder must run in a few minutes on two cores. Servers are the session's own (``mlflow_server``,
``s3_server`` from ``tests/conftest.py``); tests that stop one restart it before they end.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.example_data import SPEC_PATH, churn
from tests.helpers import crown, task_context

HERE = Path(__file__).parent
SPEC = str(SPEC_PATH)
#: Small models: enough to be real, fast to train and load.
FAST = {"max_iter": 8}
SERVER_CONN = "mlflow_rel"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Churn demo data: a training partition (2000 rows) and one month (1200 rows in two files)."""
    root = tmp_path_factory.mktemp("reliability-data")
    data = churn.generate_dataset(str(root), rows=1200, months=["2025-01"], training_rows=2000, rows_per_file=600)
    from airflow_mlops import tables

    data["dir"] = root
    data["files"] = tables.list_data_files(data["months"]["2025-01"])
    return data


def train(data: dict[str, Any], model: str, run_id: str, **kwargs: Any) -> dict[str, Any]:
    """Run the training operator as task ``train`` of run ``run_id`` (same run id = same task instance)."""
    from airflow_mlops.operators.training import MlflowTrainModelOperator

    kwargs.setdefault("estimator_params", FAST)
    kwargs.setdefault("train_uri", data["training"])
    kwargs.setdefault("spec_uri", SPEC)
    return MlflowTrainModelOperator(task_id="train", model_name=model, **kwargs).execute(task_context("train", run_id))


@pytest.fixture(scope="session")
def embedded_model(small_data: dict[str, Any]) -> dict[str, Any]:
    """A model with a champion on the embedded MLflow store (the default with no connection)."""
    name = f"rel_{uuid.uuid4().hex[:6]}"
    champion = train(small_data, name, "champion")
    crown(name, SPEC)
    return {"name": name, "champion": champion["version"]}


@pytest.fixture(scope="session")
def server_conn(mlflow_server: Any) -> Iterator[str]:
    """An ``mlflow`` connection to the session's tracking server, with MLflow's HTTP retries bounded
    through the connection extras (so a stopped server fails a request in seconds, not minutes)."""
    conn = {
        "conn_type": "mlflow",
        "host": mlflow_server.url,
        "extra": {"mlflow_http_request_max_retries": 1, "mlflow_http_request_backoff_factor": 1, "mlflow_http_request_timeout": 10},
    }
    key = f"AIRFLOW_CONN_{SERVER_CONN.upper()}"
    os.environ[key] = json.dumps(conn)
    yield SERVER_CONN
    os.environ.pop(key, None)


def versions(model: str, conn_id: str | None = None) -> list[str]:
    """Version numbers of a registered model, sorted."""
    from airflow_mlops.hooks.mlflow import MlflowHook

    hook = MlflowHook(mlflow_conn_id=conn_id) if conn_id else MlflowHook()
    return sorted((str(v.version) for v in hook.client.search_model_versions(f"name='{model}'")), key=int)


def aliases(model: str, conn_id: str | None = None) -> dict[str, str]:
    """The aliases of a registered model: ``{alias: version}``."""
    from airflow_mlops.hooks.mlflow import MlflowHook

    hook = MlflowHook(mlflow_conn_id=conn_id) if conn_id else MlflowHook()
    return {k: str(v) for k, v in hook.client.get_registered_model(model).aliases.items()}


@functools.cache
def reference_dag(dag_id: str) -> Any:
    """A reference DAG parsed from ``dags/`` (once per session)."""
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import REPO

    return DagBag(dag_folder=str(REPO / "dags" / f"{dag_id}.py")).get_dag(dag_id)

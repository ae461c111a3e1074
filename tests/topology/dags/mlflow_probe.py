"""A one-task DAG for the topology test: the MLflow sensor, deferred, waits in the real triggerer
for an alias that the test sets later, signed in as the deployment's MLflow user."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param

from airflow_mlops.sensors.mlflow import MlflowModelVersionSensor

with DAG(
    "mlops_mlflow_probe",
    schedule=None,
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    params={"model_name": Param("churn", type="string"), "alias": Param("probe", type="string")},
):
    MlflowModelVersionSensor(
        task_id="wait_for_alias",
        model_name="{{ params.model_name }}",
        model_ref="{{ params.alias }}",
        deferrable=True,
        poke_interval=2,
        timeout=600,
    )

"""Sensors in poke and deferrable mode; triggers serialize, rebuild from their classpath, and fire."""

from __future__ import annotations

import asyncio
import uuid

import pandas as pd
import pytest
from airflow.sdk._shared.module_loading import import_string
from airflow.sdk.exceptions import TaskDeferred

from airflow_mlops import tables
from airflow_mlops.example_data import SPEC_PATH, churn
from airflow_mlops.operators.training import MlflowTrainModelOperator
from airflow_mlops.sensors.mlflow import MlflowModelVersionSensor
from airflow_mlops.sensors.partition import DataPartitionSensor
from airflow_mlops.triggers.mlflow import MlflowModelVersionTrigger
from airflow_mlops.triggers.partition import DataPartitionTrigger
from tests.helpers import task_context


def round_trip(trigger):
    classpath, kwargs = trigger.serialize()
    rebuilt = import_string(classpath)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    return rebuilt


def first_event(trigger, timeout: float = 60):
    async def run():
        return await asyncio.wait_for(trigger.run().__anext__(), timeout)

    return asyncio.run(run()).payload


def test_partition_sensor_pokes_then_defers_then_fires(tmp_path) -> None:
    part = str(tmp_path / "month=2025-01")
    sensor = DataPartitionSensor(task_id="wait", uri=part, poke_interval=0.2, timeout=30, deferrable=True)

    assert sensor.poke(task_context()).is_done is False
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(task_context())
    trigger = round_trip(deferred.value.trigger)
    assert isinstance(trigger, DataPartitionTrigger) and deferred.value.method_name == "execute_complete"
    remote = round_trip(DataPartitionTrigger(uri="s3://lake/month=2025-01", data_conn_id="aws_lake"))
    assert remote.data_conn_id == "aws_lake" and remote.serialize()[1]["data_conn_id"] == "aws_lake"  # the sensor's name

    tables.write_table(pd.DataFrame({"a": [1]}), f"{part}/part-00000.parquet")
    tables.finish_partition(part, keep=["part-00000.parquet"])
    event = first_event(trigger)

    assert event == {"status": "success", "uri": part, "files": [f"{part}/part-00000.parquet"]}
    assert sensor.execute_complete(task_context(), event)["files"] == event["files"]
    assert sensor.poke(task_context()).xcom_value == {"uri": part, "files": event["files"]}
    with pytest.raises(RuntimeError, match="waiting ended without success"):
        sensor.execute_complete(task_context(), {"status": "error"})


@pytest.fixture(scope="module")
def registered(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("sensor")
    data = churn.generate_dataset(str(root), rows=10, months=[], training_rows=1500, rows_per_file=1500)
    name = f"sensed_{uuid.uuid4().hex[:6]}"
    MlflowTrainModelOperator(
        task_id="t", train_uri=data["training"], spec_uri=str(SPEC_PATH), model_name=name, estimator_params={"max_iter": 5}
    ).execute(task_context("t"))
    return name


def test_registry_sensor_waits_for_alias_and_new_versions(registered) -> None:
    waiting = MlflowModelVersionSensor(task_id="w", model_name=registered, model_ref="champion", poke_interval=0.2, timeout=30, deferrable=True)
    assert waiting.poke(task_context()).is_done is False
    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute(task_context())
    trigger = round_trip(deferred.value.trigger)
    assert isinstance(trigger, MlflowModelVersionTrigger) and trigger.serialize()[1]["model_ref"] == "champion"

    ready = MlflowModelVersionSensor(task_id="w", model_name=registered, model_ref="challenger", deferrable=True)
    assert ready.execute(task_context()) == {"model_name": registered, "version": "1", "run_id": ready.poke(task_context()).xcom_value["run_id"]}

    newer = MlflowModelVersionSensor(task_id="w", model_name=registered, after_version="1")
    assert newer.poke(task_context()).is_done is False
    assert MlflowModelVersionSensor(task_id="w", model_name=registered, after_version=0).poke(task_context()).is_done is True

    # model_ref is an alias or a version, as everywhere else; an unset rendered value waits for any version.
    assert MlflowModelVersionSensor(task_id="w", model_name=registered, model_ref="1").poke(task_context()).xcom_value["version"] == "1"
    assert MlflowModelVersionSensor(task_id="w", model_name=registered, model_ref="2").poke(task_context()).is_done is False
    assert MlflowModelVersionSensor(task_id="w", model_name=registered, model_ref="None").poke(task_context()).is_done is True


def test_registry_trigger_fires_once_the_alias_appears(registered) -> None:
    from airflow_mlops.hooks.mlflow import MlflowHook

    MlflowHook().client.set_registered_model_alias(registered, "staging", "1")
    trigger = round_trip(MlflowModelVersionTrigger(model_name=registered, model_ref="staging", poll_interval=0.1))

    event = first_event(trigger)

    assert event["status"] == "success" and event["version"] == "1"


def test_registry_trigger_reports_errors_as_events() -> None:
    trigger = MlflowModelVersionTrigger(model_name="x", model_ref="champion", mlflow_conn_id="mlflow_broken", poll_interval=0.1)
    import os

    os.environ["AIRFLOW_CONN_MLFLOW_BROKEN"] = '{"conn_type": "mlflow", "host": "http://127.0.0.1:9"}'
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        event = first_event(trigger)
    finally:
        del os.environ["AIRFLOW_CONN_MLFLOW_BROKEN"], os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]

    assert event["status"] == "error" and "127.0.0.1:9" in event["message"]


def test_a_malformed_alias_fails_at_once_while_a_missing_one_is_waited_for(registered) -> None:
    from mlflow.exceptions import MlflowException

    missing = MlflowModelVersionSensor(task_id="w", model_name=registered, model_ref="not-yet")
    malformed = MlflowModelVersionSensor(task_id="w", model_name=registered, model_ref="bad alias!")

    assert missing.poke(task_context()).is_done is False  # "alias not found": it may appear
    with pytest.raises(MlflowException, match="Invalid alias name"):
        malformed.poke(task_context())

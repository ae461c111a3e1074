"""One readiness policy for every reader of a folder: the ``_SUCCESS`` marker by default, an explicit
opt-out (operator argument or ``[mlops] require_marker``) for producers that write none, and a
marker-free sensor mode that waits for the files to stop changing."""

from __future__ import annotations

import os
import time

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_mlops.exceptions import PartitionNotReadyError
from airflow_mlops.operators.drift import EvidentlyDriftCheckOperator
from airflow_mlops.operators.training import MlflowTrainModelOperator
from airflow_mlops.operators.validation import GxValidateTableOperator
from airflow_mlops.sensors.partition import DataPartitionSensor
from airflow_mlops.triggers.partition import DataPartitionTrigger
from tests.byod.conftest import PENGUINS_SPEC
from tests.helpers import task_context

SPEC = str(PENGUINS_SPEC)
OPT_OUT = r"partition has no _SUCCESS marker .* pass require_marker=False to the operator or sensor that reads it .*, or set \[mlops\] require_marker = False"


def readers(penguins, **kwargs) -> dict:
    month, training = str(penguins / "monthly/month=2009-01"), str(penguins / "training")
    return {
        "validation": GxValidateTableOperator(task_id="v", table_uri=month, spec_uri=SPEC, labelled=False, **kwargs),
        "drift": EvidentlyDriftCheckOperator(
            task_id="d", current_uri=month, reference_uri=training, spec_uri=SPEC, model_name="m", period="2009-01", **kwargs
        ),
        "training": MlflowTrainModelOperator(
            task_id="t", train_uri=training, spec_uri=SPEC, model_name="penguins_ready", estimator_params={"max_iter": 20}, **kwargs
        ),
    }


def test_every_reader_refuses_a_marker_free_folder_by_default_and_says_how_to_opt_out(penguins) -> None:
    for name, op in readers(penguins).items():
        with pytest.raises(PartitionNotReadyError, match=OPT_OUT):
            op.execute(task_context(name))


def test_every_reader_reads_it_after_opting_out_by_argument_or_by_config(penguins, monkeypatch) -> None:
    by_argument = {name: op.execute(task_context(name)) for name, op in readers(penguins, require_marker=False).items()}
    assert by_argument["validation"]["rows"] == 60 and by_argument["drift"]["rows"]["current"] == 60
    assert by_argument["training"]["train_rows"] + by_argument["training"]["holdout_rows"] == 224

    monkeypatch.setenv("AIRFLOW__MLOPS__REQUIRE_MARKER", "False")
    assert readers(penguins)["validation"].execute(task_context("v"))["success"] is True


def test_sensor_without_marker_waits_until_the_files_stop_changing(penguins) -> None:
    month = penguins / "monthly/month=2009-02"
    data = month / "part-0.parquet"
    sensor = DataPartitionSensor(task_id="wait", uri=str(month), require_marker=False, stable_seconds=30)

    os.utime(data)  # just written
    assert sensor.poke(task_context("wait")).is_done is False
    past = time.time() - 60
    os.utime(data, (past, past))  # untouched for a minute
    result = sensor.poke(task_context("wait"))
    assert result.is_done is True and result.xcom_value["files"] == [f"{month}/part-0.parquet"]
    assert DataPartitionSensor(task_id="wait", uri=str(month)).poke(task_context("wait")).is_done is False  # marker required


def test_deferred_sensor_hands_the_marker_free_policy_to_the_trigger(penguins) -> None:
    import asyncio

    month = penguins / "monthly/month=2009-01"
    os.utime(month / "part-0.parquet")
    sensor = DataPartitionSensor(task_id="wait", uri=str(month), require_marker=False, stable_seconds=1, poke_interval=0.2, deferrable=True)

    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(task_context("wait"))

    trigger = deferred.value.trigger
    assert isinstance(trigger, DataPartitionTrigger) and trigger.serialize()[1]["require_marker"] is False
    started = time.monotonic()
    event = asyncio.run(asyncio.wait_for(trigger.run().__anext__(), 10))
    assert event.payload["files"] == [f"{month}/part-0.parquet"] and time.monotonic() - started >= 0.5

"""How-to: wait for a month's data with ``DataPartitionSensor`` and for a serving model with
``MlflowModelVersionSensor`` before work that needs both.

The penguins months carry no ``_SUCCESS`` marker, so the partition counts as ready once its files have
not changed for ``stable_seconds``. ``mode="reschedule"`` frees the worker slot between pokes; with a
triggerer, ``deferrable=True`` waits there instead.
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_mlops import periods
from airflow_mlops.sensors.mlflow import MlflowModelVersionSensor
from airflow_mlops.sensors.partition import DataPartitionSensor

with DAG(
    dag_id="howto_sensors",
    schedule=None,
    params={"month": periods.month_param()},
    user_defined_macros=periods.macros(),
    tags=["howto"],
):
    data = DataPartitionSensor(
        task_id="wait_for_month",
        uri="{{ data_root() }}/penguins/monthly/month=" + periods.MONTH,
        require_marker=False,
        stable_seconds=60,
        mode="reschedule",
        poke_interval=5 * 60,
        timeout=24 * 3600,  # then the task fails: the month never arrived
    )
    model = MlflowModelVersionSensor(
        task_id="wait_for_champion",
        model_name="howto_penguins",
        model_ref="champion",
        mode="reschedule",
        poke_interval=5 * 60,
        timeout=24 * 3600,
    )
    data >> model

"""A team's whole monthly loop on its own data, composed from the provider's public blocks: the Palmer
penguins table (string labels, NaNs, categoricals) written by a pandas job with no ``_SUCCESS``
markers (examples/penguins_data.py). Training runs on demand and whenever drift or decay is
signalled; scoring checks and scores each month; monitoring judges each month once its labels land.
The docs' "Bring your own data" page shows this file; the tests run it exactly as shipped."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from airflow.sdk import DAG, Param, chain

from airflow_mlops import periods
from airflow_mlops.assets import decay_asset, drift_asset
from airflow_mlops.operators.drift import EvidentlyDriftCheckOperator
from airflow_mlops.operators.quality import ModelQualityCheckOperator
from airflow_mlops.operators.signals import RaiseSignalOperator
from airflow_mlops.operators.validation import GxValidateTableOperator
from airflow_mlops.sensors.partition import DataPartitionSensor
from airflow_mlops.task_groups import batch_scoring_group, retraining_group

MODEL = "penguins"
SPEC = str(Path(__file__).with_name("penguins_spec.yaml"))
DATA = "{{ data_root() }}/penguins"
FEATURES, LABELS, PREDICTIONS = (f"{DATA}/{kind}/month=" for kind in ("monthly", "labels", "predictions"))
# Said once for the three DAGs. pandas writes no _SUCCESS marker: every task that reads a table opts out.
COMMON = {
    "start_date": dt.datetime(2009, 2, 1, tzinfo=dt.UTC), "catchup": False, "user_defined_macros": periods.macros(),
    "default_args": {"require_marker": False}, "tags": ["example"],
}  # fmt: skip

with DAG(
    dag_id="team_penguins_training", schedule=drift_asset(MODEL) | decay_asset(MODEL), max_active_runs=1,
    params={"window_months": Param(2, type="integer", minimum=0, description="Labelled months (0: the snapshot alone, split).")},
    **COMMON,
):  # fmt: skip
    retraining_group(
        model_name=MODEL, spec_uri=SPEC, features_uri=FEATURES + "{month}", labels_uri=LABELS + "{month}",
        snapshot_uri=DATA + "/training", windows_uri=DATA + "/windows", window_months="{{ params.window_months }}",
        include_snapshot=True, estimator_params={"max_iter": 100}, metric="accuracy", min_value=0.9,
    )  # fmt: skip

with DAG(dag_id="team_penguins_scoring", schedule="@monthly", params={"month": periods.month_param()}, **COMMON):
    month = FEATURES + periods.MONTH
    wait = DataPartitionSensor(task_id="wait", uri=month, stable_seconds=60, poke_interval=60, timeout=24 * 3600, mode="reschedule")
    validate = GxValidateTableOperator(task_id="validate", table_uri=month, spec_uri=SPEC, labelled=False, retries=0)
    drift = EvidentlyDriftCheckOperator(
        task_id="drift", current_uri=month, spec_uri=SPEC, model_name=MODEL, period=periods.MONTH, on_drift="continue"
    )
    score = batch_scoring_group(model_name=MODEL, spec_uri=SPEC, input_uri=month, output_uri=PREDICTIONS + periods.MONTH)
    chain(wait, validate, drift, score)
    RaiseSignalOperator(task_id="signal_drift", model_name=MODEL, kind="drift", check=drift.output)

with DAG(dag_id="team_penguins_monitoring", schedule="@monthly", params={"month": periods.month_param()}, **COMMON):
    labels = LABELS + periods.MONTH
    wait = DataPartitionSensor(task_id="wait", uri=labels, stable_seconds=60, poke_interval=3600, timeout=30 * 24 * 3600, mode="reschedule")
    quality = ModelQualityCheckOperator(
        task_id="quality", predictions_uri=PREDICTIONS + periods.MONTH, labels_uri=labels, spec_uri=SPEC, model_name=MODEL,
        period=periods.MONTH, metric="accuracy", on_decay="continue",
    )  # fmt: skip
    wait >> quality >> RaiseSignalOperator(task_id="signal_decay", model_name=MODEL, kind="decay", check=quality.output)

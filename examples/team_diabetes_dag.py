"""A short regression example: scikit-learn's diabetes table as a team's export writes it
(semicolon-separated CSV, no ``_SUCCESS`` marker; examples/diabetes_data.py). Training learns from
the snapshot and promotes only a better model; scoring publishes each month. How the files are read is
said once, in ``default_args``. The tests run this file exactly as shipped."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from airflow.sdk import DAG

from airflow_mlops import periods
from airflow_mlops.task_groups import batch_scoring_group, retraining_group

MODEL = "diabetes"
SPEC = str(Path(__file__).with_name("diabetes_spec.yaml"))
DATA = "{{ data_root() }}/diabetes"
AS_EXPORTED = {"require_marker": False, "csv_options": {"delimiter": ";"}}

with DAG(dag_id="team_diabetes_training", schedule=None, user_defined_macros=periods.macros(), default_args=AS_EXPORTED, tags=["example"]):
    retraining_group(
        model_name=MODEL, spec_uri=SPEC, features_uri=DATA + "/monthly/month={month}", labels_uri=None,
        snapshot_uri=DATA + "/training", windows_uri=DATA + "/windows", window_months=0,
        estimator="sklearn.linear_model.Ridge", estimator_params={"alpha": 1.0}, metric="rmse", min_value=70.0,
    )  # fmt: skip

with DAG(
    dag_id="team_diabetes_scoring", schedule="@monthly", start_date=dt.datetime(2025, 2, 1, tzinfo=dt.UTC), catchup=False,
    user_defined_macros=periods.macros(), default_args=AS_EXPORTED, params={"month": periods.month_param()}, tags=["example"],
):  # fmt: skip
    batch_scoring_group(
        model_name=MODEL, spec_uri=SPEC, input_uri=DATA + "/monthly/month=" + periods.MONTH,
        output_uri=DATA + "/predictions/month=" + periods.MONTH,
    )  # fmt: skip

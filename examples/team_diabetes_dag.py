"""A team's own DAG built from the airflow-mlops operators: validate -> train -> promote, on
scikit-learn's diabetes data (regression). Shown in the README; tests run exactly this file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_mlops import settings
from airflow_mlops.operators.registry import MlflowPromoteModelOperator
from airflow_mlops.operators.training import MlflowTrainModelOperator
from airflow_mlops.operators.validation import GxValidateTableOperator

SPEC = str(Path(__file__).with_name("diabetes_spec.yaml"))
TABLE = "{{ data_root() }}/diabetes/snapshot.parquet"

with DAG(
    dag_id="team_diabetes",
    schedule=None,
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    user_defined_macros={"data_root": settings.data_root},
    tags=["example"],
):

    @task
    def snapshot(data_root: str) -> str:
        """Stand-in for the team's own extract: write the diabetes data set as a parquet snapshot."""
        from sklearn.datasets import load_diabetes

        from airflow_mlops import tables

        frame = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
        frame["sex"] = frame["sex"].map({1.0: "female", 2.0: "male"})
        frame.insert(0, "patient_id", range(len(frame)))
        return tables.write_table(frame, f"{data_root}/diabetes/snapshot.parquet")

    validate = GxValidateTableOperator(task_id="validate", table_uri=TABLE, spec_uri=SPEC)
    train = MlflowTrainModelOperator(
        task_id="train",
        train_uri=TABLE,
        spec_uri=SPEC,
        model_name="diabetes",
        estimator="sklearn.linear_model.Ridge",
        estimator_params={"alpha": 1.0},
    )
    promote = MlflowPromoteModelOperator(
        task_id="promote", model_name="diabetes", spec_uri=SPEC, metric="rmse", min_value=70.0, min_relative_change=0.01
    )
    snapshot("{{ data_root() }}") >> validate >> train >> promote

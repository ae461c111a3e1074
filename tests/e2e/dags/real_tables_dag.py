"""A team's DAG file for the real tables of tests/real_tables.py: three DAGs per table (training,
scoring, monitoring), composed from the public blocks as examples/team_penguins_dag.py is, each table's
spec drafted by ``airflow-mlops infer-spec`` into ``<data root>/real_<table>/spec.yaml`` (by the test)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow_mlops import settings


def team_dags(model: str, spec: str, data: str) -> dict[str, Any]:
    """The team's three DAGs, composed from the public blocks as examples/team_penguins_dag.py is."""
    from airflow.sdk import DAG, chain

    from airflow_mlops import periods
    from airflow_mlops.operators.quality import ModelQualityCheckOperator
    from airflow_mlops.operators.validation import GxValidateTableOperator
    from airflow_mlops.task_groups import batch_scoring_group, retraining_group

    common: dict[str, Any] = {
        "start_date": dt.datetime(2025, 1, 1, tzinfo=dt.UTC), "catchup": False, "user_defined_macros": periods.macros(),
        "default_args": {"require_marker": False},
    }  # fmt: skip
    features, labels, predictions = (f"{data}/{kind}/month=" for kind in ("monthly", "labels", "predictions"))
    with DAG(dag_id=f"{model}_training", schedule=None, **common) as training:
        retraining_group(
            model_name=model, spec_uri=spec, features_uri=features + "{month}", labels_uri=labels + "{month}",
            snapshot_uri=f"{data}/training", windows_uri=f"{data}/windows", window_months=0, include_snapshot=True,
        )  # fmt: skip
    with DAG(dag_id=f"{model}_scoring", schedule="@monthly", params={"month": periods.month_param()}, **common) as scoring:
        month = features + periods.MONTH
        validate = GxValidateTableOperator(task_id="validate", table_uri=month, spec_uri=spec, labelled=False, retries=0)
        chain(validate, batch_scoring_group(model_name=model, spec_uri=spec, input_uri=month, output_uri=predictions + periods.MONTH))
    with DAG(dag_id=f"{model}_monitoring", schedule="@monthly", params={"month": periods.month_param()}, **common) as monitoring:
        ModelQualityCheckOperator(
            task_id="quality", predictions_uri=predictions + periods.MONTH, labels_uri=labels + periods.MONTH, spec_uri=spec,
            model_name=model, period=periods.MONTH,
        )  # fmt: skip
    return {"training": training, "scoring": scoring, "monitoring": monitoring}


for _table in ("ames", "hpc_data"):
    _data = f"{settings.data_root()}/real_{_table}"
    for _kind, _dag in team_dags(f"real_{_table}", f"{_data}/spec.yaml", _data).items():
        globals()[f"real_{_table}_{_kind}"] = _dag

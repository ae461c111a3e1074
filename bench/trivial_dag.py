"""The parse-time baseline: one DAG with one task and nothing else."""

from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG(dag_id="trivial", schedule=None, start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)):
    EmptyOperator(task_id="only")

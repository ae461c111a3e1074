"""The second parse-time baseline: one TaskFlow (@task) DAG with one task, as most DAGs are written.

Airflow's @task machinery imports the standard provider's Python operators (and ``packaging``), which
the one-EmptyOperator baseline does not pay; the reference DAGs use @task, so this separates
Airflow's own cost from this provider's.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task


@task
def only() -> None:
    return None


with DAG(dag_id="trivial_taskflow", schedule=None, start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)):
    only()

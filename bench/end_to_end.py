"""Wall time of mlops_retraining and one month of mlops_batch_prediction (dag.test on the embedded
default, demo-sized data), against the sum of their task bodies: the rest is orchestration."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    os.environ.update({"AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    from airflow_mlops import settings
    from airflow_mlops.example_data import churn

    churn.generate_dataset(f"{settings.data_root()}/churn", rows=100_000, months=["2025-01"], training_rows=100_000, rows_per_file=50_000)
    db.initdb()
    bag = DagBag()
    out = {}
    for dag_id, kwargs in (("mlops_retraining", {}), ("mlops_batch_prediction", {"logical_date": dt.datetime(2025, 2, 1, tzinfo=dt.UTC)})):
        start = time.perf_counter()
        run = bag.get_dag(dag_id).test(**kwargs)
        wall = time.perf_counter() - start
        assert str(run.state) == "success", run.state
        bodies = sum((ti.end_date - ti.start_date).total_seconds() for ti in run.get_task_instances() if ti.start_date and ti.end_date)
        out[dag_id] = {"wall_seconds": round(wall, 1), "task_seconds": round(bodies, 1), "tasks": len(run.get_task_instances())}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

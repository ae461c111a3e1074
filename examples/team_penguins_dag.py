"""A team's own DAGs on its own data: the Palmer penguins table (string labels, NaNs, categoricals)
written by a pandas job with no ``_SUCCESS`` markers (examples/penguins_data.py). The README's
"Bring your own data" walk-through shows this file; the tests run it exactly as shipped."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from airflow.sdk import DAG, Param, task

from airflow_mlops import settings
from airflow_mlops.operators.drift import EvidentlyDriftCheckOperator
from airflow_mlops.operators.inference import MlflowBatchPredictOperator
from airflow_mlops.operators.registry import MlflowPromoteModelOperator
from airflow_mlops.operators.training import MlflowTrainModelOperator
from airflow_mlops.operators.validation import GxValidateTableOperator
from airflow_mlops.periods import month_closed_at, previous_month
from airflow_mlops.sensors.partition import DataPartitionSensor

SPEC = str(Path(__file__).with_name("penguins_spec.yaml"))
DATA = "{{ data_root() }}/penguins"
# A run on the 1st of a month scores the month before (a backfill of 2009-04-01 scores March).
MONTH_OF_RUN = "params.month or previous_month(logical_date or dag_run.run_after)"
MONTH = "{{ " + MONTH_OF_RUN + " }}"
# pandas writes no _SUCCESS marker: every reader opts out (or set [mlops] require_marker = False once).
NO_MARKER = {"require_marker": False}

with DAG(
    dag_id="team_penguins_training",
    schedule=None,
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    user_defined_macros={"data_root": settings.data_root},
    tags=["example"],
):
    validate = GxValidateTableOperator(task_id="validate", table_uri=DATA + "/training", spec_uri=SPEC, retries=0, **NO_MARKER)
    train = MlflowTrainModelOperator(
        task_id="train", train_uri=DATA + "/training", spec_uri=SPEC, model_name="penguins",
        estimator_params={"max_iter": 100}, **NO_MARKER,
    )  # fmt: skip
    promote = MlflowPromoteModelOperator(task_id="promote", model_name="penguins", spec_uri=SPEC, metric="f1", min_value=0.9)
    validate >> train >> promote

with DAG(
    dag_id="team_penguins_monthly",
    schedule="@monthly",
    start_date=dt.datetime(2009, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    user_defined_macros={"data_root": settings.data_root, "previous_month": previous_month, "month_closed_at": month_closed_at},
    params={"month": Param(None, type=["null", "string"], pattern="^[0-9]{4}-(0[1-9]|1[0-2])$", title="Month (YYYY-MM)")},
    tags=["example"],
):
    partition = DATA + "/monthly/month=" + MONTH
    wait = DataPartitionSensor(
        task_id="wait", uri=partition, stable_seconds=60, poke_interval=60, timeout=24 * 3600, mode="reschedule", **NO_MARKER
    )
    validate_month = GxValidateTableOperator(task_id="validate", table_uri=partition, spec_uri=SPEC, labelled=False, retries=0, **NO_MARKER)
    drift = EvidentlyDriftCheckOperator(
        task_id="drift", current_uri=partition, spec_uri=SPEC, model_name="penguins", period=MONTH, drift_share=0.3, **NO_MARKER
    )

    @task
    def outputs(ready: dict, month: str) -> list[dict]:
        """One prediction file per input file of the month."""
        root = ready["uri"].rsplit("/monthly/", 1)[0]
        return [{"input_uri": f, "output_uri": f"{root}/predictions/month={month}/{f.rsplit('/', 1)[-1]}"} for f in ready["files"]]

    predict = MlflowBatchPredictOperator.partial(
        task_id="predict", spec_uri=SPEC, model_name="penguins", scored_at="{{ month_closed_at(" + MONTH_OF_RUN + ") }}"
    ).expand_kwargs(outputs(wait.output, MONTH))
    wait >> validate_month >> drift >> predict

"""Monthly batch prediction: wait for the month's partition -> validate -> drift check -> score every
file in parallel with one pinned version and publish the month -> raise the drift signal.

Scheduled on the 1st of each month for the month before (a run on 2025-02-01 scores January);
catchup/backfill works because every run derives its month from its own logical date. A drift signal
is an event on the drift Asset, which schedules ``mlops_retraining``. The file only composes public
blocks: a team's own scoring DAG is this one with its names.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param, chain

from airflow_mlops import periods, settings
from airflow_mlops.defaults import task_defaults
from airflow_mlops.operators.drift import EvidentlyDriftCheckOperator
from airflow_mlops.operators.signals import RaiseSignalOperator
from airflow_mlops.operators.validation import GxValidateTableOperator
from airflow_mlops.sensors.partition import DataPartitionSensor
from airflow_mlops.task_groups import batch_scoring_group

MODEL_NAME = "churn"
DATA = "{{ data_root() }}/" + MODEL_NAME
SPEC = DATA + "/churn_spec.yaml"
PARTITION = DATA + "/monthly/month=" + periods.MONTH

with DAG(
    dag_id="mlops_batch_prediction",
    description="Score each month's churn partition with the champion; check it for drift",
    schedule="@monthly",
    start_date=dt.datetime(2025, 2, 1, tzinfo=dt.UTC),
    catchup=settings.batch_catchup(),  # local config only: nothing remote at parse time
    max_active_runs=3,
    tags=["mlops", "inference"],
    user_defined_macros=periods.macros(),
    default_args=task_defaults(),
    params={
        "month": periods.month_param("Score this month instead of the one before the logical date."),
        "model_alias": Param(
            "champion", type="string", enum=["champion", "challenger", "previous_champion"], title="Model alias",
            description="Which registered version scores; it is pinned at the start of the run.",
        ),
        "drift_share": Param(
            0.2, type="number", exclusiveMinimum=0, maximum=1, title="Drift threshold",
            description="Share of drifted feature columns that counts as dataset drift.",
        ),
        "consecutive_drift_months": Param(
            1, type="integer", minimum=1, maximum=12, title="Drifted months before retraining",
            description="Hysteresis: retraining is triggered only after this many drifted months in a row.",
        ),
        "shadow_scoring": Param(
            False, type="boolean", title="Shadow scoring", description="Also score with the challenger, side by side."
        ),
    },
) as dag:  # fmt: skip
    wait = DataPartitionSensor(
        task_id="wait_for_partition", uri=PARTITION, poke_interval=settings.partition_poke_interval(), timeout=3 * 24 * 3600, deferrable=True
    )
    validate = GxValidateTableOperator(task_id="validate", table_uri=PARTITION, spec_uri=SPEC, labelled=False, retries=0)
    drift = EvidentlyDriftCheckOperator(
        task_id="drift_check", current_uri=PARTITION, spec_uri=SPEC, model_name=MODEL_NAME, model_ref="{{ params.model_alias }}",
        period=periods.MONTH, drift_share="{{ params.drift_share }}", consecutive="{{ params.consecutive_drift_months }}", on_drift="continue",
    )  # fmt: skip
    score = batch_scoring_group(
        model_name=MODEL_NAME, spec_uri=SPEC, input_uri=PARTITION, output_uri=DATA + "/predictions/month=" + periods.MONTH,
        model_ref="{{ params.model_alias }}", shadow_ref="{{ 'challenger' if params.shadow_scoring else '' }}", prefix_group_id=False,
    )  # fmt: skip
    chain(wait, validate, drift, score)
    RaiseSignalOperator(task_id="signal_drift", model_name=MODEL_NAME, kind="drift", check=drift.output)

"""Monthly batch prediction: wait for the month's partition -> validate -> drift check -> score every
file in parallel (dynamic task mapping) with the pinned champion -> publish.

Scheduled on the 1st of each month for the month before (a run on 2025-02-01 scores January);
catchup/backfill works because every run derives its month from its own logical date. Drift emits an
event on the drift Asset, which schedules ``mlops_retraining``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, Param, chain, task

from airflow_mlops import settings
from airflow_mlops.assets import drift_asset, predictions_asset, signal_retraining
from airflow_mlops.defaults import task_defaults
from airflow_mlops.operators.drift import EvidentlyDriftCheckOperator
from airflow_mlops.operators.inference import MlflowBatchPredictOperator
from airflow_mlops.operators.validation import GxValidateTableOperator
from airflow_mlops.sensors.partition import DataPartitionSensor
from airflow_mlops.utils.periods import month_closed_at, previous_month

MODEL_NAME = "churn"
DATA = "{{ data_root() }}/" + MODEL_NAME
SPEC = DATA + "/churn_spec.yaml"
# A run without a logical date (the CLI's and REST API's default) takes its month from run_after.
MONTH_OF_RUN = "params.month or previous_month(logical_date or dag_run.run_after)"
MONTH = "{{ " + MONTH_OF_RUN + " }}"
SCORED_AT = "{{ month_closed_at(" + MONTH_OF_RUN + ") }}"  # the same for every run of a month
PARTITION = DATA + "/monthly/month=" + MONTH
PREDICTIONS = DATA + "/predictions/month=" + MONTH
DRIFT = drift_asset(MODEL_NAME)
PREDICTED = predictions_asset(MODEL_NAME)

with DAG(
    dag_id="mlops_batch_prediction",
    description="Score each month's churn partition with the champion; check it for drift",
    schedule="@monthly",
    start_date=dt.datetime(2025, 2, 1, tzinfo=dt.UTC),
    catchup=settings.batch_catchup(),  # local config only: nothing remote at parse time
    max_active_runs=3,
    tags=["mlops", "inference"],
    user_defined_macros={"data_root": settings.data_root, "previous_month": previous_month, "month_closed_at": month_closed_at},
    default_args=task_defaults(),
    params={
        "month": Param(
            None, type=["null", "string"], pattern="^[0-9]{4}-(0[1-9]|1[0-2])$", title="Month (YYYY-MM)",
            description="Score this month instead of the one before the logical date.",
        ),
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
        task_id="wait_for_partition",
        uri=PARTITION,
        poke_interval=settings.partition_poke_interval(),
        timeout=3 * 24 * 3600,
        deferrable=True,
    )
    validate = GxValidateTableOperator(task_id="validate", table_uri=PARTITION, spec_uri=SPEC, labelled=False, retries=0)
    drift = EvidentlyDriftCheckOperator(
        task_id="drift_check",
        current_uri=PARTITION,
        spec_uri=SPEC,
        model_name=MODEL_NAME,
        model_ref="{{ params.model_alias }}",
        period=MONTH,
        drift_share="{{ params.drift_share }}",
        consecutive="{{ params.consecutive_drift_months }}",
        on_drift="continue",
    )

    @task(outlets=[DRIFT])
    def signal_drift(summary: dict[str, Any], *, outlet_events: Any = None) -> dict[str, Any]:
        """Emit the drift Asset event (which schedules retraining) only when the check says so."""
        keys = ("period", "share", "drifted_columns", "report_uri")
        return signal_retraining(summary, outlet_events, DRIFT, keys, "drift_detected", model_name=MODEL_NAME, kind="drift")

    @task
    def plan(ready: dict[str, Any], output_dir: str, params: dict[str, Any] | None = None, ti: Any = None) -> list[dict[str, Any]]:
        """Pin the model version once for all files, and map each input file to its output file in this
        run's staging folder (the published month stays readable until ``publish``)."""
        from airflow_mlops import tables
        from airflow_mlops.hooks.mlflow import MlflowHook

        alias, shadow = (params or {})["model_alias"], bool((params or {}).get("shadow_scoring"))
        hook = MlflowHook()  # its client carries the connection's credentials: no environment to set up
        version = hook.resolve_version(MODEL_NAME, alias).version
        shadow_version = hook.alias_version(MODEL_NAME, "challenger") if shadow else None
        partition = tables.open_partition(output_dir, run_key=f"{ti.dag_id}/{ti.run_id}")
        ti.xcom_push(key="partition", value=partition)
        return [
            {
                "input_uri": uri,
                "output_uri": f"{partition['staging']}/{uri.rsplit('/', 1)[-1].rsplit('.', 1)[0]}.parquet",
                "model_ref": str(version),
                "shadow_ref": shadow_version if shadow_version and shadow_version != str(version) else None,
            }
            for uri in ready["files"]
        ]

    planned = plan(wait.output, PREDICTIONS)
    predict = MlflowBatchPredictOperator.partial(
        task_id="predict", spec_uri=SPEC, model_name=MODEL_NAME, scored_at=SCORED_AT
    ).expand_kwargs(planned)

    @task(outlets=[PREDICTED])
    def publish(results: list[dict[str, Any]], output_dir: str, *, outlet_events: Any = None, ti: Any = None) -> dict[str, Any]:
        """Publish the run's files as the month in one step (refused when another run of the month
        published first), and announce the predictions."""
        from airflow_mlops import tables

        results = list(results[:])  # one slice request: iterating probes one index past the end (an error line)
        versions = sorted({r["model_version"] for r in results})
        names = [r["output_uri"].rsplit("/", 1)[-1] for r in results]
        rows = sum(r["rows"] for r in results)
        partition = ti.xcom_pull(task_ids="plan", key="partition")
        tables.publish_partition(partition, files=names, extra={"rows": rows, "model_versions": versions})
        summary = {"uri": output_dir, "files": len(names), "rows": rows, "model_versions": versions}
        outlet_events[PREDICTED].extra = summary
        return summary

    chain(wait, validate, drift, planned)
    publish(predict.output, PREDICTIONS)
    signal_drift(drift.output)

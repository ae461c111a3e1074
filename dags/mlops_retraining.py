"""Retraining: assemble the newest labelled months -> validate -> train -> evaluate challenger vs champion
on the newest labelled month -> (approve) -> promote.

Runs weekly, or as soon as the batch-prediction DAG reports drift or the monitoring DAG reports decay
(asset-or-time schedule), or when triggered from the UI, whose form exposes the training window, the
estimator, hyperparameters and promotion thresholds. The model learns from the months that drifted:
the ``window_months`` labelled months before the newest one (features joined with the labels feed),
and both models are judged on the newest labelled month. ``window_months`` = 0 trains on the snapshot
with a seeded holdout split (the first model, before any label has arrived).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param, TriggerRule, chain, task

from airflow_mlops import settings
from airflow_mlops.assets import decay_asset, drift_asset, promoted_asset
from airflow_mlops.defaults import task_defaults
from airflow_mlops.operators.registry import MlflowPromoteModelOperator, promotion_pool
from airflow_mlops.operators.training import MlflowTrainModelOperator
from airflow_mlops.operators.validation import GxValidateTableOperator
from airflow_mlops.operators.window import TrainingWindowOperator
from airflow_mlops.sensors.partition import DataPartitionSensor

MODEL_NAME = "churn"
ESTIMATORS = [
    "sklearn.ensemble.HistGradientBoostingClassifier",
    "sklearn.ensemble.RandomForestClassifier",
    "sklearn.linear_model.LogisticRegression",
]
#: The hyperparameters the form takes, typed and bounded: a trigger cannot ask for all cores
#: (n_jobs=-1) or a run without end (max_iter=10**7). Each estimator rejects the names it lacks.
HYPERPARAMETERS = {
    "max_iter": {"type": "integer", "minimum": 1, "maximum": 5000},
    "learning_rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    "max_depth": {"type": ["integer", "null"], "minimum": 1, "maximum": 64},
    "max_leaf_nodes": {"type": ["integer", "null"], "minimum": 2, "maximum": 4096},
    "min_samples_leaf": {"type": "integer", "minimum": 1, "maximum": 100000},
    "l2_regularization": {"type": "number", "minimum": 0, "maximum": 1000},
    "n_estimators": {"type": "integer", "minimum": 1, "maximum": 2000},
    "C": {"type": "number", "exclusiveMinimum": 0, "maximum": 10000},
    "class_weight": {"enum": [None, "balanced"]},
    "n_jobs": {"type": ["integer", "null"], "minimum": 1, "maximum": 4},
}
# Everything below is rendered on the worker, so the data root follows the worker's configuration.
DATA = "{{ data_root() }}/" + MODEL_NAME
SPEC = DATA + "/churn_spec.yaml"
TRAIN = "{{ params.training_data_uri or (data_root() ~ '/" + MODEL_NAME + "/training') }}"

with DAG(
    dag_id="mlops_retraining",
    description="Validate, train, and promote the churn model only when it beats the champion",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 4 * * 1", timezone="UTC"), assets=drift_asset(MODEL_NAME) | decay_asset(MODEL_NAME)
    ),
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "training"],
    user_defined_macros={"data_root": settings.data_root},
    default_args=task_defaults(),
    params={
        "estimator": Param(
            ESTIMATORS[0], type="string", enum=ESTIMATORS, title="Estimator",
            description="scikit-learn estimator class; preprocessing comes from the FeatureSpec.",
        ),
        "hyperparameters": Param(
            {}, type="object", title="Hyperparameters", properties=HYPERPARAMETERS, additionalProperties=False,
            description="Estimator parameters as JSON, e.g. {\"max_iter\": 200, \"learning_rate\": 0.05}; known names, bounded: "
            + ", ".join(sorted(HYPERPARAMETERS)) + ".",
        ),
        "metric": Param(
            "roc_auc", type="string", enum=["roc_auc", "f1", "precision", "recall", "accuracy", "log_loss"],
            title="Promotion metric", description="Holdout metric on which the challenger must beat the champion.",
        ),
        "min_value": Param(0.6, type=["null", "number"], title="Minimum metric value", description="The challenger must reach it."),
        "min_absolute_change": Param(
            0.005, type=["null", "number"], minimum=0, title="Minimum absolute improvement",
            description="Required improvement over the champion on the same holdout.",
        ),
        "min_relative_change": Param(
            None, type=["null", "number"], minimum=0, maximum=1, title="Minimum relative improvement",
            description="Required improvement as a share of the champion's score, 0..1 (e.g. 0.01 = 1%).",
        ),
        "test_size": Param(
            0.2, type="number", exclusiveMinimum=0, maximum=0.5, title="Holdout share",
            description="With window 0: share of the snapshot held out for evaluation and promotion (0 < share <= 0.5).",
        ),
        "dry_run": Param(False, type="boolean", title="Dry run", description="Evaluate, but change no alias."),
        "require_approval": Param(
            False, type="boolean", title="Require human approval", description="A person approves before promotion."
        ),
        "window_months": Param(
            3, type="integer", minimum=0, maximum=36, title="Training window (months)",
            description="Labelled months to learn from, before the newest one (the holdout). 0: the snapshot, split.",
        ),
        "include_snapshot": Param(
            False, type="boolean", title="Include the snapshot", description="Add the original training snapshot to the window's months.",
        ),
        "month": Param(
            None, type=["null", "string"], pattern="^[0-9]{4}-(0[1-9]|1[0-2])$", title="Newest month (YYYY-MM)",
            description="The newest month considered for the window; default the month of the run.",
        ),
        "training_data_uri": Param(
            None, type=["null", "string"], title="Snapshot URI",
            description="Override the labelled snapshot (file:// or s3://); default <data root>/churn/training.",
        ),
    },
) as dag:  # fmt: skip
    @task
    def pending_signals(triggering_asset_events: Any = None) -> dict[str, Any]:
        """The drift and decay signals this run answers: every pending one in the ledger (also those whose
        Asset event reached no run), and the Asset events Airflow delivered to it."""
        from airflow_mlops import signals

        delivered = [dict(event.extra or {}) | {"asset": asset.name} for asset, events in (triggering_asset_events or {}).items() for event in events]
        return {"signals": signals.pending(MODEL_NAME), "delivered": delivered}

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def cover_signals(found: dict[str, Any], ti: Any = None, run_id: str | None = None) -> dict[str, Any]:
        """Record that this run's decision (the promotion or the rejection ``promote`` recorded) covers
        the pending signals. A run without one (dry run, approval refused) covers nothing."""
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops import signals
        from airflow_mlops.hooks.mlflow import MlflowHook

        decision = ti.xcom_pull(task_ids="promote")
        if not found["signals"] or not decision:
            raise AirflowSkipException("no pending signal" if not found["signals"] else "no decision recorded: the signals stay pending")
        kept = ("decision", "reason", "metric", "challenger_version", "champion_version", "challenger_score", "champion_score")
        record = signals.cover(MODEL_NAME, found["signals"], str(run_id), {k: decision.get(k) for k in kept})
        answered = [f"{s['kind']} {s['period']}" for s in found["signals"]]
        MlflowHook().set_version_tag(MODEL_NAME, str(decision["challenger_version"]), "mlops.signals", ", ".join(answered))
        return {"covered": answered, "record_uri": record}

    @task.short_circuit(trigger_rule=TriggerRule.NONE_FAILED)
    def raised_meanwhile(found: dict[str, Any], params: dict[str, Any] | None = None) -> bool:
        """Signals raised while this run trained: Airflow may hand their Asset events to no run (the DAG
        was at max_active_runs), so this run queues the next one itself. Signals it saw and could not
        cover stay pending for the next run, so runs never chain on them."""
        from airflow_mlops import signals

        seen = {s["uri"] for s in found["signals"]}
        return not (params or {}).get("dry_run") and any(s["uri"] not in seen for s in signals.pending(MODEL_NAME))

    @task(retries=0)
    def retrain_again(**context: Any) -> None:
        """Queue the next retraining run (it starts once this one ends: max_active_runs=1)."""
        # Imported here: the operator module costs ~0.18 s of imports, which every parse would pay.
        from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

        TriggerDagRunOperator(task_id="retrain_again", trigger_dag_id="mlops_retraining").execute(context)

    found = pending_signals()
    wait_for_data = DataPartitionSensor(
        task_id="wait_for_training_data", uri=TRAIN, poke_interval=60, timeout=6 * 3600, mode="reschedule"
    )
    window = TrainingWindowOperator(
        task_id="assemble_window",
        features_uri=DATA + "/monthly/month={month}",
        labels_uri=DATA + "/labels/month={month}",
        snapshot_uri=TRAIN,
        spec_uri=SPEC,
        output_uri=DATA + "/windows/{{ run_id | replace(':', '_') | replace('+', '_') }}",
        window_months="{{ params.window_months }}",
        include_snapshot="{{ params.include_snapshot }}",
        end_month="{{ params.month or '' }}",
        confine_to_data=True,  # training_data_uri comes from the trigger form
    )
    validate = GxValidateTableOperator(task_id="validate", table_uri=window.output["train_uri"], spec_uri=SPEC, labelled=True, retries=0)
    train = MlflowTrainModelOperator(
        task_id="train",
        train_uri=window.output["train_uri"],
        holdout_uri=window.output["holdout_uri"],
        confine_to_data=True,
        data_tags=window.output["tags"],
        spec_uri=SPEC,
        model_name=MODEL_NAME,
        estimator="{{ params.estimator }}",
        estimator_params="{{ params.hyperparameters | tojson }}",
        test_size="{{ params.test_size }}",
    )
    thresholds = {
        "metric": "{{ params.metric }}",
        "min_value": "{{ params.min_value }}",
        "min_absolute_change": "{{ params.min_absolute_change }}",
        "min_relative_change": "{{ params.min_relative_change }}",
    }
    evaluate = MlflowPromoteModelOperator(
        task_id="evaluate", model_name=MODEL_NAME, spec_uri=SPEC, evaluate_only=True, on_reject="continue", **thresholds
    )

    @task.branch(task_id="route")
    def route(decision: dict, params: dict | None = None) -> list[str]:
        """Dry run or already champion: stop. Otherwise promote, via a person when approval is required."""
        if (params or {}).get("dry_run") or decision["decision"] == "already_champion":
            return []
        if (params or {}).get("require_approval") and decision["decision"] == "would_promote":
            return ["approve"]
        return ["promote"]  # records a rejection too

    approve = ApprovalOperator(
        task_id="approve",
        subject="Promote {{ ti.xcom_pull(task_ids='evaluate')['model_name'] }} "
        "v{{ ti.xcom_pull(task_ids='evaluate')['challenger_version'] }} to champion?",
        body="{{ ti.xcom_pull(task_ids='evaluate')['reason'] }}",
        retries=0,
    )
    promote = MlflowPromoteModelOperator(
        task_id="promote",
        model_name=MODEL_NAME,
        spec_uri=SPEC,
        evaluation=evaluate.output,
        approver="{{ ((ti.xcom_pull(task_ids='approve') or {}).get('responded_by_user') or {}).get('name', '') }}",
        on_reject="skip",
        outlets=[promoted_asset(MODEL_NAME)],
        trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
        pool=promotion_pool(MODEL_NAME),  # one promotion of the model at a time, across DAG runs
        **thresholds,
    )
    routed = route(evaluate.output)
    chain(found, wait_for_data, window, validate, train, evaluate, routed, [approve, promote])
    promote >> cover_signals(found) >> raised_meanwhile(found) >> retrain_again()
    approve >> promote

"""Retraining: wait for data -> validate -> train -> evaluate challenger vs champion -> (approve) -> promote.

Runs weekly, or as soon as the batch-prediction DAG reports drift or the monitoring DAG reports decay
(asset-or-time schedule), or when
triggered from the UI, whose form exposes the estimator, hyperparameters and promotion thresholds.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param, TriggerRule, chain, task

from airflow_mlops import settings
from airflow_mlops.assets import decay_asset, drift_asset, promoted_asset
from airflow_mlops.defaults import task_defaults
from airflow_mlops.operators.registry import MlflowPromoteModelOperator
from airflow_mlops.operators.training import MlflowTrainModelOperator
from airflow_mlops.operators.validation import GxValidateTableOperator
from airflow_mlops.sensors.partition import DataPartitionSensor

MODEL_NAME = "churn"
ESTIMATORS = [
    "sklearn.ensemble.HistGradientBoostingClassifier",
    "sklearn.ensemble.RandomForestClassifier",
    "sklearn.linear_model.LogisticRegression",
]
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
            {}, type="object", title="Hyperparameters",
            description='Estimator parameters as JSON, e.g. {"max_iter": 200, "learning_rate": 0.05}.',
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
            description="Share of the training data held out for evaluation and promotion (0 < share <= 0.5).",
        ),
        "dry_run": Param(False, type="boolean", title="Dry run", description="Evaluate, but change no alias."),
        "require_approval": Param(
            False, type="boolean", title="Require human approval", description="A person approves before promotion."
        ),
        "training_data_uri": Param(
            None, type=["null", "string"], title="Training data URI",
            description="Override the training partition (file:// or s3://); default <data root>/churn/training.",
        ),
    },
) as dag:  # fmt: skip
    wait_for_data = DataPartitionSensor(
        task_id="wait_for_training_data", uri=TRAIN, poke_interval=60, timeout=6 * 3600, mode="reschedule"
    )
    validate = GxValidateTableOperator(task_id="validate", table_uri=TRAIN, spec_uri=SPEC, labelled=True, retries=0)
    train = MlflowTrainModelOperator(
        task_id="train",
        train_uri=TRAIN,
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
        task_id="evaluate", model_name=MODEL_NAME, spec_uri=SPEC, evaluate_only=True, on_reject="succeed", **thresholds
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
        **thresholds,
    )
    routed = route(evaluate.output)
    chain(wait_for_data, validate, train, evaluate, routed, [approve, promote])
    approve >> promote

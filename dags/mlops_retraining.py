"""Retraining: the pending signals -> assemble the newest labelled months -> (nothing new? stop) ->
validate -> train -> evaluate challenger vs champion on the newest labelled month -> (approve) ->
promote -> record which signals the decision answered.

Runs weekly, or as soon as the batch-prediction DAG reports drift or the monitoring DAG reports decay
(asset-or-time schedule), or when triggered from the UI, whose form exposes the training window, the
estimator, hyperparameters and promotion thresholds. The model learns from the months that drifted:
the ``window_months`` labelled months before the newest one (features joined with the labels feed),
and both models are judged on the newest labelled month. ``window_months`` = 0 trains on the snapshot
with a seeded holdout split (the first model, before any label has arrived). The sequence is the
public block :func:`airflow_mlops.task_groups.retraining_group`; this file only sets its form.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param

from airflow_mlops import periods
from airflow_mlops.assets import decay_asset, drift_asset
from airflow_mlops.defaults import task_defaults
from airflow_mlops.operators.registry import promotion_pool
from airflow_mlops.sensors.partition import DataPartitionSensor
from airflow_mlops.task_groups import retraining_group

MODEL_NAME = "churn"
#: The form's estimators; "" (the default) lets the FeatureSpec's task pick (utils/modeling.py, DEFAULT_ESTIMATORS):
#: a classifier for classification, a regressor for regression. A named one must fit the spec's task.
ESTIMATORS = [
    "",
    "sklearn.ensemble.HistGradientBoostingClassifier",
    "sklearn.ensemble.RandomForestClassifier",
    "sklearn.linear_model.LogisticRegression",
    "sklearn.ensemble.HistGradientBoostingRegressor",
    "sklearn.ensemble.RandomForestRegressor",
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
    user_defined_macros=periods.macros(),
    default_args=task_defaults(),
    params={
        "estimator": Param(
            "", type="string", enum=ESTIMATORS, title="Estimator",
            values_display={"": "The spec's task decides (HistGradientBoosting classifier or regressor)"},
            description="scikit-learn estimator class; preprocessing comes from the FeatureSpec. Default: the one for the "
            "spec's task; a named one must be a classifier for classification, a regressor for regression.",
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
        "month": periods.month_param("The newest month considered for the window; default the month of the run.", title="Newest month (YYYY-MM)"),
        "force": Param(
            False, type="boolean", title="Train even if nothing is new",
            description="By default a run whose signals were all answered, or whose window is the last decision's, trains nothing.",
        ),
        "training_data_uri": Param(
            None, type=["null", "string"], title="Snapshot URI",
            description="Override the labelled snapshot (file:// or s3://); default <data root>/churn/training.",
        ),
    },
) as dag:  # fmt: skip
    wait_for_data = DataPartitionSensor(
        task_id="wait_for_training_data", uri=TRAIN, poke_interval=60, timeout=6 * 3600, mode="reschedule"
    )
    retrain = retraining_group(
        model_name=MODEL_NAME, spec_uri=SPEC, features_uri=DATA + "/monthly/month={month}", labels_uri=DATA + "/labels/month={month}",
        snapshot_uri=TRAIN, windows_uri=DATA + "/windows", window_months="{{ params.window_months }}",
        include_snapshot="{{ params.include_snapshot }}", end_month="{{ params.month or '' }}", estimator="{{ params.estimator }}",
        estimator_params="{{ params.hyperparameters | tojson }}", test_size="{{ params.test_size }}", metric="{{ params.metric }}",
        min_value="{{ params.min_value }}", min_absolute_change="{{ params.min_absolute_change }}",
        min_relative_change="{{ params.min_relative_change }}", dry_run="{{ params.dry_run }}",
        require_approval="{{ params.require_approval }}", force="{{ params.force }}",
        promotion_pool=promotion_pool(MODEL_NAME),  # one promotion of the model at a time, across DAG runs
        operator_args={"confine_to_data": True},  # training_data_uri comes from the trigger form
        prefix_group_id=False,
    )  # fmt: skip
    wait_for_data >> retrain

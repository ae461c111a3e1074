"""How-to: turn a check's finding into a retraining signal, and answer it in a retraining DAG, with the
signal operators (``RaiseSignalOperator``, ``PendingSignalsOperator``, ``RetrainingGateOperator``,
``AnswerSignalsOperator``, ``RetrainOnNewSignalsOperator``).

``howto_signals_check`` checks a month for drift against the snapshot and raises a drift signal: an
event on the model's drift Asset, which schedules ``howto_signals_retrain``. That DAG lists the pending
signals, builds a window ending at the month that drifted, trains only if there is something new,
promotes, and records that the decision answered the signals. ``retraining_group`` builds this
sequence (with validation and an optional approval); it is spelled out here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import DAG, chain

from airflow_mlops import periods
from airflow_mlops.assets import decay_asset, drift_asset
from airflow_mlops.operators.drift import EvidentlyDriftCheckOperator
from airflow_mlops.operators.registry import MlflowPromoteModelOperator
from airflow_mlops.operators.signals import (
    AnswerSignalsOperator,
    PendingSignalsOperator,
    RaiseSignalOperator,
    RetrainingGateOperator,
    RetrainOnNewSignalsOperator,
)
from airflow_mlops.operators.training import MlflowTrainModelOperator
from airflow_mlops.operators.window import TrainingWindowOperator

MODEL = "howto_signals"  # a plain string: the signal Assets are named by it at parse time
SPEC = str(Path(__file__).parents[1] / "penguins_spec.yaml")
DATA = "{{ data_root() }}/penguins"
COMMON: dict[str, Any] = {"user_defined_macros": periods.macros(), "default_args": {"require_marker": False}, "tags": ["howto"]}

with DAG(dag_id="howto_signals_check", schedule=None, params={"month": periods.month_param()}, **COMMON):
    drift = EvidentlyDriftCheckOperator(
        task_id="drift", current_uri=DATA + "/monthly/month=" + periods.MONTH, spec_uri=SPEC, model_name=MODEL,
        reference_uri=DATA + "/training",  # no champion needed to start the loop
        period=periods.MONTH, on_drift="continue",
    )  # fmt: skip
    RaiseSignalOperator(task_id="signal_drift", model_name=MODEL, kind="drift", check=drift.output)

with DAG(dag_id="howto_signals_retrain", schedule=drift_asset(MODEL) | decay_asset(MODEL), max_active_runs=1, **COMMON):
    pending = PendingSignalsOperator(task_id="pending_signals", model_name=MODEL)
    window = TrainingWindowOperator(
        task_id="window", features_uri=DATA + "/monthly/month={month}", labels_uri=DATA + "/labels/month={month}",
        snapshot_uri=DATA + "/training", spec_uri=SPEC, window_months=2, include_snapshot=True,
        end_month="{{ ti.xcom_pull(task_ids='pending_signals')['newest_period'] or '' }}",  # the month that drifted
        output_uri="{{ data_root() }}/howto/signal-windows/{{ run_id | replace(':', '_') | replace('+', '_') }}",
    )  # fmt: skip
    gate = RetrainingGateOperator(task_id="nothing_new", model_name=MODEL, window=window.output, pending=pending.output)
    train = MlflowTrainModelOperator(
        task_id="train", train_uri=window.output["train_uri"], holdout_uri=window.output["holdout_uri"],
        data_tags=gate.output["tags"], spec_uri=SPEC, model_name=MODEL,
    )  # fmt: skip
    promote = MlflowPromoteModelOperator(
        task_id="promote", model_name=MODEL, spec_uri=SPEC, metric="accuracy", min_value=0.9
    )
    answer = AnswerSignalsOperator(
        task_id="answer_signals", model_name=MODEL, pending=pending.output, decision_task_id="promote"
    )
    again = RetrainOnNewSignalsOperator(task_id="retrain_again", model_name=MODEL, pending=pending.output)
    chain(pending, window, gate, train, promote, answer, again)

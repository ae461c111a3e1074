"""Retraining signals on Airflow's asset-event history: raised once per (kind, period, version), pending
above the model's watermark in MLflow, answered by a decision or as "nothing new", re-queued when
signals arrive meanwhile."""

from __future__ import annotations

import datetime as dt
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowSkipException, DagRunTriggerException

from airflow_mlops import signals
from airflow_mlops.assets import decay_asset, drift_asset
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.operators.signals import (
    SNAPSHOT_URI_TAG,
    TRAINING_CONFIG_TAG,
    AnswerSignalsOperator,
    PendingSignalsOperator,
    RaiseSignalOperator,
    RetrainingGateOperator,
    RetrainOnNewSignalsOperator,
    training_config,
)
from airflow_mlops.operators.window import HOLDOUT_MONTH_TAG, SNAPSHOT_TAG, TRAIN_MONTHS_TAG
from tests.helpers import task_context

T0 = dt.datetime(2025, 4, 1, tzinfo=dt.UTC)


def event(event_id: int, kind: str, period: str, version: str = "1") -> SimpleNamespace:
    """An asset event as ``inlet_events`` yields it."""
    return SimpleNamespace(
        id=event_id, timestamp=T0 + dt.timedelta(minutes=event_id), source_dag_id="scoring", source_run_id=f"run{event_id}",
        extra={"kind": kind, "period": period, "model_version": version, "model_name": "m"},
    )  # fmt: skip


def context(model: str, drift: list[Any] = (), decay: list[Any] = ()) -> dict[str, Any]:
    ctx = task_context()
    ctx["inlet_events"] = {drift_asset(model): list(drift), decay_asset(model): list(decay)}
    return ctx


@pytest.fixture
def model(airflow_db) -> str:
    name = f"signals_{uuid.uuid4().hex[:8]}"
    MlflowHook().client.create_registered_model(name)
    return name


def test_a_check_that_asks_for_retraining_raises_its_signal_once_per_period_and_version(model: str) -> None:
    version = _version(model, {})
    run_id = MlflowHook().registry.get_version(model, version).run_id
    check = {"trigger_retraining": True, "period": "2025-03", "model_version": version, "share": 0.4, "drifted_columns": ["a"], "report_uri": "r", "drift_detected": True}
    op = RaiseSignalOperator(task_id="signal_drift", model_name=model, kind="drift", check=check)
    assert [a.name for a in op.outlets] == [a.name for a in op.inlets] == [f"mlops_{model}_drift"]

    ctx = context(model)
    raised = op.execute(ctx)
    assert raised == {"kind": "drift", "model_name": model, "period": "2025-03", "model_version": version, "model_run_id": run_id,
                      "share": 0.4, "drifted_columns": ["a"], "report_uri": "r"}  # fmt: skip
    assert ctx["outlet_events"][drift_asset(model)].extra == raised

    # The same month scored again by the same version: already raised (event 7), nothing emitted.
    earlier = event(7, "drift", "2025-03", version)
    earlier.extra["model_run_id"] = run_id
    again = context(model, drift=[earlier])
    with pytest.raises(AirflowSkipException, match=rf"drift 2025-03 \(v{version}\) was raised already: event 7 by scoring/run7"):
        op.execute(again)
    assert again["outlet_events"] == {}
    # Another version's drift on the same month is news; so is a version number reused by a rebuilt registry.
    assert op.execute(context(model, drift=[event(7, "drift", "2025-03", "9")]))["model_version"] == version
    reused = event(7, "drift", "2025-03", version)
    reused.extra["model_run_id"] = "another-run"
    assert op.execute(context(model, drift=[reused]))["model_run_id"] == run_id
    with pytest.raises(AirflowSkipException, match=r"no retraining signal for 2025-03 \(drift_detected: False\)"):
        RaiseSignalOperator(task_id="s", model_name="m", kind="drift", check=check | {"trigger_retraining": False, "drift_detected": False}).execute(context("m"))
    with pytest.raises(ValueError, match="kind must be one of"):
        RaiseSignalOperator(task_id="s", model_name="m", kind="drfit", check=check)


def test_pending_signals_are_the_events_above_the_watermark_whichever_run_they_reached(model: str) -> None:
    drift = [event(1, "drift", "2025-01"), event(4, "drift", "2025-03")]
    decay = [event(3, "decay", "2025-02"), event(5, "decay", "2025-03")]
    op = PendingSignalsOperator(task_id="pending_signals", model_name=model)

    fresh = op.execute(context(model, drift, decay))
    assert [s["event_id"] for s in fresh["signals"]] == [1, 3, 4, 5] and fresh["watermark"] == 0 and fresh["newest_event"] == 5

    MlflowHook().registry.set_model_tag(model, signals.WATERMARK_TAG, "3")
    found = op.execute(context(model, drift, decay))
    assert [signals.key(s) for s in found["signals"]] == ["drift 2025-03", "decay 2025-03"]
    assert found["answered"] == ["drift 2025-01", "decay 2025-02"] and found["watermark"] == 3
    assert found["signals"][0]["source"] == "scoring/run4"
    assert fresh["newest_period"] == found["newest_period"] == "2025-03"  # where the retraining window ends by default
    MlflowHook().registry.set_model_tag(model, signals.WATERMARK_TAG, "5")
    assert op.execute(context(model, drift, decay))["newest_period"] is None


def test_a_decision_answers_its_signals_and_the_watermark_never_moves_back(model: str) -> None:
    hook = MlflowHook()
    pending = {"signals": [s | {} for s in signals.history([event(4, "drift", "2025-03"), event(5, "decay", "2025-03")])], "answered": []}
    version = _version(model, {})
    op = AnswerSignalsOperator(task_id="answer_signals", model_name=model, pending=pending, decision_task_id="promote")
    ctx = task_context()
    ctx["ti"].xcom_pull.return_value = {"decision": "rejected", "challenger_version": version}

    assert op.execute(ctx) == {"answered": ["decay 2025-03", "drift 2025-03"], "decision": "rejected", "version": version}
    assert hook.registry.model_tag(model, signals.WATERMARK_TAG) == "5"
    assert hook.registry.get_version(model, version).tags[signals.ANSWERED_TAG] == "decay 2025-03, drift 2025-03"

    older = AnswerSignalsOperator(task_id="a", model_name=model, pending={"signals": signals.history([event(2, "drift", "2025-01")])}, decision_task_id="promote")
    older.execute(ctx)
    assert hook.registry.model_tag(model, signals.WATERMARK_TAG) == "5"

    no_decision = task_context()
    no_decision["ti"].xcom_pull.return_value = None  # promote skipped before deciding (dry run, refused approval)
    hook.registry.set_model_tag(model, signals.WATERMARK_TAG, "0")
    with pytest.raises(AirflowSkipException, match="no decision recorded: the signals stay pending"):
        op.execute(no_decision)
    assert hook.registry.model_tag(model, signals.WATERMARK_TAG) == "0"


def _version(model: str, tags: dict[str, str]) -> str:
    """A registered version of ``model`` (no model behind it: the gate and the answer read tags only)."""
    client = MlflowHook().client
    run = client.create_run(client.get_experiment_by_name("Default").experiment_id if client.get_experiment_by_name("Default") else "0")
    return str(client.create_model_version(model, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id, tags=tags).version)


WINDOW = {TRAIN_MONTHS_TAG: "2025-01,2025-02", HOLDOUT_MONTH_TAG: "2025-03", SNAPSHOT_TAG: "false"}


def test_the_gate_trains_only_when_there_is_something_new_to_learn(model: str) -> None:
    hook = MlflowHook()
    learnt = WINDOW | {SNAPSHOT_URI_TAG: "none", TRAINING_CONFIG_TAG: training_config(None, {"max_iter": 50})}
    decided = _version(model, learnt | {"mlops.decision.decision": "rejected"})
    pending = {"signals": signals.history([event(8, "drift", "2025-03")]), "answered": []}

    def gate(window_tags: dict[str, str], pending: dict[str, Any], force: Any = False, params: Any = '{"max_iter": 50}') -> RetrainingGateOperator:
        return RetrainingGateOperator(
            task_id="nothing_new", model_name=model, window={"tags": window_tags, "snapshot_uri": None}, pending=pending,
            estimator_params=params, force=force,
        )  # fmt: skip

    # The window the last decision learnt from: nothing new; the signal is answered without training.
    with pytest.raises(AirflowSkipException, match=rf"nothing new to learn: v{decided} learnt from the same data the same way \(.*holdout_month=2025-03.*; rejected\); the decision on v{decided} answers drift 2025-03"):
        gate(WINDOW, pending).execute(task_context())
    assert hook.registry.model_tag(model, signals.WATERMARK_TAG) == "8"
    assert hook.registry.get_version(model, decided).tags[signals.ANSWERED_TAG] == "drift 2025-03"

    newer = WINDOW | {TRAIN_MONTHS_TAG: "2025-02,2025-03", HOLDOUT_MONTH_TAG: "2025-04"}
    assert gate(newer, pending).execute(task_context())["reason"] == "something new to learn"
    trained = gate(newer, pending).execute(task_context())
    assert trained["tags"] == newer | {SNAPSHOT_URI_TAG: "none", TRAINING_CONFIG_TAG: training_config(None, {"max_iter": 50})}  # training's data_tags
    assert gate(WINDOW, pending, force="True").execute(task_context())["reason"] == "forced"
    # Other hyperparameters on the same window are a new experiment.
    assert gate(WINDOW, pending, params={"max_iter": 80}).execute(task_context())["train"] is True

    # A decision on another window since then does not make the first window's data new again.
    later = _version(model, trained["tags"] | {"mlops.decision.decision": "promoted"})
    with pytest.raises(AirflowSkipException, match=rf"nothing new to learn: v{decided} learnt from the same data the same way .*; no signal to answer"):
        gate(WINDOW, {"signals": [], "answered": []}).execute(task_context())

    # A signal for a period a decision already answered (re-raised by another version): nothing new either;
    # the newest decision answers it.
    again = {"signals": signals.history([event(9, "drift", "2025-03", "2")]), "answered": ["drift 2025-03"]}
    with pytest.raises(AirflowSkipException, match=rf"every pending signal was answered before \(drift 2025-03\); the decision on v{later} answers"):
        gate(WINDOW | {HOLDOUT_MONTH_TAG: "2025-05"}, again).execute(task_context())
    assert hook.registry.model_tag(model, signals.WATERMARK_TAG) == "9"
    decay = {"signals": signals.history([event(10, "decay", "2025-02")]), "answered": []}
    with pytest.raises(AirflowSkipException, match="nothing new"):
        gate(WINDOW, decay).execute(task_context())
    assert hook.registry.get_version(model, decided).tags[signals.ANSWERED_TAG] == "decay 2025-02, drift 2025-03"  # merged, in period order


def test_signals_raised_meanwhile_queue_one_more_run() -> None:
    pending = {"signals": [], "answered": [], "watermark": 0, "newest_event": 4}
    op = RetrainOnNewSignalsOperator(task_id="retrain_again", model_name="m", pending=pending)
    assert op.retries == 0

    with pytest.raises(DagRunTriggerException) as raised:
        op.execute(context("m", drift=[event(4, "drift", "2025-03")], decay=[event(6, "decay", "2025-04")]))
    assert (raised.value.trigger_dag_id, raised.value.dag_run_id) == ("test_dag", "signals__manual__test")
    assert "decay 2025-04" in raised.value.note and raised.value.skip_when_already_exists is True

    with pytest.raises(AirflowSkipException, match="no signal raised while this run worked"):
        op.execute(context("m", drift=[event(4, "drift", "2025-03")]))
    dry = RetrainOnNewSignalsOperator(task_id="retrain_again", model_name="m", pending=pending, disabled="True")
    with pytest.raises(AirflowSkipException, match="disabled"):
        dry.execute(context("m", decay=[event(6, "decay", "2025-04")]))

"""The loop closes: after the demo's concept drift, the triggered retraining learns from the newest
labelled months, its challenger beats the champion on the newest labelled month and is promoted,
and the run answers every pending drift and decay signal. Then there is nothing new to learn: a
second run trains no version, and scoring a drifted month again raises no second signal."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_mlops import signals
from airflow_mlops.hooks.mlflow import MlflowHook
from tests.e2e.conftest import pending_signals, raised_signals, task_states, xcom
from tests.e2e.test_batch_prediction_dag import MONTHS, champion, predictions_dir  # noqa: F401 - fixture

pytestmark = pytest.mark.e2e


def test_retraining_on_the_window_promotes_a_challenger_that_learnt_the_new_concept(run_dag, champion) -> None:  # noqa: F811
    for month, when in MONTHS.items():
        if not (predictions_dir(month) / "_SUCCESS").exists():
            assert str(run_dag("mlops_batch_prediction", logical_date=when).state) == "success"
    for offset, month in enumerate(MONTHS):  # judge every scored month (the labels feed has them all)
        run = run_dag("mlops_model_monitoring", logical_date=dt.datetime(2025, 6, 1 + offset, tzinfo=dt.UTC), run_conf={"month": month})
        assert str(run.state) == "success", task_states(run)
    raised = pending_signals("churn")  # earlier modules' retraining runs answered theirs
    assert {("decay", "2025-02"), ("decay", "2025-03")} <= raised

    # Every param spelled out: dag.test() keeps an earlier run's conf (e.g. dry_run) in the DAG's params.
    defaults = {"estimator": "sklearn.ensemble.HistGradientBoostingClassifier", "metric": "roc_auc", "min_value": 0.6, "min_absolute_change": 0.005,
                "min_relative_change": None, "dry_run": False, "require_approval": False, "month": None, "training_data_uri": None, "force": False}  # fmt: skip
    retrain = run_dag("mlops_retraining", run_conf=defaults | {"window_months": 3, "include_snapshot": False, "hyperparameters": {"max_iter": 60}})

    states = task_states(retrain)
    assert str(retrain.state) == "success", states
    window = xcom(retrain, "assemble_window")
    assert (window["holdout_month"], window["train_months"], window["snapshot"]) == ("2025-03", ["2025-01", "2025-02"], False)
    decision = xcom(retrain, "evaluate")
    assert str(decision["champion_version"]) == champion
    assert decision["challenger_score"] > decision["champion_score"] + 0.05, decision  # both judged on 2025-03
    assert states["promote"] == "success"
    client = MlflowHook().client
    new = client.get_model_version_by_alias("churn", "champion")
    assert str(new.version) == str(decision["challenger_version"])
    assert new.tags["mlops.window.train_months"] == "2025-01,2025-02" and new.tags["mlops.window.holdout_month"] == "2025-03"
    assert set(new.tags["mlops.signals"].split(", ")) == {f"{kind} {period}" for kind, period in raised}
    # every signal is answered by this run's decision, none left pending; the watermark is the newest event
    assert {(s["kind"], s["period"]) for s in xcom(retrain, "pending_signals")["signals"]} == raised
    assert pending_signals("churn") == set()
    answered = xcom(retrain, "answer_signals")
    assert (answered["decision"], answered["version"]) == ("promoted", str(new.version))
    newest = max(s["event_id"] for s in raised_signals("churn"))
    assert MlflowHook().registry.model_tag("churn", signals.WATERMARK_TAG) == str(newest)

    # Nothing new to learn: the same window, no pending signal -> no version is trained, the decision stands.
    versions = len(client.search_model_versions("name='churn'"))
    again = run_dag("mlops_retraining", run_conf=defaults | {"window_months": 3, "include_snapshot": False, "hyperparameters": {"max_iter": 60}})
    states = task_states(again)
    assert str(again.state) == "success", states
    assert states["nothing_new"] == "skipped" and states["train"] == "skipped" and states["promote"] == "skipped", states
    assert len(client.search_model_versions("name='churn'")) == versions
    assert str(client.get_model_version_by_alias("churn", "champion").version) == str(new.version)

    # Scoring the drifted month again with the same version: its drift signal is not raised twice. (The
    # first re-score raises it unless an earlier module already raised it for this very version.)
    month_again = {"month": "2025-03", "model_alias": "previous_champion"}
    assert str(run_dag("mlops_batch_prediction", logical_date=dt.datetime(2025, 7, 1, tzinfo=dt.UTC), run_conf=month_again).state) == "success"
    events = raised_signals("churn")
    assert ("drift", "2025-03") in {(s["kind"], s["period"]) for s in events if str(s["model_version"]) == str(xcom(retrain, "evaluate")["champion_version"])}
    rescored = run_dag("mlops_batch_prediction", logical_date=dt.datetime(2025, 7, 2, tzinfo=dt.UTC), run_conf=month_again)
    assert str(rescored.state) == "success", task_states(rescored)
    assert task_states(rescored)["signal_drift"] == "skipped" and raised_signals("churn") == events

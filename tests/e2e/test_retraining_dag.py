"""mlops_retraining end to end with dag.test() on the embedded default (SQLite, local MLflow store, file://)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_mlops import settings
from airflow_mlops.hooks.mlflow import MlflowHook
from tests.e2e.conftest import error_lines, task_states, xcom

pytestmark = pytest.mark.e2e


def registry_state(model: str = "churn") -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    client = MlflowHook().client
    aliases = {k: str(v) for k, v in client.get_registered_model(model).aliases.items()}
    tags = {str(v.version): dict(v.tags) for v in client.search_model_versions(f"name='{model}'")}
    return aliases, tags


@pytest.fixture
def fresh_registry() -> None:
    """Start from an empty registry for the churn model (other e2e modules may have trained one)."""
    hook = MlflowHook()
    if hook.registry.alias_version("churn", "challenger") is not None:
        hook.client.delete_registered_model("churn")


def test_first_run_promotes_then_same_data_with_required_gain_does_not(run_dag, demo_data, fresh_registry, capfd) -> None:
    capfd.readouterr()
    first = run_dag("mlops_retraining", run_conf={"window_months": 0, "hyperparameters": {"max_iter": 60}})
    logged = capfd.readouterr()
    assert error_lines(logged.out + logged.err) == []  # a green run logs no error line
    assert "Training sklearn.ensemble.HistGradientBoostingClassifier" in logged.out + logged.err  # the task logs were captured

    states = task_states(first)
    assert str(first.state) == "success", states
    assert states["promote"] == "success" and states["approve"] == "skipped"
    aliases, tags = registry_state()
    assert aliases["champion"] == aliases["challenger"] == "1"
    champion = str(aliases["champion"])
    assert tags[champion]["mlops.decision.decision"] == "promoted"
    assert tags[champion]["mlops.decision.compared_against"] == "none"
    summary = xcom(first, "validate")
    assert summary["success"] and summary["rows"] == 8000

    # The same data, the same estimator and hyperparameters: nothing new to learn, no version trained.
    same = run_dag("mlops_retraining", run_conf={"window_months": 0, "hyperparameters": {"max_iter": 60}, "min_absolute_change": 0.02})
    assert task_states(same)["nothing_new"] == "skipped" and task_states(same)["train"] == "skipped", task_states(same)
    assert registry_state()[0] == aliases

    # Forced: a second version on the same data must beat the champion by 0.02, and does not.
    second = run_dag("mlops_retraining", run_conf={"window_months": 0, "hyperparameters": {"max_iter": 60}, "min_absolute_change": 0.02, "force": True})

    states = task_states(second)
    assert str(second.state) == "success", states
    assert states["promote"] == "skipped"  # on_reject="skip": no promoted-asset event
    aliases_after, tags = registry_state()
    assert str(aliases_after["champion"]) == champion
    loser = str(aliases_after["challenger"])
    assert loser != champion
    assert tags[loser]["mlops.decision.decision"] == "rejected"
    assert "minimum absolute change check failed" in tags[loser]["mlops.decision.reason"]
    assert tags[loser]["mlops.decision.compared_against"] == champion


def test_dry_run_changes_nothing(run_dag, demo_data) -> None:
    run_dag("mlops_retraining", run_conf={"window_months": 0, "hyperparameters": {"max_iter": 40}})  # make sure a champion exists
    aliases_before, tags_before = registry_state()

    dry = run_dag("mlops_retraining", run_conf={"window_months": 0, "dry_run": True, "estimator": "sklearn.linear_model.LogisticRegression", "min_absolute_change": 0})

    states = task_states(dry)
    assert states["evaluate"] == "success" and states["promote"] == "skipped", states
    decision = xcom(dry, "evaluate")
    wins = decision["challenger_score"] >= decision["champion_score"] and decision["challenger_score"] >= 0.6  # min_absolute_change 0
    assert decision["decision"] == ("would_promote" if wins else "would_reject") and decision["dry_run"] is True
    aliases_after, tags_after = registry_state()
    assert aliases_after["champion"] == aliases_before["champion"]
    new = str(aliases_after["challenger"])
    assert not any(k.startswith("mlops.decision") for k in tags_after[new])


def test_table_missing_a_feature_fails_validation_and_trains_nothing(run_dag, demo_data, tmp_path) -> None:
    from airflow_mlops import tables

    frame = tables.read_table(demo_data["training"]).drop(columns=["monthly_charges"])
    bad = Path(settings.data_root().removeprefix("file://")) / "churn" / "bad_training"  # the form may only point inside the data root
    tables.write_table(frame, str(bad / "part-00000.parquet"))
    tables.finish_partition(str(bad), keep=["part-00000.parquet"])
    client = MlflowHook().client
    versions_before = len(client.search_model_versions("name='churn'"))

    run = run_dag("mlops_retraining", run_conf={"window_months": 0, "training_data_uri": bad.as_uri()})

    states = task_states(run)
    assert str(run.state) == "failed"
    assert states["validate"] == "failed" and states["train"] == "upstream_failed"
    summary = xcom(run, "validate")
    missing = [f for f in summary["failed"] if f["expectation"] == "expect_column_to_exist"]
    assert missing == [{"expectation": "expect_column_to_exist", "column": "monthly_charges", "error": "column 'monthly_charges' is missing"}]
    assert len(client.search_model_versions("name='churn'")) == versions_before


def test_a_snapshot_uri_outside_the_data_root_is_refused_before_anything_is_read(run_dag, demo_data, tmp_path, capfd) -> None:
    from airflow_mlops import tables

    outside = tmp_path / "elsewhere"  # e.g. another team's bucket the worker's credentials happen to reach
    tables.write_table(tables.read_table(demo_data["training"]).head(100), str(outside / "part-00000.parquet"))
    tables.finish_partition(str(outside), keep=["part-00000.parquet"])

    capfd.readouterr()
    run = run_dag("mlops_retraining", run_conf={"window_months": 0, "training_data_uri": outside.as_uri()})

    logged = capfd.readouterr()
    assert f"snapshot_uri {outside.as_uri()} is outside the allowed data locations" in logged.out + logged.err
    states = task_states(run)
    assert str(run.state) == "failed" and states["assemble_window"] == "failed" and states["train"] == "upstream_failed", states

"""Idempotency: every task of both reference DAGs rerun for the same logical date (``dag.test`` clears
the run's task instances and runs them again, with the next try number) changes nothing: no new
model version, no alias moved, predictions byte-identical, reports overwritten in place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops import settings
from airflow_mlops.hooks import registry
from airflow_mlops.hooks.mlflow import MlflowHook
from tests.e2e.conftest import dagbag, demo_data, run_dag, task_states, xcom  # noqa: F401  (fixtures)

pytestmark = pytest.mark.e2e
MODEL = "churn"


def local(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden staging files included) with its digest."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def registry_state() -> tuple[list[str], dict[str, str], dict[str, dict[str, str]]]:
    client = MlflowHook().client
    found = client.search_model_versions(f"name='{MODEL}'")
    tags = {str(v.version): {k: t for k, t in v.tags.items() if k != "mlops.try_number"} for v in found}
    return sorted(tags, key=int), {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()}, tags


def test_retraining_rerun_for_the_same_date_adds_no_version_and_moves_no_alias(run_dag, demo_data, small_data, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("AIRFLOW__MLOPS__ALLOWED_DATA_PREFIXES", str(small_data["dir"]))  # the form reads only allowed locations
    when = dt.datetime(2025, 6, 2, 4, tzinfo=dt.UTC)
    # force: each run trains, whatever signals and decisions earlier tests of the session left (the
    # gate's "nothing new" is tested on its own: tests/unit/operators/test_signals.py).
    conf = {"window_months": 0, "training_data_uri": small_data["training"], "hyperparameters": {"max_iter": 10}, "force": True}
    first = run_dag("mlops_retraining", logical_date=when, run_after=when, run_conf=conf)
    assert str(first.state) == "success", task_states(first)
    before = registry_state()
    trained = xcom(first, "train")
    reports = local(settings.reports_root()) / "validation" / "mlops_retraining"
    reports_before = sorted(tree(reports))

    again = run_dag("mlops_retraining", logical_date=when, run_after=when, run_conf=conf)

    states = task_states(again)
    assert str(again.state) == "success", states
    assert again.run_id == first.run_id
    retrained = xcom(again, "train")
    assert retrained["reused"] is True and retrained["version"] == trained["version"]  # no duplicate version
    assert registry_state() == before  # versions, aliases and every decision tag as they were
    if before[1].get("champion") == trained["version"]:
        assert xcom(again, "evaluate")["decision"] == "already_champion" and states["promote"] == "skipped"
    assert sorted(tree(reports)) == reports_before  # the run's report rewritten in place, none added


@pytest.fixture(scope="module")
def champion(demo_data, dagbag) -> str:  # noqa: F811
    hook = MlflowHook()
    if hook.registry.alias_version(MODEL, registry.CHAMPION) is None:
        run = dagbag.get_dag("mlops_retraining").test(run_conf={"window_months": 0, "hyperparameters": {"max_iter": 20}})
        assert str(run.state) == "success", task_states(run)
    return str(hook.registry.alias_version(MODEL, registry.CHAMPION))


def test_batch_prediction_rerun_is_byte_identical_and_rewrites_reports_in_place(run_dag, champion, demo_data) -> None:  # noqa: F811
    """(Moved from tests/e2e/test_batch_prediction_dag.py and extended to the reports.)"""
    when = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)  # scores 2025-02
    first = run_dag("mlops_batch_prediction", logical_date=when, run_after=when)
    assert str(first.state) == "success", task_states(first)
    root = local(settings.data_root()) / MODEL
    predictions = root / "predictions" / "month=2025-02"
    reports = local(settings.reports_root())
    outputs: dict[str, Any] = {
        "predictions": tree(predictions),
        "drift": sorted(tree(reports / "drift" / MODEL / "period=2025-02")),
        "validation": sorted(tree(reports / "validation" / "mlops_batch_prediction")),
        "registry": registry_state(),
    }

    again = run_dag("mlops_batch_prediction", logical_date=when, run_after=when)

    assert str(again.state) == "success", task_states(again)
    assert tree(predictions) == outputs["predictions"]  # byte-identical, _SUCCESS included, no stray file
    assert [re.sub(r"\.[0-9a-f]{12}\.", ".", name) for name in sorted(outputs["predictions"])] == ["_SUCCESS", "part-00000.parquet", "part-00001.parquet"]
    assert sorted(tree(reports / "drift" / MODEL / "period=2025-02")) == outputs["drift"] == ["report.html", "summary.json"]
    assert sorted(tree(reports / "validation" / "mlops_batch_prediction")) == outputs["validation"]
    assert registry_state() == outputs["registry"]
    assert xcom(again, "publish")["model_versions"] == [champion]

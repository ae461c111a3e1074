"""A team's own DAGs, built from the public blocks alone (nothing from ``dags/``), run exactly as shipped
in ``examples/``: another model name, another spec, another data folder, data written the way other
tools write it (pandas parquet with no marker; semicolon CSV with no marker)."""

from __future__ import annotations

import datetime as dt
import os
import runpy
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from airflow_mlops import settings, signals, tables
from airflow_mlops.hooks.mlflow import MlflowHook
from tests.conftest import REPO
from tests.e2e.conftest import error_lines, pending_signals, raised_signals, task_states, xcom

pytestmark = pytest.mark.e2e
EXAMPLES = REPO / "examples"


def data_folder(name: str, writer: str) -> Path:
    """Write the example's layout with its own script; the files landed two minutes ago (the sensors'
    60 s quiet time has passed)."""
    root = Path(settings.data_root().removeprefix("file://")) / name
    runpy.run_path(str(EXAMPLES / writer))["write_layout"](str(root))
    landed = time.time() - 120
    for part in root.rglob("*.*"):
        os.utime(part, (landed, landed))
    return root


def examples_bag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES))
    assert bag.import_errors == {}
    return bag


def month_run(bag: Any, dag_id: str, month: str) -> Any:
    """The scheduled run that works on ``month`` (its logical date is the 1st of the month after)."""
    year, number = map(int, month.split("-"))
    logical = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=dt.UTC)
    return bag.get_dag(dag_id).test(logical_date=logical)


def test_the_dag_files_compose_public_blocks_only() -> None:
    for path in EXAMPLES.glob("team_*_dag.py"):
        text = path.read_text()
        assert "from dags" not in text and "import dags" not in text, path.name
        assert "@task" not in text, f"{path.name} keeps behaviour in a DAG-local function"


def test_a_regression_team_trains_and_scores_semicolon_csv_said_once_in_default_args(airflow_db, capfd) -> None:
    root = data_folder("diabetes", "diabetes_data.py")
    bag = examples_bag()
    capfd.readouterr()

    trained = bag.get_dag("team_diabetes_training").test()
    scored = month_run(bag, "team_diabetes_scoring", "2025-01")

    logged = capfd.readouterr()
    assert error_lines(logged.out + logged.err) == []
    for run in (trained, scored):
        assert str(run.state) == "success", task_states(run)
    train = xcom(trained, "retrain.train")
    assert train["train_rows"] + train["holdout_rows"] == 342 and set(train["metrics"]) >= {"rmse", "mae", "r2"}
    assert "Ridge" in MlflowHook().registry.get_version("diabetes", train["version"]).tags["mlops.estimator"]
    decision = xcom(trained, "retrain.promote")
    assert (decision["decision"], decision["metric"]) == ("promoted", "rmse")
    # Each of the month's two CSV files was read with the DAG's default_args (the mapped predict too).
    plan = xcom(scored, "score.plan")
    assert [(p["input_uri"].rsplit("/", 1)[-1], p["csv_options"], p["require_marker"]) for p in plan] == [
        ("part-0.csv", {"delimiter": ";"}, False), ("part-1.csv", {"delimiter": ";"}, False),
    ]  # fmt: skip
    published = xcom(scored, "score.publish")
    assert (published["files"], published["rows"], published["model_versions"]) == (2, 100, [train["version"]])
    predictions = tables.read_table(str(root / "predictions" / "month=2025-01"))
    assert sorted(predictions["patient_id"]) == list(range(342, 442)) and predictions["prediction"].between(0, 400).all()


def test_a_team_runs_the_whole_monthly_loop_from_the_blocks_on_marker_free_pandas_data(airflow_db, capfd) -> None:
    """Train -> score 2009-01..03 (drift on the Gentoo-only March) -> quality on the labels feed -> the
    drift signal retrains on the labelled months -> a second retraining run finds nothing new."""
    root = data_folder("penguins", "penguins_data.py")
    bag = examples_bag()
    capfd.readouterr()
    # dag.test() keeps a run's conf in the DAG object's params: every training run passes its own.
    first = bag.get_dag("team_penguins_training").test(run_conf={"window_months": 0})
    scoring = {month: month_run(bag, "team_penguins_scoring", month) for month in ("2009-01", "2009-02", "2009-03")}
    quality = {month: month_run(bag, "team_penguins_monitoring", month) for month in scoring}
    raised = raised_signals("penguins")
    retrained = bag.get_dag("team_penguins_training").test(run_conf={"window_months": 2})
    again = bag.get_dag("team_penguins_training").test(run_conf={"window_months": 2})

    logged = capfd.readouterr()
    assert error_lines(logged.out + logged.err) == []
    for run in (first, *scoring.values(), *quality.values(), retrained, again):
        assert str(run.state) == "success", (run.dag_id, task_states(run))
    assert xcom(first, "retrain.promote")["decision"] == "promoted" and xcom(first, "retrain.train")["metrics"]["accuracy"] > 0.9
    v1 = xcom(first, "retrain.train")["version"]

    drift = {month: xcom(run, "drift") for month, run in scoring.items()}
    assert {m: d["drift_detected"] for m, d in drift.items()} == {"2009-01": False, "2009-02": False, "2009-03": True}
    for month, run in scoring.items():  # each month published by the scoring block, with one pinned version
        manifest = tables.read_manifest(str(root / "predictions" / f"month={month}"))
        assert manifest["model_versions"] == [v1] and manifest["rows"] == xcom(run, "score.publish")["rows"]
    march = pd.read_parquet(root / "predictions" / "month=2009-03")
    assert len(march) == 44 and (march["prediction"] == "Gentoo").mean() > 0.9

    judged = {month: xcom(run, "quality") for month, run in quality.items()}
    assert all(j["metric"] == "accuracy" and j["value"] > 0.9 and j["decayed"] is False for j in judged.values()), judged
    assert [(s["kind"], s["period"], s["model_version"]) for s in raised] == [("drift", "2009-03", v1)]  # no decay signal

    states = task_states(retrained)
    assert states["retrain.train"] == "success", states
    window = xcom(retrained, "retrain.assemble_window")
    assert (window["train_months"], window["holdout_month"]) == (["2009-01", "2009-02"], "2009-03")
    # Both judged on the drifted month itself (one class: judged on labels, the metric is accuracy).
    judged_v2 = xcom(retrained, "retrain.promote")
    assert judged_v2["decision"] == "promoted" and judged_v2["challenger_score"] > judged_v2["champion_score"] == judged["2009-03"]["value"]
    answered = xcom(retrained, "retrain.answer_signals")
    assert answered == {"answered": ["drift 2009-03"], "decision": "promoted", "version": judged_v2["challenger_version"]}
    assert pending_signals("penguins") == set()
    version = MlflowHook().registry.get_version("penguins", answered["version"])
    assert version.tags[signals.ANSWERED_TAG] == "drift 2009-03"

    # No signal left: the window falls back to the snapshot alone, which v1 learnt from: nothing new, no version.
    assert task_states(again)["retrain.nothing_new"] == "skipped" and task_states(again)["retrain.train"] == "skipped"
    assert len(MlflowHook().client.search_model_versions("name='penguins'")) == 2

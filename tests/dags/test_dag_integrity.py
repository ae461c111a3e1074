"""Every DAG imports cleanly, parses fast, and exposes a useful trigger form."""

from __future__ import annotations

import time

import pytest
from airflow.sdk.exceptions import ParamValidationError

from tests.conftest import REPO


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


def test_parse_is_fast(bag) -> None:
    """A reparse in a warm process stays far from the heavy-import cost (GX alone is ~7 s)."""
    from airflow.dag_processing.dagbag import DagBag

    start = time.perf_counter()
    DagBag(dag_folder=str(REPO / "dags" / "mlops_retraining.py"))
    assert time.perf_counter() - start < 2.0


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
    assert schema["estimator"]["enum"][0] == "sklearn.ensemble.HistGradientBoostingClassifier"
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

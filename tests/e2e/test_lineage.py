"""OpenLineage end to end: the real provider's listener, a file transport, dag.test() of both reference DAGs.

The provider's plugin (``airflow.plugins`` entry point) decides when it is imported whether its listener
is on: only with a configured transport. The suite configures none (so every other test runs without
lineage); the ``openlineage_events`` fixture configures a file transport for this module, re-imports the
plugin and drops Airflow's cached plugins and listener managers so the listener is registered, and undoes
all of it afterwards. The events the listener writes are parsed and checked dataset by dataset.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops import settings
from airflow_mlops.example_data import SPEC_PATH
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.spec import FeatureSpec
from tests.e2e.conftest import error_lines, task_states, xcom

pytestmark = pytest.mark.e2e

SPEC = FeatureSpec.load(str(SPEC_PATH))
DATA = Path(settings.data_root().removeprefix("file://")) / "churn"
#: What the provider logs when an operator's lineage method raises (a warning, so checked apart from [error]).
EXTRACTION_FAILED = "OpenLineage method failed"


def _reset_listeners() -> None:
    """Make Airflow load its plugins and build its listener managers again, with the current configuration."""
    from airflow import plugins_manager as core_plugins
    from airflow.listeners import listener as core_listener
    from airflow.providers.openlineage.plugins import listener as ol_listener
    from airflow.sdk import listener as sdk_listener
    from airflow.sdk import plugins_manager as sdk_plugins

    previous = ol_listener.get_openlineage_listener()
    if previous._executor is not None:  # the pool that emits DAG-run events, started on first use
        previous._executor.shutdown(wait=True)
    ol_listener.get_openlineage_listener.cache_clear()  # a new adapter reads the new transport
    plugin = sys.modules.get("airflow.providers.openlineage.plugins.openlineage")
    if plugin is not None:
        importlib.reload(plugin)  # its class body chose the listeners at import
    for cached in (core_plugins._get_plugins, sdk_plugins._get_plugins, core_listener.get_listener_manager, sdk_listener.get_listener_manager):
        cached.cache_clear()


class Events:
    """The OpenLineage events of the file transport, grouped by DAG run and task."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def of_run(self, dag_run: Any) -> dict[str, list[dict[str, Any]]]:
        """``{task_id: [event, ...]}`` of the task events of ``dag_run`` (START, COMPLETE, FAIL)."""
        found: dict[str, list[dict[str, Any]]] = {}
        for line in self.path.read_text().splitlines():
            event = json.loads(line)
            airflow = event["run"]["facets"].get("airflow", {})
            if airflow.get("dagRun", {}).get("run_id") == dag_run.run_id and airflow.get("task"):
                found.setdefault(event["job"]["name"].removeprefix(f"{dag_run.dag_id}."), []).append(event)
        return found


@pytest.fixture(scope="module")
def openlineage_events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Events]:
    """The OpenLineage provider enabled with a file transport for this module; its events, parsed."""
    path = tmp_path_factory.mktemp("openlineage") / "events.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps({"type": "file", "log_file_path": str(path), "append": True}))
        patch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "mlops-tests")
        from airflow.providers.openlineage import conf as ol_conf

        assert not ol_conf.is_disabled()
        _reset_listeners()
        from airflow.providers.openlineage.plugins.openlineage import OpenLineageProviderPlugin

        assert len(OpenLineageProviderPlugin.listeners) == 1  # the listener is registered, as on a worker
        yield Events(path)
    _reset_listeners()  # the environment is restored: the plugin is disabled again, as for the rest of the suite
    from airflow.providers.openlineage.plugins.openlineage import OpenLineageProviderPlugin

    assert OpenLineageProviderPlugin.listeners == []


@pytest.fixture(scope="module")
def fresh_registry(demo_data: Any) -> None:
    """Start without a churn model, so the first retraining promotes (no champion before it)."""
    hook = MlflowHook()
    if hook.registry.alias_version("churn", "challenger") is not None:
        hook.client.delete_registered_model("churn")


def only(events: list[dict[str, Any]], event_type: str) -> dict[str, Any]:
    """The one event of ``event_type`` in ``events``."""
    matching = [e for e in events if e["eventType"] == event_type]
    assert len(matching) == 1, [e["eventType"] for e in events]
    return matching[0]


def names(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def schema_fields(dataset: dict[str, Any]) -> list[str]:
    return [f["name"] for f in dataset["facets"]["schema"]["fields"]]


def test_retraining_reports_tables_model_version_run_and_decision(run_dag, demo_data, fresh_registry, openlineage_events, capfd) -> None:
    capfd.readouterr()
    run = run_dag("mlops_retraining", run_conf={"window_months": 0, "hyperparameters": {"max_iter": 40}})
    logged = capfd.readouterr()
    assert str(run.state) == "success", task_states(run)
    assert error_lines(logged.out + logged.err) == []
    assert EXTRACTION_FAILED not in logged.out + logged.err
    events = openlineage_events.of_run(run)
    training = str(DATA / "training")
    tracking_uri = MlflowHook().config.tracking_uri
    trained = xcom(run, "train")
    version = trained["version"]

    assert names(only(events["wait_for_training_data"], "COMPLETE")["inputs"]) == [("file", training)]
    window = only(events["assemble_window"], "COMPLETE")  # window 0: the snapshot alone, used where it is
    assert names(window["inputs"]) == [("file", training)] and window["outputs"] == []

    validate = only(events["validate"], "COMPLETE")
    assert names(validate["inputs"]) == [("file", training)]
    table = validate["inputs"][0]
    assert schema_fields(table) == SPEC.training_columns()
    types = {f["name"]: f.get("type") for f in table["facets"]["schema"]["fields"]}
    assert types["tenure_months"] == "double" and types["contract"] == "string"
    assertions = table["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert len(assertions) == xcom(run, "validate")["evaluated"]
    assert {"assertion": "expect_column_to_exist", "column": "monthly_charges", "success": True} in [
        {k: a.get(k) for k in ("assertion", "column", "success")} for a in assertions
    ]
    assert all(a["success"] is True for a in assertions)
    assert table["inputFacets"]["dataQualityMetrics"]["rowCount"] == 8000

    train = only(events["train"], "COMPLETE")
    assert names(train["inputs"]) == [("file", training)]
    assert schema_fields(train["inputs"][0]) == SPEC.training_columns()
    assert names(train["outputs"]) == [(tracking_uri, f"models/churn/{version}")]
    assert schema_fields(train["outputs"][0]) == SPEC.feature_columns
    assert train["outputs"][0]["facets"]["version"]["datasetVersion"] == version
    mlflow_run = train["run"]["facets"]["mlops_mlflowRun"]
    assert mlflow_run["runId"] == MlflowHook().client.get_model_version("churn", version).run_id
    assert mlflow_run["trackingUri"] == tracking_uri and mlflow_run["modelVersion"] == version
    assert mlflow_run["metrics"] == trained["metrics"] and 0.5 < mlflow_run["metrics"]["roc_auc"] <= 1
    assert mlflow_run["params"]["estimator"] == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert mlflow_run["params"]["param_max_iter"] == "40" and mlflow_run["params"]["train_rows"] == str(trained["train_rows"])
    assert mlflow_run["_schemaURL"].endswith("lineage_facets.json#/$defs/MlflowRunFacet") and "airflow-mlops" in mlflow_run["_producer"]

    dry = only(events["evaluate"], "COMPLETE")["run"]["facets"]["mlops_promotion"]
    assert dry["decision"] == "would_promote" and dry["dryRun"] is True

    promote = only(events["promote"], "COMPLETE")
    decision = promote["run"]["facets"]["mlops_promotion"]
    assert (decision["decision"], decision.get("championBefore"), decision["championAfter"]) == ("promoted", None, version)  # nulls are left out
    assert decision["challengerVersion"] == version and decision["reason"] == xcom(run, "promote")["reason"]
    assert names(promote["inputs"]) == [(tracking_uri, f"models/churn/{version}")]  # no champion before it
    assert names(promote["outputs"]) == [(tracking_uri, f"models/churn/{version}")]


def test_failed_validation_reports_the_failed_assertion_on_the_missing_column(run_dag, demo_data, openlineage_events) -> None:
    from airflow_mlops import tables

    frame = tables.read_table(demo_data["training"]).drop(columns=["monthly_charges"]).head(500)
    bad = DATA / "lineage_bad_training"
    tables.write_table(frame, str(bad / "part-00000.parquet"))
    tables.finish_partition(str(bad), keep=["part-00000.parquet"])

    run = run_dag("mlops_retraining", run_conf={"window_months": 0, "training_data_uri": bad.as_uri()})

    assert task_states(run)["validate"] == "failed"
    failed = only(openlineage_events.of_run(run)["validate"], "FAIL")
    assert names(failed["inputs"]) == [("file", str(bad))]
    assertions = failed["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
    exists = {a["column"]: a["success"] for a in assertions if a["assertion"] == "expect_column_to_exist"}
    assert exists["monthly_charges"] is False
    assert {c: ok for c, ok in exists.items() if c != "monthly_charges"} == {c: True for c in SPEC.training_columns() if c != "monthly_charges"}
    assert failed["inputs"][0]["inputFacets"]["dataQualityMetrics"]["rowCount"] == 500


def test_batch_prediction_reports_partition_drift_model_and_predictions(run_dag, demo_data, openlineage_events, capfd) -> None:
    import datetime as dt

    hook = MlflowHook()
    if hook.registry.alias_version("churn", "champion") is None:  # this module's retraining made one, unless run alone
        assert str(run_dag("mlops_retraining", run_conf={"window_months": 0, "hyperparameters": {"max_iter": 40}}).state) == "success"
    champion = str(hook.registry.alias_version("churn", "champion"))
    capfd.readouterr()
    run = run_dag("mlops_batch_prediction", logical_date=dt.datetime(2025, 4, 1, tzinfo=dt.UTC))  # scores 2025-03, the drifted month
    logged = capfd.readouterr()
    assert str(run.state) == "success", task_states(run)
    assert error_lines(logged.out + logged.err) == []
    assert EXTRACTION_FAILED not in logged.out + logged.err
    events = openlineage_events.of_run(run)
    partition = str(DATA / "monthly" / "month=2025-03")
    tracking_uri = MlflowHook().config.tracking_uri

    assert names(only(events["wait_for_partition"], "COMPLETE")["inputs"]) == [("file", partition)]
    validate = only(events["validate"], "COMPLETE")
    assert names(validate["inputs"]) == [("file", partition)]
    assert schema_fields(validate["inputs"][0]) == SPEC.scoring_columns()

    summary = xcom(run, "drift_check")
    drift = only(events["drift_check"], "COMPLETE")
    assert names(drift["inputs"]) == [("file", partition), (tracking_uri, f"models/churn/{champion}")]
    checked = drift["inputs"][0]
    assert schema_fields(checked) == SPEC.feature_columns
    assert checked["inputFacets"]["dataQualityMetrics"]["rowCount"] == summary["rows"]["current"] == 4000
    facet = checked["facets"]["mlops_drift"]
    assert facet["detected"] is True and facet["share"] == summary["share"] and facet["driftShare"] == 0.2
    assert sorted(c for c, test in facet["columns"].items() if test["drifted"]) == summary["drifted_columns"]
    assert set(facet["columns"]) == set(SPEC.feature_columns)
    assert all(isinstance(test["score"], float) and test["method"] == summary["methods"][c] for c, test in facet["columns"].items())
    per_column = {a["column"]: a["success"] for a in checked["inputFacets"]["dataQualityAssertions"]["assertions"] if a["assertion"] == "no_drift"}
    assert per_column == {c: c not in summary["drifted_columns"] for c in SPEC.feature_columns}
    assert per_column["monthly_charges"] is False

    predictions = sorted(events["predict"], key=lambda e: e["run"]["facets"]["airflow"]["taskInstance"].get("map_index", 0))
    completed = [e for e in predictions if e["eventType"] == "COMPLETE"]
    assert len(completed) == 2  # one mapped task per file
    for event in completed:
        (source_ns, source), model = names(event["inputs"])
        assert source_ns == "file" and source.startswith(partition + "/part-") and model == (tracking_uri, f"models/churn/{champion}")
        assert schema_fields(event["inputs"][0]) == SPEC.scoring_columns()
        [(target_ns, target)] = names(event["outputs"])
        assert target_ns == "file" and target.startswith(str(DATA / "predictions" / "month=2025-03" / "_staging") + "/")
        assert event["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 2000

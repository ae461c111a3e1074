"""The OpenLineage glue (airflow_mlops.lineage): naming, facets, custom facets, and lineage being optional."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import attr
import pytest
from openlineage.client.serde import Serde

from airflow_mlops import lineage
from airflow_mlops.example_data import SPEC_PATH, churn
from airflow_mlops.operators.window import TrainingWindowOperator
from airflow_mlops.spec import FeatureSpec
from tests.helpers import task_context

SPEC = FeatureSpec.load(str(SPEC_PATH))


def as_json(facet: object) -> dict:
    return json.loads(Serde.to_json(facet))


# -- naming -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file:///data/churn/monthly/month=2025-01/", ("file", "/data/churn/monthly/month=2025-01")),
        ("file:///data/churn/part-00000.parquet", ("file", "/data/churn/part-00000.parquet")),
        ("file:///data/a/../b/x.parquet", ("file", "/data/b/x.parquet")),
        ("file://localhost/data/x.csv", ("file", "/data/x.csv")),
        ("file://nfs-1/data/x.csv", ("file://nfs-1", "/data/x.csv")),
        ("/data/churn/training", ("file", "/data/churn/training")),
        ("s3://mlops/churn/monthly/month=2025-01/", ("s3://mlops", "churn/monthly/month=2025-01")),
        ("s3://mlops/churn/part-00000.parquet", ("s3://mlops", "churn/part-00000.parquet")),
        ("s3://aws_moto@mlops/churn/x.parquet", ("s3://mlops", "churn/x.parquet")),  # ObjectStoragePath's conn_id form
        ("s3://mlops", ("s3://mlops", "/")),
        ("gcs://bucket/key.parquet", ("gs://bucket", "key.parquet")),
    ],
)
def test_dataset_names_follow_the_openlineage_naming_spec(uri: str, expected: tuple[str, str]) -> None:
    assert lineage.dataset_name(uri) == expected


def test_a_relative_path_is_named_by_its_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    assert lineage.dataset_name("data/x.parquet") == ("file", str(tmp_path / "data" / "x.parquet"))


def test_names_agree_with_the_providers_own_asset_converters_and_the_client_naming() -> None:
    from airflow.providers.amazon.aws.assets.s3 import convert_asset_to_openlineage as s3_dataset
    from airflow.providers.common.io.assets.file import convert_asset_to_openlineage as file_dataset
    from airflow.sdk import Asset
    from openlineage.client.naming.dataset import S3, LocalFileSystem

    local = file_dataset(Asset(uri="file:///data/churn/x.parquet"), None)
    remote = s3_dataset(Asset(uri="s3://mlops/churn/x.parquet"), None)

    assert lineage.dataset_name("file:///data/churn/x.parquet") == (local.namespace, local.name)
    assert lineage.dataset_name("s3://mlops/churn/x.parquet") == (remote.namespace, remote.name)
    naming = LocalFileSystem(path="/data/churn/x.parquet")
    assert lineage.dataset_name("/data/churn/x.parquet") == (naming.get_namespace(), naming.get_name())
    naming_s3 = S3(bucket_name="mlops", object_key="churn/x.parquet")
    assert lineage.dataset_name("s3://mlops/churn/x.parquet") == (naming_s3.get_namespace(), naming_s3.get_name())


def test_model_versions_are_named_in_the_tracking_namespace_without_credentials() -> None:
    dataset = lineage.model_version_dataset("https://ci:s3cret@mlflow.example.com:5000", "churn", 7, output=True)

    assert (dataset.namespace, dataset.name) == ("https://mlflow.example.com:5000", "models/churn/7")
    assert type(dataset).__name__ == "OutputDataset"
    assert lineage.without_credentials("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


def test_the_tracking_uri_is_read_only_when_execute_resolved_it() -> None:
    operator = SimpleNamespace()
    assert lineage.resolved_tracking_uri(operator) is None  # no hook built: lineage opens no connection

    operator.mlflow_hook = SimpleNamespace()  # built, never used
    assert lineage.resolved_tracking_uri(operator) is None

    operator.mlflow_hook.config = SimpleNamespace(tracking_uri="http://user:pw@mlflow:5000")
    assert lineage.resolved_tracking_uri(operator) == "http://mlflow:5000"


# -- facets -----------------------------------------------------------------------------------------


def test_schema_facet_lists_the_spec_columns_with_types_and_roles() -> None:
    fields = as_json(lineage.schema_facet(SPEC))["fields"]

    assert [f["name"] for f in fields] == SPEC.training_columns()
    by_name = {f["name"]: f for f in fields}
    assert by_name["tenure_months"]["type"] == "double" and by_name["tenure_months"]["description"] == "numeric feature"
    assert by_name["contract"]["type"] == "string" and by_name["contract"]["description"] == "categorical feature"
    assert "type" not in by_name["customer_id"] and by_name["customer_id"]["description"] == "id"
    assert by_name["churned"]["description"] == "target" and by_name["snapshot_date"]["description"] == "timestamp"
    assert [f["name"] for f in as_json(lineage.schema_facet(SPEC, SPEC.feature_columns))["fields"]] == SPEC.feature_columns


def test_gx_results_become_one_assertion_per_expectation() -> None:
    def evr(kind: str, success: bool, result: dict, **kwargs: object) -> SimpleNamespace:
        return SimpleNamespace(expectation_config=SimpleNamespace(type=kind, kwargs=kwargs), success=success, result=result)

    result = SimpleNamespace(
        results=[
            evr("expect_column_to_exist", False, {}, column="monthly_charges"),
            evr("expect_column_values_to_be_between", True, {"unexpected_count": 0}, column="age", min_value=18, max_value=100),
            evr("expect_table_row_count_to_be_between", True, {"observed_value": 500}, min_value=1),
        ]
    )

    facet = as_json(lineage.assertions_facet(lineage.gx_assertions(result)))

    assert [(a["assertion"], a.get("column"), a["success"]) for a in facet["assertions"]] == [
        ("expect_column_to_exist", "monthly_charges", False),
        ("expect_column_values_to_be_between", "age", True),
        ("expect_table_row_count_to_be_between", None, True),
    ]
    assert facet["assertions"][1]["expected"] == str({"min_value": 18, "max_value": 100}) and facet["assertions"][1]["actual"] == "0"
    assert facet["assertions"][2]["actual"] == "500"
    assert facet["_schemaURL"].endswith("DataQualityAssertionsDatasetFacet")


def test_metrics_facet_carries_rows_and_column_metrics() -> None:
    facet = as_json(lineage.metrics_facet(4000, {"age": {"nullCount": 3}}))

    assert facet["rowCount"] == 4000 and facet["columnMetrics"]["age"]["nullCount"] == 3
    assert facet["_schemaURL"].endswith("DataQualityMetricsInputDatasetFacet")


def test_drift_columns_read_each_columns_test_from_the_evidently_report() -> None:
    report = {
        "metrics": [
            {"config": {"type": "evidently:metric_v2:DriftedColumnsCount"}, "value": {"share": 0.5}},
            {"config": {"type": "evidently:metric_v2:ValueDrift", "column": "age", "method": "ks", "threshold": 0.05}, "value": 0.4},
            {"config": {"type": "evidently:metric_v2:ValueDrift", "column": "contract", "method": "jensenshannon", "threshold": 0.1}, "value": 0.3},
        ]
    }

    assert lineage.drift_columns(report, ["contract"]) == {
        "age": {"method": "ks", "score": 0.4, "threshold": 0.05, "drifted": False},
        "contract": {"method": "jensenshannon", "score": 0.3, "threshold": 0.1, "drifted": True},
    }


def test_the_drift_reference_is_a_table_or_a_model_version() -> None:
    assert lineage.parse_reference("runs:/abc123/reference (churn v12)") == (None, "churn", "12")
    assert lineage.parse_reference("s3://mlops/churn/reference/") == ("s3://mlops/churn/reference/", None, None)


def test_custom_facets_name_their_producer_and_a_schema_shipped_with_the_package() -> None:
    shipped = json.loads((Path(lineage.__file__).parent / "lineage_facets.json").read_text())["$defs"]
    examples = {
        "mlops_mlflowRun": {"trackingUri": "sqlite:///m.db", "runId": "r1"},
        "mlops_promotion": {"modelName": "churn", "decision": "promoted"},
        "mlops_drift": {"period": "2025-01", "share": 0.25, "driftShare": 0.2, "detected": True},
        "mlops_modelQuality": {"period": "2025-01", "modelName": "churn", "modelVersion": "3", "metric": "roc_auc", "value": 0.8},
    }
    assert set(examples) == set(lineage.custom_facets())

    for key, fields in examples.items():
        facet = as_json(lineage.custom_facet(key, **fields))
        definition = facet["_schemaURL"].partition("#/$defs/")[2]
        assert facet["_schemaURL"] == f"{lineage.SCHEMA_URL}#/$defs/{definition}"
        assert facet["_producer"] == lineage.PRODUCER
        declared = shipped[definition]["allOf"][1]
        mandatory = {f.name for f in attr.fields(lineage.custom_facets()[key]) if f.default is attr.NOTHING and not f.name.startswith("_")}
        assert set(declared["required"]) == mandatory == set(fields)  # the fields the class requires are the schema's
        assert set(facet) - {"_producer", "_schemaURL"} <= set(declared["properties"])


# -- operators -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def feeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lineage-window")
    churn.generate_dataset(str(root), rows=300, months=["2025-01", "2025-02"], training_rows=300, rows_per_file=300, seed=3)
    return root


def window(root: Path, out: Path) -> TrainingWindowOperator:
    return TrainingWindowOperator(
        task_id="assemble_window", features_uri=f"{root}/monthly/month={{month}}", labels_uri=f"{root}/labels/month={{month}}",
        snapshot_uri=str(root / "training"), spec_uri=str(SPEC_PATH), output_uri=str(out), window_months=1, end_month="2025-02",
    )  # fmt: skip


def test_an_operator_reports_what_its_execute_read_and_wrote(feeds: Path, tmp_path: Path) -> None:
    operator = window(feeds, tmp_path / "w")
    summary = operator.execute(task_context())

    reported = operator.get_openlineage_facets_on_complete(None)

    assert operator.lineage_summary == summary
    assert [(d.namespace, d.name) for d in reported.inputs] == [
        ("file", str(feeds / "monthly" / "month=2025-01")), ("file", str(feeds / "labels" / "month=2025-01")),
        ("file", str(feeds / "monthly" / "month=2025-02")), ("file", str(feeds / "labels" / "month=2025-02")),
    ]  # fmt: skip
    assert [(d.namespace, d.name) for d in reported.outputs] == [("file", str(tmp_path / "w" / "holdout")), ("file", str(tmp_path / "w" / "train"))]
    assert [d.outputFacets["outputStatistics"].rowCount for d in reported.outputs] == [summary["rows"]["holdout"], summary["rows"]["train"]]
    assert [f.name for f in reported.outputs[0].facets["schema"].fields] == SPEC.training_columns()


def test_without_the_openlineage_provider_operators_run_and_report_nothing(feeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The `lineage` extra not installed: every OpenLineage module fails to import.
    for name in [m for m in sys.modules if m.startswith(("openlineage", "airflow.providers.openlineage"))] + ["openlineage", "airflow.providers.openlineage"]:
        monkeypatch.setitem(sys.modules, name, None)
    assert lineage.available() is False
    operator = window(feeds, tmp_path / "w")

    summary = operator.execute(task_context())

    assert summary["holdout_month"] == "2025-02" and summary["train_months"] == ["2025-01"]
    assert operator.get_openlineage_facets_on_complete(None) is None


def test_the_suite_runs_without_lineage_unless_a_transport_is_configured() -> None:
    from airflow.providers.openlineage import conf

    assert conf.transport() == {}
    assert conf.is_disabled() is True  # other tests never emit events; tests/e2e/test_lineage.py enables it for itself


def with_state(operator: object, summary: dict, tracking_uri: str = "http://mlflow:5000") -> object:
    """``operator`` as its ``execute`` leaves it: the summary, the spec, a resolved MLflow configuration."""
    operator.lineage_summary = summary
    operator.lineage_spec = SPEC
    operator.__dict__["mlflow_hook"] = SimpleNamespace(config=SimpleNamespace(tracking_uri=tracking_uri))
    return operator


def test_quality_reports_the_metric_against_its_baseline_on_the_predictions() -> None:
    from airflow_mlops.operators.quality import ModelQualityCheckOperator

    operator = ModelQualityCheckOperator(
        task_id="quality", predictions_uri="s3://mlops/churn/predictions/month=2025-01/", labels_uri="s3://mlops/churn/labels/month=2025-01/",
        spec_uri=str(SPEC_PATH), model_name="churn", period="2025-01",
    )  # fmt: skip
    summary = {
        "period": "2025-01", "model_version": "4", "metric": "roc_auc", "value": 0.70, "baseline": 0.80, "limit": 0.76, "drop": 0.10,
        "decayed": True, "coverage": 0.9, "metrics": {"roc_auc": 0.70, "f1": 0.5},
        "rows": {"predictions": 1000, "labels": 950, "labelled": 900, "unscored_labels": 50},
        "segments": [
            {"segment": "contract", "value": "one-year", "rows": 300, "roc_auc": 0.79, "baseline": 0.8, "judged": True, "decayed": False},
            {"segment": "contract", "value": "two-year", "rows": 10, "roc_auc": 0.5, "baseline": 0.8, "judged": False, "decayed": False},
        ],
    }  # fmt: skip

    reported = with_state(operator, summary).get_openlineage_facets_on_complete(None)

    assert [(d.namespace, d.name) for d in reported.inputs] == [
        ("s3://mlops", "churn/predictions/month=2025-01"), ("s3://mlops", "churn/labels/month=2025-01"), ("http://mlflow:5000", "models/churn/4"),
    ]  # fmt: skip
    predictions, labels = reported.inputs[0], reported.inputs[1]
    quality = as_json(predictions.facets["mlops_modelQuality"])
    assert (quality["metric"], quality["value"], quality["baseline"], quality["limit"], quality["decayed"]) == ("roc_auc", 0.70, 0.80, 0.76, True)
    assert predictions.inputFacets["dataQualityMetrics"].rowCount == 900 and labels.inputFacets["dataQualityMetrics"].rowCount == 950
    checks = [(a.assertion, a.column, a.success, a.actual) for a in predictions.inputFacets["dataQualityAssertions"].assertions]
    assert checks == [("no_decay", None, False, "0.7"), ("no_decay", "contract", True, "0.79")]  # the unjudged segment is left out
    assert [f.name for f in labels.facets["schema"].fields] == ["customer_id", "churned"]


def test_a_rejection_keeps_the_champion_and_a_rollback_restores_one() -> None:
    from airflow_mlops.operators.registry import MlflowPromoteModelOperator, MlflowRollbackModelOperator

    promote = MlflowPromoteModelOperator(task_id="promote", model_name="churn", spec_uri=str(SPEC_PATH))
    rejected = {
        "model_name": "churn", "decision": "rejected", "reason": "min_absolute_change failed", "metric": "roc_auc", "challenger_version": "5",
        "challenger_score": 0.79, "champion_version": "4", "champion_score": 0.8, "dry_run": False, "evaluation_run_id": "e1", "approver": None,
    }  # fmt: skip

    reported = with_state(promote, rejected).get_openlineage_facets_on_complete(None)

    assert [(d.namespace, d.name) for d in reported.inputs] == [("http://mlflow:5000", "models/churn/5"), ("http://mlflow:5000", "models/churn/4")]
    assert [(d.namespace, d.name) for d in reported.outputs] == [("http://mlflow:5000", "models/churn/5")]  # the decision is tagged on it
    decision = as_json(reported.run_facets["mlops_promotion"])
    assert (decision["decision"], decision["championBefore"], decision["championAfter"]) == ("rejected", "4", "4")
    lost = rejected | {"reason": "lost a race: the champion moved from v4 to v6 during evaluation"}
    decision = as_json(with_state(promote, lost).get_openlineage_facets_on_complete(None).run_facets["mlops_promotion"])
    assert (decision["championBefore"], "championAfter" in decision) == ("4", False)  # the winner is not claimed

    rollback = MlflowRollbackModelOperator(task_id="rollback", model_name="churn", reason="bad month")
    restored = {"model_name": "churn", "champion_version": "3", "replaced_version": "5", "reason": "bad month"}

    reported = with_state(rollback, restored).get_openlineage_facets_on_complete(None)

    assert [(d.namespace, d.name) for d in reported.outputs] == [("http://mlflow:5000", "models/churn/3")]
    decision = as_json(reported.run_facets["mlops_promotion"])
    assert (decision["decision"], decision["championBefore"], decision["championAfter"], decision["reason"]) == ("rollback", "5", "3", "bad month")


def test_a_task_that_failed_before_its_summary_reports_only_what_it_was_given() -> None:
    from airflow_mlops.operators.inference import MlflowBatchPredictOperator

    operator = MlflowBatchPredictOperator(
        task_id="predict", input_uri="s3://mlops/churn/monthly/month=2025-01/part-0.parquet", output_uri="s3://mlops/out/part-0.parquet",
        spec_uri=str(SPEC_PATH), model_name="churn",
    )  # fmt: skip
    operator.lineage_spec = SPEC  # loaded, then it failed: no summary, no model resolved

    reported = operator.get_openlineage_facets_on_complete(None)

    assert [(d.namespace, d.name) for d in reported.inputs] == [("s3://mlops", "churn/monthly/month=2025-01/part-0.parquet")]
    assert [f.name for f in reported.inputs[0].facets["schema"].fields] == SPEC.scoring_columns()
    assert reported.outputs == []


def test_the_partition_sensor_reports_the_partition_it_waited_for() -> None:
    from airflow_mlops.sensors.partition import DataPartitionSensor

    reported = DataPartitionSensor(task_id="wait", uri="s3://lake/churn/monthly/month=2025-01/").get_openlineage_facets_on_complete(None)

    assert [(d.namespace, d.name) for d in reported.inputs] == [("s3://lake", "churn/monthly/month=2025-01")] and reported.outputs == []


def test_inference_reports_the_spec_rules_scored_rows_broke_within_or_beyond_their_tolerance() -> None:
    from airflow_mlops.operators.inference import MlflowBatchPredictOperator

    operator = MlflowBatchPredictOperator(
        task_id="predict", input_uri="s3://mlops/churn/monthly/month=2025-01/part-0.parquet", output_uri="s3://mlops/out/part-0.parquet",
        spec_uri=str(SPEC_PATH), model_name="churn",
    )  # fmt: skip
    summary = {
        "rows": 1000, "model_version": "3", "shadow_version": None, "invalid_rows": 12,
        "broken_rules": [{"column": "tenure_months", "rule": ">= 0", "rows": 2, "tolerance": 0.005},
                         {"column": "contract", "rule": "in ['month-to-month', 'one-year', 'two-year']", "rows": 10, "tolerance": 0.0}],
    }  # fmt: skip

    reported = with_state(operator, summary).get_openlineage_facets_on_complete(None)

    scored = reported.inputs[0]
    assert scored.inputFacets["dataQualityMetrics"].rowCount == 1000
    assertions = [(a.assertion, a.column, a.success, a.actual) for a in scored.facets["dataQualityAssertions"].assertions]
    assert assertions == [
        ("tenure_months >= 0", "tenure_months", True, "2 row(s)"),  # 0.2 % of the rows, within 0.5 %
        ("contract in ['month-to-month', 'one-year', 'two-year']", "contract", False, "10 row(s)"),  # flagged on request, no tolerance
    ]

"""Training, promotion and rollback operators on the embedded MLflow store (real sklearn + MLflow)."""

from __future__ import annotations

import uuid

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_mlops.example_data import SPEC_PATH, churn
from airflow_mlops.exceptions import ModelRejectedError, ModelResolutionError
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.operators.registry import MlflowPromoteModelOperator, MlflowRollbackModelOperator
from airflow_mlops.operators.training import MlflowTrainModelOperator
from tests.helpers import task_context

SPEC = str(SPEC_PATH)
FAST = {"max_iter": 30}


@pytest.fixture(scope="module")
def training(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("train")
    churn.generate_dataset(str(root), rows=10, months=[], training_rows=4000, rows_per_file=2000)
    return str(root / "training")


@pytest.fixture
def model_name() -> str:
    return f"m_{uuid.uuid4().hex[:8]}"


def train(training: str, model: str, run_id: str = "r1", **kwargs) -> dict:
    kwargs.setdefault("estimator_params", FAST)
    return MlflowTrainModelOperator(task_id="train", train_uri=training, spec_uri=SPEC, model_name=model, **kwargs).execute(
        task_context("train", run_id)
    )


def promote(model: str, run_id: str = "r1", **kwargs) -> dict:
    return MlflowPromoteModelOperator(task_id="promote", model_name=model, spec_uri=SPEC, **kwargs).execute(task_context("promote", run_id))


def aliases(model: str) -> dict[str, str]:
    return {k: str(v) for k, v in MlflowHook().client.get_registered_model(model).aliases.items()}


def test_training_logs_everything_and_a_retry_reuses_the_version(training, model_name) -> None:
    first = train(training, model_name)

    client = MlflowHook().client
    run = client.get_run(first["run_id"])
    assert set(first["metrics"]) >= {"roc_auc", "f1", "precision", "recall", "accuracy", "log_loss"}
    assert 0.6 < first["metrics"]["roc_auc"] < 0.95
    assert run.data.tags["mlops.dag_id"] == "test_dag" and run.data.tags["mlops.task_id"] == "train"
    assert run.data.params["param_max_iter"] == "30" and run.data.params["holdout_rows"] == "800"
    assert {i.dataset.name for i in run.inputs.dataset_inputs} == {"churn-train", "churn-holdout"}
    artifacts = {a.path for a in client.list_artifacts(first["run_id"], "reference")} | {a.path for a in client.list_artifacts(first["run_id"], "holdout")}
    assert artifacts == {"reference/reference.parquet", "holdout/holdout.parquet"}
    assert aliases(model_name) == {"challenger": first["version"]}

    retry = train(training, model_name)  # same task instance, next try

    assert retry["reused"] is True and retry["version"] == first["version"]
    assert len(client.search_model_versions(f"name='{model_name}'")) == 1


def test_unknown_estimator_fails_before_any_mlflow_write(training, model_name) -> None:
    client = MlflowHook().client
    experiments_before = len(client.search_experiments())

    with pytest.raises(AirflowFailException, match="sklearn.ensemble.NoSuchForest"):
        train(training, model_name, estimator="sklearn.ensemble.NoSuchForest")
    with pytest.raises(AirflowFailException, match="not a classifier"):
        train(training, model_name, estimator="sklearn.linear_model.Ridge", estimator_params={})
    with pytest.raises(AirflowFailException, match="rejects its parameters"):
        train(training, model_name, estimator_params={"max_depthh": 3})

    assert len(client.search_experiments()) == experiments_before
    assert client.search_registered_models(f"name='{model_name}'") == []


def test_without_an_estimator_the_specs_task_picks_it(training, model_name, tmp_path) -> None:
    from sklearn.datasets import load_diabetes

    from airflow_mlops import tables
    from tests.conftest import REPO

    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    frame["sex"] = frame["sex"].map({1.0: "female", 2.0: "male"})
    frame.insert(0, "patient_id", range(len(frame)))
    table = tables.write_table(frame, str(tmp_path / "diabetes.parquet"))
    regression = MlflowTrainModelOperator(
        task_id="train", train_uri=table, spec_uri=str(REPO / "examples" / "diabetes_spec.yaml"), model_name=f"{model_name}_r",
        estimator_params={"max_iter": 30},
    ).execute(task_context("train"))  # fmt: skip
    classification = train(training, model_name)

    client = MlflowHook().client
    assert client.get_run(regression["run_id"]).data.params["estimator"] == "sklearn.ensemble.HistGradientBoostingRegressor"
    assert set(regression["metrics"]) >= {"rmse", "mae", "r2"}
    assert client.get_run(classification["run_id"]).data.params["estimator"] == "sklearn.ensemble.HistGradientBoostingClassifier"


def test_search_picks_parameters_within_bounds(training, model_name) -> None:
    result = train(training, model_name, search={"param_distributions": {"max_depth": [2, 3], "max_iter": [20, 30]}, "n_iter": 2, "cv": 2})

    params = MlflowHook().client.get_run(result["run_id"]).data.params
    assert params["search_n_iter"] == "2" and "max_depth" in params["search_best_params"]
    with pytest.raises(ValueError, match="n_iter"):
        train(training, model_name, run_id="r2", search={"param_distributions": {"max_depth": [2]}, "n_iter": 500})


def test_promotion_lifecycle_and_rollback(training, model_name) -> None:
    weak = train(training, model_name, run_id="r1", estimator_params={"max_iter": 1, "max_depth": 1})
    with pytest.raises(ModelResolutionError, match="alias 'champion'"):
        MlflowRollbackModelOperator(task_id="rb", model_name=model_name, model_ref="champion").execute(task_context())

    first = promote(model_name, "r1", min_value=0.55)
    assert first["decision"] == "promoted" and first["champion_version"] is None
    assert aliases(model_name)["champion"] == weak["version"]
    assert promote(model_name, "r1b")["decision"] == "already_champion"

    strong = train(training, model_name, run_id="r2", estimator_params={"max_iter": 60})
    dry = promote(model_name, "r2", evaluate_only=True, min_absolute_change=0.5)
    assert dry["decision"] == "would_reject" and "minimum absolute change check failed" in dry["reason"]
    assert aliases(model_name)["champion"] == weak["version"]
    with pytest.raises(ModelRejectedError) as err:
        promote(model_name, "r2", min_absolute_change=0.5, on_reject="fail")
    assert err.value.decision["champion_score"] < err.value.decision["challenger_score"]
    with pytest.raises(AirflowSkipException):
        promote(model_name, "r2", min_absolute_change=0.5, on_reject="skip")
    tags = MlflowHook().client.get_model_version(model_name, strong["version"]).tags
    assert tags["mlops.decision.decision"] == "rejected"
    assert tags["mlops.decision.compared_against"] == weak["version"]

    won = promote(model_name, "r3", min_absolute_change=0.01, approver="alice")

    assert won["decision"] == "promoted" and won["champion_version"] == weak["version"]
    assert aliases(model_name) == {"challenger": strong["version"], "champion": strong["version"], "previous_champion": weak["version"]}
    tags = MlflowHook().client.get_model_version(model_name, strong["version"]).tags
    assert tags["mlops.decision.decision"] == "promoted" and tags["mlops.decision.approver"] == "alice"
    assert float(tags["mlops.decision.challenger_score"]) > float(tags["mlops.decision.champion_score"]) + 0.01

    back = MlflowRollbackModelOperator(task_id="rb", model_name=model_name, reason="bad week").execute(task_context())

    assert back == {"model_name": model_name, "champion_version": weak["version"], "replaced_version": strong["version"], "reason": "bad week"}
    assert aliases(model_name)["champion"] == weak["version"] and aliases(model_name)["previous_champion"] == strong["version"]
    assert MlflowHook().client.get_model_version(model_name, weak["version"]).tags["mlops.decision.decision"] == "rollback"


def test_promotion_sets_asset_metadata_on_its_outlets(training, model_name) -> None:
    from airflow.sdk import Asset

    train(training, model_name)
    asset = Asset(name="m_champion", uri="mlops://m/champion")
    ctx = task_context("promote")
    operator = MlflowPromoteModelOperator(task_id="promote", model_name=model_name, spec_uri=SPEC, outlets=[asset])

    decision = operator.execute(ctx)

    assert decision["decision"] == "promoted"
    assert ctx["outlet_events"][asset].extra["challenger_version"] == decision["challenger_version"]
    assert ctx["outlet_events"][asset].extra["metric"] == "roc_auc"


def test_bad_threshold_fails_without_retry(training, model_name) -> None:
    train(training, model_name)
    promote(model_name, "r1")
    train(training, model_name, run_id="r2", estimator_params={"max_iter": 25})

    with pytest.raises(AirflowFailException, match="min_relative_change"):
        promote(model_name, "r2", min_relative_change=-0.5)
    with pytest.raises(AirflowFailException, match="metric must be one of"):  # no retry either
        promote(model_name, "r2", metric="auc")


def test_lineage_schema_from_a_sample_matches_the_whole_frame() -> None:
    import numpy as np
    import pandas as pd
    from mlflow.types.utils import _infer_schema

    from airflow_mlops.operators.training import LINEAGE_SCHEMA_ROWS, lineage_dataset

    rows = LINEAGE_SCHEMA_ROWS * 3
    frame = pd.DataFrame({"x": np.arange(rows, dtype="float64"), "city": ["a"] * rows, "y": np.zeros(rows, dtype="int64")})
    frame.loc[rows - 1, "x"] = np.nan  # nulls only beyond the sampled head: the schema must still say optional
    frame.loc[rows - 2, "city"] = None

    dataset = lineage_dataset(frame, "file:///data.parquet", "y", "t")

    assert dataset.schema == _infer_schema(frame)
    assert dataset.schema.input_dict()["x"].required is False and dataset.schema.input_dict()["city"].required is False
    assert dataset.profile["num_rows"] == rows


# -- the champion is moved only by promotion -----------------------------------------------------------


@pytest.mark.parametrize("alias", ["champion", "previous_champion"])
def test_training_refuses_the_aliases_only_promotion_moves(training, model_name, alias) -> None:
    with pytest.raises(AirflowFailException, match=f"set_alias '{alias}' is moved only by promotion"):
        train(training, model_name, set_alias=alias)

    assert MlflowHook().client.search_model_versions(f"name='{model_name}'") == []  # nothing registered


def test_a_retried_training_never_moves_its_alias_back(training, model_name) -> None:
    first = train(training, model_name, run_id="monday")
    second = train(training, model_name, run_id="tuesday")
    assert aliases(model_name)["challenger"] == second["version"] != first["version"]

    again = train(training, model_name, run_id="monday")  # monday's task retried after tuesday trained

    assert again["reused"] is True and again["version"] == first["version"]
    assert aliases(model_name)["challenger"] == second["version"]


def test_a_reused_evaluation_is_judged_by_the_promoting_tasks_own_thresholds(training, model_name) -> None:
    train(training, model_name, run_id="r1")
    promote(model_name, run_id="r1", min_value=0.5)
    train(training, model_name, run_id="r2", estimator_params={"max_iter": 30})
    dry = promote(model_name, run_id="r2", evaluate_only=True, min_value=0.5, min_absolute_change=None)
    assert dry["dry_run"] is True and dry["evaluation_run_id"]

    with pytest.raises(AirflowSkipException):  # an impossible gain: rejected whatever the dry run said
        promote(model_name, run_id="r2", evaluation=dry, min_value=0.5, min_absolute_change=0.5, on_reject="skip")

    decision = MlflowHook().client.get_model_version(model_name, dry["challenger_version"]).tags
    assert decision["mlops.decision.decision"] == "rejected"
    assert "minimum absolute change check failed" in decision["mlops.decision.reason"]
    assert decision["mlops.decision.evaluation_run_id"] == dry["evaluation_run_id"]  # no second evaluation


# -- untrusted input: the estimator path ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("os.system", r"estimator 'os.system' is not allowed: scikit-learn's estimators are, others once listed in \[mlops\] allowed_estimators"),
        ("subprocess.Popen", r"estimator 'subprocess.Popen' is not allowed"),
        ("tests.unit.operators.evil.Estimator", r"is not allowed"),  # not "cannot be imported": no import was tried
        ("sklearn.utils.Bunch", r"'sklearn.utils.Bunch' is not one of scikit-learn's estimators"),
        ("sklearn.linear_model.LinearRegression", r"is not a classifier, but the spec's task is classification"),
    ],
)
def test_training_imports_only_allowed_estimators(training, model_name, path: str, message: str) -> None:
    with pytest.raises(AirflowFailException, match=message):
        train(training, model_name, estimator=path, estimator_params={})

    assert MlflowHook().client.search_model_versions(f"name='{model_name}'") == []  # refused before any MLflow write


def test_an_estimator_outside_scikit_learn_is_allowed_once_configured(monkeypatch) -> None:
    from airflow_mlops.utils import modeling

    path = "tests.helpers.NotAnEstimator"
    with pytest.raises(ValueError, match="is not allowed"):
        modeling.load_estimator(path, {}, "classification")
    monkeypatch.setenv("AIRFLOW__MLOPS__ALLOWED_ESTIMATORS", f"xgboost.XGBClassifier, {path}")
    with pytest.raises(ValueError, match=f"estimator '{path}' cannot be imported"):  # now imported: and found wanting
        modeling.load_estimator(path, {}, "classification")

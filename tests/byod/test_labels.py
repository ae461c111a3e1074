"""String, boolean and integer labels end to end on a real table: training metrics, promotion through
``mlflow.models.evaluate`` with the same metric definitions, predictions in the target's own labels."""

from __future__ import annotations

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops import metrics
from airflow_mlops.exceptions import FeatureSpecError
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.metrics import LABELS_TAG, LabelSpace
from airflow_mlops.operators.inference import MlflowBatchPredictOperator
from airflow_mlops.operators.registry import MlflowPromoteModelOperator
from airflow_mlops.operators.training import MlflowTrainModelOperator
from airflow_mlops.spec import FeatureSpec
from tests.byod.conftest import PENGUINS_SPEC, write_spec
from tests.helpers import task_context

FAST = {"max_iter": 50}
#: Our metric -> the name MLflow's evaluator logs it under.
MLFLOW_NAMES = {name: m.mlflow_name for name, m in metrics.METRICS.items() if m.task == "classification"}


def train(table: str, spec: str, model: str, **kwargs) -> dict:
    op = MlflowTrainModelOperator(
        task_id="train", train_uri=table, spec_uri=spec, model_name=model, estimator_params=FAST, require_marker=False, **kwargs
    )
    return op.execute(task_context("train"))


def evaluation_metrics(decision: dict, version: str) -> dict[str, float]:
    """The metrics MLflow's evaluator logged for ``version`` during a promotion (its nested run)."""
    client = MlflowHook().client
    parent = client.get_run(decision["evaluation_run_id"])
    [child] = client.search_runs(
        [parent.info.experiment_id],
        f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' and tags.`mlops.model_version` = '{version}'",
    )
    return child.data.metrics


def predict(tmp_path, input_uri: str, spec: str, model: str, **kwargs) -> pd.DataFrame:
    out = tmp_path / f"pred_{model}.parquet"
    MlflowBatchPredictOperator(
        task_id="predict", input_uri=input_uri, output_uri=str(out), spec_uri=spec, model_name=model, model_ref="1",
        scored_at="2009-02-01T00:00:00+00:00", **kwargs,
    ).execute(task_context("predict"))  # fmt: skip
    return pd.read_parquet(out)


def test_multiclass_string_labels_train_promote_and_predict_in_their_own_labels(tmp_path, penguins, model_name) -> None:
    spec = str(PENGUINS_SPEC)
    trained = train(str(penguins / "training"), spec, model_name)

    assert trained["metrics"]["accuracy"] > 0.9 and trained["metrics"]["roc_auc"] > 0.95
    version = MlflowHook().client.get_model_version(model_name, trained["version"])
    assert LabelSpace.from_json(version.tags[LABELS_TAG]) == LabelSpace(("Adelie", "Chinstrap", "Gentoo"))

    decision = MlflowPromoteModelOperator(task_id="promote", model_name=model_name, spec_uri=spec).execute(task_context("promote"))
    assert decision["decision"] == "promoted"
    # One definition of every metric: MLflow's evaluator, on the same holdout, finds the training numbers.
    evaluated = evaluation_metrics(decision, trained["version"])
    for name, mlflow_name in MLFLOW_NAMES.items():
        assert evaluated[mlflow_name] == pytest.approx(trained["metrics"][name], abs=1e-9), name
    assert decision["challenger_score"] == pytest.approx(trained["metrics"]["roc_auc"], abs=1e-9)

    scored = predict(tmp_path, str(penguins / "monthly/month=2009-01/part-0.parquet"), spec, model_name)
    proba = scored[["probability_Adelie", "probability_Chinstrap", "probability_Gentoo"]]
    assert set(scored["prediction"]) <= {"Adelie", "Chinstrap", "Gentoo"} and scored["prediction"].nunique() == 3
    assert proba.sum(axis=1).to_numpy() == pytest.approx(1.0)
    assert (proba.idxmax(axis=1).str.removeprefix("probability_") == scored["prediction"]).all()
    assert "probability" not in scored.columns


@pytest.fixture
def sexed(tmp_path, penguins) -> str:
    """Penguins with a known sex, sex as the label (female/male) and species as a feature."""
    frame = pd.read_parquet(penguins / "training/part-0.parquet").dropna(subset=["sex"])
    path = tmp_path / "sexed.parquet"
    frame.to_parquet(path, index=False)
    return str(path)


def _sex_spec(tmp_path, **labels) -> str:
    doc = FeatureSpec.load(str(PENGUINS_SPEC)).to_dict()
    categorical = {"island": doc["categorical_features"]["island"], "species": {"values": ["Adelie", "Chinstrap", "Gentoo"]}}
    return write_spec(tmp_path, **({"target": "sex", "categorical_features": categorical} | labels))


def test_binary_string_labels_name_their_positive_class(tmp_path, sexed, model_name) -> None:
    unnamed = _sex_spec(tmp_path, classes=None)

    with pytest.raises(AirflowFailException, match=r"binary with labels \['female', 'male'\]; name the positive one"):
        train(sexed, unnamed, model_name)

    named = _sex_spec(tmp_path, classes=None, positive_label="female")
    trained = train(sexed, named, model_name)
    decision = MlflowPromoteModelOperator(task_id="promote", model_name=model_name, spec_uri=named).execute(task_context("promote"))
    evaluated = evaluation_metrics(decision, trained["version"])
    for name, mlflow_name in MLFLOW_NAMES.items():
        assert evaluated[mlflow_name] == pytest.approx(trained["metrics"][name], abs=1e-9), name

    scored = predict(tmp_path, sexed, named, model_name)
    truth = pd.read_parquet(sexed)["sex"].to_numpy()
    assert set(scored["prediction"]) == {"female", "male"}
    # ``probability`` is P(female), the positive label, although "female" sorts first
    assert scored["probability"][truth == "female"].mean() > 0.7 > 0.3 > scored["probability"][truth == "male"].mean()
    assert ((scored["probability"] > 0.5) == (scored["prediction"] == "female")).all()


def test_multiclass_averaging_is_macro_in_training_and_in_mlflow_evaluation(tmp_path, penguins, model_name) -> None:
    """The island a penguin was measured on: three unbalanced classes a model gets partly wrong, so
    macro and weighted averages differ and only one definition can match."""
    from sklearn import metrics as m

    doc = FeatureSpec.load(str(PENGUINS_SPEC)).to_dict()
    categorical = {"sex": doc["categorical_features"]["sex"], "species": {"values": ["Adelie", "Chinstrap", "Gentoo"]}}
    spec = write_spec(tmp_path, target="island", classes=["Biscoe", "Dream", "Torgersen"], categorical_features=categorical)
    trained = train(str(penguins / "training"), spec, model_name)
    decision = MlflowPromoteModelOperator(task_id="promote", model_name=model_name, spec_uri=spec).execute(task_context("promote"))

    client = MlflowHook().client
    holdout = client.download_artifacts(trained["run_id"], "holdout/holdout.parquet", str(tmp_path))
    frame = pd.read_parquet(holdout)
    scored = predict(tmp_path, holdout, spec, model_name)
    weighted = m.f1_score(frame["island"], scored["prediction"], average="weighted")
    macro = m.f1_score(frame["island"], scored["prediction"], average="macro")
    assert abs(weighted - macro) > 0.01  # the two definitions differ on this holdout
    assert trained["metrics"]["f1"] == pytest.approx(macro, abs=1e-9)
    assert evaluation_metrics(decision, trained["version"])["f1_score"] == pytest.approx(macro, abs=1e-9)


def test_boolean_and_integer_labels(tmp_path, sexed, model_name) -> None:
    frame = pd.read_parquet(sexed)
    frame["is_female"] = frame.pop("sex") == "female"
    path = tmp_path / "bool.parquet"
    frame.to_parquet(path, index=False)
    spec = _sex_spec(tmp_path, target="is_female", classes=None)

    trained = train(str(path), spec, model_name)

    tags = MlflowHook().client.get_model_version(model_name, trained["version"]).tags
    assert LabelSpace.from_json(tags[LABELS_TAG]) == LabelSpace((False, True), True)  # true is positive by default
    scored = predict(tmp_path, str(path), spec, model_name)
    assert scored["prediction"].dtype == bool

    # 0/1 integers, stored as float as pandas does once the column held a null: integer labels, 1 positive
    frame["is_female"] = frame["is_female"].astype("float64")
    frame.loc[frame.index[:3], "is_female"] = None
    floats = tmp_path / "float.parquet"
    frame.to_parquet(floats, index=False)
    int_spec = _sex_spec(tmp_path, target="is_female", classes=[0, 1])
    with pytest.raises(AirflowFailException, match=r"target 'is_female' is null in 3 of \d+ rows"):
        train(str(floats), int_spec, f"{model_name}_int")
    frame.dropna(subset=["is_female"]).to_parquet(floats, index=False)
    ints = train(str(floats), int_spec, f"{model_name}_int")
    tags = MlflowHook().client.get_model_version(f"{model_name}_int", ints["version"]).tags
    assert LabelSpace.from_json(tags[LABELS_TAG]) == LabelSpace((0, 1), 1)
    assert set(predict(tmp_path, str(floats), int_spec, f"{model_name}_int")["prediction"]) == {0, 1}


def test_scoring_refuses_a_spec_whose_positive_label_changed_after_training(tmp_path, sexed, model_name) -> None:
    trained_with = _sex_spec(tmp_path, classes=None, positive_label="female")
    train(sexed, trained_with, model_name)
    edited = _sex_spec(tmp_path, classes=None, positive_label="male")

    with pytest.raises(AirflowFailException, match=r"positive label 'female', but the FeatureSpec .* now says \['female', 'male'\] and 'male'"):
        predict(tmp_path, sexed, edited, model_name)


def test_label_space_errors_name_the_labels_and_the_fix() -> None:
    base = FeatureSpec.load(str(PENGUINS_SPEC)).to_dict()
    yes_no = FeatureSpec.from_yaml_text(
        "\n".join(["name: churn", "task: classification", "target: churned", "classes: [No, Yes]", "numeric_features: [tenure]"])
    )
    assert yes_no.classes == (False, True)  # what YAML does to unquoted yes/no
    with pytest.raises(ValueError, match=r"holds \['No', 'Yes'\].*quote the classes"):
        LabelSpace.resolve(yes_no, ["No", "Yes", "No"], where="t.parquet")
    with pytest.raises(ValueError, match=r"class\(es\) \['Gentoo'\] of the spec never occur"):
        LabelSpace.resolve(FeatureSpec.from_dict(base), ["Adelie", "Chinstrap"], where="t.parquet")
    with pytest.raises(FeatureSpecError, match="positive_label 'Gentoo' is not one of the classes"):
        FeatureSpec.from_dict(base | {"classes": ["Adelie", "Chinstrap"], "positive_label": "Gentoo"})
    with pytest.raises(FeatureSpecError, match="applies to classification only"):
        FeatureSpec.from_dict(base | {"task": "regression", "target": "body_mass_g", "classes": None, "positive_label": 1})
    assert LabelSpace.resolve(FeatureSpec.from_dict(base | {"classes": None}), [0, 1, 1], where="t").positive == 1

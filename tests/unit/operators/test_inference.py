"""Batch inference with a real registered sklearn model on the embedded MLflow store."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_mlops import tables
from airflow_mlops.example_data import SPEC_PATH, churn
from airflow_mlops.exceptions import ModelResolutionError, TableError
from airflow_mlops.operators.inference import MlflowBatchPredictOperator
from airflow_mlops.operators.training import MlflowTrainModelOperator
from tests.helpers import crown, task_context

SCORED_AT = "2025-02-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("infer")
    data = churn.generate_dataset(str(root), rows=5000, months=["2025-01"], training_rows=4000, rows_per_file=2500)
    name = f"infer_{uuid.uuid4().hex[:6]}"
    common = {"train_uri": data["training"], "spec_uri": str(SPEC_PATH), "model_name": name}
    champion = MlflowTrainModelOperator(task_id="t", estimator_params={"max_iter": 20}, **common).execute(task_context("t", "a"))
    crown(name, str(SPEC_PATH))
    challenger = MlflowTrainModelOperator(task_id="t", estimator_params={"max_iter": 5}, **common).execute(task_context("t", "b"))
    data |= {"model": name, "champion": champion["version"], "challenger": challenger["version"], "root": root}
    data["files"] = tables.list_data_files(data["months"]["2025-01"])
    return data


def predict(setup: dict, output: Path, **kwargs) -> dict:
    kwargs.setdefault("input_uri", setup["files"][0])
    return MlflowBatchPredictOperator(
        task_id="predict", output_uri=str(output), spec_uri=str(SPEC_PATH), model_name=setup["model"], scored_at=SCORED_AT, **kwargs
    ).execute(task_context("predict"))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_scores_in_bounded_chunks_with_pinned_version(setup, tmp_path) -> None:
    out = tmp_path / "p.parquet"

    result = predict(setup, out, batch_rows=600)

    assert result["rows"] == 2500 and result["model_version"] == setup["champion"]
    frame = pd.read_parquet(out)
    assert list(frame.columns) == [
        "customer_id", "snapshot_date", "contract", "internet_service", "prediction", "probability", "model_name", "model_version", "scored_at",
    ]  # ids, then the segments
    assert frame["probability"].between(0, 1).all() and set(frame["prediction"]) <= {0, 1}
    assert (frame["model_version"] == setup["champion"]).all()
    assert (frame["scored_at"] == pd.Timestamp(SCORED_AT)).all()
    source = tables.read_table(setup["files"][0])
    assert frame["customer_id"].tolist() == source["customer_id"].tolist()
    sizes = [pq.ParquetFile(out).metadata.row_group(i).num_rows for i in range(pq.ParquetFile(out).num_row_groups)]
    assert max(sizes) <= 600 and sum(sizes) == 2500  # memory is bounded by the chunk, not the file


def test_rerun_is_byte_identical_and_mapping_equals_one_task(setup, tmp_path) -> None:
    one, again = tmp_path / "one.parquet", tmp_path / "again.parquet"
    predict(setup, one, input_uri=setup["files"][0])
    predict(setup, again, input_uri=setup["files"][0])
    assert digest(one) == digest(again)

    per_file = [predict(setup, tmp_path / f"m{i}.parquet", input_uri=f) for i, f in enumerate(setup["files"])]
    whole = tmp_path / "whole.parquet"
    tables.write_table(tables.read_table(setup["months"]["2025-01"]), str(tmp_path / "all.parquet"))
    predict(setup, whole, input_uri=str(tmp_path / "all.parquet"))

    mapped = pd.concat([pd.read_parquet(r["output_uri"]) for r in per_file], ignore_index=True)
    pd.testing.assert_frame_equal(mapped, pd.read_parquet(whole))


def test_shadow_scoring_writes_both_predictions(setup, tmp_path) -> None:
    result = predict(setup, tmp_path / "s.parquet", shadow_ref="challenger")

    frame = pd.read_parquet(tmp_path / "s.parquet")
    assert result["shadow_version"] == setup["challenger"]
    assert {"shadow_prediction", "shadow_probability", "shadow_model_version"} <= set(frame.columns)
    assert (frame["shadow_model_version"] == setup["challenger"]).all()
    assert not frame["shadow_probability"].equals(frame["probability"])


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda df: df.drop(columns=["tenure_months"]), "missing column(s) ['tenure_months']"),
        (lambda df: df.assign(monthly_charges=df["monthly_charges"].astype(str)), "column 'monthly_charges' has type string"),
        (lambda df: df.drop(columns=["customer_id"]), "missing column(s) ['customer_id']"),
    ],
)
def test_bad_input_fails_naming_the_column_and_keeps_earlier_output(setup, tmp_path, change, words) -> None:
    out = tmp_path / "p.parquet"
    predict(setup, out)
    before = digest(out)
    bad = tmp_path / "bad.parquet"
    tables.write_table(change(tables.read_table(setup["files"][0])), str(bad))

    with pytest.raises(TableError) as err:
        predict(setup, out, input_uri=str(bad))

    assert words in str(err.value) and "bad.parquet" in str(err.value)
    assert digest(out) == before
    assert sorted(os.listdir(tmp_path)) == ["bad.parquet", "p.parquet"]


def test_unknown_alias_names_the_model(setup, tmp_path) -> None:
    with pytest.raises(ModelResolutionError, match=f"{setup['model']}.*alias 'gold'"):
        predict(setup, tmp_path / "p.parquet", model_ref="gold")
    assert not (tmp_path / "p.parquet").exists()


# The SIGKILL-mid-write test lives in tests/reliability/test_faults.py.


def test_chunks_scored_while_the_next_is_read_equal_the_model_on_the_whole_file(setup, tmp_path) -> None:
    import mlflow
    import numpy as np

    from airflow_mlops.hooks.mlflow import MlflowHook
    from airflow_mlops.spec import FeatureSpec
    from airflow_mlops.utils import modeling

    out = tmp_path / "p.parquet"
    predict(setup, out, batch_rows=300)  # 9 batches: read ahead and written behind on the I/O thread

    with MlflowHook().activated():
        model = mlflow.sklearn.load_model(f"models:/{setup['model']}/{setup['champion']}")
    source = tables.read_table(setup["files"][0])
    expected = model.predict_proba(modeling.feature_frame(source, FeatureSpec.load(str(SPEC_PATH))))[:, 1]
    frame = pd.read_parquet(out)
    np.testing.assert_array_equal(frame["probability"].to_numpy(), expected)  # same rows, same order, same scores
    written, read = pq.read_schema(out), pq.read_schema(setup["files"][0])
    assert [written.field(c).type for c in ("customer_id", "snapshot_date")] == [read.field(c).type for c in ("customer_id", "snapshot_date")]

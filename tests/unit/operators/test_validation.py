from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_mlops import tables
from airflow_mlops.example_data import SPEC_PATH, churn
from airflow_mlops.exceptions import DataValidationError, PartitionNotReadyError
from airflow_mlops.operators.validation import GxValidateTableOperator
from tests.helpers import task_context


@pytest.fixture(scope="module")
def training(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("val")
    churn.generate_dataset(str(root), rows=10, months=[], training_rows=3000, rows_per_file=1000)
    return str(root / "training")


def op(tmp_path: Path, table: str, **kwargs) -> GxValidateTableOperator:
    kwargs.setdefault("batch_rows", 700)
    return GxValidateTableOperator(task_id="validate", table_uri=table, spec_uri=str(SPEC_PATH), reports_uri=str(tmp_path / "reports"), **kwargs)


def test_good_partition_passes_in_batches_and_writes_reports(tmp_path, training) -> None:
    ctx = task_context()

    summary = op(tmp_path, training).execute(ctx)

    assert summary["success"] and summary["rows"] == 3000 and summary["batches"] >= 3
    assert summary["failed"] == [] and summary["evaluated"] == summary["successful"] > 40
    result = json.loads(Path(summary["report_uri"]).read_text())
    assert result["success"] is True
    assert "<html" in Path(summary["data_docs_uri"]).read_text().lower()
    assert ctx["pushed"]["validation_report_uri"] == summary["data_docs_uri"]


def test_bad_rows_in_a_later_batch_fail_with_merged_counts(tmp_path, training) -> None:
    df = tables.read_table(training)
    df.loc[2500, "contract"] = "weekly"
    df.loc[[10, 2900], "tenure_months"] = -1
    df = df.drop(columns=["age"])
    bad = str(tmp_path / "bad.parquet")
    tables.write_table(df, bad)
    ctx = task_context()

    with pytest.raises(DataValidationError) as err:
        op(tmp_path, bad).execute(ctx)

    failed = {(f["expectation"], f["column"]): f for f in err.value.summary["failed"]}
    assert failed[("expect_column_to_exist", "age")]["error"] == "column 'age' is missing"
    assert failed[("expect_column_values_to_be_between", "tenure_months")]["unexpected_count"] == 2
    assert failed[("expect_column_values_to_be_in_set", "contract")]["unexpected_sample"] == ["weekly"]
    assert "age" in str(err.value) and "bad.parquet" in str(err.value)
    assert ctx["pushed"]["return_value"]["success"] is False  # pushed before raising


def test_policies_warn_and_skip(tmp_path, training) -> None:
    df = tables.read_table(training).drop(columns=["region"])
    bad = str(tmp_path / "bad.parquet")
    tables.write_table(df, bad)

    assert op(tmp_path, bad, on_failure="continue").execute(task_context())["success"] is False
    with pytest.raises(AirflowSkipException, match="region"):
        op(tmp_path, bad, on_failure="skip").execute(task_context())
    with pytest.raises(ValueError, match="on_failure must be one of"):
        op(tmp_path, bad, on_failure="ignore").execute(task_context())


def test_empty_table_fails_row_count_but_one_empty_file_does_not(tmp_path, training) -> None:
    df = tables.read_table(training)
    empty = str(tmp_path / "empty.parquet")
    tables.write_table(df.head(0), empty)
    with pytest.raises(DataValidationError, match=r"the table has 0 row\(s\), expected at least 1"):
        op(tmp_path, empty).execute(task_context())

    part = tmp_path / "part"
    tables.write_table(df.head(0), str(part / "part-00000.parquet"))
    tables.write_table(df.head(50), str(part / "part-00001.parquet"))
    tables.finish_partition(str(part), keep=["part-00000.parquet", "part-00001.parquet"])
    assert op(tmp_path, str(part)).execute(task_context())["rows"] == 50


def test_scoring_table_needs_no_target_and_user_suite_is_added(tmp_path, training) -> None:
    df = tables.read_table(training).drop(columns=["churned"])
    scoring = str(tmp_path / "scoring.parquet")
    tables.write_table(df, scoring)
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"expectations": [{"type": "expect_column_max_to_be_between", "kwargs": {"column": "age", "max_value": 50}}]}))

    with pytest.raises(DataValidationError, match=r"expect_column_max_to_be_between\(age\)"):
        op(tmp_path, scoring, labelled=False, suite_uri=str(suite)).execute(task_context())
    assert op(tmp_path, scoring, labelled=False).execute(task_context())["success"]


def test_incomplete_partition_is_not_validated(tmp_path, training) -> None:
    tables.write_table(tables.read_table(training).head(5), str(tmp_path / "p" / "part-00000.parquet"))

    with pytest.raises(PartitionNotReadyError, match="_SUCCESS"):
        op(tmp_path, str(tmp_path / "p")).execute(task_context())


def test_a_uniqueness_expectation_is_judged_on_the_whole_table_or_refused(tmp_path, training) -> None:
    df = tables.read_table(training).head(1000)
    df = pd.concat([df, df.head(1)])  # one duplicated customer, 1001 rows: two batches of 700
    table = str(tmp_path / "dupes.parquet")
    tables.write_table(df, table)
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"expectations": [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "customer_id"}}]}))

    with pytest.raises(AirflowFailException, match=r"\['expect_column_values_to_be_unique'\] cannot be judged batch by batch .* set batch_rows above"):
        op(tmp_path, table, suite_uri=str(suite)).execute(task_context())
    with pytest.raises(DataValidationError, match=r"expect_column_values_to_be_unique\(customer_id\)"):
        op(tmp_path, table, suite_uri=str(suite), batch_rows=5000).execute(task_context())  # one batch: the duplicate is found

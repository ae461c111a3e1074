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
from tests.helpers import spec_with_tolerance, task_context


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


def _suite(tmp_path: Path, *expectations: dict) -> str:
    path = tmp_path / "suite.json"
    path.write_text(json.dumps({"expectations": list(expectations)}))
    return str(path)


def test_a_users_mean_is_judged_on_the_whole_table_not_per_batch(tmp_path, training) -> None:
    """Batches of at most 700 rows: the whole table's mean of age is within the bounds while some batches' means
    are not (and the other way round): the verdict and the observed value are the whole table's."""
    df = tables.read_table(training)
    whole = float(df["age"].mean())
    # three files of 1,000 rows, each read as batches of 700 and 300
    batch_means = [float(df["age"].iloc[f + a : f + b].mean()) for f in (0, 1000, 2000) for a, b in ((0, 700), (700, 1000))]
    low, high = min(batch_means), max(batch_means)
    assert low < whole < high  # the table's batches disagree with the whole

    passed = op(tmp_path, training, suite_uri=_suite(tmp_path, {"type": "expect_column_mean_to_be_between",
                "kwargs": {"column": "age", "min_value": (low + whole) / 2, "max_value": (whole + high) / 2}})).execute(task_context())  # fmt: skip

    assert passed["success"] and passed["batches"] == 6
    result = json.loads(Path(passed["report_uri"]).read_text())
    (mean,) = [r for r in result["results"] if r["expectation_config"]["type"] == "expect_column_mean_to_be_between"]
    assert mean["result"]["observed_value"] == pytest.approx(whole, rel=1e-12)
    with pytest.raises(DataValidationError, match=r"expect_column_mean_to_be_between\(age\)"):
        op(tmp_path, training, suite_uri=_suite(tmp_path, {"type": "expect_column_mean_to_be_between",
           "kwargs": {"column": "age", "min_value": whole + 0.01}})).execute(task_context())  # fmt: skip
    summed = op(tmp_path, training, suite_uri=_suite(
        tmp_path, {"type": "expect_column_sum_to_be_between", "kwargs": {"column": "age", "min_value": float(df["age"].sum()) - 0.5}},
        {"type": "expect_table_row_count_to_equal", "kwargs": {"value": 3000}},
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "age", "min_value": float(df["age"].max())}},
    )).execute(task_context())  # fmt: skip
    assert summed["success"] and summed["failed"] == []


def test_an_aggregate_that_does_not_merge_is_refused_before_any_batch_runs(tmp_path, training) -> None:
    suite = _suite(tmp_path, {"type": "expect_column_median_to_be_between", "kwargs": {"column": "age", "min_value": 0}})
    one_file = str(tmp_path / "one.parquet")
    tables.write_table(tables.read_table(training), one_file)

    with pytest.raises(AirflowFailException, match=r"\['expect_column_median_to_be_between'\] cannot be judged batch by batch .* a batch never spans two files"):
        op(tmp_path, training, suite_uri=suite, batch_rows=5000).execute(task_context())  # three files: three batches
    assert not (tmp_path / "reports").exists()  # nothing validated, nothing written
    assert op(tmp_path, one_file, suite_uri=suite, batch_rows=5000).execute(task_context())["success"]  # one batch holds it


def test_tolerance_passes_within_it_on_the_whole_tables_counts_and_fails_beyond(tmp_path, training) -> None:
    """Three bad tenures in 3,000 rows (0.1 %), all in the first batch of 700 (0.43 % of it): a 0.2 %
    tolerance passes on the whole table and reports them; 0.05 % fails, naming the tolerance."""
    df = tables.read_table(training)
    df.loc[[1, 2, 3], "tenure_months"] = -7
    bad = str(tmp_path / "bad.parquet")
    tables.write_table(df, bad)

    summary = GxValidateTableOperator(
        task_id="validate", table_uri=bad, spec_uri=spec_with_tolerance(str(SPEC_PATH), tmp_path, tenure_months=0.002), reports_uri=str(tmp_path / "r1"), batch_rows=700,
    ).execute(task_context())  # fmt: skip

    assert summary["success"] and summary["batches"] == 5 and summary["failed"] == []
    (tolerated,) = summary["tolerated"]
    assert (tolerated["column"], tolerated["unexpected_count"], tolerated["mostly"]) == ("tenure_months", 3, pytest.approx(0.998))
    assert tolerated["unexpected_counts"] == [{"value": -7, "count": 3}]
    result = json.loads(Path(summary["report_uri"]).read_text())
    (between,) = [r for r in result["results"] if r["expectation_config"]["kwargs"].get("column") == "tenure_months"
                  and r["expectation_config"]["type"] == "expect_column_values_to_be_between"]  # fmt: skip
    assert between["success"] is True and between["expectation_config"]["kwargs"]["mostly"] == pytest.approx(0.998)

    with pytest.raises(DataValidationError, match=r"'tenure_months': 3 value\(s\) of 3000 rows outside \[0, 72\].*\(tolerance 0\.050% of the rows\)"):
        GxValidateTableOperator(
            task_id="validate", table_uri=bad, spec_uri=spec_with_tolerance(str(SPEC_PATH), tmp_path, tenure_months=0.0005), reports_uri=str(tmp_path / "r2"), batch_rows=700,
        ).execute(task_context())  # fmt: skip

"""The validation engine (the spec's expectations in one Arrow pass, airflow_mlops.rules) against the former
GX path (engine="gx": GX on pandas batches, results merged) on every bad-input case of the galleries:
the same verdict per expectation, the same counts and example values, the same summary; and the spec's
id uniqueness over a whole table, in bounded memory."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops import tables
from airflow_mlops.example_data import SPEC_PATH, churn
from airflow_mlops.exceptions import DataValidationError
from airflow_mlops.operators.validation import GxValidateTableOperator
from airflow_mlops.utils.expectations import describe_failure
from tests.byod import test_bad_input as byod
from tests.conftest import REPO
from tests.helpers import spec_with_tolerance, task_context
from tests.reliability import test_bad_input as gallery

UNIQUENESS = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")


def run(engine: str, table: str, tmp: Path, **kwargs: Any) -> tuple[dict[str, Any] | str, Any]:
    """The operator's summary (or the error it raised) and its GX suite result."""
    op = GxValidateTableOperator(task_id="v", table_uri=table, reports_uri=str(tmp / engine), on_failure="continue", engine=engine, **kwargs)
    try:
        summary: dict[str, Any] | str = op.execute(task_context())
    except Exception as exc:  # unreadable input, bad spec: both paths must raise the same
        return f"{type(exc).__name__}: {exc}", None
    return summary, op.lineage_validation


def _key(evr: Any) -> tuple[str, str]:
    kwargs = {k: v for k, v in evr.expectation_config.kwargs.items() if k != "batch_id"}
    return evr.expectation_config.type, json.dumps(kwargs, sort_keys=True, default=str)


def _seen(evr: Any) -> str:
    """What a result says: verdict, counts, examples, observed value, the messages of what GX raised."""
    info = evr.exception_info or {}
    raised = [info] if "raised_exception" in info else list(info.values())
    messages = sorted(str(i.get("exception_message")) for i in raised if i.get("raised_exception"))
    return json.dumps({"success": evr.success, "result": evr.result, "raised": messages}, sort_keys=True, default=repr)


def assert_same(tmp: Path, table: str, **kwargs: Any) -> tuple[Any, Any]:
    """Both paths on ``table``: identical per expectation and in the summary (the engine adds the spec's uniqueness)."""
    gx_summary, gx_result = run("gx", table, tmp, **kwargs)
    ours_summary, ours_result = run("arrow", table, tmp, **kwargs)
    if isinstance(gx_summary, str):
        assert ours_summary == gx_summary
        return gx_summary, ours_summary
    assert isinstance(ours_summary, dict)
    theirs = {_key(e): _seen(e) for e in gx_result.results}
    ours = {_key(e): _seen(e) for e in ours_result.results if e.expectation_config.type not in UNIQUENESS}
    assert ours == theirs
    assert [_key(e) for e in ours_result.results if e.expectation_config.type not in UNIQUENESS] == [_key(e) for e in gx_result.results]  # GX's order
    unique_failures = [f for f in ours_summary["failed"] if f["expectation"] in UNIQUENESS]
    assert [f for f in ours_summary["failed"] if f["expectation"] not in UNIQUENESS] == gx_summary["failed"]
    assert ours_summary["tolerated"] == gx_summary["tolerated"]
    assert ours_summary["success"] == (gx_summary["success"] and not unique_failures)
    assert (ours_summary["rows"], ours_summary["batches"]) == (gx_summary["rows"], gx_summary["batches"])
    stats = ours_result.statistics
    assert stats["evaluated_expectations"] == len(ours_result.results) == len(gx_result.results) + len(
        [e for e in ours_result.results if e.expectation_config.type in UNIQUENESS]
    )
    return gx_summary, ours_summary


# -- the penguins gallery (tests/byod/test_bad_input.py) ------------------------------------------


@pytest.fixture(scope="module")
def penguins_month(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("penguins")
    runpy.run_path(str(REPO / "examples" / "penguins_data.py"))["write_layout"](str(root))
    return pd.read_parquet(root / "monthly/month=2009-01/part-0.parquet")


@pytest.mark.parametrize("case", list(byod.PARQUET_CASES))
def test_penguins_parquet_cases_agree(case: str, penguins_month: pd.DataFrame, tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    byod.PARQUET_CASES[case][0](penguins_month).to_parquet(bad, index=False)

    gx_summary, _ = assert_same(tmp_path, str(bad), spec_uri=byod.SPEC, labelled=False)

    assert gx_summary["success"] is False  # each case is a failing one


@pytest.mark.parametrize("case", list(byod.FILE_CASES))
def test_penguins_file_cases_agree_unread_and_read(case: str, penguins_month: pd.DataFrame, tmp_path: Path) -> None:
    write, name, _, options = byod.FILE_CASES[case]
    bad = tmp_path / name
    write(penguins_month, bad)

    refused, _ = assert_same(tmp_path, str(bad), spec_uri=byod.SPEC, labelled=False)
    assert isinstance(refused, str) and "TableError" in refused
    if options:
        read, _ = assert_same(tmp_path, str(bad), spec_uri=byod.SPEC, labelled=False, csv_options=options)
        assert read["success"] is True


def test_a_csv_with_a_late_numeric_column_agrees(penguins_month: pd.DataFrame, tmp_path: Path) -> None:
    frame = pd.concat([penguins_month] * 50, ignore_index=True)
    frame["penguin_id"] = range(len(frame))  # one id per row, as the spec's id column demands
    frame.loc[: len(frame) // 2, "bill_length_mm"] = None
    csv = tmp_path / "late_values.csv"
    frame.to_csv(csv, index=False, encoding="utf-8-sig")

    summary, _ = assert_same(tmp_path, str(csv), spec_uri=byod.SPEC, labelled=False, batch_rows=100)
    assert summary["rows"] == 3000


# -- the churn gallery (tests/reliability/test_bad_input.py) -------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("engine-gallery")
    data = churn.generate_dataset(str(root), rows=1200, months=["2025-01"], training_rows=2000, rows_per_file=600)
    (root / "bad_spec.yaml").write_text(gallery.BAD_SPEC)
    return data | {"files": tables.list_data_files(data["months"]["2025-01"]), "root": root}


VALIDATION_CASES = [name for name, case in gallery.CASES.items() if case.stage.startswith("validate")]


@pytest.mark.parametrize("name", VALIDATION_CASES)
def test_churn_gallery_cases_agree(name: str, world: dict[str, Any], tmp_path: Path) -> None:
    case = gallery.CASES[name]
    uri = case.make(tmp_path, world)
    options = dict(case.options)
    spec = str(world["root"] / "bad_spec.yaml") if options.pop("spec_uri", None) else str(SPEC_PATH)

    summary, _ = assert_same(tmp_path, uri, spec_uri=spec, labelled=case.stage == "validate_labelled", **options)

    said = summary if isinstance(summary, str) else " ".join(f"{f['expectation']}({f['column']}) {describe_failure(f)}" for f in summary["failed"])
    assert case.words[0] in said  # the case fails as the gallery says


# -- the operator's own cases (tests/unit/operators/test_validation.py) -------------------------------------


@pytest.fixture(scope="module")
def training(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("engine-val")
    churn.generate_dataset(str(root), rows=10, months=[], training_rows=3000, rows_per_file=1000)
    return str(root / "training")


def _write(frame: pd.DataFrame, tmp: Path, name: str = "bad.parquet") -> str:
    return tables.write_table(frame, str(tmp / name))


def test_bad_rows_in_later_batches_agree(training: str, tmp_path: Path) -> None:
    df = tables.read_table(training)
    df.loc[2500, "contract"] = "weekly"
    df.loc[[10, 2900], "tenure_months"] = -1
    df.loc[[5, 1500, 2999], "age"] = np.nan
    df.loc[range(100, 140), "payment_method"] = None
    df["monthly_charges"] = df["monthly_charges"].astype(str)
    bad = _write(df.drop(columns=["region"]), tmp_path)

    summary, _ = assert_same(tmp_path, bad, spec_uri=str(SPEC_PATH), batch_rows=700)

    assert summary["batches"] == 5
    failed = {(f["expectation"], f["column"]) for f in summary["failed"]}
    assert ("expect_column_values_to_be_in_type_list", "monthly_charges") in failed
    assert ("expect_column_values_to_not_be_null", "payment_method") in failed


def test_all_null_and_empty_tables_agree(training: str, tmp_path: Path) -> None:
    df = tables.read_table(training)
    assert_same(tmp_path, _write(df.assign(tenure_months=np.nan), tmp_path), spec_uri=str(SPEC_PATH), batch_rows=700)
    empty, _ = assert_same(tmp_path, _write(df.head(0), tmp_path, "empty.parquet"), spec_uri=str(SPEC_PATH))
    assert empty["rows"] == 0 and empty["success"] is False
    part = tmp_path / "part"
    tables.write_table(df.head(0), str(part / "part-00000.parquet"))
    tables.write_table(df.head(50), str(part / "part-00001.parquet"))
    tables.finish_partition(str(part), keep=["part-00000.parquet", "part-00001.parquet"])
    passed, _ = assert_same(tmp_path, str(part), spec_uri=str(SPEC_PATH))
    assert passed["success"] is True and passed["rows"] == 50


@pytest.mark.parametrize("share", [0.002, 0.0005])
def test_tolerance_agrees(share: float, training: str, tmp_path: Path) -> None:
    df = tables.read_table(training)
    df.loc[[1, 2, 3], "tenure_months"] = -7
    df.loc[[4, 2200], "contract"] = "weekly"
    bad = _write(df, tmp_path)
    spec = spec_with_tolerance(str(SPEC_PATH), tmp_path, tenure_months=share, contract=0.001)

    summary, _ = assert_same(tmp_path, bad, spec_uri=spec, batch_rows=700)

    assert summary["success"] is (share == 0.002)
    assert [t["column"] for t in summary["tolerated"]] == (["tenure_months", "contract"] if share == 0.002 else ["contract"])


def test_a_users_suite_joins_the_result_in_gx_order(training: str, tmp_path: Path) -> None:
    df = tables.read_table(training).drop(columns=["churned"])
    df.loc[7, "age"] = 250
    scoring = _write(df, tmp_path)
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"expectations": [
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "age", "max_value": 50}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "support_calls", "max_value": 3}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "nope"}},
        {"type": "expect_table_row_count_to_equal", "kwargs": {"value": 3000}},
    ]}))  # fmt: skip

    summary, _ = assert_same(tmp_path, scoring, spec_uri=str(SPEC_PATH), labelled=False, suite_uri=str(suite), batch_rows=700)

    failed = [(f["expectation"], f["column"]) for f in summary["failed"]]
    assert ("expect_column_max_to_be_between", "age") in failed and ("expect_column_values_to_not_be_null", "nope") in failed


# -- uniqueness of the spec's ids ------------------------------------------------------------------------


def test_uniqueness_matches_gx_on_one_batch(training: str, tmp_path: Path) -> None:
    """On a table of one batch GX can judge uniqueness: the engine's result is GX's (counts, values, NaN and null ids)."""
    from airflow_mlops.spec import FeatureSpec
    from airflow_mlops.utils import expectations, gx_batches, gx_engine

    spec = FeatureSpec.load(str(SPEC_PATH))
    df = tables.read_table(training)
    df.loc[[8, 100, 2500], "customer_id"] = df.loc[9, "customer_id"]
    for frame in (df, df.astype({"customer_id": float}).assign(customer_id=lambda d: d["customer_id"].where(d.index != 50)), df.astype({"customer_id": str})):
        import pyarrow as pa

        configs = expectations.spec_expectations(spec, labelled=True)
        theirs = gx_batches.validate_frames(iter([frame]), configs, suite_name="gx")
        ours = gx_engine.validate_batches(iter(pa.Table.from_pandas(frame, preserve_index=False).to_batches()), configs, suite_name="arrow")
        assert {_key(e): _seen(e) for e in ours.result.results} == {_key(e): _seen(e) for e in theirs.result.results}
        assert ours.failures == theirs.failures
        (found,) = [f for f in ours.failures if f["expectation"] == "expect_column_values_to_be_unique"]
        assert found["unexpected_count"] == 4


def test_the_spec_uniqueness_is_judged_over_many_batches_not_refused(training: str, tmp_path: Path) -> None:
    df = tables.read_table(training)
    dupes = _write(pd.concat([df, df.iloc[[2999]]]), tmp_path)  # the last row again, in another batch

    with pytest.raises(DataValidationError, match=r"expect_column_values_to_be_unique\(customer_id\): 2 unexpected value"):
        GxValidateTableOperator(task_id="v", table_uri=dupes, spec_uri=str(SPEC_PATH), reports_uri=str(tmp_path / "r"), batch_rows=700).execute(task_context())


def _ids_table(tmp: Path, rows: int, duplicate: tuple[int, int] | None) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = np.arange(rows, dtype=np.int64) * 7 + 1_000_000_000
    if duplicate is not None:
        ids[duplicate[1]] = ids[duplicate[0]]
    path = tmp / f"ids-{rows}-{duplicate}.parquet"
    pq.write_table(pa.table({"customer_id": ids}), path, row_group_size=250_000)
    return str(path)


@pytest.mark.parametrize("duplicate", [(123_456, 1_876_543), None])
def test_uniqueness_of_2m_ids_in_bounded_memory(duplicate: tuple[int, int] | None, tmp_path: Path) -> None:
    """2M ids in batches of 250k: exactly one duplicated id is found (its two rows, the value named), a clean table passes."""
    from airflow_mlops import rules, table_check

    check = table_check.TableCheck([rules.Rule("unique", columns=("customer_id",))], spill_dir=str(tmp_path))
    for batch in tables.TableReader().batches(_ids_table(tmp_path, 2_000_000, duplicate), batch_rows=250_000):
        check.add(batch)
    (found,) = check.unique().values()

    assert isinstance(found, rules.MapStats) and (found.element_count, found.nonnull_count) == (2_000_000, 2_000_000)
    if duplicate is None:
        assert (found.unexpected_count, found.unexpected_list) == (0, [])
    else:
        assert found.unexpected_count == 2
        assert found.unexpected_list == [123_456 * 7 + 1_000_000_000] * 2 and found.unexpected_index_list == list(duplicate)
    assert list(tmp_path.glob("mlops-unique-*")) == []  # spill files removed


def test_compound_uniqueness_matches_gx(tmp_path: Path) -> None:
    import pyarrow as pa

    from airflow_mlops.utils import gx_batches, gx_engine

    frame = pd.DataFrame({"a": ["x", "x", "y", None, None, "x"], "b": [1, 1, 1, None, None, 2]})
    configs = [{"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["a", "b"]}}]
    theirs = gx_batches.validate_frames(iter([frame]), configs, suite_name="gx")
    ours = gx_engine.validate_batches(iter(pa.Table.from_pandas(frame, preserve_index=False).to_batches(max_chunksize=2)), configs, suite_name="arrow")
    assert [_seen(e) for e in ours.result.results] == [_seen(e) for e in theirs.result.results]
    assert ours.result.results[0].result["unexpected_count"] == 2

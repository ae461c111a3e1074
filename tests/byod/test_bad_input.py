"""Bad input through validation AND through batch inference alone: each gets a message that names the
problem (column, rule, values found, or the option to set), and an earlier good output stays
byte-identical."""

from __future__ import annotations

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.exceptions import DataValidationError, TableError
from airflow_mlops.operators.inference import MlflowBatchPredictOperator
from airflow_mlops.operators.training import MlflowTrainModelOperator
from airflow_mlops.operators.validation import GxValidateTableOperator
from airflow_mlops.tables import CsvOptions
from tests.byod.conftest import PENGUINS_SPEC
from tests.helpers import spec_with_tolerance, task_context

SPEC = str(PENGUINS_SPEC)


@pytest.fixture(scope="module")
def scored(penguins, tmp_path_factory) -> dict:
    """A penguins model (version 1 of its own name) and a good earlier output of month 2009-01."""
    model = "penguins_bad_input"
    MlflowTrainModelOperator(
        task_id="train", train_uri=str(penguins / "training"), spec_uri=SPEC, model_name=model,
        estimator_params={"max_iter": 30}, require_marker=False,
    ).execute(task_context("train"))  # fmt: skip
    out = tmp_path_factory.mktemp("out") / "predictions.parquet"
    month = penguins / "monthly/month=2009-01/part-0.parquet"
    predict_op(str(month), str(out), model).execute(task_context("predict"))
    return {"model": model, "output": out, "bytes": out.read_bytes(), "month": pd.read_parquet(month)}


def predict_op(input_uri: str, output_uri: str, model: str, **kwargs) -> MlflowBatchPredictOperator:
    return MlflowBatchPredictOperator(
        task_id="predict", input_uri=input_uri, output_uri=output_uri, spec_uri=SPEC, model_name=model, model_ref="1",
        scored_at="2009-02-01T00:00:00+00:00", **kwargs,
    )  # fmt: skip


def validate(table: str, **kwargs) -> None:
    GxValidateTableOperator(task_id="validate", table_uri=table, spec_uri=SPEC, labelled=False, reports_uri=table + ".reports", **kwargs).execute(
        task_context("validate")
    )


def _negative(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(bill_length_mm=frame["bill_length_mm"].where(frame.index != frame.index[3], -5.0))


def _unseen(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(island=frame["island"].where(frame.index % 2 == 0, "Anvers"))


def _all_null(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(island=pd.Series([None] * len(frame), dtype=object, index=frame.index))


PARQUET_CASES = {
    # name: (make the bad frame, validation message, inference message)
    "negative value": (_negative, r"'bill_length_mm': 1 value\(s\) of 60 rows outside \[25, 70\] \(found min -5", r"'bill_length_mm': 1 row\(s\) break >= 25 \(e\.g\. -5\.0\)"),
    "unseen category": (_unseen, r"'island': 30 value\(s\) of 60 rows not in the allowed .* \(found 'Anvers' x30\)", r"'island': 30 row\(s\) break in \['Biscoe', 'Dream', 'Torgersen'\] \(e\.g\. 'Anvers'\)"),
    "all-null non-nullable": (_all_null, r"'island': 60 null value\(s\) of 60 rows, but the column is not nullable", r"'island': 60 row\(s\) break not null"),
    "zero rows": (lambda f: f.iloc[:0], r"the table has 0 row\(s\), expected at least 1", r"the input has no rows; nothing was written \(pass allow_empty=True"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(PARQUET_CASES))
def test_bad_rows_are_named_by_validation_and_by_inference_alone(case, scored, tmp_path) -> None:
    make, validation_message, inference_message = PARQUET_CASES[case]
    bad = tmp_path / "bad.parquet"
    make(scored["month"]).to_parquet(bad, index=False)

    with pytest.raises(DataValidationError, match=validation_message):
        validate(str(bad))
    with pytest.raises(AirflowFailException, match=inference_message):
        predict_op(str(bad), str(scored["output"]), scored["model"]).execute(task_context("predict"))

    assert scored["output"].read_bytes() == scored["bytes"]
    assert [p.name for p in scored["output"].parent.iterdir()] == ["predictions.parquet"]  # no staging left


def _semicolon_csv(frame: pd.DataFrame, path) -> None:
    frame.to_csv(path, sep=";", index=False)


def _utf16_csv(frame: pd.DataFrame, path) -> None:
    frame.to_csv(path, index=False, encoding="utf-16")


def _corrupt(frame: pd.DataFrame, path) -> None:
    frame.to_parquet(path, index=False)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


FILE_CASES = {
    # name: (write the file, file name, message of both operators, csv_options that read it)
    "semicolon csv": (_semicolon_csv, "month.csv", r"it looks ';'-delimited; set csv_options=\{'delimiter': ';'\}", {"delimiter": ";"}),
    "utf-16 csv": (_utf16_csv, "month.csv", r"starts with a UTF-16 byte-order mark .* set csv_options=\{'encoding': 'utf-16'\}", {"encoding": "utf-16"}),
    "corrupt parquet": (_corrupt, "month.parquet", r"month\.parquet: cannot read table", None),
}  # fmt: skip


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_unreadable_files_get_the_same_message_from_both_and_the_option_to_set(case, scored, tmp_path) -> None:
    write, name, message, options = FILE_CASES[case]
    bad = tmp_path / name
    write(scored["month"], bad)

    with pytest.raises(TableError, match=message):
        validate(str(bad))
    with pytest.raises(TableError, match=message):
        predict_op(str(bad), str(scored["output"]), scored["model"]).execute(task_context("predict"))
    assert scored["output"].read_bytes() == scored["bytes"]

    if options:  # with the option the message names, the same file validates and scores like the parquet
        validate(str(bad), csv_options=options)
        out = tmp_path / "from_csv.parquet"
        predict_op(str(bad), str(out), scored["model"], csv_options=options).execute(task_context("predict"))
        expected = pd.read_parquet(scored["output"])
        got = pd.read_parquet(out)
        assert got["prediction"].tolist() == expected["prediction"].tolist()
        assert got["probability_Gentoo"].to_numpy() == pytest.approx(expected["probability_Gentoo"].to_numpy())


def test_flag_and_score_modes_score_bad_rows_and_say_so(scored, tmp_path) -> None:
    bad = tmp_path / "bad.parquet"
    _unseen(_negative(scored["month"])).to_parquet(bad, index=False)

    flagged = tmp_path / "flagged.parquet"
    result = predict_op(str(bad), str(flagged), scored["model"], on_invalid_rows="flag").execute(task_context("predict"))
    frame = pd.read_parquet(flagged)
    assert result["rows"] == 60 and result["invalid_rows"] == 30  # 30 odd rows; row 3 also breaks the bound
    assert frame["invalid_reason"].notna().sum() == 30
    assert frame["invalid_reason"].iloc[3] == "bill_length_mm >= 25; island in ['Biscoe', 'Dream', 'Torgersen']"
    assert frame["invalid_reason"].iloc[0] is None

    plain = tmp_path / "plain.parquet"
    result = predict_op(str(bad), str(plain), scored["model"], on_invalid_rows="score").execute(task_context("predict"))
    assert result["invalid_rows"] == 30 and "invalid_reason" not in pd.read_parquet(plain).columns
    assert result["violations"][0].startswith("'bill_length_mm': 1 row(s) break >= 25")


def test_an_allowed_empty_input_never_replaces_an_output_with_rows(scored, tmp_path) -> None:
    empty = tmp_path / "empty.parquet"
    scored["month"].iloc[:0].to_parquet(empty, index=False)

    with pytest.raises(AirflowFailException, match="the earlier output .* has rows; it is kept"):
        predict_op(str(empty), str(scored["output"]), scored["model"], allow_empty=True).execute(task_context("predict"))
    assert scored["output"].read_bytes() == scored["bytes"]

    fresh = tmp_path / "fresh.parquet"
    result = predict_op(str(empty), str(fresh), scored["model"], allow_empty=True).execute(task_context("predict"))
    assert result["rows"] == 0 and pd.read_parquet(fresh).empty
    assert "probability_Adelie" in pd.read_parquet(fresh).columns


def test_csv_columns_are_typed_by_the_spec_not_by_their_first_block(scored, tmp_path) -> None:
    """A nullable numeric column empty in the first blocks of a CSV stays numeric (pyarrow alone would
    type it null from the first block and fail on the first value); a UTF-8 byte-order mark is read."""
    frame = pd.concat([scored["month"]] * 50, ignore_index=True)
    frame["penguin_id"] = range(len(frame))  # one id per row, as the spec's id column demands
    frame.loc[: len(frame) // 2, "bill_length_mm"] = None  # empty in the first half of the file
    bad = tmp_path / "late_values.csv"
    frame.to_csv(bad, index=False, encoding="utf-8-sig")
    out = tmp_path / "late_values.parquet"

    result = predict_op(str(bad), str(out), scored["model"], batch_rows=100).execute(task_context("predict"))  # 64 KiB blocks

    assert result["rows"] == len(frame) == 3000
    assert pd.read_parquet(out)["prediction"].notna().all()
    validate(str(bad))
    # a single null marker given as text is one marker, not two letters
    assert CsvOptions.parse({"null_values": "NA"}).null_values == ("NA",)


def test_inference_scores_and_flags_rows_within_the_tolerance_and_publishes_nothing_beyond(scored, tmp_path) -> None:
    """One bill length of 60 rows breaks its bound (1.7 %): a 2 % tolerance scores every row and flags
    that one; a 1 % tolerance fails naming share and tolerance, and the earlier output stays as it was.
    Rules of columns without a tolerance still fail at once."""
    bad = tmp_path / "bad.parquet"
    _negative(scored["month"]).to_parquet(bad, index=False)
    out = tmp_path / "within.parquet"

    result = MlflowBatchPredictOperator(
        task_id="predict", input_uri=str(bad), output_uri=str(out), spec_uri=spec_with_tolerance(SPEC, tmp_path, bill_length_mm=0.02),
        model_name=scored["model"], model_ref="1", scored_at="2009-02-01T00:00:00+00:00",
    ).execute(task_context("predict"))  # fmt: skip

    frame = pd.read_parquet(out)
    assert (result["rows"], result["invalid_rows"]) == (60, 1) and len(frame) == 60
    assert frame["invalid_reason"].notna().sum() == 1 and frame["invalid_reason"].iloc[3] == "bill_length_mm >= 25"
    assert result["violations"] == ["'bill_length_mm': 1 row(s) break >= 25 (e.g. -5.0)"]

    with pytest.raises(AirflowFailException, match=r"beyond its tolerance: 'bill_length_mm': 1 row\(s\) break >= 25 \(e\.g\. -5\.0\): 1\.667% of 60 rows, tolerance 1\.000%\. Nothing was written"):
        MlflowBatchPredictOperator(
            task_id="predict", input_uri=str(bad), output_uri=str(scored["output"]), spec_uri=spec_with_tolerance(SPEC, tmp_path, bill_length_mm=0.01),
            model_name=scored["model"], model_ref="1", scored_at="2009-02-01T00:00:00+00:00",
        ).execute(task_context("predict"))  # fmt: skip
    assert scored["output"].read_bytes() == scored["bytes"]

    unseen = tmp_path / "unseen.parquet"
    _unseen(_negative(scored["month"])).to_parquet(unseen, index=False)
    with pytest.raises(AirflowFailException, match=r"'island': 30 row\(s\) break in"):
        MlflowBatchPredictOperator(
            task_id="predict", input_uri=str(unseen), output_uri=str(tmp_path / "x.parquet"), spec_uri=spec_with_tolerance(SPEC, tmp_path, bill_length_mm=0.02),
            model_name=scored["model"], model_ref="1", scored_at="2009-02-01T00:00:00+00:00",
        ).execute(task_context("predict"))  # fmt: skip
    assert not (tmp_path / "x.parquet").exists()

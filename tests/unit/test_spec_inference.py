"""``airflow-mlops infer-spec`` on a real table (palmerpenguins): the draft's guesses, and the property
that matters: the draft validates the very table it was drafted from with zero failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from palmerpenguins import load_penguins

from airflow_mlops import cli
from airflow_mlops.spec import FeatureSpec
from airflow_mlops.spec_inference import widen
from airflow_mlops.tables import CsvOptions, TableReader
from airflow_mlops.utils import expectations, gx_batches

MEASURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return load_penguins()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["infer-spec", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def draft(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[FeatureSpec, str, str]:
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    return FeatureSpec.from_yaml_text(out), out, err


def line_of(err: str, column: str) -> str:
    (line,) = [line for line in err.splitlines() if line.startswith(f"{column}: ")]
    return line


def failures(spec: FeatureSpec, uri: str, reader: TableReader, *, drop_null_target: bool = False) -> list[dict[str, Any]]:
    """Validate the table as the validation operator does (batch by batch) against the labelled expectations."""

    def frames() -> Iterator[pd.DataFrame]:
        for batch in reader.batches(uri):
            frame = batch.to_pandas()
            yield frame.dropna(subset=[spec.target]) if drop_null_target else frame

    configs = expectations.spec_expectations(spec, labelled=True)
    merged = gx_batches.validate_frames(frames(), configs, suite_name=f"{spec.name}_draft")
    assert merged.rows > 0
    return merged.failures


def test_penguins_species_drafted_from_a_partition_without_marker(tmp_path: Path, capsys: pytest.CaptureFixture[str], penguins: pd.DataFrame) -> None:
    folder = tmp_path / "penguins"
    folder.mkdir()
    penguins.to_parquet(folder / "part-0.parquet", index=False)  # pandas writes no _SUCCESS marker

    code, out, err = run(capsys, str(folder), "--target", "species")
    assert code == 2
    assert err.startswith("airflow-mlops infer-spec: error:")
    assert "_SUCCESS" in err
    assert out == ""

    spec, out, err = draft(capsys, str(folder), "--target", "species", "--no-marker")

    assert out.startswith(f"# FeatureSpec drafted by `airflow-mlops infer-spec` from {folder}\n# Review before use")
    assert "widened by 0.1 * (max - min)" in out
    assert (spec.name, spec.task, spec.target) == ("penguins", "classification", "species")
    assert spec.classes == ("Adelie", "Chinstrap", "Gentoo")
    assert spec.positive_label is None
    assert spec.numeric_columns == [*MEASURES, "year"]
    assert spec.categorical_columns == ["island", "sex"]
    numeric = {f.name: f for f in spec.numeric_features}
    for column in MEASURES:
        observed = penguins[column].dropna()
        lo, hi = float(observed.min()), float(observed.max())
        pad = 0.1 * (hi - lo)
        feature = numeric[column]
        assert feature.nullable, column
        assert feature.min is not None and feature.max is not None
        # The margin is honoured, rounding adds less than another margin, and no bound goes below 0.
        assert lo - 2 * pad <= feature.min <= lo - pad + 1e-9, column
        assert hi + pad - 1e-9 <= feature.max <= hi + 2 * pad, column
        assert feature.min >= 0, column
    assert (numeric["year"].min, numeric["year"].max, numeric["year"].nullable) == (2006, 2010, False)
    assert "  year: {min: 2006, max: 2010}\n" in out  # integer bounds, written as integers
    assert "  body_mass_g: {min: 2340, max: 6660, nullable: true}\n" in out  # whole-number floats: integer bounds
    island, sex = spec.categorical_features
    assert (island.values, island.nullable) == (("Biscoe", "Dream", "Torgersen"), False)
    assert (sex.values, sex.nullable) == (("female", "male"), True)

    assert "classification (text labels); classes ['Adelie', 'Chinstrap', 'Gentoo']" in line_of(err, "species")
    assert line_of(err, "year") == (
        "year: numeric (int64); observed [2007, 2009] -> bounds [2006, 2010] "
        "(margin 0.1; integer bounds; never below 0, no negative value seen); not nullable (no nulls)"
    )
    assert line_of(err, "sex").endswith("nullable (11 null(s))")
    assert "not nullable (no nulls)" in line_of(err, "island")
    assert "warning" not in err

    assert failures(spec, str(folder), TableReader(require_marker=False)) == []


def test_semicolon_csv_gives_the_same_draft_as_parquet(tmp_path: Path, capsys: pytest.CaptureFixture[str], penguins: pd.DataFrame) -> None:
    csv_file, parquet_file = tmp_path / "penguins.csv", tmp_path / "penguins.parquet"
    penguins.to_csv(csv_file, sep=";", index=False)
    penguins.to_parquet(parquet_file, index=False)

    code, _, err = run(capsys, str(csv_file), "--target", "species")
    assert code == 2
    assert "';'-delimited" in err
    assert "--delimiter" in err

    from_csv, csv_out, _ = draft(capsys, str(csv_file), "--target", "species", "--delimiter", ";")
    from_parquet, parquet_out, _ = draft(capsys, parquet_file.as_uri(), "--target", "species")

    assert from_csv == from_parquet
    assert csv_out.split("\n", 1)[1] == parquet_out.split("\n", 1)[1]  # all but the line naming the table
    assert failures(from_csv, str(csv_file), TableReader(csv=CsvOptions(delimiter=";"))) == []


def test_binary_text_target_needs_its_positive_label(tmp_path: Path, capsys: pytest.CaptureFixture[str], penguins: pd.DataFrame) -> None:
    table = tmp_path / "penguins_sexed.parquet"
    penguins.dropna(subset=["sex"]).to_parquet(table, index=False)

    code, out, err = run(capsys, str(table), "--target", "sex")
    assert (code, out) == (2, "")
    assert err.startswith("airflow-mlops infer-spec: error: target 'sex' is binary with labels 'female' and 'male'")
    assert "--positive-label" in err

    code, _, err = run(capsys, str(table), "--target", "sex", "--positive-label", "Female")
    assert code == 2
    assert "--positive-label 'Female' is not one of the labels of 'sex': ['female', 'male']" in err

    spec, _, _ = draft(capsys, str(table), "--target", "sex", "--positive-label", "female")

    assert (spec.name, spec.classes, spec.positive_label) == ("penguins_sexed", ("female", "male"), "female")
    assert "sex" not in spec.feature_columns
    assert failures(spec, str(table), TableReader()) == []


def test_flag_yes_no_target_and_boolean_column(tmp_path: Path, capsys: pytest.CaptureFixture[str], penguins: pd.DataFrame) -> None:
    rows = penguins.dropna(subset=["body_mass_g"]).reset_index(drop=True)
    table = tmp_path / "bills.parquet"
    pd.DataFrame(
        {
            "heavy": (rows["body_mass_g"] > 4200).astype("int64"),
            "long_bill": np.where(rows["bill_length_mm"] > 45, "Yes", "No"),
            "lights": np.where(rows["island"] == "Dream", "on", "off"),
            "dream": rows["island"] == "Dream",
            "flipper_length_mm": rows["flipper_length_mm"],
        }
    ).to_parquet(table, index=False)

    code, _, err = run(capsys, str(table), "--target", "long_bill")
    assert code == 2
    assert "binary with labels 'No' and 'Yes'" in err

    spec, out, err = draft(capsys, str(table), "--target", "long_bill", "--positive-label", "Yes")

    raw = yaml.safe_load(out)  # plain YAML, as any reader would see it: text stays text
    assert raw["classes"] == ["No", "Yes"]
    assert raw["positive_label"] == "Yes"
    assert raw["categorical_features"]["lights"]["values"] == ["off", "on"]
    assert (spec.classes, spec.positive_label) == (("No", "Yes"), "Yes")
    assert "  heavy: {min: 0, max: 1}\n" in out
    assert "0/1 flag: bounds exactly [0, 1], no margin" in line_of(err, "heavy")
    dream = next(f for f in spec.categorical_features if f.name == "dream")
    assert (dream.values, dream.nullable) == (None, False)
    assert "boolean; values not listed" in line_of(err, "dream")
    assert failures(spec, str(table), TableReader()) == []

    flag_target, _, _ = draft(capsys, str(table), "--target", "heavy")
    assert (flag_target.classes, flag_target.positive_label) == ((0, 1), None)
    flag_target, _, _ = draft(capsys, str(table), "--target", "heavy", "--positive-label", "1")
    assert flag_target.positive_label == 1
    assert type(flag_target.positive_label) is int
    bool_target, _, _ = draft(capsys, str(table), "--target", "dream", "--positive-label", "true")
    assert bool_target.classes == (False, True)
    assert bool_target.positive_label is True


def test_regression_target_with_missing_values(tmp_path: Path, capsys: pytest.CaptureFixture[str], penguins: pd.DataFrame) -> None:
    table = tmp_path / "penguins.parquet"
    penguins.to_parquet(table, index=False)

    code, _, err = run(capsys, str(table), "--target", "body_mass_g", "--positive-label", "1")
    assert code == 2
    assert "--positive-label applies to a classification target" in err

    spec, _, err = draft(capsys, str(table), "--target", "body_mass_g")

    assert (spec.task, spec.classes, spec.positive_label) == ("regression", None, None)
    assert "body_mass_g" not in spec.feature_columns
    distinct = penguins["body_mass_g"].nunique()
    assert distinct > 20
    assert line_of(err, "body_mass_g") == (
        f"body_mass_g: target, regression (numeric, {distinct} distinct whole values in 342 rows ({distinct / 342:.1%}): "
        "more than 20 and at least 1% of the rows)"
    )
    assert "warning: 2 row(s) have no 'body_mass_g' value" in err
    assert "drop them before validating or training" in err
    # The spec cannot fix unlabelled rows: with them the table fails exactly the target's not-null check.
    kept = failures(spec, str(table), TableReader())
    assert [(f["expectation"], f["column"], f["unexpected_count"]) for f in kept] == [
        ("expect_column_values_to_not_be_null", "body_mass_g", 2)
    ]
    assert failures(spec, str(table), TableReader(), drop_null_target=True) == []


def test_identifier_columns_warned_unless_named(tmp_path: Path, capsys: pytest.CaptureFixture[str], penguins: pd.DataFrame) -> None:
    table = tmp_path / "Penguins 2009.parquet"
    penguins.assign(penguin_id=range(1, len(penguins) + 1)).to_parquet(table, index=False)

    spec, _, err = draft(capsys, str(table), "--target", "species")
    assert spec.name == "penguins_2009"
    assert "penguin_id" in spec.numeric_columns  # warned about, never silently dropped
    assert "warning: unique per row and named like an identifier" in line_of(err, "penguin_id")
    assert "pass --id penguin_id" in line_of(err, "penguin_id")

    output = tmp_path / "spec.yaml"
    code, out, err = run(capsys, str(table), "--target", "species", "--id", "penguin_id", "--name", "birds", "-o", str(output))

    assert (code, out) == (0, "")
    assert f"wrote {output}" in err
    spec = FeatureSpec.from_yaml_text(output.read_text())
    assert (spec.name, spec.id_columns) == ("birds", ("penguin_id",))
    assert "penguin_id" not in spec.feature_columns
    assert line_of(err, "penguin_id") == "penguin_id: id column (--id), not a feature"


def test_errors_exit_2_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str], penguins: pd.DataFrame) -> None:
    table = tmp_path / "penguins.parquet"
    penguins.to_parquet(table, index=False)

    code, out, err = run(capsys, str(table), "--target", "flavour")
    assert (code, out) == (2, "")
    assert err.startswith("airflow-mlops infer-spec: error: column(s) ['flavour'] not in the table; it has ['species',")

    code, _, err = run(capsys, str(tmp_path / "absent.parquet"), "--target", "species")
    assert code == 2
    assert err.startswith("airflow-mlops infer-spec: error:")
    assert "no such file or partition" in err

    code, _, err = run(capsys, str(table), "--target", "species", "--id", "species")
    assert code == 2
    assert "the target 'species' cannot also be an id or timestamp column" in err


def test_bounds_rule() -> None:
    assert widen(2.0, 12.0, margin=0.1, whole=False) == (1.0, 13.0)
    assert widen(0.0, 10.0, margin=0.1, whole=True) == (0, 11)  # never below 0 when nothing negative was seen
    assert widen(-5.0, 5.0, margin=0.1, whole=True) == (-6, 6)
    assert widen(2007.0, 2009.0, margin=0.1, whole=True) == (2006, 2010)  # floor / ceil
    assert widen(7.0, 7.0, margin=0.1, whole=False) == (6.3, 7.7)  # a constant: margin * |value|
    assert widen(0.0, 0.0, margin=0.1, whole=False) == (0.0, 0.1)  # a constant 0: margin * 1, kept >= 0
    assert widen(32.1, 59.6, margin=0.1, whole=False) == (29.3, 62.4)  # 29.35 / 62.35 rounded outward
    assert widen(3.0, 5.0, margin=0.0, whole=False) == (3.0, 5.0)


def test_a_text_column_with_no_value_is_drafted_open_and_the_spec_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str], penguins: pd.DataFrame) -> None:
    table = tmp_path / "penguins.parquet"
    penguins.assign(note=pd.Series([None] * len(penguins), dtype=object)).to_parquet(table, index=False)

    spec, _, err = draft(capsys, str(table), "--target", "species", "--holdout-share", "0")

    (note,) = [f for f in spec.categorical_features if f.name == "note"]
    assert (note.values, note.nullable) == (None, True)  # loaded: an empty allowed list would not
    assert line_of(err, "note").startswith("note: categorical (text; no value at all (every row null): values not listed)")

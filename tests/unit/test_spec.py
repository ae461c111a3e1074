from __future__ import annotations

import pickle

import pytest
import yaml

from airflow_mlops.example_data import SPEC_PATH
from airflow_mlops.exceptions import FeatureSpecError
from airflow_mlops.spec import FeatureSpec

MINIMAL = {
    "name": "houses",
    "task": "regression",
    "target": "price",
    "id_columns": ["house_id"],
    "numeric_features": {"area": {"min": 0}, "rooms": None},
    "categorical_features": ["city"],
}


def test_churn_spec_loads_with_roles() -> None:
    spec = FeatureSpec.load(str(SPEC_PATH))

    assert spec.task == "classification"
    assert spec.target == "churned"
    assert spec.id_columns == ("customer_id",)
    assert spec.timestamp_column == "snapshot_date"
    assert "contract" in spec.categorical_columns and "tenure_months" in spec.numeric_columns
    assert spec.training_columns()[-1] == "churned"
    assert "churned" not in spec.scoring_columns()
    contract = next(f for f in spec.categorical_features if f.name == "contract")
    assert contract.values == ("month-to-month", "one-year", "two-year") and contract.nullable is False
    total = next(f for f in spec.numeric_features if f.name == "total_charges")
    assert total.nullable is True and total.min == 0


def test_round_trip_through_dict_and_list_forms() -> None:
    spec = FeatureSpec.from_dict(MINIMAL)

    assert spec.feature_columns == ["area", "rooms", "city"]
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    assert FeatureSpec.from_yaml_text(yaml.safe_dump(spec.to_dict())) == spec


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"colour": "red"}, "colour", "unknown key"),
        ({"target": None}, "target", "'target' is required"),
        ({"task": "clustering"}, "task", "task must be one of"),
        ({"categorical_features": ["city", "city"]}, "categorical_features.city", "duplicate column"),
        ({"categorical_features": ["area"]}, "categorical_features.area", "duplicate column 'area'"),
        ({"categorical_features": ["price"]}, "categorical_features.price", "target 'price' is also listed"),
        ({"id_columns": ["price"]}, "id_columns.price", "target 'price' is also listed"),
        ({"numeric_features": {"area": {"min": 5, "max": 1}}}, "numeric_features.area", "greater than max"),
        ({"numeric_features": {"area": {"minimum": 0}}}, "numeric_features.area.minimum", "unknown key"),
        ({"numeric_features": {"area": {"min": "zero"}}}, "numeric_features.area.min", "must be a number"),
        ({"numeric_features": {"area": {"nullable": "yes"}}}, "numeric_features.area.nullable", "true or false"),
        ({"categorical_features": {"city": {"values": []}}}, "categorical_features.city.values", "non-empty list"),
        ({"numeric_features": {}, "categorical_features": {}}, "numeric_features", "no features"),
    ],
)
def test_malformed_spec_names_the_key(change: dict, key: str, words: str) -> None:
    doc = {**MINIMAL, **change}

    with pytest.raises(FeatureSpecError) as err:
        FeatureSpec.from_dict(doc, source="specs/houses.yaml")

    assert err.value.key == key
    assert words in str(err.value)
    assert "specs/houses.yaml" in str(err.value)


def test_not_a_mapping_and_not_yaml() -> None:
    with pytest.raises(FeatureSpecError, match="must be a mapping"):
        FeatureSpec.from_yaml_text("- a\n- b\n")
    with pytest.raises(FeatureSpecError, match="not valid YAML"):
        FeatureSpec.from_yaml_text("name: [unclosed\n")


def test_missing_spec_file_names_it(tmp_path) -> None:
    missing = tmp_path / "nope.yaml"

    with pytest.raises(FeatureSpecError, match="nope.yaml"):
        FeatureSpec.load(str(missing))


def test_error_pickles_with_its_attributes() -> None:
    err = FeatureSpecError("bad", key="task", source="x.yaml")

    clone = pickle.loads(pickle.dumps(err))

    assert (clone.key, clone.source, str(clone)) == ("task", "x.yaml", str(err))

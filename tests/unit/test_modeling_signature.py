"""The model's input schema comes from the FeatureSpec's kinds, not from a sample of rows: a text column
that is null in 95%+ of the training rows (and in every one of a sample) is still ``string``."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_mlops.spec import FeatureSpec
from airflow_mlops.utils import modeling

SPEC = FeatureSpec.from_dict(
    {
        "name": "houses",
        "task": "regression",
        "target": "price",
        "numeric_features": {"area": {}, "lot": {"nullable": True}},
        "categorical_features": {"misc": {}, "pool": {}, "central_air": {}, "street": {}},
    }
)


def frame() -> pd.DataFrame:
    rows = 200
    return pd.DataFrame(
        {
            "area": range(rows),  # integers: the model takes them as double
            "lot": [None if i % 3 else 1.5 * i for i in range(rows)],
            "misc": [None] * 190 + ["Shed"] * 10,  # 95% null, none in the first rows
            "pool": pd.Series([None] * rows, dtype=object),  # null in every training row
            "central_air": pd.Series([True, False, None] * 66 + [True, True], dtype=object),
            "street": ["Pave"] * rows,
            "price": range(rows),
        }
    )


def test_types_follow_the_spec_not_the_first_rows() -> None:
    schema = modeling.input_schema(SPEC, frame())

    assert [(c.name, str(c.type).split(".")[-1], c.required) for c in schema.inputs] == [
        ("area", "double", True),
        ("lot", "double", True),
        ("misc", "string", True),
        ("pool", "string", True),
        ("central_air", "boolean", True),
        ("street", "string", True),
    ]



def test_scoring_takes_the_specs_kind_for_a_column_an_older_signature_left_open() -> None:
    """A model registered before: MLflow typed the column ``Any`` from training rows where it was all null."""
    import pyarrow as pa
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import AnyType

    from airflow_mlops.exceptions import TableError
    from airflow_mlops.utils.modeling import check_input_schema

    spec = FeatureSpec.from_dict({"name": "h", "task": "regression", "target": "price", "numeric_features": {"area": {}}, "categorical_features": {"misc": {}}})
    older = ModelSignature(inputs=Schema([ColSpec(DataType.double, "area"), ColSpec(AnyType(), "misc", required=False)]))
    assert str(older.inputs.inputs[1].type) == "Any"

    for misc in (pa.string(), pa.null()):  # a month with values, a month where the column is all null
        check_input_schema(pa.schema([("area", pa.float64()), ("misc", misc)]), spec, older, "month.parquet")
    with pytest.raises(TableError, match="column 'misc' has type int64, the model expects string"):
        check_input_schema(pa.schema([("area", pa.float64()), ("misc", pa.int64())]), spec, older, "month.parquet")

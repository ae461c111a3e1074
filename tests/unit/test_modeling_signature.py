"""The model's input schema comes from the FeatureSpec's kinds, not from a sample of rows: a text column
that is null in 95%+ of the training rows (and in every one of a sample) is still ``string``."""

from __future__ import annotations

import pandas as pd

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



"""Great Expectations 1.x glue: the expectations a FeatureSpec implies, a user's suite (JSON), one
ephemeral GX context and suite, and a failed expectation told in one line.

A table is judged two ways, both reported as GX's own result objects: the spec's expectations by the
Arrow engine (:mod:`airflow_mlops.utils.gx_engine`, over :mod:`airflow_mlops.rules`), a user's suite
by GX itself on pandas batches, merged (:mod:`airflow_mlops.utils.gx_batches`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_mlops.spec import FeatureSpec

log = logging.getLogger(__name__)

NUMERIC_DTYPES = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64",
    "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32", "Float64",
]  # fmt: skip
STRING_DTYPES = ["object", "str", "string", "category", "bool", "boolean"]
class WholeTableOnlyError(ValueError):
    """A suite holds an expectation about rows of other batches (:data:`WHOLE_TABLE_ONLY`) and the
    table needs more than one batch."""


#: Row-by-row expectations whose verdict still depends on rows of other batches: judged only when one batch holds the table.
WHOLE_TABLE_ONLY = frozenset({
    "expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique", "expect_column_values_to_be_increasing",
    "expect_column_values_to_be_decreasing", "expect_column_unique_value_count_to_be_between",
    "expect_column_proportion_of_unique_values_to_be_between", "expect_column_distinct_values_to_be_in_set",
    "expect_column_distinct_values_to_contain_set", "expect_column_distinct_values_to_equal_set",
})  # fmt: skip
#: Expectations about the table's shape: every batch has the same columns, so each batch's verdict is the table's.
SCHEMA_EXPECTATIONS = frozenset({
    "expect_column_to_exist", "expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list",
    "expect_table_column_count_to_equal", "expect_table_column_count_to_be_between",
})  # fmt: skip
#: Aggregates merged exactly over the batches: how the whole table's observed value follows from each
#: batch's ``(value, non-null rows)``.
MERGED_AGGREGATES = {
    "expect_table_row_count_to_be_between": "rows", "expect_table_row_count_to_equal": "rows",
    "expect_column_min_to_be_between": "min", "expect_column_max_to_be_between": "max",
    "expect_column_sum_to_be_between": "sum", "expect_column_mean_to_be_between": "mean",
}  # fmt: skip
MAX_FAILURES_IN_SUMMARY = 20
MAX_SAMPLES = 10


def spec_expectations(spec: FeatureSpec, *, labelled: bool, unique: bool = True) -> list[dict[str, Any]]:
    """Return GX expectation configs (``{"type", "kwargs"}``) that a table described by ``spec`` must meet.

    :param labelled: the table must also hold the target (training/holdout data).
    :param unique: the spec's ``id_columns`` must be unique over the table (``expect_column_values_to_be_unique``,
        or ``expect_compound_columns_to_be_unique`` for several), judged by the engine
        (:func:`validate_batches`); GX alone (:func:`validate_frames`) judges it only on a table of one batch.
    """
    out: list[dict[str, Any]] = [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}]
    required = spec.training_columns() if labelled else spec.scoring_columns()
    out += [{"type": "expect_column_to_exist", "kwargs": {"column": c}} for c in required]
    for col in spec.passthrough_columns:
        out.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": col}})
    if unique and len(spec.id_columns) == 1:
        out.append({"type": "expect_column_values_to_be_unique", "kwargs": {"column": spec.id_columns[0]}})
    elif unique and spec.id_columns:
        out.append({"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": list(spec.id_columns)}})
    def tolerant(column: str) -> dict[str, float]:  # GX's own tolerance: the share of rows that must meet the rule
        share = spec.tolerance_of(column)
        return {"mostly": 1 - share} if share else {}

    for num in spec.numeric_features:
        out.append({"type": "expect_column_values_to_be_in_type_list", "kwargs": {"column": num.name, "type_list": NUMERIC_DTYPES}})
        if not num.nullable:
            out.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": num.name, **tolerant(num.name)}})
        if num.min is not None or num.max is not None:
            bounds = {k: v for k, v in (("min_value", num.min), ("max_value", num.max)) if v is not None}
            out.append({"type": "expect_column_values_to_be_between", "kwargs": {"column": num.name, **bounds, **tolerant(num.name)}})
    for cat in spec.categorical_features:
        out.append({"type": "expect_column_values_to_be_in_type_list", "kwargs": {"column": cat.name, "type_list": STRING_DTYPES}})
        if not cat.nullable:
            out.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": cat.name, **tolerant(cat.name)}})
        if cat.values is not None:
            out.append(
                {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": cat.name, "value_set": list(cat.values), **tolerant(cat.name)}}
            )
    if labelled:
        out.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": spec.target}})
        if spec.classes is not None:
            out.append({"type": "expect_column_values_to_be_in_set", "kwargs": {"column": spec.target, "value_set": list(spec.classes)}})
        if spec.task == "regression":
            out.append({"type": "expect_column_values_to_be_in_type_list", "kwargs": {"column": spec.target, "type_list": NUMERIC_DTYPES}})
    return out


def load_suite_json(text: str, *, source: str) -> list[dict[str, Any]]:
    """Read a GX expectation suite JSON (``{"expectations": [{"type", "kwargs"}]}``) into configs."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"expectation suite {source} is not valid JSON: {exc}") from exc
    items = doc.get("expectations") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ValueError(f"expectation suite {source} must be an object with an 'expectations' list")
    configs = []
    for i, item in enumerate(items):
        kind = item.get("type") or item.get("expectation_type") if isinstance(item, dict) else None
        if not isinstance(kind, str):
            raise ValueError(f"expectation suite {source}: expectation {i} has no 'type'")
        configs.append({"type": kind, "kwargs": dict(item.get("kwargs") or {}), "meta": {"source": source}})
    return configs


def quiet_context() -> Any:
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}  # type: ignore[assignment]
    return context


def build_suite(context: Any, configs: Iterable[dict[str, Any]], name: str) -> Any:
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    suite = context.suites.add(gx.ExpectationSuite(name=name))
    for config in configs:
        try:
            configuration = ExpectationConfiguration(type=config["type"], kwargs=config["kwargs"], meta=config.get("meta"))
            suite.add_expectation(configuration.to_domain_obj())
        except Exception as exc:  # GX raises several types for unknown expectations / bad kwargs
            raise ValueError(f"invalid expectation {config['type']} {config['kwargs']}: {exc}") from exc
    suite.save()
    return suite


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


def describe_failure(failure: dict[str, Any]) -> str:
    """One line saying what a failed expectation found: values found against the bound, a few
    unexpected values with counts, rows found against rows expected."""
    kind, column = failure["expectation"], failure.get("column")
    if "error" in failure:
        return f"{kind}({column}): {failure['error']}"
    count = failure.get("unexpected_count")
    of_rows = f" of {failure['element_count']} rows" if failure.get("element_count") is not None else ""
    found = ", ".join(f"{c['value']!r} x{c['count']}" for c in failure.get("unexpected_counts", []))
    if kind == "expect_table_row_count_to_be_between":
        want = " and ".join(f"{word} {failure[key]}" for key, word in (("min_value", "at least"), ("max_value", "at most")) if key in failure)
        return f"the table has {failure.get('observed_value', '?')} row(s), expected {want}"
    if failure.get("mostly") is not None:  # a tolerant rule: say how much was allowed
        return _describe(failure, kind, column, count, of_rows, found) + f" (tolerance {1 - failure['mostly']:.3%} of the rows)"
    return _describe(failure, kind, column, count, of_rows, found)


def _describe(failure: dict[str, Any], kind: str, column: Any, count: Any, of_rows: str, found: str) -> str:
    if kind == "expect_column_values_to_be_between":
        bounds = f"[{_num(failure['min_value']) if 'min_value' in failure else '-inf'}, {_num(failure['max_value']) if 'max_value' in failure else 'inf'}]"
        sample = ", ".join(_num(c["value"]) for c in failure.get("unexpected_counts", []))
        seen = [f"found min {_num(failure['observed_min'])}, max {_num(failure['observed_max'])}"] if "observed_min" in failure else []
        details = "; ".join(seen + ([f"e.g. {sample}"] if sample else []))
        return f"{column!r}: {count} value(s){of_rows} outside {bounds}" + (f" ({details})" if details else "")
    if kind == "expect_column_values_to_be_in_set":
        return f"{column!r}: {count} value(s){of_rows} not in the allowed {failure.get('value_set')}" + (f" (found {found})" if found else "")
    if kind == "expect_column_values_to_not_be_null":
        return f"{column!r}: {count} null value(s){of_rows}, but the column is not nullable"
    if kind == "expect_column_values_to_be_in_type_list":
        return f"{column!r}: {count} value(s){of_rows} of the wrong type" + (f" (e.g. {found})" if found else "")
    if count is not None:
        return f"{kind}({column}): {count} unexpected value(s){of_rows}" + (f" (e.g. {found})" if found else "")
    return f"{kind}({column}): observed {failure.get('observed_value')!r}"


def gx_analytics_off() -> None:
    """Turn GX analytics off unless the user decided otherwise (must run before GX is imported)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

"""Great Expectations 1.x glue: expectations from a FeatureSpec, batched validation, merged results.

GX validates in-memory DataFrames; to keep memory bounded the table is streamed and validated batch
by batch with one ephemeral context and one suite, and the per-batch results are merged:

* column-map expectations (per row: not null, in set, between, in type list) merge exactly: a
  failure in any batch fails the whole, counts add up, unexpected samples are pooled (capped);
  With ``mostly`` (a FeatureSpec tolerance), success is judged again on the whole table's counts, as
  GX judges one batch: the share of rows that meet it (of the non-null rows, or of all rows for
  ``not null``) must reach ``mostly``;
* schema expectations (a column exists, the table's columns) hold or fail alike in every batch;
* aggregates that merge exactly are judged on the whole table (:data:`MERGED_AGGREGATES`: row count,
  a column's min, max, sum and mean, from each batch's value and non-null count);
* every other expectation depends on rows of other batches (uniqueness, order, distinct values,
  medians, quantiles, a user's aggregate): a suite with one is refused before any batch is validated
  when the table needs a second batch, naming the expectation and the ``batch_rows`` to set.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core import ExpectationSuiteValidationResult

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


def _quiet_context() -> Any:
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}  # type: ignore[assignment]
    return context


def _build_suite(context: Any, configs: Iterable[dict[str, Any]], name: str) -> Any:
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


@dataclass
class MergedValidation:
    """The merge of per-batch GX results: the GX result object of the whole table plus totals."""

    result: ExpectationSuiteValidationResult
    rows: int
    batches: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    #: Expectations met within their ``mostly`` (a spec's tolerance) that some rows broke, as ``failures`` lists them.
    tolerated: list[dict[str, Any]] = field(default_factory=list)
    #: For the messages: required columns absent, observed [min, max] of bounded columns, exact counts of values outside a set.
    missing: set[str] = field(default_factory=set)
    ranges: dict[str, list[float]] = field(default_factory=dict)
    strays: dict[str, dict[Any, int]] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return bool(self.result.success)


def _merge_into(total: Any, part: Any) -> None:
    """Fold one batch's ExpectationValidationResult into the running total (same expectation)."""
    total.success = bool(total.success and part.success)
    a, b = total.result, part.result
    for key in ("element_count", "unexpected_count", "missing_count"):
        if key in a or key in b:
            a[key] = (a.get(key) or 0) + (b.get(key) or 0)
    if "partial_unexpected_list" in b:
        a["partial_unexpected_list"] = (a.get("partial_unexpected_list") or []) + b["partial_unexpected_list"]
        a["partial_unexpected_list"] = a["partial_unexpected_list"][:MAX_SAMPLES]
    if "partial_unexpected_counts" in b:  # GX's counts are per batch: add them up by value
        counts: dict[Any, int] = {}
        for item in (a.get("partial_unexpected_counts") or []) + b["partial_unexpected_counts"]:
            counts[item["value"]] = counts.get(item["value"], 0) + item["count"]
        a["partial_unexpected_counts"] = [{"value": v, "count": c} for v, c in sorted(counts.items(), key=lambda vc: -vc[1])][:MAX_SAMPLES]
    if a.get("element_count"):
        a["unexpected_percent"] = 100.0 * (a.get("unexpected_count") or 0) / a["element_count"]
    if not part.success and part.exception_info and not total.exception_info:
        total.exception_info = part.exception_info


def _failure(evr: Any, missing: set[str], ranges: dict[str, list[float]], strays: dict[str, dict[Any, int]]) -> dict[str, Any]:
    cfg = evr.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
    res = evr.result or {}
    failure: dict[str, Any] = {"expectation": cfg.type, "column": kwargs.get("column")}
    for key in ("min_value", "max_value"):
        if kwargs.get(key) is not None:
            failure[key] = kwargs[key]
    if kwargs.get("value_set") is not None:
        failure["value_set"] = list(kwargs["value_set"])[:20]
    if kwargs.get("mostly") is not None:
        failure["mostly"] = kwargs["mostly"]
    for key in ("observed_value", "element_count", "unexpected_count", "unexpected_percent"):
        if res.get(key) is not None:
            failure[key] = res[key]
    if cfg.type == "expect_column_values_to_be_between" and kwargs.get("column") in ranges:
        failure["observed_min"], failure["observed_max"] = ranges[kwargs["column"]]
    if cfg.type == "expect_column_values_to_be_in_set" and strays.get(kwargs.get("column") or ""):
        counted = sorted(strays[kwargs["column"]].items(), key=lambda vc: (-vc[1], str(vc[0])))
        failure["unexpected_counts"] = [{"value": v, "count": c} for v, c in counted[:5]]  # exact, over every batch
    elif res.get("partial_unexpected_counts"):  # GX counts its sample of unexpected values
        failure["unexpected_counts"] = [
            {"value": None if c["value"] != c["value"] else c["value"], "count": c["count"]} for c in res["partial_unexpected_counts"][:5]
        ]  # NaN -> None
    if res.get("partial_unexpected_list"):
        failure["unexpected_sample"] = [None if v != v else v for v in res["partial_unexpected_list"][:5]]  # NaN -> None
    info = evr.exception_info or {}
    message = info.get("exception_message") if isinstance(info, dict) else None
    if message:
        failure["error"] = str(message)[:300]
    if kwargs.get("column") in missing:
        failure["error"] = f"column {kwargs['column']!r} is missing"
    return json.loads(json.dumps(failure, default=str))


def batch_independent(kind: str) -> bool:
    """Whether the verdict of expectation type ``kind`` on a table follows from its verdicts (or values)
    on the table's batches: row-by-row rules, schema rules and :data:`MERGED_AGGREGATES`."""
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )
    from great_expectations.expectations.registry import get_expectation_impl

    if kind in WHOLE_TABLE_ONLY:
        return False
    if kind in SCHEMA_EXPECTATIONS or kind in MERGED_AGGREGATES:
        return True
    try:
        impl = get_expectation_impl(kind)
    except Exception:  # an unknown type: _build_suite names it
        return True
    return issubclass(impl, ColumnMapExpectation | ColumnPairMapExpectation | MulticolumnMapExpectation)


def _nonempty(frames: Iterator[pd.DataFrame], seen: dict[str, Any]) -> Iterator[pd.DataFrame]:
    """The frames with rows; the first frame's columns and the first empty frame go into ``seen``."""
    for frame in frames:
        seen.setdefault("columns", set(frame.columns))
        if frame.empty:
            seen.setdefault("empty", frame)
            continue
        yield frame


def validate_frames(frames: Iterator[pd.DataFrame], configs: list[dict[str, Any]], *, suite_name: str) -> MergedValidation:
    """Validate a stream of DataFrames against ``configs`` and merge the results.

    Empty frames are skipped unless the whole stream is empty, so a table with zero rows fails the
    row-count expectation once and a partition with one empty file does not.

    :raises WholeTableOnlyError: the suite holds an expectation that batches cannot judge and the table
        needs more than one batch (raised before any batch is validated).
    """
    import itertools

    import great_expectations as gx

    context = _quiet_context()
    source = context.data_sources.add_pandas("mlops")
    batch_definition = source.add_dataframe_asset("table").add_batch_definition_whole_dataframe("whole")
    suite = _build_suite(context, configs, suite_name)
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=suite_name, data=batch_definition, suite=suite))

    seen: dict[str, Any] = {}
    stream = _nonempty(frames, seen)
    head = list(itertools.islice(stream, 2))
    whole_table_only = sorted({c["type"] for c in configs if not batch_independent(c["type"])})
    if len(head) > 1 and whole_table_only:
        raise WholeTableOnlyError(
            f"{whole_table_only} cannot be judged batch by batch (a duplicate, an out-of-order row or the rest of an aggregate can "
            f"sit in another batch) and the table comes in more than one batch (the first holds {len(head[0])} rows; a batch never "
            f"spans two files): set batch_rows above the table's row count for a table of one file, or drop the expectation from the suite"
        )
    merged: Any = None
    bounded = {c["kwargs"]["column"] for c in configs if c["type"] == "expect_column_values_to_be_between"}
    allowed = {c["kwargs"]["column"]: set(c["kwargs"]["value_set"]) for c in configs if c["type"] == "expect_column_values_to_be_in_set"}
    ranges: dict[str, list[float]] = {}
    strays: dict[str, dict[Any, int]] = {}
    partials: dict[int, list[tuple[Any, int]]] = {}
    rows = batches = 0
    for batches, frame in enumerate(itertools.chain(head, stream), start=1):
        result = definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")
        _track_ranges(frame, bounded, ranges)
        _track_strays(frame, allowed, strays)
        _track_aggregates(frame, result.results, partials)
        rows += len(frame)
        if merged is None:
            merged = result
        else:
            for total, part in zip(merged.results, result.results, strict=True):
                _merge_into(total, part)
        log.info("Validated batch %d (%d rows so far)", batches, rows)
    if merged is None:
        if "empty" not in seen:
            raise ValueError("the table yielded no batch at all")
        merged = definition.run(batch_parameters={"dataframe": seen["empty"]}, result_format="SUMMARY")
        batches = 1
    if batches > 1:
        _judge_whole_table(merged.results, partials, rows)
    _restate(merged)
    required = {c["kwargs"]["column"] for c in configs if c["type"] == "expect_column_to_exist"}
    missing = required - (seen.get("columns") or set())
    failed = sorted((evr for evr in merged.results if not evr.success), key=lambda evr: evr.expectation_config.type != "expect_column_to_exist")
    failures = [_failure(evr, missing, ranges, strays) for evr in failed]
    tolerated = [_failure(evr, missing, ranges, strays) for evr in merged.results if evr.success and (evr.result or {}).get("unexpected_count")]
    return MergedValidation(
        result=merged, rows=rows, batches=batches, failures=failures, tolerated=tolerated, missing=missing, ranges=ranges, strays=strays
    )


def _restate(result: Any) -> None:
    """The suite result's success and statistics from its expectations' results."""
    result.success = all(evr.success for evr in result.results)
    stats = result.statistics
    stats["evaluated_expectations"] = len(result.results)
    stats["successful_expectations"] = sum(1 for evr in result.results if evr.success)
    stats["unsuccessful_expectations"] = stats["evaluated_expectations"] - stats["successful_expectations"]
    stats["success_percent"] = 100.0 * stats["successful_expectations"] / max(stats["evaluated_expectations"], 1)


def _track_aggregates(frame: pd.DataFrame, results: list[Any], partials: dict[int, list[tuple[Any, int]]]) -> None:
    """Keep each batch's observed value of the :data:`MERGED_AGGREGATES` and its non-null row count."""
    for i, evr in enumerate(results):
        kind = evr.expectation_config.type
        if kind not in MERGED_AGGREGATES:
            continue
        column = evr.expectation_config.kwargs.get("column")
        count = len(frame) if column is None else int(frame[column].notna().sum()) if column in frame.columns else 0
        partials.setdefault(i, []).append(((evr.result or {}).get("observed_value"), count))


def _within(value: Any, kwargs: dict[str, Any]) -> bool:
    if "value" in kwargs:  # expect_table_row_count_to_equal
        return bool(value == kwargs["value"])
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    low_ok = lo is None or (value > lo if kwargs.get("strict_min") else value >= lo)
    high_ok = hi is None or (value < hi if kwargs.get("strict_max") else value <= hi)
    return bool(low_ok and high_ok)


def _judge_whole_table(results: list[Any], partials: dict[int, list[tuple[Any, int]]], rows: int) -> None:
    """Judge the merged results as one batch of the whole table: aggregates from their partial values,
    row-by-row rules with ``mostly`` from the merged counts."""
    for i, evr in enumerate(results):
        kind, kwargs, res = evr.expectation_config.type, evr.expectation_config.kwargs, evr.result
        if kind in MERGED_AGGREGATES:
            parts = [(v, n) for v, n in partials.get(i, []) if v is not None and v == v and n]  # NaN: a batch of nulls
            how = MERGED_AGGREGATES[kind]
            value: Any = (
                rows if how == "rows"
                else None if not parts
                else min(v for v, _ in parts) if how == "min"
                else max(v for v, _ in parts) if how == "max"
                else sum(v for v, _ in parts) if how == "sum"
                else sum(v * n for v, n in parts) / sum(n for _, n in parts)
            )  # fmt: skip
            res["observed_value"] = value = value.item() if hasattr(value, "item") else value  # GX renders Python numbers only
            evr.success = value is not None and _within(value, kwargs) and not (evr.exception_info or {}).get("raised_exception")
        elif kwargs.get("mostly") is not None and res.get("element_count") is not None and not (evr.exception_info or {}).get("raised_exception"):
            checked = res["element_count"] - (0 if kind == "expect_column_values_to_not_be_null" else res.get("missing_count") or 0)
            met = 1.0 if checked == 0 else 1 - (res.get("unexpected_count") or 0) / checked
            evr.success = met >= kwargs["mostly"]


def _track_ranges(frame: pd.DataFrame, columns: set[str], ranges: dict[str, list[float]]) -> None:
    """Keep the observed min and max of ``columns`` over the batches (for messages on out-of-range values)."""
    import pandas as pd

    for column in columns & set(frame.columns):
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.notna().any():
            low, high = float(values.min()), float(values.max())
            seen = ranges.setdefault(column, [low, high])
            seen[0], seen[1] = min(seen[0], low), max(seen[1], high)


def _track_strays(frame: pd.DataFrame, allowed: dict[str, set[Any]], strays: dict[str, dict[Any, int]]) -> None:
    """Count, per column with allowed values, every value outside them (for exact counts in messages)."""
    for column, values in allowed.items():
        if column not in frame.columns:
            continue
        series = frame[column]
        outside = series[series.notna() & ~series.isin(values)]
        for value, count in outside.value_counts().items():
            counts = strays.setdefault(column, {})
            counts[value] = counts.get(value, 0) + int(count)


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


# -- the engine: the spec's expectations in one Arrow pass, reported as GX results -------------------

#: The spec's expectation types the engine (:mod:`airflow_mlops.rules`) judges; any other goes to GX.
ENGINE_KINDS = {
    "expect_table_row_count_to_be_between": "rows", "expect_column_to_exist": "exists",
    "expect_column_values_to_not_be_null": "not_null", "expect_column_values_to_be_between": "between",
    "expect_column_values_to_be_in_set": "in_set", "expect_column_values_to_be_in_type_list": "types",
    "expect_column_values_to_be_unique": "unique", "expect_compound_columns_to_be_unique": "unique",
}  # fmt: skip
#: The metric GX names when it fails to compute a rule's metrics (the key of its ``exception_info``).
_METRICS = {"not_null": "column_values.nonnull.condition", "between": "column_values.between.condition",
            "in_set": "column_values.in_set.condition", "unique": "column_values.unique.condition"}  # fmt: skip
_BATCH_ID = "mlops-table"


def engine_handles(config: dict[str, Any]) -> bool:
    """Whether the engine judges ``config`` (a spec expectation type with only the kwargs the spec sets)."""
    kind = ENGINE_KINDS.get(config["type"])
    allowed = {"column", "column_list", "min_value", "max_value", "value_set", "type_list", "mostly"}
    return kind is not None and set(config["kwargs"]) <= allowed and not (config["kwargs"].get("mostly") is not None and kind in ("rows", "exists", "types", "unique"))


def _value_types(type_list: list[str]) -> tuple[type, ...]:
    """The Python types GX accepts for a value of an ``object`` column (GX's ``column_values.in_type_list`` on pandas)."""
    import numpy as np
    import pandas as pd
    from great_expectations.expectations.type_comparison import native_type_type_map

    found: list[type] = []
    for name in type_list:
        try:
            found.append(np.dtype(name).type)
        except TypeError:
            for where in (pd, pd.core.dtypes.dtypes):
                candidate = getattr(where, name, None)
                if isinstance(candidate, type):
                    found.append(candidate)
        found.extend(native_type_type_map(name) or ())
    return tuple(found)


def _rule(config: dict[str, Any]) -> Any:
    from airflow_mlops import rules

    kind, kwargs = ENGINE_KINDS[config["type"]], config["kwargs"]
    accepts = None
    if kind == "types":
        allowed = _value_types(kwargs["type_list"])
        accepts = lambda value: isinstance(value, allowed)  # noqa: E731
    columns = tuple(kwargs.get("column_list") or ([kwargs["column"]] if kind == "unique" else []))
    return rules.Rule(kind, kwargs.get("column"), kwargs.get("min_value"), kwargs.get("max_value"),
                      tuple(kwargs["value_set"]) if "value_set" in kwargs else None, columns, accepts)  # fmt: skip


class _Reporter:
    """GX result objects from the engine's outcomes: what GX builds from the same metrics."""

    def __init__(self, configs: list[dict[str, Any]]) -> None:
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        self.configs = configs
        self.gx_configs = [
            ExpectationConfiguration(type=c["type"], kwargs={"batch_id": _BATCH_ID, **c["kwargs"]}, meta=c.get("meta")) for c in configs
        ]
        self._dtype_verdicts: dict[tuple[int, Any], dict[str, Any]] = {}

    def evr(self, i: int, outcome: Any) -> Any:
        from great_expectations.core import ExpectationValidationResult
        from great_expectations.expectations.expectation import _format_map_output, _mostly_success, parse_result_format

        from airflow_mlops import rules

        config, kwargs = self.gx_configs[i], self.configs[i]["kwargs"]
        ok = {"raised_exception": False, "exception_traceback": None, "exception_message": None}
        if isinstance(outcome, rules.Raised):
            trace = f"{outcome.message}\n(found by airflow_mlops.rules where GX raises it on this batch)"  # Data Docs shows a text
            info: dict[str, Any] = {"raised_exception": True, "exception_traceback": trace, "exception_message": outcome.message}
            if outcome.metric:
                metric = "compound_columns.unique.condition" if config.type == "expect_compound_columns_to_be_unique" else _METRICS[ENGINE_KINDS[config.type]]
                metrics = [metric] + (["column_values.nonnull.condition"] if outcome.absent and metric.startswith("column_values.") and metric != _METRICS["not_null"] else [])
                info = {f"MetricConfigurationID(metric_name='{name}')": dict(info) for name in metrics}
            return ExpectationValidationResult(success=False, expectation_config=config, result={}, exception_info=info)
        if isinstance(outcome, rules.Exists):
            return ExpectationValidationResult(success=outcome.present, expectation_config=config, result={}, exception_info=ok)
        if isinstance(outcome, rules.Observed):
            if config.type == "expect_column_values_to_be_in_type_list":
                verdict = self._dtype_verdict(i, outcome.value)
                return ExpectationValidationResult(success=verdict["success"], expectation_config=config, result=dict(verdict["result"]), exception_info=ok)
            return ExpectationValidationResult(
                success=_within(outcome.value, kwargs), expectation_config=config, result={"observed_value": outcome.value}, exception_info=ok
            )
        mostly = kwargs.get("mostly", 1.0)
        total, nonnull, unexpected = outcome.element_count, outcome.nonnull_count, outcome.unexpected_count
        if nonnull is None:  # not null: the share of all rows
            success = total == 0 or (total - unexpected) / total >= mostly
        else:
            success = total == 0 or nonnull == 0 or _mostly_success(nonnull, unexpected, mostly)
        formatted = _format_map_output(
            result_format=parse_result_format("SUMMARY"), success=success, element_count=total, nonnull_count=nonnull,
            unexpected_count=unexpected, unexpected_list=outcome.unexpected_list, unexpected_index_list=outcome.unexpected_index_list,
        )  # fmt: skip
        return ExpectationValidationResult(success=success, expectation_config=config, result=formatted["result"], exception_info=ok)

    def _dtype_verdict(self, i: int, dtype: Any) -> dict[str, Any]:
        """GX's own verdict on a column's (non-object) pandas dtype."""
        key = (i, dtype)
        if key not in self._dtype_verdicts:
            from great_expectations.expectations.core.expect_column_values_to_be_in_type_list import (
                ExpectColumnValuesToBeInTypeList,
            )

            kwargs = self.configs[i]["kwargs"]
            expectation = ExpectColumnValuesToBeInTypeList(column=kwargs["column"], type_list=kwargs["type_list"])
            self._dtype_verdicts[key] = expectation._validate_pandas(actual_column_type=dtype, expected_types_list=kwargs["type_list"])
        return self._dtype_verdicts[key]


def _metric_failure(evr: Any) -> bool:
    """GX lists first the results whose metrics failed to compute (their exception_info keyed by metric)."""
    info = evr.exception_info or {}
    return bool(info) and "raised_exception" not in info


def _gx_order(evrs: list[Any], configs: list[dict[str, Any]]) -> list[Any]:
    """``evrs`` (the results of ``configs``, in their order) in GX's order: GX groups a suite's expectations by
    column (in the order a column first appears; those without a column as one group), then lists first
    those whose metrics failed to compute."""
    groups: dict[Any, int] = {}
    for config in configs:
        column = config["kwargs"].get("column")
        groups.setdefault(column if isinstance(column, str) else None, len(groups))

    def group(i: int) -> int:
        column = configs[i]["kwargs"].get("column")
        return groups[column if isinstance(column, str) else None]

    ordered = [evrs[i] for i in sorted(range(len(evrs)), key=lambda i: (group(i), i))]
    return [e for e in ordered if _metric_failure(e)] + [e for e in ordered if not _metric_failure(e)]


def _config_of(evr: Any) -> dict[str, Any]:
    kwargs = {k: v for k, v in evr.expectation_config.kwargs.items() if k != "batch_id"}
    return {"type": evr.expectation_config.type, "kwargs": kwargs}


def _in_config_order(evrs: list[Any], configs: list[dict[str, Any]]) -> list[Any]:
    """GX's results of ``configs`` back in the configs' order (matched by type and kwargs)."""
    pending = list(evrs)
    out: list[Any] = []
    for config in configs:
        want = {"type": config["type"], "kwargs": config["kwargs"]}
        match = next((e for e in pending if _config_of(e) == want), None)
        if match is None:  # GX changed the kwargs (defaults): keep its order for the rest
            return out + pending
        pending.remove(match)
        out.append(match)
    return out + pending


def _arrow_ranges(batch: Any, columns: set[str], ranges: dict[str, list[float]]) -> None:
    """:func:`_track_ranges` on an Arrow batch: min and max of the values read as numbers."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    from airflow_mlops import rules

    for column in columns & set(batch.schema.names):
        col = batch.column(column)
        if t.is_null(col.type):
            continue
        if t.is_boolean(col.type):
            col = pc.cast(col, pa.int8())
        if not (t.is_integer(col.type) or t.is_floating(col.type)):
            try:
                col = pc.cast(col, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # text that is not all numbers: pandas' coercion
                import pandas as pd

                col = pa.array(pd.to_numeric(col.to_pandas(), errors="coerce"), pa.float64())
        col = col.filter(pc.invert(rules.null_mask(col)))
        if len(col):
            extremes = pc.min_max(col)
            low, high = float(extremes["min"].as_py()), float(extremes["max"].as_py())
            seen = ranges.setdefault(column, [low, high])
            seen[0], seen[1] = min(seen[0], low), max(seen[1], high)


def _arrow_strays(batch: Any, allowed: dict[str, list[Any]], strays: dict[str, dict[Any, int]]) -> None:
    """:func:`_track_strays` on an Arrow batch: exact counts of the values outside a set."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from airflow_mlops import rules

    for column, values in allowed.items():
        if column not in batch.schema.names:
            continue
        col = batch.column(column)
        mask = rules.not_in(col, rules.pandas_dtype(col), values)
        if not pc.any(mask).as_py():
            continue
        counted = pc.value_counts(col.filter(mask))
        found = counted.field("values")
        keys = rules.boxed(found, pa.array(range(len(found))), rules.pandas_dtype(col))
        counts = strays.setdefault(column, {})
        for value, count in zip(keys, counted.field("counts").to_pylist(), strict=True):
            counts[value] = counts.get(value, 0) + int(count)


def validate_batches(
    batches: Iterator[Any], configs: list[dict[str, Any]], *, suite_name: str, user_configs: list[dict[str, Any]] | None = None
) -> MergedValidation:
    """Validate a stream of Arrow record batches against the spec's ``configs`` in one pass of the engine
    (:mod:`airflow_mlops.rules`), and report it as GX does: one ``ExpectationSuiteValidationResult`` whose
    results are what :func:`validate_frames` gives on the same batches (verdicts, counts, examples), plus
    the spec's uniqueness judged over the whole table. ``user_configs`` (a team's own suite) run through GX
    (:func:`validate_frames`) on the same batches read into pandas, in the same pass, and join the result.

    :raises WholeTableOnlyError: as :func:`validate_frames`, for ``user_configs``.
    """
    from airflow_mlops import rules

    unhandled = [c["type"] for c in configs if not engine_handles(c)]
    if unhandled:
        raise ValueError(f"the engine does not judge {sorted(set(unhandled))}: pass them as user_configs")
    reporter = _Reporter(configs)
    check = rules.TableCheck([_rule(c) for c in configs])
    state: dict[str, Any] = {"rows": 0, "batches": 0, "merged": None, "partials": {}}
    bounded = {c["kwargs"]["column"] for c in configs if c["type"] == "expect_column_values_to_be_between"}
    allowed = {c["kwargs"]["column"]: list(c["kwargs"]["value_set"]) for c in configs if c["type"] == "expect_column_values_to_be_in_set"}
    ranges: dict[str, list[float]] = {}
    strays: dict[str, dict[Any, int]] = {}

    def judge(batch: Any) -> None:
        outcomes = check.add(batch)
        evrs = {i: reporter.evr(i, outcome) for i, outcome in enumerate(outcomes) if outcome is not None}
        for i, outcome in enumerate(outcomes):
            if isinstance(outcome, rules.Observed) and configs[i]["type"] in MERGED_AGGREGATES:
                state["partials"].setdefault(i, []).append((outcome.value, batch.num_rows))
        if state["merged"] is None:
            state["merged"] = evrs
        else:
            for i, evr in evrs.items():
                _merge_into(state["merged"][i], evr)
        for i, outcome in enumerate(outcomes):  # the numeric columns' extremes come with their bounds check
            if isinstance(outcome, rules.MapStats) and outcome.extremes is not None:
                seen = ranges.setdefault(configs[i]["kwargs"]["column"], list(outcome.extremes))
                seen[0], seen[1] = min(seen[0], outcome.extremes[0]), max(seen[1], outcome.extremes[1])
        numeric = {configs[i]["kwargs"]["column"] for i, o in enumerate(outcomes) if isinstance(o, rules.MapStats) and o.extremes is not None}
        _arrow_ranges(batch, bounded - numeric, ranges)
        broken = {configs[i]["kwargs"]["column"] for i, o in enumerate(outcomes) if configs[i]["type"] == "expect_column_values_to_be_in_set"
                  and isinstance(o, rules.MapStats) and o.unexpected_count}  # fmt: skip
        _arrow_strays(batch, {c: v for c, v in allowed.items() if c in broken}, strays)

    def frames() -> Iterator[Any]:
        for batch in batches:
            state.setdefault("columns", set(batch.schema.names))
            if batch.num_rows == 0:
                state.setdefault("empty", batch)
            else:
                judge(batch)
                state["rows"] += batch.num_rows
                state["batches"] += 1
                log.info("Checked batch %d (%d rows so far)", state["batches"], state["rows"])
            if user_configs:
                yield batch.to_pandas()

    try:
        user = validate_frames(frames(), user_configs, suite_name=f"{suite_name}_suite") if user_configs else None
        if user is None:
            for _ in frames():
                pass
        if state["merged"] is None:
            if "empty" not in state:
                raise ValueError("the table yielded no batch at all")
            judge(state["empty"])
            state["batches"] = 1
        merged, rows = state["merged"], state["rows"]
        merged.update({i: reporter.evr(i, outcome) for i, outcome in check.unique().items()})
    finally:
        check.close()
    results = _gx_order([merged[i] for i in range(len(configs))], configs)
    if state["batches"] > 1:
        by_position = {results.index(merged[i]): parts for i, parts in state["partials"].items()}
        _judge_whole_table(results, by_position, rows)
    from great_expectations.core import ExpectationSuiteValidationResult

    missing = {c["kwargs"]["column"] for c in configs if c["type"] == "expect_column_to_exist"} - (state.get("columns") or set())
    tolerated = [_failure(evr, missing, ranges, strays) for evr in results if evr.success and (evr.result or {}).get("unexpected_count")]
    if user is not None and user_configs:  # GX's order over the one suite of both
        theirs = _in_config_order(user.result.results, user_configs)
        results = _gx_order([merged[i] for i in range(len(configs))] + theirs, configs + user_configs)
        tolerated += user.tolerated
    failures = _ordered_failures(results, merged, user, missing, ranges, strays)
    suite = ExpectationSuiteValidationResult(
        success=True, results=results, suite_name=suite_name, statistics={},
        meta={"great_expectations_version": _gx_version(), "engine": "airflow_mlops.rules (Arrow)", "batch_spec": {"batch_data": "ArrowRecordBatches"},
              "active_batch_definition": {"datasource_name": "mlops", "data_connector_name": "fluent", "data_asset_name": "table",
                                          "batch_identifiers": {"dataframe": "<DATAFRAME>"}},
              "run_id": {"run_name": None, "run_time": _now()}, "validation_time": _now(), "checkpoint_id": None},
    )  # fmt: skip
    _restate(suite)
    return MergedValidation(
        result=suite, rows=rows, batches=state["batches"], failures=failures, tolerated=tolerated, missing=missing, ranges=ranges, strays=strays
    )


def _ordered_failures(results: list[Any], ours: dict[int, Any], user: MergedValidation | None, missing: set[str],
                      ranges: dict[str, list[float]], strays: dict[str, dict[Any, int]]) -> list[dict[str, Any]]:  # fmt: skip
    """The failed expectations as :func:`validate_frames` lists them: missing columns first, then in result order."""
    mine = {id(e) for e in ours.values()}
    failed = sorted((e for e in results if not e.success), key=lambda e: e.expectation_config.type != "expect_column_to_exist")
    out = []
    for evr in failed:
        if id(evr) in mine or user is None:
            out.append(_failure(evr, missing, ranges, strays))
        else:
            out.append(_failure(evr, user.missing, user.ranges, user.strays))
    return out


def _gx_version() -> str:
    import great_expectations as gx

    return str(gx.__version__)


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat()

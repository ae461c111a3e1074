"""Great Expectations on a stream of pandas batches, merged into one result for the whole table.

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.utils.expectations import (
    MAX_SAMPLES,
    MERGED_AGGREGATES,
    SCHEMA_EXPECTATIONS,
    WHOLE_TABLE_ONLY,
    WholeTableOnlyError,
    build_suite,
    log,
    quiet_context,
)

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core import ExpectationSuiteValidationResult


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


def merge_into(total: Any, part: Any) -> None:
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


def failure_of(evr: Any, missing: set[str], ranges: dict[str, list[float]], strays: dict[str, dict[Any, int]]) -> dict[str, Any]:
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
    except Exception:  # an unknown type: build_suite names it
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

    context = quiet_context()
    source = context.data_sources.add_pandas("mlops")
    batch_definition = source.add_dataframe_asset("table").add_batch_definition_whole_dataframe("whole")
    suite = build_suite(context, configs, suite_name)
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
        track_ranges(frame, bounded, ranges)
        track_strays(frame, allowed, strays)
        _track_aggregates(frame, result.results, partials)
        rows += len(frame)
        if merged is None:
            merged = result
        else:
            for total, part in zip(merged.results, result.results, strict=True):
                merge_into(total, part)
        log.info("Validated batch %d (%d rows so far)", batches, rows)
    if merged is None:
        if "empty" not in seen:
            raise ValueError("the table yielded no batch at all")
        merged = definition.run(batch_parameters={"dataframe": seen["empty"]}, result_format="SUMMARY")
        batches = 1
    if batches > 1:
        judge_whole_table(merged.results, partials, rows)
    restate(merged)
    required = {c["kwargs"]["column"] for c in configs if c["type"] == "expect_column_to_exist"}
    missing = required - (seen.get("columns") or set())
    failed = sorted((evr for evr in merged.results if not evr.success), key=lambda evr: evr.expectation_config.type != "expect_column_to_exist")
    failures = [failure_of(evr, missing, ranges, strays) for evr in failed]
    tolerated = [failure_of(evr, missing, ranges, strays) for evr in merged.results if evr.success and (evr.result or {}).get("unexpected_count")]
    return MergedValidation(
        result=merged, rows=rows, batches=batches, failures=failures, tolerated=tolerated, missing=missing, ranges=ranges, strays=strays
    )


def restate(result: Any) -> None:
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


def within(value: Any, kwargs: dict[str, Any]) -> bool:
    if "value" in kwargs:  # expect_table_row_count_to_equal
        return bool(value == kwargs["value"])
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    low_ok = lo is None or (value > lo if kwargs.get("strict_min") else value >= lo)
    high_ok = hi is None or (value < hi if kwargs.get("strict_max") else value <= hi)
    return bool(low_ok and high_ok)


def judge_whole_table(results: list[Any], partials: dict[int, list[tuple[Any, int]]], rows: int) -> None:
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
            evr.success = value is not None and within(value, kwargs) and not (evr.exception_info or {}).get("raised_exception")
        elif kwargs.get("mostly") is not None and res.get("element_count") is not None and not (evr.exception_info or {}).get("raised_exception"):
            checked = res["element_count"] - (0 if kind == "expect_column_values_to_not_be_null" else res.get("missing_count") or 0)
            met = 1.0 if checked == 0 else 1 - (res.get("unexpected_count") or 0) / checked
            evr.success = met >= kwargs["mostly"]


def track_ranges(frame: pd.DataFrame, columns: set[str], ranges: dict[str, list[float]]) -> None:
    """Keep the observed min and max of ``columns`` over the batches (for messages on out-of-range values)."""
    import pandas as pd

    for column in columns & set(frame.columns):
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.notna().any():
            low, high = float(values.min()), float(values.max())
            seen = ranges.setdefault(column, [low, high])
            seen[0], seen[1] = min(seen[0], low), max(seen[1], high)


def track_strays(frame: pd.DataFrame, allowed: dict[str, set[Any]], strays: dict[str, dict[Any, int]]) -> None:
    """Count, per column with allowed values, every value outside them (for exact counts in messages)."""
    for column, values in allowed.items():
        if column not in frame.columns:
            continue
        series = frame[column]
        outside = series[series.notna() & ~series.isin(values)]
        for value, count in outside.value_counts().items():
            counts = strays.setdefault(column, {})
            counts[value] = counts.get(value, 0) + int(count)

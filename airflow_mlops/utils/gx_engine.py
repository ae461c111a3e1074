"""The spec's expectations judged in one Arrow pass (:mod:`airflow_mlops.rules`) and reported as GX's
own result objects: the same verdicts, counts and example values GX gives on the same batches, so the
result JSON, Data Docs, lineage and messages do not depend on which judged. A user's suite runs through
GX on the same batches (:func:`~airflow_mlops.utils.gx_batches.validate_frames`) and joins the result.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from airflow_mlops.utils.expectations import MERGED_AGGREGATES, log
from airflow_mlops.utils.gx_batches import (
    MergedValidation,
    failure_of,
    judge_whole_table,
    merge_into,
    restate,
    validate_frames,
    within,
)

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
                success=within(outcome.value, kwargs), expectation_config=config, result={"observed_value": outcome.value}, exception_info=ok
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
    """:func:`track_ranges` on an Arrow batch: min and max of the values read as numbers."""
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
    """:func:`track_strays` on an Arrow batch: exact counts of the values outside a set."""
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
    from airflow_mlops import rules, table_check

    unhandled = [c["type"] for c in configs if not engine_handles(c)]
    if unhandled:
        raise ValueError(f"the engine does not judge {sorted(set(unhandled))}: pass them as user_configs")
    reporter = _Reporter(configs)
    check = table_check.TableCheck([_rule(c) for c in configs])
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
                merge_into(state["merged"][i], evr)
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
        judge_whole_table(results, by_position, rows)
    from great_expectations.core import ExpectationSuiteValidationResult

    missing = {c["kwargs"]["column"] for c in configs if c["type"] == "expect_column_to_exist"} - (state.get("columns") or set())
    tolerated = [failure_of(evr, missing, ranges, strays) for evr in results if evr.success and (evr.result or {}).get("unexpected_count")]
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
    restate(suite)
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
            out.append(failure_of(evr, missing, ranges, strays))
        else:
            out.append(failure_of(evr, user.missing, user.ranges, user.strays))
    return out


def _gx_version() -> str:
    import great_expectations as gx

    return str(gx.__version__)


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat()

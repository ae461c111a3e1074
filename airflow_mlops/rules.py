"""The FeatureSpec's rules in Arrow: the kernels batch inference and validation share, and each rule
judged on one batch as GX would judge it.

* Kernels (:func:`null_mask`, :func:`beyond`, :func:`outside`): which rows of one Arrow array break a
  rule. Batch inference (:func:`airflow_mlops.conformance.check_batch`) flags rows with them, and
  validation counts with them, so the two enforce the spec through the same code. NaN counts as null.
* :class:`Rule` and :func:`check_rule`: one spec expectation on one batch, as GX computes it on that
  batch read into pandas; the whole table's pass is :mod:`airflow_mlops.table_check`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

#: Unexpected values kept per batch and rule: GX's ``partial_unexpected_count`` (result format SUMMARY).
SAMPLE = 20


# -- kernels -----------------------------------------------------------------------------------------


def null_mask(col: pa.Array) -> pa.Array:
    """Rows that are null (NaN included, as pandas and GX count it)."""
    import pyarrow.compute as pc

    return pc.is_null(col, nan_is_null=True)


def beyond(compare: Callable[..., pa.Array], col: pa.Array, bound: float) -> pa.Array:
    """Rows whose value is ``compare``-d past ``bound`` (``pc.less`` for a minimum, ``pc.greater`` for a
    maximum); null and NaN rows are not."""
    import pyarrow.compute as pc
    import pyarrow.types as t

    if t.is_boolean(col.type):
        col = pc.cast(col, "int8")
    return pc.fill_null(compare(col, bound), False)


def outside(col: pa.Array, allowed: pa.Array) -> pa.Array:
    """Rows whose (non-null) value is not one of ``allowed`` (text; a non-text column is compared as text)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    present = pc.invert(null_mask(col))
    if t.is_dictionary(col.type):  # the few dictionary values, then their rows
        known = pc.is_in(col.dictionary, value_set=pc.cast(allowed, col.dictionary.type))
        return pc.and_(pc.invert(pc.fill_null(pc.take(known, col.indices), False)), present)
    text = col if is_text(col.type) else pc.cast(col, pa.string())
    return pc.and_(pc.invert(pc.is_in(text, value_set=allowed)), present)


def is_text(dtype: pa.DataType) -> bool:
    import pyarrow.types as t

    return t.is_string(dtype) or t.is_large_string(dtype) or (t.is_dictionary(dtype) and t.is_string(dtype.value_type))


def _count(mask: pa.Array) -> int:
    import pyarrow.compute as pc

    return int(pc.sum(mask).as_py() or 0)


# -- how a batch looks in pandas (what GX sees) -----------------------------------------------------


def pandas_dtype(col: pa.Array) -> Any:
    """The dtype ``col`` gets in ``RecordBatch.to_pandas()``: integers with nulls become float64,
    booleans with nulls object."""
    import numpy as np
    import pyarrow.types as t

    if col.null_count and t.is_integer(col.type):
        return np.dtype("float64")
    if col.null_count and t.is_boolean(col.type):
        return np.dtype("O")
    return col.slice(0, 0).to_pandas().dtype


def boxed(col: pa.Array, indices: pa.Array, dtype: Any) -> list[Any]:
    """The values of ``col`` at ``indices`` as Python objects, as GX lists them from the pandas column of
    dtype ``dtype`` (``list(series)``)."""
    series = col.take(indices).to_pandas()
    if series.dtype != dtype:
        series = series.astype(dtype)
    return list(series)


# -- what GX computes on one batch ------------------------------------------------------------------


@dataclass
class MapStats:
    """A row-by-row rule on one batch (or the whole table): GX's inputs to ``_format_map_output``.

    ``nonnull_count`` is ``None`` for "not null" (GX counts no missing rows there)."""

    element_count: int
    nonnull_count: int | None
    unexpected_count: int
    unexpected_list: list[Any] = field(default_factory=list)
    unexpected_index_list: list[int] = field(default_factory=list)
    #: ``between`` on a numeric column: the batch's (min, max) of its non-null values
    extremes: tuple[float, float] | None = None


@dataclass
class Observed:
    """An observed value (the row count; a column's pandas dtype when it is not ``object``)."""

    value: Any


@dataclass
class Raised:
    """GX would raise here: ``metric`` when it raises while computing the batch's metrics (GX then lists the
    result first, its exception keyed by metric), else while judging them."""

    message: str
    metric: bool = True
    #: the column is absent: GX fails the rule's metric and the column's null count alike
    absent: bool = False


@dataclass
class Exists:
    present: bool


Outcome = MapStats | Observed | Raised | Exists


@dataclass(frozen=True)
class Rule:
    """One expectation of the spec, as the engine checks it.

    :param kind: ``rows`` (at least ``min_value`` rows), ``exists``, ``not_null``, ``between``,
        ``in_set``, ``types`` (the column's type), ``unique`` (over the whole table; ``columns``).
    :param accepts_value: for ``types`` on an ``object`` column: whether a value's Python type is allowed.
    """

    kind: str
    column: str | None = None
    min_value: float | None = None
    max_value: float | None = None
    value_set: tuple[Any, ...] | None = None
    columns: tuple[str, ...] = ()
    accepts_value: Callable[[Any], bool] | None = None


def missing_column(column: str) -> Raised:
    return Raised(f'Error: The column "{column}" in BatchData does not exist.', absent=True)


def _stats(col: pa.Array, mask: pa.Array, dtype: Any, nonnull: int | None) -> MapStats:
    import pyarrow.compute as pc

    count = _count(mask)
    if not count:
        return MapStats(len(col), nonnull, 0)
    first = pc.indices_nonzero(mask).slice(0, SAMPLE)
    return MapStats(len(col), nonnull, count, boxed(col, first, dtype), first.to_pylist())


def check_rule(rule: Rule, batch: pa.RecordBatch) -> Outcome:
    """What GX computes for ``rule`` on ``batch`` read into pandas."""
    import pyarrow.compute as pc

    if rule.kind == "rows":
        return Observed(batch.num_rows)
    names = batch.schema.names
    if rule.kind == "exists":
        return Exists(rule.column in names)
    if rule.column is None:
        raise ValueError(f"a {rule.kind!r} rule needs a column")
    if rule.column not in names:  # GX: the type list fails while judging, the others while computing
        return Raised("list index out of range", metric=False) if rule.kind == "types" else missing_column(rule.column)
    col = batch.column(rule.column)
    dtype = pandas_dtype(col)
    missing = null_mask(col)
    nonnull = len(col) - _count(missing)
    if rule.kind == "not_null":
        return _stats(col, missing, dtype, None)
    if rule.kind == "types":
        if dtype.kind != "O":
            return Observed(dtype)
        present = pc.invert(missing)
        if not nonnull or rule.accepts_value is None:
            return MapStats(len(col), nonnull, 0)
        # an Arrow column converts every value to the same Python type: judge the first one
        first = boxed(col, pc.indices_nonzero(present).slice(0, 1), dtype)[0]
        return MapStats(len(col), nonnull, 0) if rule.accepts_value(first) else _stats(col, present, dtype, nonnull)
    if rule.kind == "between":
        return _between(rule, col, dtype, missing, nonnull)
    if rule.kind == "in_set":
        return _stats(col, not_in(col, dtype, rule.value_set or ()), dtype, nonnull)
    raise ValueError(f"unknown rule kind {rule.kind!r}")


def _between(rule: Rule, col: pa.Array, dtype: Any, missing: pa.Array, nonnull: int) -> Outcome:
    import pyarrow.compute as pc
    import pyarrow.types as t

    if not nonnull:
        return MapStats(len(col), 0, 0)
    if t.is_integer(col.type) or t.is_floating(col.type) or t.is_boolean(col.type):
        found = pc.min_max(pc.cast(col, "int8") if t.is_boolean(col.type) else col)  # NaN and nulls skipped
        low, high = float(found["min"].as_py()), float(found["max"].as_py())
        below = rule.min_value is not None and low < rule.min_value
        above = rule.max_value is not None and high > rule.max_value
        if not (below or above):  # the extremes are within: no row is out
            return MapStats(len(col), nonnull, 0, extremes=(low, high))
        masks = []
        if below and rule.min_value is not None:
            masks.append(beyond(pc.less, col, rule.min_value))
        if above and rule.max_value is not None:
            masks.append(beyond(pc.greater, col, rule.max_value))
        stats = _stats(col, masks[0] if len(masks) == 1 else pc.or_(masks[0], masks[1]), dtype, nonnull)
        stats.extremes = (low, high)
        return stats
    if is_text(col.type):  # GX compares each value to the bounds and refuses text against numbers
        return Raised("Column values, min_value, and max_value must either be None or of the same type.")
    return _between_in_pandas(rule, col, dtype, missing, nonnull)


def _between_in_pandas(rule: Rule, col: pa.Array, dtype: Any, missing: pa.Array, nonnull: int) -> Outcome:
    """Other types (dates, decimals, ...): GX's own comparison on this column in pandas (rare: not a spec's numeric type)."""
    import pyarrow.compute as pc

    present = pc.invert(missing)
    series = col.filter(present).to_pandas()
    lo, hi = rule.min_value, rule.max_value
    try:
        if series.dtype.kind in "iufbM":
            ok = series.map(lambda v: True)
            if lo is not None:
                ok = ok & (series >= lo)
            if hi is not None:
                ok = ok & (series <= hi)
        else:
            ok = series.map(lambda v: (lo is None or v >= lo) and (hi is None or v <= hi))
    except Exception as exc:  # what GX would raise
        return Raised(str(exc))
    import pyarrow as pa

    bad = pa.array(~ok.to_numpy(dtype=bool))
    mask = pc.replace_with_mask(pa.array([False] * len(col)), present, bad)
    return _stats(col, mask, dtype, nonnull)


def not_in(col: pa.Array, dtype: Any, value_set: Sequence[Any]) -> pa.Array:
    """Rows whose non-null value pandas' ``Series.isin(value_set)`` rejects."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if is_text(col.type) and all(isinstance(v, str) for v in value_set):
        return outside(col, pa.array(list(value_set), pa.string()))
    # Any other pairing (numbers, booleans, mixed): pandas' own isin on the batch's distinct values.
    import pandas as pd

    present = pc.invert(null_mask(col))
    distinct = pc.unique(col.filter(present))
    accepted = pd.Series(distinct.to_pandas()).astype(dtype).isin(list(value_set)).to_numpy(dtype=bool)
    allowed = distinct.filter(pa.array(accepted))
    return pc.and_(pc.invert(pc.is_in(col, value_set=allowed)), present)

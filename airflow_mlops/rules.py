"""The FeatureSpec's rules in Arrow: the kernels batch inference and validation share, and one streaming
pass that judges a whole table by them.

* Kernels (:func:`null_mask`, :func:`beyond`, :func:`outside`): which rows of one Arrow array break a
  rule. Batch inference (:func:`airflow_mlops.conformance.check_batch`) flags rows with them, and
  validation counts with them, so the two enforce the spec through the same code. NaN counts as null.
* :class:`TableCheck`: every rule of a table (:class:`Rule`, built from the spec's GX expectations by
  :mod:`airflow_mlops.utils.expectations`) over the table's record batches in one pass, in bounded
  memory: per batch, vectorised Arrow kernels count; Python only touches the first
  :data:`SAMPLE` offending values of a batch (converted as ``RecordBatch.to_pandas`` would convert
  them, so that they are the values GX would report). It yields, per batch and rule, what GX computes
  on that batch (:class:`MapStats`, :class:`Observed`, :class:`Raised`, :class:`Exists`).
* :class:`UniqueKeys`: uniqueness of the id columns over the whole table without holding the ids in
  memory: each batch's ids are hash-partitioned into :data:`PARTITIONS` Arrow IPC spill files, then
  each partition (a share of the ids) is checked for duplicates on its own.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

#: Unexpected values kept per batch and rule: GX's ``partial_unexpected_count`` (result format SUMMARY).
SAMPLE = 20
#: Spill files of :class:`UniqueKeys`: memory holds at most about 1/PARTITIONS of the ids at a time.
PARTITIONS = 64


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


def _missing(column: str) -> Raised:
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
    assert rule.column is not None
    if rule.column not in names:  # GX: the type list fails while judging, the others while computing
        return Raised("list index out of range", metric=False) if rule.kind == "types" else _missing(rule.column)
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


# -- the pass ---------------------------------------------------------------------------------------------


class TableCheck:
    """Every rule over a table's batches in one pass: :meth:`add` each batch, read its outcomes (one per
    rule, ``None`` for ``unique``, which is judged over the whole table by :meth:`unique`)."""

    def __init__(self, rules: Sequence[Rule], *, spill_dir: str | None = None) -> None:
        self.rules = list(rules)
        self.rows = 0
        self._unique = {i: UniqueKeys(r.columns, spill_dir=spill_dir) for i, r in enumerate(self.rules) if r.kind == "unique"}

    def add(self, batch: pa.RecordBatch) -> list[Outcome | None]:
        out: list[Outcome | None] = []
        for i, rule in enumerate(self.rules):
            if rule.kind == "unique":
                if all(c in batch.schema.names for c in rule.columns):
                    self._unique[i].add(batch, offset=self.rows)
                else:
                    self._unique[i].absent = [c for c in rule.columns if c not in batch.schema.names]
                out.append(None)
            else:
                out.append(check_rule(rule, batch))
        self.rows += batch.num_rows
        return out

    def unique(self) -> dict[int, Outcome]:
        """The uniqueness rules' outcomes over the whole table (spill files removed)."""
        out: dict[int, Outcome] = {}
        for i, keys in self._unique.items():
            out[i] = _missing(keys.absent[0]) if keys.absent else keys.finish(self.rows)
        return out

    def close(self) -> None:
        for keys in self._unique.values():
            keys.close()


def _hash(col: pa.Array) -> np.ndarray:
    """A 64-bit hash per value (equal values, equal hashes; nulls hash as 0): only partitions rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    if t.is_dictionary(col.type):
        col = col.dictionary_decode()
    if is_text(col.type) or t.is_binary(col.type) or t.is_large_binary(col.type):
        col = pc.cast(col, pa.large_binary())
        offsets = np.frombuffer(col.buffers()[1], dtype=np.int64, count=len(col) + 1, offset=col.offset * 8)
        data = np.frombuffer(col.buffers()[2], dtype=np.uint8) if col.buffers()[2] is not None else np.zeros(0, np.uint8)
        lengths = np.diff(offsets)
        start, end = offsets[0], offsets[-1]
        chars = data[start:end].astype(np.uint64)
        position = np.arange(end - start, dtype=np.int64) - np.repeat(offsets[:-1] - start, lengths)
        mixed = chars * (np.uint64(0x9E3779B97F4A7C15) ^ (position.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9)))
        h = np.zeros(len(col), dtype=np.uint64)
        filled = lengths > 0
        if filled.any():
            h[filled] = np.add.reduceat(mixed, (offsets[:-1] - start)[filled]) if len(mixed) else 0
        h ^= lengths.astype(np.uint64) * np.uint64(0x94D049BB133111EB)
    else:
        if t.is_boolean(col.type):
            col = pc.cast(col, pa.int8())
        values = pc.fill_null(col, 0) if col.null_count else col
        raw = values.to_numpy(zero_copy_only=False)
        h = raw.astype(np.float64).view(np.uint64) if raw.dtype.kind == "f" else raw.astype(np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(31))) * np.uint64(0xD6E8FEB86659FD93)
        return h ^ (h >> np.uint64(32))


class UniqueKeys:
    """Duplicates of ``columns`` over a whole table, in bounded memory: :meth:`add` spills each batch's keys
    (and row numbers) into :data:`PARTITIONS` Arrow IPC files by hash; :meth:`finish` reads one file at a
    time and finds the keys it holds more than once (a key's rows all land in one file).

    As GX: a row whose key is null (every column null, for several columns) is not checked.
    """

    def __init__(self, columns: Sequence[str], *, spill_dir: str | None = None, partitions: int = PARTITIONS) -> None:
        self.columns = list(columns)
        self.partitions = partitions
        self.absent: list[str] = []
        self._dir = tempfile.mkdtemp(prefix="mlops-unique-", dir=spill_dir)
        self._writers: dict[int, Any] = {}
        self._schema: pa.Schema | None = None
        self._dtypes: dict[str, Any] = {}
        self.missing = 0

    def add(self, batch: pa.RecordBatch, *, offset: int) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        keys = [batch.column(c) for c in self.columns]
        for name, col in zip(self.columns, keys, strict=True):  # the dtype GX would box the values with
            dtype = pandas_dtype(col)
            if self._dtypes.get(name) is None or dtype.kind in "fO":
                self._dtypes[name] = dtype
        absent = null_mask(keys[0])
        for col in keys[1:]:
            absent = pc.and_(absent, null_mask(col))
        h = _hash(keys[0])
        for col in keys[1:]:
            with np.errstate(over="ignore"):
                h = h * np.uint64(0x100000001B3) ^ _hash(col)
        part = (h % np.uint64(self.partitions)).astype(np.int64)
        keep = np.flatnonzero(~absent.to_numpy(zero_copy_only=False))
        self.missing += batch.num_rows - len(keep)
        if not len(keep):
            return
        order = keep[np.argsort(part[keep].astype(np.uint16), kind="stable")]  # a radix sort on small integers
        table = pa.record_batch(
            [pc.take(c, pa.array(order)) for c in keys] + [pa.array(order + offset, pa.int64())],
            names=[*(f"k{i}" for i in range(len(keys))), "row"],
        )
        self._schema = table.schema
        bounds = np.searchsorted(part[order], np.arange(self.partitions + 1))
        for p in range(self.partitions):
            lo, hi = int(bounds[p]), int(bounds[p + 1])
            if hi > lo:
                self._writer(p, table.schema).write_batch(table.slice(lo, hi - lo))

    def _writer(self, p: int, schema: pa.Schema) -> Any:
        import pyarrow as pa

        if p not in self._writers:
            self._writers[p] = pa.ipc.new_file(f"{self._dir}/part-{p:03d}.arrow", schema)
        return self._writers[p]

    def _partitions(self) -> Iterator[pa.Table]:
        import pyarrow as pa

        for p in sorted(self._writers):
            with pa.memory_map(f"{self._dir}/part-{p:03d}.arrow") as source:
                yield pa.ipc.open_file(source).read_all()

    def finish(self, rows: int) -> MapStats:
        """The rows whose key another row holds too: their count and the first :data:`SAMPLE` in row order."""
        import pyarrow as pa
        import pyarrow.compute as pc

        for writer in self._writers.values():
            writer.close()
        names = [f"k{i}" for i in range(len(self.columns))]
        count = 0
        first: pa.Table | None = None
        try:
            for table in self._partitions():
                counted = table.group_by(names, use_threads=False).aggregate([("row", "count")])
                dups = counted.filter(pc.greater(counted["row_count"], 1))
                if not dups.num_rows:
                    continue
                rows_of_dups = table.join(dups.select(names), keys=names, join_type="inner", use_threads=False)
                count += rows_of_dups.num_rows
                head = rows_of_dups.take(pc.select_k_unstable(rows_of_dups, SAMPLE, [("row", "ascending")]))
                first = head if first is None else pa.concat_tables([first, head])
        finally:
            self.close()
        if first is None:
            return MapStats(rows, rows - self.missing, 0)
        first = first.sort_by("row").slice(0, SAMPLE)
        values = [boxed(first.column(n).combine_chunks(), pa.array(range(first.num_rows)), self._dtypes[c]) for n, c in zip(names, self.columns, strict=True)]
        listed = values[0] if len(values) == 1 else [dict(zip(self.columns, vs, strict=True)) for vs in zip(*values, strict=True)]
        return MapStats(rows, rows - self.missing, count, listed, first.column("row").to_pylist())

    def close(self) -> None:
        for writer in self._writers.values():
            with contextlib.suppress(Exception):  # already closed
                writer.close()
        shutil.rmtree(self._dir, ignore_errors=True)

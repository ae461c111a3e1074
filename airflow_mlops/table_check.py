"""One streaming pass that judges a whole table by the FeatureSpec's rules (:mod:`airflow_mlops.rules`).

* :class:`TableCheck`: every rule of a table (:class:`~airflow_mlops.rules.Rule`, built from the spec's
  GX expectations by :mod:`airflow_mlops.utils.gx_engine`) over the table's record batches in one pass,
  in bounded memory: per batch, vectorised Arrow kernels count; Python only touches the first
  :data:`~airflow_mlops.rules.SAMPLE` offending values of a batch. It yields, per batch and rule, what GX
  computes on that batch.
* :class:`UniqueKeys`: uniqueness of the id columns over the whole table without holding the ids in
  memory: each batch's ids are hash-partitioned into :data:`PARTITIONS` Arrow IPC spill files, then
  each partition (a share of the ids) is checked for duplicates on its own.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.rules import (
    SAMPLE,
    MapStats,
    Outcome,
    Rule,
    boxed,
    check_rule,
    is_text,
    missing_column,
    null_mask,
    pandas_dtype,
)

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

#: Spill files of :class:`UniqueKeys`: memory holds at most about 1/PARTITIONS of the ids at a time.
PARTITIONS = 64


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
            out[i] = missing_column(keys.absent[0]) if keys.absent else keys.finish(self.rows)
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

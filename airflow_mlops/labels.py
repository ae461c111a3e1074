"""The labels feed: outcomes that arrive after scoring, one row per id, joined back to what they label.

A producer ships labels apart from the features (``labels/month=YYYY-MM/``: the id columns and the
target). The quality check joins them to a month's predictions; the training window joins them to a
month's features. Both read and join here, so both refuse the same bad feeds with the same messages.

The join runs out of core, in bounded memory: both sides are streamed once, in batches, through the
package's readers (any ``ObjectStoragePath``, the task's CSV dialect, ``s3://`` through the Airflow
connection) into a DuckDB database in a temporary folder on the worker's disk. DuckDB checks the
feeds there (repeated ids, types) and joins them in :data:`MEMORY_LIMIT` of working memory, spilling
past it to that folder; only the columns the caller needs come back, in the order of the rows
(predictions or features) as they were read. The join of 10M predictions with 10M labels takes
about 6 s and peaks at 1.3 GiB, the process's imports included; the quality check's peak beyond
that is its metrics on every labelled row (bench/RESULTS.md, "Model quality"). Both sides in
pandas took 3.9 GiB.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import TableError
from airflow_mlops.tables import DEFAULT_BATCH_ROWS

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from airflow_mlops.spec import FeatureSpec
    from airflow_mlops.tables import TableReader

#: DuckDB's working memory for one join (hash tables, sorts); past it DuckDB spills to its temporary folder.
MEMORY_LIMIT = "256MB"
#: The column numbering the rows as read, so the joined rows come back in their own order.
ROW = "__mlops_row"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _pandas_dtype(kind: pa.DataType, has_nulls: bool) -> Any:
    """The pandas dtype a column of arrow type ``kind`` reads as (``read_table``): an integer column that
    holds a null reads as float, a boolean one as object, dates as objects, a dictionary as a category."""
    import pyarrow as pa

    return pa.array([None] if has_nulls else [], type=kind).to_pandas().dtype


class _Source:
    """A stream of record batches numbered with :data:`ROW`, for DuckDB to scan once.

    The first batch is read here, so a partition that is not ready, a missing column or an unreadable
    file fails as the readers say (``PartitionNotReadyError``, ``TableError``) before DuckDB runs; an
    error met later, inside DuckDB's scan, is kept in :attr:`error` to be raised as it was.
    """

    def __init__(self, batches: Iterator[pa.RecordBatch]) -> None:
        import pyarrow as pa

        first = next(batches)
        self.schema = first.schema
        self.error: BaseException | None = None
        numbered = first.schema.append(pa.field(ROW, pa.int64()))

        def stream() -> Iterator[pa.RecordBatch]:
            import numpy as np

            offset = 0
            try:
                for batch in itertools.chain([first], batches):
                    rows = pa.array(np.arange(offset, offset + batch.num_rows, dtype=np.int64))
                    yield pa.RecordBatch.from_arrays([*batch.columns, rows], schema=numbered)
                    offset += batch.num_rows
            except BaseException as exc:
                self.error = exc
                raise

        self.reader = pa.RecordBatchReader.from_batches(numbered, stream())


class LabelJoin:
    """One join of a labels feed to rows (predictions or features), out of core (see the module).

    Use as a context manager; its steps run in the order the checks are made: :meth:`load_rows`,
    :meth:`load_labels`, :meth:`check`, then :meth:`fetch` (to memory) or :meth:`write` (to a file),
    which join; ``counts`` then holds the rows, the labels and the labelled rows.

    :param spec: the FeatureSpec: its ``id_columns`` join, its ``target`` is the label.
    :param what: what the rows are, for messages ("predictions", "features").
    :param memory_limit: DuckDB's working memory (:data:`MEMORY_LIMIT`).
    :param batch_rows: rows of the batches each side is read in.
    """

    def __init__(self, spec: FeatureSpec, *, what: str, memory_limit: str = MEMORY_LIMIT, batch_rows: int = DEFAULT_BATCH_ROWS) -> None:
        self.spec = spec
        self.what = what
        self.memory_limit = memory_limit
        self.batch_rows = batch_rows
        self.ids = list(spec.id_columns)
        self.rows_uri = self.labels_uri = ""
        self.rows_schema: pa.Schema | None = None
        self.labels_schema: pa.Schema | None = None
        self.counts = {"rows": 0, "labels": 0, "labelled": 0}
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> LabelJoin:
        import shutil
        import tempfile

        import duckdb

        folder = tempfile.mkdtemp(prefix="mlops-join-")
        self._stack.callback(shutil.rmtree, folder, ignore_errors=True)
        # A database file, not an in-memory one: the loaded sides live on disk, in DuckDB's own
        # compressed format, and only the working set is held in memory.
        self.con = duckdb.connect(
            f"{folder}/join.duckdb",
            config={"memory_limit": self.memory_limit, "temp_directory": f"{folder}/spill", "preserve_insertion_order": False},
        )
        self._stack.callback(self.con.close)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    # -- steps ---------------------------------------------------------------------------------------

    def _load(self, table: str, batches: Iterator[pa.RecordBatch], columns: Sequence[str], uri: str) -> pa.Schema:
        import duckdb

        source = _Source(batches)
        self.con.register("mlops_source", source.reader)
        try:
            select = ", ".join(_quoted(c) for c in [*columns, ROW])
            self.con.execute(f"CREATE TABLE {table} AS SELECT {select} FROM mlops_source")  # nosec B608: quoted column names
        except duckdb.Error as exc:
            if source.error is not None:
                raise source.error from None
            raise TableError(f"cannot load the {table}: {exc}", uri=uri) from exc
        finally:
            self.con.unregister("mlops_source")
        return source.schema

    def load_rows(self, reader: TableReader, uri: str, columns: Sequence[str]) -> int:
        """Load the id columns and ``columns`` of the rows at ``uri``; return their number.

        :raises TableError: a column is missing or a file is unreadable (the reader's messages).
        """
        self.rows_uri = uri
        wanted = list(dict.fromkeys([*self.ids, *columns]))
        self.rows_schema = self._load("rows", reader.batches(uri, columns=wanted, batch_rows=self.batch_rows), wanted, uri)
        [(count,)] = self.con.execute("SELECT count(*) FROM rows").fetchall()
        self.counts["rows"] = int(count)
        return self.counts["rows"]

    def load_labels(self, reader: TableReader, uri: str) -> int:
        """Load the labels at ``uri`` (the id columns and the target); return how many ids have a label
        (rows without one do not count).

        :raises TableError: the spec has no id columns, an id has several label rows (which one would
            count?), or a column is missing.
        """
        self.labels_uri = uri
        if not self.ids:
            raise TableError("the FeatureSpec has no id_columns: labels that arrive apart can only be joined by id", uri=uri)
        columns = [*self.ids, self.spec.target]
        self.labels_schema = self._load("labels", reader.batches(uri, columns=columns, batch_rows=self.batch_rows), columns, uri)
        keys = ", ".join(_quoted(c) for c in self.ids)
        [(groups, dupes)] = self.con.execute(
            f"SELECT count(*), coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM labels GROUP BY {keys} HAVING count(*) > 1)"  # nosec B608: only our table names and quoted column identifiers, never a value
        ).fetchall()
        if groups:
            first = self.con.execute(
                f"SELECT {keys} FROM labels GROUP BY {keys} HAVING count(*) > 1 ORDER BY min({ROW}) LIMIT 5"  # nosec B608: only our table names and quoted column identifiers, never a value
            ).fetchall()
            sample = [dict(zip(self.ids, values, strict=True)) for values in first]
            raise TableError(f"{int(dupes)} label rows share their id {self.ids}, e.g. {sample}; keep one label per id", uri=uri)
        [(count,)] = self.con.execute(f"SELECT count(*) FROM labels WHERE {self._labelled('labels')}").fetchall()  # nosec B608: only our table names and quoted column identifiers, never a value
        self.counts["labels"] = int(count)
        return self.counts["labels"]

    def _labelled(self, alias: str) -> str:
        """The SQL condition of a label row that holds a label (pandas' ``dropna``: a float NaN is none)."""
        import pyarrow as pa

        if self.labels_schema is None:
            raise RuntimeError("load_rows() and load_labels() come first")
        target = f"{alias}.{_quoted(self.spec.target)}"
        if pa.types.is_floating(self.labels_schema.field(self.spec.target).type):
            return f"{target} IS NOT NULL AND NOT isnan({target})"
        return f"{target} IS NOT NULL"

    def _has_nulls(self, table: str, column: str) -> bool:
        [(nulls,)] = self.con.execute(f"SELECT count(*) - count({_quoted(column)}) FROM {table}").fetchall()  # nosec B608: only our table names and quoted column identifiers, never a value
        return bool(nulls)

    def check(self) -> None:
        """Whether the loaded rows and labels can be joined by id.

        :raises TableError: the rows repeat an id, or an id column reads as another type on each side.
        """
        if self.rows_schema is None or self.labels_schema is None:
            raise RuntimeError("load_rows() and load_labels() come first")
        keys = ", ".join(_quoted(c) for c in self.ids)
        [(distinct,)] = self.con.execute(f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM rows)").fetchall()  # nosec B608: only our table names and quoted column identifiers, never a value
        repeated = self.counts["rows"] - int(distinct)
        if repeated:
            raise TableError(f"{repeated} {self.what} rows repeat an id {self.ids}: each id must occur once", uri=self.rows_uri)
        for column in self.ids:  # compared as a pandas merge would see them: by the kind of their dtype
            labels, rows = (
                _pandas_dtype(schema.field(column).type, self._has_nulls(side, column))
                for side, schema in (("labels", self.labels_schema), ("rows", self.rows_schema))
            )
            if rows.kind != labels.kind:
                raise TableError(f"id column {column!r} is {labels} in the labels but {rows} in the {self.what}", uri=self.labels_uri)
    def distinct(self, column: str) -> list[Any]:
        """The distinct values of a loaded column of the rows."""
        return [value for (value,) in self.con.execute(f"SELECT DISTINCT {_quoted(column)} FROM rows").fetchall()]  # nosec B608: only our table names and quoted column identifiers, never a value

    # -- results -------------------------------------------------------------------------------------

    def _target_type(self) -> pa.DataType:
        """The label's type as ``read_table`` gives it: an integer target that held a null reads as float."""
        import pyarrow as pa

        if self.labels_schema is None:
            raise RuntimeError("load_rows() and load_labels() come first")
        kind = self.labels_schema.field(self.spec.target).type
        return pa.float64() if pa.types.is_integer(kind) and self._has_nulls("labels", self.spec.target) else kind

    def _fields(self, columns: Sequence[str]) -> list[pa.Field]:
        """``columns`` of the joined rows in their types as read (the target as ``read_table`` gives it)."""
        import pyarrow as pa

        if self.rows_schema is None:
            raise RuntimeError("load_rows() and load_labels() come first")
        return [pa.field(c, self._target_type()) if c == self.spec.target else self.rows_schema.field(c) for c in columns]

    def _join(self, select: Sequence[str], *, ordered: bool) -> Iterator[pa.RecordBatch]:
        """The labelled rows (rows without a label left out) with the SQL expressions ``select`` (``r.``:
        the rows, ``l.``: the labels), in the rows' order as read if ``ordered``, streamed.

        :raises TableError: DuckDB could not join (it names why: e.g. out of memory, with the settings to change).
        """
        import duckdb
        import pyarrow as pa

        # NULL ids match each other, as they do in a pandas merge.
        on = " AND ".join(f"r.{_quoted(c)} IS NOT DISTINCT FROM l.{_quoted(c)}" for c in self.ids)
        query = f"SELECT {', '.join(select)} FROM rows r JOIN labels l ON {on} WHERE {self._labelled('l')}"  # nosec B608: only our table names and quoted column identifiers, never a value
        try:  # DuckDB fails at once or, while the batches stream, through Arrow
            yield from self.con.sql(query + (f" ORDER BY r.{ROW}" if ordered else "")).to_arrow_reader(DEFAULT_BATCH_ROWS)
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            raise TableError(f"cannot join the labels to {self.rows_uri}: {exc}", uri=self.labels_uri) from exc

    def _select(self, column: str) -> str:
        return f"l.{_quoted(column)}" if column == self.spec.target else f"r.{_quoted(column)}"

    def fetch(self, columns: Sequence[str]) -> pd.DataFrame:
        """The labelled rows with ``columns`` as a DataFrame, in the order of the rows as read, each
        column as ``read_table`` would give it.

        Joined unordered (DuckDB's sort of the whole result would cost more than the join) with the row
        numbers, then put in order with one O(n) permutation; text columns come out of DuckDB
        dictionary-encoded (an ``ENUM`` of their values) and are converted one column at a time.
        """
        import numpy as np
        import pandas as pd
        import pyarrow as pa

        fields = self._fields(columns)
        select = [f"r.{ROW}"]
        for index, field in enumerate(fields):
            kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
            if field.name != self.spec.target and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                name = _quoted(field.name)
                # Values in the order they first occur, as pandas' categories of a dictionary column.
                self.con.execute(
                    f"CREATE TYPE mlops_values_{index} AS ENUM "  # nosec B608: only our table names and quoted column identifiers, never a value
                    f"(SELECT {name} FROM rows WHERE {name} IS NOT NULL GROUP BY {name} ORDER BY min({ROW}))"
                )
                select.append(f"r.{name}::mlops_values_{index} AS {name}")
            else:
                select.append(self._select(field.name))
        batches = list(self._join(select, ordered=False))
        self.counts["labelled"] = sum(batch.num_rows for batch in batches)
        if not batches:
            return pa.schema(fields).empty_table().to_pandas()
        table = pa.Table.from_batches(batches)
        del batches
        # The permutation that sorts the row numbers, without a sort: they are distinct, below the rows' count.
        numbers = table.column(ROW).to_numpy()
        position = np.empty(self.counts["rows"], dtype=np.int64)
        position[numbers] = np.arange(len(numbers), dtype=np.int64)
        present = np.zeros(self.counts["rows"], dtype=bool)
        present[numbers] = True
        order = pa.array(position[present])
        del numbers, position, present
        table = table.drop_columns([ROW])
        out = {}
        for field in fields:
            column = table.column(field.name).take(order)
            out[field.name] = (column if column.type == field.type else column.cast(field.type)).to_pandas()
            table = table.drop_columns([field.name])  # its buffers go now, before the next column is converted
        return pd.DataFrame(out, columns=list(columns))

    def write(self, path: str, columns: Sequence[str]) -> int:
        """Write the labelled rows with ``columns`` to the local parquet file ``path`` as
        :func:`~airflow_mlops.tables.write_table` would (snappy, row groups of ``DEFAULT_BATCH_ROWS``),
        in the order of the rows as read, streaming (DuckDB sorts, spilling past its memory); return
        the rows written."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        fields = self._fields(columns)
        schema = pa.schema(fields)
        rows = 0
        with pq.ParquetWriter(path, schema, compression="snappy") as writer:
            for batch in self._join([self._select(c) for c in columns], ordered=True):
                arrays = [a if a.type == f.type else a.cast(f.type) for a, f in zip(batch.columns, fields, strict=True)]
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema), row_group_size=DEFAULT_BATCH_ROWS)
                rows += batch.num_rows
        self.counts["labelled"] = rows
        return rows

"""Read and stream tables (parquet, csv) with one CSV dialect
(:class:`~airflow_mlops.tables.dialects.CsvOptions`) for every reader, so the same file gives the same
error everywhere; every error names the file. :class:`TableReader` is
one task's readiness policy and dialect; :func:`write_table` writes a table atomically and
deterministically.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_mlops.exceptions import TableError
from airflow_mlops.tables.dialects import CsvOptions, _check_csv_head, _check_csv_schema
from airflow_mlops.tables.readiness import list_data_files, table_format
from airflow_mlops.tables.storage import _is_local, staged_output, storage_path

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from airflow.sdk import ObjectStoragePath

    from airflow_mlops.spec import FeatureSpec


DEFAULT_BATCH_ROWS = 131_072


def _check_columns(available: Sequence[str], columns: Sequence[str] | None, uri: str) -> None:
    if columns is None:
        return
    missing = [c for c in columns if c not in available]
    if missing:
        raise TableError(f"missing column(s) {missing}; the file has {list(available)}", uri=uri)


@contextmanager
def _reading(uri: str) -> Iterator[None]:
    """Turn pyarrow/pandas read failures into a :class:`TableError` that names the file."""
    import pyarrow as pa

    try:
        yield
    except TableError:
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError) as exc:
        raise TableError(f"cannot read table: {type(exc).__name__}: {exc}", uri=uri) from exc


def read_schema(
    uri: str | ObjectStoragePath, *, conn_id: str | None = None, csv: CsvOptions | None = None
) -> pa.Schema:
    """Return the arrow schema of one file (parquet footer, or the first block of a csv)."""
    return _open_dataset([str(uri)], where=str(uri), conn_id=conn_id, csv=csv).schema


class _Scan(NamedTuple):
    """A ``pyarrow.dataset`` over exact files: the unified schema, and each file with its fragment."""

    schema: pa.Schema
    fragments: list[tuple[str, Any]]


def _arrow_filesystem(files: Sequence[str], conn_id: str | None) -> tuple[Any, list[str]]:
    """The arrow filesystem that reads ``files``, and their paths on it."""
    import pyarrow.fs as pafs

    paths = [storage_path(uri, conn_id=conn_id) for uri in files]
    if _is_local(paths[0]):
        return pafs.LocalFileSystem(), [p.path for p in paths]
    # The Airflow connection's filesystem (its credentials, endpoint, region), wrapped for arrow: arrow's
    # own S3 client would not know the connection.
    return pafs.PyFileSystem(pafs.FSSpecHandler(paths[0].fs)), [p.path for p in paths]


def _file_format(kind: str, csv: CsvOptions, batch_rows: int, dictionary_columns: Sequence[str] = ()) -> Any:
    """The ``pyarrow.dataset`` file format of ``kind`` (``"parquet"``/``"csv"``), read the package's way."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.dataset as ds

    if kind == "parquet":
        # pre_buffer=False: pyarrow's pre-buffering makes memory grow with the file, not with the batch
        # (bench/RESULTS.md, the inference cases). Dictionary reading applies to text columns only: others read as they are.
        return ds.ParquetFileFormat(
            read_options=ds.ParquetReadOptions(dictionary_columns=set(dictionary_columns)),
            default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False),
        )
    # ~64 bytes a csv cell is a fair guess; a block never exceeds 64 MiB.
    block = min(max(batch_rows * 64, 1 << 16), 64 << 20)
    return ds.CsvFileFormat(
        read_options=pacsv.ReadOptions(block_size=block, encoding=csv.encoding),
        parse_options=pacsv.ParseOptions(delimiter=csv.delimiter),
        convert_options=pacsv.ConvertOptions(
            strings_can_be_null=True,
            column_types={name: pa.type_for_alias(kind) for name, kind in csv.column_types},
            **({"null_values": list(csv.null_values)} if csv.null_values is not None else {}),
        ),
    )


def _open_dataset(
    files: Sequence[str],
    *,
    where: str,
    conn_id: str | None = None,
    csv: CsvOptions | None = None,
    columns: Sequence[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    dictionary_columns: Sequence[str] = (),
) -> _Scan:
    """A ``pyarrow.dataset`` over exactly ``files`` (the manifest's, never a listing of the folder), their
    schemas unified permissively (an int column in one file and a float in another read as float).

    Each file's schema is read here one by one, by hand, so that a corrupt file, a missing column or a
    CSV in another dialect is refused naming that file; pyarrow's own inspection of a file list would
    not say which file failed. ``where`` (the partition) is named when the files do not unify.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    csv = csv or CsvOptions()
    filesystem, paths = _arrow_filesystem(files, conn_id)
    formats: dict[str, Any] = {}
    schemas = []
    for uri, path in zip(files, paths, strict=True):
        kind = table_format(uri)
        file_format = formats.setdefault(kind, _file_format(kind, csv, batch_rows, dictionary_columns))
        with _reading(uri):
            if kind == "csv":
                _check_csv_head(filesystem, path, csv, uri)
            schema = file_format.inspect(path, filesystem=filesystem)
            if kind == "csv":
                _check_csv_schema(schema, csv, uri)
        _check_columns(schema.names, columns, uri)
        schemas.append(schema)
    with _reading(where):
        schema = schemas[0] if len(schemas) == 1 else pa.unify_schemas(schemas, promote_options="permissive")
    fragments: dict[str, Any] = {}
    for kind, file_format in formats.items():
        chosen = [path for uri, path in zip(files, paths, strict=True) if table_format(uri) == kind]
        dataset = ds.dataset(chosen, schema=schema, format=file_format, filesystem=filesystem)
        fragments.update((fragment.path, fragment) for fragment in dataset.get_fragments())
    return _Scan(schema, [(uri, fragments[path]) for uri, path in zip(files, paths, strict=True)])


def _scan(scan: _Scan, columns: Sequence[str] | None, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Stream the files of ``scan`` in the unified schema, file after file, at least one batch per file."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    projected = pa.schema([scan.schema.field(c) for c in columns]) if columns else scan.schema
    for uri, fragment in scan.fragments:
        # Fragment after fragment rather than one dataset.to_batches(): an error met while decoding then
        # names its file (the scanner's readahead across files would hide which one failed).
        yielded = False
        with _reading(uri):
            if isinstance(fragment, ds.ParquetFileFragment):
                batches = _parquet_batches(fragment, projected, batch_rows)
            else:  # csv: arrow reads ahead and converts on its threads; a short readahead bounds memory
                batches = fragment.to_batches(
                    schema=scan.schema,
                    columns=list(columns) if columns else None,
                    batch_size=batch_rows,
                    batch_readahead=2,
                )
            for batch in batches:
                yielded = True
                yield batch
        if not yielded:
            yield pa.RecordBatch.from_pylist([], schema=projected)


def _parquet_batches(fragment: Any, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Stream a parquet fragment in batches of ``batch_rows`` rows, in ``schema`` (its columns, unified types).

    By hand, not ``fragment.to_batches()``: the dataset scanner stops every batch at a parquet row group
    (131k rows in our files), which gave validation 4x as many batches (each a GX pass: ~20 % slower),
    and joining them back to ``batch_rows`` rows cost 80-110 MB more peak memory in streaming inference
    (measured). ``ParquetFile.iter_batches`` decodes across row groups straight into full batches.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    dictionary = [f.name for f in schema if pa.types.is_dictionary(f.type)]
    with fragment.filesystem.open_input_file(fragment.path) as handle:
        parquet = pq.ParquetFile(handle, pre_buffer=False, read_dictionary=dictionary or None)
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=schema.names):
            yield batch if batch.schema.equals(schema) else batch.cast(schema)


def iter_file_batches(
    uri: str | ObjectStoragePath,
    *,
    columns: Sequence[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    conn_id: str | None = None,
    schema_only: bool = False,
    dictionary_columns: Sequence[str] = (),
    csv: CsvOptions | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream one file as record batches of at most ``batch_rows`` rows (csv: of a bounded block size).

    Parquet is read with ``pre_buffer=False``: pyarrow's pre-buffering makes memory grow with the file,
    not with the batch (bench/RESULTS.md, the inference cases). Parquet text columns named in ``dictionary_columns`` are
    read dictionary-encoded: low-cardinality columns (categories) then become pandas Categoricals that
    share one Python string per distinct value instead of one per row. CSV is read with ``csv`` (the
    default: comma, UTF-8); a file that another dialect would read is refused with the option to set.

    :raises TableError: unreadable, empty or corrupt file, or a requested column is missing.
    """
    import pyarrow as pa

    text = str(uri)
    scan = _open_dataset(
        [text],
        where=text,
        conn_id=conn_id,
        csv=csv,
        columns=columns,
        batch_rows=batch_rows,
        dictionary_columns=dictionary_columns,
    )
    if schema_only:
        yield pa.RecordBatch.from_pylist([], schema=scan.schema)
        return
    yield from _scan(scan, columns, batch_rows)


def parquet_row_count(uri: str | ObjectStoragePath, *, conn_id: str | None = None) -> int:
    """Return the row count of a parquet file from its footer (no data read).

    :raises TableError: the file is not readable parquet (named in the error).
    """
    import pyarrow.parquet as pq

    with _reading(str(uri)), storage_path(uri, conn_id=conn_id).open("rb") as handle:
        return int(pq.ParquetFile(handle).metadata.num_rows)


def iter_batches(
    uri: str | ObjectStoragePath,
    *,
    columns: Sequence[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    conn_id: str | None = None,
    require_marker: bool | None = None,
    csv: CsvOptions | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream a file or a whole partition as record batches, file after file, in bounded memory, all in
    the partition's unified schema (see :func:`read_table`)."""
    files = list_data_files(uri, conn_id=conn_id, require_marker=require_marker)
    yield from _scan(
        _open_dataset(files, where=str(uri), conn_id=conn_id, csv=csv, columns=columns, batch_rows=batch_rows),
        columns,
        batch_rows,
    )


def read_table(
    uri: str | ObjectStoragePath,
    *,
    columns: Sequence[str] | None = None,
    conn_id: str | None = None,
    require_marker: bool | None = None,
    csv: CsvOptions | None = None,
) -> pd.DataFrame:
    """Read a file or a whole partition into one pandas DataFrame.

    The files' schemas are unified permissively: a column that is int in one file and float in another
    is read as float, one that is null throughout a file takes the other files' type.

    :param uri: a ``.parquet``/``.csv`` file or a partition folder.
    :param columns: only these columns (each must exist).
    :param conn_id: connection for remote stores.
    :param require_marker: demand a partition folder's ``_SUCCESS`` marker (default ``[mlops] require_marker``).
    :param csv: the CSV dialect.
    :raises TableError: with the file named, on any unreadable input.
    """
    import pyarrow as pa

    files = list_data_files(uri, conn_id=conn_id, require_marker=require_marker)
    scan = _open_dataset(files, where=str(uri), conn_id=conn_id, csv=csv, columns=columns)
    return pa.Table.from_batches(list(_scan(scan, columns, DEFAULT_BATCH_ROWS))).to_pandas()


class TableReader(NamedTuple):
    """How one operator reads its tables: the connection, the readiness policy and the CSV dialect,
    given once and applied to every read.

    :param conn_id: connection for remote stores.
    :param require_marker: demand a partition's ``_SUCCESS`` marker; ``None`` = ``[mlops] require_marker``.
    :param csv: the CSV dialect.
    """

    conn_id: str | None = None
    require_marker: bool | None = None
    csv: CsvOptions = CsvOptions()

    def for_spec(self, spec: FeatureSpec) -> TableReader:
        """This reader with the CSV types of ``spec``'s features: numeric as double, categorical as text."""
        types = tuple((c, "double") for c in spec.numeric_columns) + tuple(
            (c, "string") for c in spec.categorical_columns
        )
        return self._replace(csv=self.csv._replace(column_types=types))

    def files(self, uri: str) -> list[str]:
        """The data files of a file or partition (see :func:`list_data_files`)."""
        return list_data_files(uri, conn_id=self.conn_id, require_marker=self.require_marker)

    def schema(self, uri: str) -> pa.Schema:
        """The arrow schema of one file."""
        return read_schema(uri, conn_id=self.conn_id, csv=self.csv)

    def partition_schema(self, uri: str) -> pa.Schema:
        """The arrow schema of a file or partition as :meth:`batches` reads it: its files' schemas unified
        (footers and CSV heads only, no data read)."""
        return _open_dataset(self.files(uri), where=str(uri), conn_id=self.conn_id, csv=self.csv).schema

    def file_batches(self, uri: str, **kwargs: Any) -> Iterator[pa.RecordBatch]:
        """Stream one file (see :func:`iter_file_batches`)."""
        return iter_file_batches(uri, conn_id=self.conn_id, csv=self.csv, **kwargs)

    def batches(
        self, uri: str, *, columns: Sequence[str] | None = None, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        """Stream a file or partition (see :func:`iter_batches`)."""
        return iter_batches(
            uri,
            columns=columns,
            batch_rows=batch_rows,
            conn_id=self.conn_id,
            require_marker=self.require_marker,
            csv=self.csv,
        )

    def read(self, uri: str, *, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Read a file or partition into pandas (see :func:`read_table`)."""
        return read_table(uri, columns=columns, conn_id=self.conn_id, require_marker=self.require_marker, csv=self.csv)


def write_table(data: pd.DataFrame | pa.Table, uri: str | ObjectStoragePath, *, conn_id: str | None = None) -> str:
    """Write a DataFrame or arrow table as one parquet (or csv, by suffix) file, atomically.

    The parquet encoding is deterministic (no index, snappy, fixed row-group size), so the same data
    written twice gives byte-identical files. Returns ``uri``.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    fmt = table_format(str(uri))
    with staged_output(uri, conn_id=conn_id) as local:
        if fmt == "parquet":
            pq.write_table(table, local, compression="snappy", row_group_size=DEFAULT_BATCH_ROWS)
        else:
            pacsv.write_csv(table, local)
    return str(uri)

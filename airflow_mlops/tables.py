"""Read, stream and write tables (parquet, csv) on any ``ObjectStoragePath`` (``file://``, ``s3://``).

Readers name the file in every error. Writers never let a reader see a partial file: output is staged
and published in one step (an atomic rename on local disk, a single upload on object stores, where a
PUT or a completed multipart upload is all-or-nothing). A partition (a folder of ``part-*.parquet``
files) is complete only once its ``_SUCCESS`` marker exists, and the marker's manifest names the files
that make it up: readers take exactly those. A producer that writes a folder once seals it with
:func:`finish_partition`. A run that rewrites a published partition (a rerun of a month) stages its
files per run and publishes them in one step at the end (:func:`open_partition`,
:func:`publish_partition`): until then readers keep the earlier version, and a failed rerun leaves it
untouched. Publishing is a compare-and-swap on the version the run started from: the publisher first
claims that version with an exclusive create of ``_claims/<version>.json`` (a hard link on local
disk, a conditional PUT ``If-None-Match: *`` on S3; other stores are refused), and only the claimant
moves its files in and writes the manifest. Of concurrent runs that started from one version exactly
one publishes; the others publish nothing and fail at once (:class:`PartitionConflictError`, naming
the winner). The claim is released once the manifest is written, so a published partition holds its
marker and data files only.

Readiness is one policy for every reader (sensor, validation, drift, training, inference): a folder
needs its ``_SUCCESS`` marker unless the reader opts out (``require_marker=False``, default
``[mlops] require_marker``) for producers that write none (pandas, most ETL tools); the partition
sensor then waits until the files have not changed for a while instead. CSV files are read with one
dialect (:class:`CsvOptions`) by every reader, so the same file gives the same error everywhere.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_mlops import settings
from airflow_mlops.exceptions import PartitionConflictError, PartitionNotReadyError, TableError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from airflow.sdk import ObjectStoragePath

    from airflow_mlops.spec import FeatureSpec

log = logging.getLogger(__name__)

SUCCESS_MARKER = "_SUCCESS"
#: Why a folder without its marker is not ready (the start of :class:`PartitionNotReadyError`'s detail).
MISSING_MARKER = f"partition has no {SUCCESS_MARKER} marker (still being written?)"
#: What a reader of another producer's folders may do about it.
NO_MARKER_HINT = (
    "If its producer writes no marker (pandas, most ETL tools), pass require_marker=False to the operator or sensor that "
    "reads it (airflow-mlops infer-spec: --no-marker), or set [mlops] require_marker = False (AIRFLOW__MLOPS__REQUIRE_MARKER=False)"
)
#: Per-run staging folders inside a partition (``_`` hides them from every reader, pyarrow's too).
STAGING_DIR = "_staging"
#: Staging folders of other runs untouched this long are left-overs of killed runs: removed at publish.
STALE_STAGING_SECONDS = 24 * 3600
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
DEFAULT_BATCH_ROWS = 131_072
#: Byte-order marks of encodings that a UTF-8 reader turns into one garbled column.
_BOMS = {
    b"\xff\xfe\x00\x00": "utf-32", b"\x00\x00\xfe\xff": "utf-32", b"\xff\xfe": "utf-16", b"\xfe\xff": "utf-16",
    b"\xef\xbb\xbf": "utf-8",
}  # fmt: skip
#: The keys ``csv_options`` takes (the rest of :class:`CsvOptions` is set by the operators).
CSV_KEYS = ("delimiter", "encoding", "null_values")
_DELIMITERS = {";": "';'", "\t": "a tab ('\\t')", "|": "'|'"}


class CsvOptions(NamedTuple):
    """The dialect of CSV input: every table reader takes it, so validation, drift, training and
    inference read a file the same way.

    :param delimiter: one character (default ``,``).
    :param encoding: text encoding (default ``utf-8``; e.g. ``utf-16``, ``latin-1``).
    :param null_values: strings read as null (default pyarrow's: empty, ``NA``, ``NaN``, ``null``...).
        Empty text fields are null either way, as pandas writes missing text.
    :param column_types: arrow types of known columns (set by operators from the FeatureSpec, not by
        users), so a column's type does not depend on what its first block holds: a numeric column
        empty at the top stays numeric, a categorical of digits (zip codes) stays text.
    """

    delimiter: str = ","
    encoding: str = "utf-8"
    null_values: tuple[str, ...] | None = None
    column_types: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: CsvOptions | Mapping[str, Any] | str | None) -> CsvOptions:
        """Accept a mapping (or its JSON text, or ``None``); raise ``ValueError`` naming a bad key or value."""
        import codecs

        from airflow_mlops.utils.values import as_mapping

        if isinstance(value, CsvOptions):
            return value
        value = as_mapping(value, "csv_options")
        unknown = sorted(set(value) - set(CSV_KEYS))
        if unknown:
            raise ValueError(f"csv_options: unknown key(s) {unknown}; allowed: {list(CSV_KEYS)}")
        nulls = value.get("null_values")
        options = cls(
            delimiter=value.get("delimiter") or ",",
            encoding=value.get("encoding") or "utf-8",
            null_values=(nulls,) if isinstance(nulls, str) else tuple(nulls) if nulls is not None else None,
        )
        if len(options.delimiter) != 1:
            raise ValueError(f"csv_options.delimiter must be one character, got {options.delimiter!r}")
        try:
            codecs.lookup(options.encoding)
        except LookupError as exc:
            raise ValueError(f"csv_options.encoding: unknown encoding {options.encoding!r}") from exc
        return options


def storage_path(uri: str | ObjectStoragePath, *, conn_id: str | None = None) -> ObjectStoragePath:
    """Return an ``ObjectStoragePath`` for ``uri``.

    :param uri: ``file://``, ``s3://`` or a plain local path.
    :param conn_id: Airflow connection for remote stores; defaults to ``[mlops] data_conn_id``
        (``aws_default``) for ``s3://``. Ignored for local paths.
    """
    from airflow.sdk import ObjectStoragePath

    if isinstance(uri, ObjectStoragePath):
        return uri
    text = str(uri)
    if "://" not in text:
        text = "file://" + os.path.abspath(text)
    if text.startswith("file://"):
        return ObjectStoragePath(text)
    return ObjectStoragePath(text, conn_id=conn_id or settings.data_conn_id())


def _is_local(path: ObjectStoragePath) -> bool:
    return path.protocol in ("file", "local", "")


def table_format(uri: str | ObjectStoragePath) -> str:
    """Return ``"parquet"`` or ``"csv"`` from the file suffix; raise :class:`TableError` otherwise."""
    suffix = os.path.splitext(str(uri))[1].lower()
    if suffix not in FORMATS:
        raise TableError(f"unsupported table format {suffix or '(no suffix)'!r}; use one of {sorted(FORMATS)}", uri=str(uri))
    return FORMATS[suffix]


def _is_data_file(name: str) -> bool:
    return not name.startswith(("_", ".")) and os.path.splitext(name)[1].lower() in FORMATS


def list_data_files(
    uri: str | ObjectStoragePath, *, conn_id: str | None = None, require_marker: bool | None = None
) -> list[str]:
    """Return the data files of a table: ``[uri]`` for a file, the sorted part files for a folder.

    :param uri: a file or a partition folder.
    :param conn_id: connection for remote stores.
    :param require_marker: for a folder, demand its ``_SUCCESS`` marker (a partition still being
        written is not ready); ``None`` = ``[mlops] require_marker`` (default true).
    :raises PartitionNotReadyError: the folder is missing, has no data files, or lacks the marker.
    """
    if require_marker is None:
        require_marker = settings.require_marker()
    path = storage_path(uri, conn_id=conn_id)
    if not _is_local(path):
        # s3fs caches listings for the life of the filesystem object, which Airflow keeps per process:
        # a sensor or trigger polling the same folder would see its first listing forever.
        path.fs.invalidate_cache(path.path)
    if path.is_file():
        table_format(path)
        return [str(uri)]
    if not path.is_dir():
        raise PartitionNotReadyError("no such file or partition", uri=str(uri))
    names = sorted(child.name for child in path.iterdir())
    files = [n for n in names if _is_data_file(n)]
    if not files:
        raise PartitionNotReadyError("partition has no data files (*.parquet, *.csv)", uri=str(uri))
    if require_marker and SUCCESS_MARKER not in names:
        raise PartitionNotReadyError(f"{MISSING_MARKER}. {NO_MARKER_HINT}", uri=str(uri))
    base = str(uri).rstrip("/")
    listed = _manifest_files(path, names) if SUCCESS_MARKER in names else None
    if listed is not None:
        missing = sorted(set(listed) - set(files))
        if missing:
            raise PartitionNotReadyError(f"the {SUCCESS_MARKER} manifest names files that are gone ({missing[:3]}): being replaced? try again", uri=str(uri))
        return [f"{base}/{n}" for n in listed]
    return [f"{base}/{n}" for n in files]


def _manifest_files(folder: ObjectStoragePath, names: Sequence[str]) -> list[str] | None:
    """The data files the partition's ``_SUCCESS`` manifest names, or ``None`` for a marker without one
    (an empty ``_SUCCESS``, as Spark and Hadoop write it)."""
    manifest = read_manifest(folder)
    files = manifest.get("files") if manifest else None
    return sorted(str(f) for f in files) if isinstance(files, list) and files else None


def read_manifest(uri: str | ObjectStoragePath, *, conn_id: str | None = None) -> dict[str, Any] | None:
    """The JSON manifest in a partition's ``_SUCCESS`` marker; ``None`` without marker or when it holds no JSON object."""
    import json

    folder = uri if not isinstance(uri, str) else storage_path(uri, conn_id=conn_id)
    marker = folder / SUCCESS_MARKER
    try:
        text = marker.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        manifest = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    return manifest if isinstance(manifest, dict) else None


def is_below(uri: str, prefix: str) -> bool:
    """Whether ``uri`` is ``prefix`` or lies below it, after normalising ``file://`` and plain paths and
    resolving ``..`` (so ``<root>/../secrets`` is not below ``<root>``)."""
    from urllib.parse import unquote, urlsplit

    def normal(text: str) -> tuple[tuple[str, str], str]:
        parts = urlsplit(text if "://" in text else f"file://{os.path.abspath(text)}")
        return (parts.scheme, parts.netloc), os.path.normpath(unquote(parts.path) or "/")

    (where, path), (prefix_where, prefix_path) = normal(uri), normal(prefix)
    return where == prefix_where and (path == prefix_path or path.startswith(prefix_path.rstrip("/") + "/"))


def seconds_since_change(uri: str | ObjectStoragePath, *, conn_id: str | None = None) -> float:
    """Seconds since anything in the file or folder ``uri`` last changed: its newest file, hidden and
    staging files included (a writer still writing ``.part.tmp`` or ``_temporary/`` is not done).

    :raises TableError: the store reports no modification time for a file.
    """
    import time

    path = storage_path(uri, conn_id=conn_id)
    newest = 0.0
    for info in path.fs.find(path.path, withdirs=False, detail=True).values():
        stamp = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("updated")
        if stamp is None:
            raise TableError(f"the store reports no modification time for {info.get('name')}; use a _SUCCESS marker", uri=str(uri))
        if isinstance(stamp, str):
            import datetime as dt

            stamp = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        newest = max(newest, stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp))
    return time.time() - newest


def ready_files(
    uri: str | ObjectStoragePath, *, conn_id: str | None = None, require_marker: bool | None = None, stable_seconds: float = 0.0
) -> list[str]:
    """The data files of a partition that is ready to read, by the readiness policy.

    With the marker required, a partition is ready once its ``_SUCCESS`` marker exists. Without it,
    once its data files exist and none has changed for ``stable_seconds`` (the producer is done writing).

    :raises PartitionNotReadyError: not ready yet, saying why.
    """
    if require_marker is None:
        require_marker = settings.require_marker()
    files = list_data_files(uri, conn_id=conn_id, require_marker=require_marker)
    if not require_marker and stable_seconds > 0:
        quiet = seconds_since_change(uri, conn_id=conn_id)
        if quiet < stable_seconds:
            raise PartitionNotReadyError(
                f"files changed {quiet:.0f} s ago; ready once unchanged for {stable_seconds:.0f} s (no {SUCCESS_MARKER} marker required)",
                uri=str(uri),
            )
    return files


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


def read_schema(uri: str | ObjectStoragePath, *, conn_id: str | None = None, csv: CsvOptions | None = None) -> pa.Schema:
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
        # (see PERF_BASELINES). Dictionary reading applies to text columns only: others read as they are.
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
                batches = fragment.to_batches(schema=scan.schema, columns=list(columns) if columns else None, batch_size=batch_rows, batch_readahead=2)
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
    not with the batch (see PERF_BASELINES). Parquet text columns named in ``dictionary_columns`` are
    read dictionary-encoded: low-cardinality columns (categories) then become pandas Categoricals that
    share one Python string per distinct value instead of one per row. CSV is read with ``csv`` (the
    default: comma, UTF-8); a file that another dialect would read is refused with the option to set.

    :raises TableError: unreadable, empty or corrupt file, or a requested column is missing.
    """
    import pyarrow as pa

    text = str(uri)
    scan = _open_dataset([text], where=text, conn_id=conn_id, csv=csv, columns=columns, batch_rows=batch_rows, dictionary_columns=dictionary_columns)
    if schema_only:
        yield pa.RecordBatch.from_pylist([], schema=scan.schema)
        return
    yield from _scan(scan, columns, batch_rows)


def _check_csv_head(filesystem: Any, path: str, csv: CsvOptions, uri: str) -> None:
    """Refuse a file whose byte-order mark says another encoding than ``csv`` reads it with.

    By hand: arrow's CSV reader keeps a foreign byte-order mark as characters of the first column name.
    """
    import codecs

    with filesystem.open_input_stream(path) as stream:
        head = stream.read(4)
    bom = next((enc for mark, enc in _BOMS.items() if head.startswith(mark)), None)
    # utf-16/32 read the byte-order mark and drop it; their -le/-be variants, or any other codec, keep it in the header.
    reads_bom = {"utf-8": ("utf-8", "utf-8-sig"), "utf-16": ("utf-16",), "utf-32": ("utf-32",)}
    if bom and codecs.lookup(csv.encoding).name not in reads_bom[bom]:
        raise TableError(
            f"the file starts with a {bom.upper()} byte-order mark but is read as {csv.encoding}; "
            f"set csv_options={{'encoding': '{bom}'}}",
            uri=uri,
        )


def _check_csv_schema(schema: pa.Schema, csv: CsvOptions, uri: str) -> None:
    """Refuse (naming the option to set) a CSV schema that shows the file needs another dialect.

    By hand: arrow reads a file in the wrong dialect without complaint, into one column or binary ones.
    """
    import pyarrow as pa

    names = schema.names
    if len(names) == 1:
        seen = [label for mark, label in _DELIMITERS.items() if mark in names[0] and mark != csv.delimiter]
        if seen:
            mark = next(m for m, label in _DELIMITERS.items() if label == seen[0])
            raise TableError(
                f"the file parsed into a single column {names[0][:80]!r}, which contains {seen[0]}: it looks "
                f"{seen[0]}-delimited; set csv_options={{'delimiter': {mark!r}}}",
                uri=uri,
            )
    # pyarrow types a text column that does not decode as binary and reads on; refuse it instead of
    # carrying raw bytes into validation and predictions.
    binary = [f.name for f in schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    if binary:
        raise TableError(
            f"column(s) {binary} are not valid {csv.encoding} text; set csv_options={{'encoding': ...}} to the file's encoding",
            uri=uri,
        )


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
    yield from _scan(_open_dataset(files, where=str(uri), conn_id=conn_id, csv=csv, columns=columns, batch_rows=batch_rows), columns, batch_rows)


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
        types = tuple((c, "double") for c in spec.numeric_columns) + tuple((c, "string") for c in spec.categorical_columns)
        return self._replace(csv=self.csv._replace(column_types=types))

    def files(self, uri: str) -> list[str]:
        """The data files of a file or partition (see :func:`list_data_files`)."""
        return list_data_files(uri, conn_id=self.conn_id, require_marker=self.require_marker)

    def schema(self, uri: str) -> pa.Schema:
        """The arrow schema of one file."""
        return read_schema(uri, conn_id=self.conn_id, csv=self.csv)

    def file_batches(self, uri: str, **kwargs: Any) -> Iterator[pa.RecordBatch]:
        """Stream one file (see :func:`iter_file_batches`)."""
        return iter_file_batches(uri, conn_id=self.conn_id, csv=self.csv, **kwargs)

    def batches(self, uri: str, *, columns: Sequence[str] | None = None, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Stream a file or partition (see :func:`iter_batches`)."""
        return iter_batches(uri, columns=columns, batch_rows=batch_rows, conn_id=self.conn_id, require_marker=self.require_marker, csv=self.csv)

    def read(self, uri: str, *, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Read a file or partition into pandas (see :func:`read_table`)."""
        return read_table(uri, columns=columns, conn_id=self.conn_id, require_marker=self.require_marker, csv=self.csv)


@contextmanager
def staged_output(uri: str | ObjectStoragePath, *, conn_id: str | None = None) -> Iterator[str]:
    """Yield a local file path to write into; publish it at ``uri`` in one step if the block succeeds.

    Local targets are staged beside the target (``.<name>.<random>.tmp``, ignored by readers) and
    renamed into place atomically. Remote targets are staged in a local temp file and uploaded in one
    call, so the object appears whole or not at all. On any error the staged file is deleted and an
    earlier file at ``uri`` is left as it was.
    """
    path = storage_path(uri, conn_id=conn_id)
    if _is_local(path):
        final = path.path
        os.makedirs(os.path.dirname(final), exist_ok=True)
        staging = os.path.join(os.path.dirname(final), f".{os.path.basename(final)}.{uuid.uuid4().hex}.tmp")
    else:
        fd, staging = tempfile.mkstemp(suffix=".tmp", prefix="mlops-stage-")
        os.close(fd)
    try:
        yield staging
        if _is_local(path):
            os.replace(staging, final)
        else:
            try:
                path.fs.put_file(staging, path.path)
            except Exception as exc:  # endpoint down or connection cut (botocore/aiohttp/OSError): the PUT did not complete
                raise TableError(f"upload failed, nothing was published: {type(exc).__name__}: {exc}", uri=str(uri)) from exc
        log.debug("Published %s", uri)
    finally:
        if os.path.exists(staging):
            os.remove(staging)


def write_table(
    data: pd.DataFrame | pa.Table, uri: str | ObjectStoragePath, *, conn_id: str | None = None
) -> str:
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


def write_text(text: str, uri: str | ObjectStoragePath, *, conn_id: str | None = None) -> str:
    """Write a text file (JSON summary, HTML report) atomically; return ``uri``."""
    with staged_output(uri, conn_id=conn_id) as local, open(local, "w", encoding="utf-8") as handle:
        handle.write(text)
    return str(uri)


def read_text(uri: str | ObjectStoragePath, *, conn_id: str | None = None) -> str:
    """Read a whole text file."""
    path = storage_path(uri, conn_id=conn_id)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TableError(f"cannot read file: {type(exc).__name__}: {exc}", uri=str(uri)) from exc


def finish_partition(
    uri: str | ObjectStoragePath, *, keep: Sequence[str], conn_id: str | None = None, extra: dict[str, Any] | None = None
) -> str:
    """Complete a partition: delete data files not in ``keep`` (left by an earlier, larger run) and
    staging files of killed writers, then write the ``_SUCCESS`` marker last. Returns the marker URI.

    :param keep: file names (not URIs) that make up the partition now.
    :param extra: JSON-able facts stored in the marker (rows, model version...).
    """
    import json

    base = str(uri).rstrip("/")
    folder = storage_path(base, conn_id=conn_id)
    for child in folder.iterdir():
        stale_data = _is_data_file(child.name) and child.name not in keep
        crashed_staging = child.name.startswith(".") and child.name.endswith(".tmp")  # left by a killed writer
        if stale_data or crashed_staging:
            log.info("Removing stale file %s/%s", base, child.name)
            child.unlink()
    return write_text(json.dumps({"files": sorted(keep), **(extra or {})}, sort_keys=True), f"{base}/{SUCCESS_MARKER}", conn_id=conn_id)


def _generation(run_key: str) -> str:
    """A short name for a run's version of a partition: the same for every try of the run."""
    import hashlib

    return hashlib.sha256(run_key.encode()).hexdigest()[:12]


def open_partition(uri: str | ObjectStoragePath, *, run_key: str, conn_id: str | None = None) -> dict[str, Any]:
    """Start a new version of the partition at ``uri`` for the run ``run_key`` (e.g. its dag and run
    id): the published version stays as it is, for readers, until :func:`publish_partition`.

    Returns the JSON-able handle the writers and the publisher share (pass it through XCom):
    ``{"uri", "run_key", "generation", "staging", "replaces", "claim"}``. Write the files into
    ``staging`` (under their final names). ``replaces`` is the generation published when this run
    started (``None`` for none); ``claim`` names that published version exactly (``"initial"`` for
    none, else a digest of its ``_SUCCESS`` marker, bytes and store stamp): it is the claim that
    :func:`publish_partition` will take. An earlier try of the same run left its staging folder: it is
    emptied.

    :raises TableError: the store has no exclusive create to publish with (only ``file://`` and ``s3://`` have).
    """
    base = str(uri).rstrip("/")
    folder = storage_path(base, conn_id=conn_id)
    _check_claimable(folder, base)
    generation = _generation(run_key)
    version, published = _published_version(folder)
    staging = f"{base}/{STAGING_DIR}/{generation}"
    _remove_folder(storage_path(staging, conn_id=conn_id))
    return {
        "uri": base, "run_key": run_key, "generation": generation, "staging": staging,
        "replaces": _generation_of(published), "claim": version,
    }  # fmt: skip


def publish_partition(handle: Mapping[str, Any], *, files: Sequence[str], extra: dict[str, Any] | None = None, conn_id: str | None = None) -> str:
    """Make the files a run staged (``handle`` from :func:`open_partition`) the partition, then drop
    the version they replace. Returns the marker URI. A compare-and-swap: of runs that opened the
    partition on the same version, exactly one publishes.

    In order:

    1. Claim the version this run started from: create ``_claims/<handle["claim"]>.json`` (this run's
       generation and run_key) with an exclusive create, which the store decides atomically (a hard
       link on local disk, a PUT with ``If-None-Match: *`` on S3). Another run holding it won:
       :class:`PartitionConflictError` naming it (``winner``), and this run's staging is removed.
       Nothing of this run has entered the partition. A claim holding this run's generation is this
       run's own, from an earlier try: the publish carries on.
    2. Under the claim, check that the published version is still the claimed one. If it is not, the
       winner has finished and released its claim: this run lost too (its claim is released, its
       staging removed). No published version comes back once replaced, as the claim names its marker's
       bytes and store stamp (time of writing), so a released claim is never taken to replace it again.
    3. Move the staged files in under names unique to the run (``<name>.<generation>.parquet``), so
       they never overwrite a file of another run's version (a run replacing its own version rewrites
       its files in place, as a rerun of it does); write the new ``_SUCCESS`` manifest
       (one atomic write: readers switch version there); release the claim; delete the data files of
       the replaced version and staging left by runs killed long ago. The partition then holds the
       marker and the data files only.

    A retry after a crash at any point finishes the publish: before the manifest, it finds its claim
    and carries on (files already moved are kept); after it, it finds its own generation published
    and finishes the clean-up (files staged again since, by a rerun of the run's writers, replace that
    version under a new claim). A run that crashed holding its claim and is never retried blocks the
    partition: other runs are refused, naming it, until it is rerun or its claim is deleted.
    ``run_key`` names one run: two processes publishing under one ``run_key`` are one run to this
    protocol. :func:`finish_partition` (a producer writing a folder once) takes no claim.

    :param files: names of the staged files (in ``handle["staging"]``).
    :param extra: JSON-able facts stored in the manifest (rows, model versions...).
    :raises PartitionConflictError: another run won (nothing of this run was published).
    """
    import json

    base, generation, run_key = handle["uri"], handle["generation"], handle["run_key"]
    folder = storage_path(base, conn_id=conn_id)
    _check_claimable(folder, base)
    staging = storage_path(handle["staging"], conn_id=conn_id)
    version, published = _published_version(folder)
    # A handle from before claims (in XCom across an upgrade) knows the generation only.
    claimed = handle.get("claim") or (version if _generation_of(published) == handle.get("replaces") else "changed")
    if version != claimed and _generation_of(published) == generation:
        # This run published already (an earlier try crashed after the manifest, or it is retried when done).
        if not any(_uncached(staging / name).exists() for name in files):
            _clean_up(folder, staging, final=[str(f) for f in (published or {}).get("files") or []], generation=generation)
            return f"{base}/{SUCCESS_MARKER}"
        claimed = version  # its writers ran again since: their files replace the run's own version
    claim = storage_path(f"{base}/{CLAIMS_DIR}/{claimed}.json", conn_id=conn_id)
    holder = _claim(claim, {"generation": generation, "run_key": run_key}, generation)
    if holder is not None:
        version, published = _published_version(folder)
        _discard(staging)
        raise _conflict(handle, winner=holder if version == claimed else published, publishing=version == claimed, claim=claim)
    version, published = _published_version(folder)
    if version != claimed:
        _release_claims(folder, generation)
        _discard(staging)
        raise _conflict(handle, winner=published, publishing=False, claim=claim)
    final = []
    for name in files:
        stem, ext = os.path.splitext(name)
        # A name derived from a published file (a scored part keeps its input's name) drops that one's generation.
        target = f"{re.sub(r'[.][0-9a-f]{12}$', '', stem)}.{generation}{ext}"
        source = _uncached(staging / name)
        if source.exists():
            source.rename(storage_path(f"{base}/{target}", conn_id=conn_id))
        elif not _uncached(storage_path(f"{base}/{target}", conn_id=conn_id)).exists():
            raise TableError(f"staged file {name} is missing: was it written by this run?", uri=str(staging))
        final.append(target)
    manifest = {"files": sorted(final), "generation": generation, "run_key": run_key, **(extra or {})}
    marker = write_text(json.dumps(manifest, sort_keys=True, default=str), f"{base}/{SUCCESS_MARKER}", conn_id=conn_id)
    _clean_up(folder, staging, final=final, generation=generation)
    log.info("Published %s: %d files (generation %s)", base, len(final), generation)
    return marker


#: Claims on published versions, one object each (see :func:`publish_partition`).
CLAIMS_DIR = "_claims"
#: The claim name of a partition with no ``_SUCCESS`` marker yet.
INITIAL_VERSION = "initial"


def _generation_of(manifest: Mapping[str, Any] | None) -> str | None:
    return None if manifest is None else str(manifest.get("generation", ""))


def _check_claimable(folder: ObjectStoragePath, uri: str) -> None:
    """Refuse a store on which this module knows no atomic exclusive create (fsspec leaves "x" mode to
    each backend, "atomic or not"): publishing there would not be a compare-and-swap."""
    if not (_is_local(folder) or folder.protocol in ("s3", "s3a")):
        raise TableError(
            f"publishing a partition needs an atomic exclusive create, known here for file:// and s3:// only, not {folder.protocol}://",
            uri=uri,
        )


def _uncached(path: ObjectStoragePath) -> ObjectStoragePath:
    """``path``, with what the filesystem cached of it and its folders dropped (s3fs keeps listings for
    the life of the filesystem, which Airflow keeps per process: other processes' writes would be missed)."""
    if not _is_local(path):
        path.fs.invalidate_cache(path.path)
    return path


def _stamp(path: ObjectStoragePath) -> str | None:
    """The store's identity of the object at ``path`` as written (inode and mtime to the ns on local
    disk; ETag and Last-Modified on S3), or ``None`` when there is none."""
    try:
        if _is_local(path):
            stat = os.stat(path.path)
            return f"{stat.st_ino}:{stat.st_mtime_ns}:{stat.st_size}"
        info = _uncached(path).fs.info(path.path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return f"{info.get('ETag') or info.get('etag')}:{info.get('LastModified') or info.get('mtime')}:{info.get('size')}"


def _read_bytes(path: ObjectStoragePath) -> bytes:
    if _is_local(path):
        with open(path.path, "rb") as handle:
            return handle.read()
    return bytes(path.fs.cat_file(path.path))


def _published_version(folder: ObjectStoragePath) -> tuple[str, dict[str, Any] | None]:
    """The published version: its claim name (:data:`INITIAL_VERSION` without a marker, else a digest
    of the marker's bytes and store stamp, so that a version rewritten byte for byte is another one)
    and its manifest (``None`` without one)."""
    import hashlib
    import json

    marker = folder / SUCCESS_MARKER
    for _ in range(5):
        stamp = _stamp(marker)
        if stamp is None:
            return INITIAL_VERSION, None
        try:
            data = _read_bytes(marker)
        except FileNotFoundError:
            continue
        if _stamp(marker) == stamp:  # not rewritten while read
            break
    else:
        raise TableError(f"the {SUCCESS_MARKER} marker changed each time it was read: try again", uri=str(folder))
    try:
        manifest = json.loads(data) if data.strip() else None
    except ValueError:
        manifest = None
    version = hashlib.sha256(data + b"\0" + stamp.encode()).hexdigest()[:20]
    return version, manifest if isinstance(manifest, dict) else None


def _create_exclusive(path: ObjectStoragePath, data: bytes) -> bool:
    """Create ``path`` holding ``data`` in one atomic step unless it exists: ``True`` if this call created
    it. Local disk: a hard link to a written temporary file (fails if the name exists; the object never
    appears empty or partial). S3: a PUT with ``If-None-Match: *`` (s3fs ``"xb"`` mode)."""
    if not _is_local(path):
        import errno
        import time

        for attempt in range(5):
            try:
                with path.fs.open(path.path, "xb") as handle:
                    handle.write(data)
            except FileExistsError:  # 412 Precondition Failed: the object exists
                return False
            except OSError as exc:  # 409 ConditionalRequestConflict: a concurrent write to the key; S3 says to retry
                if exc.errno != errno.EBUSY or attempt == 4:
                    raise
                time.sleep(0.2 * 2**attempt)
                continue
            return True
    final = path.path
    for _ in range(5):  # its folder may be removed, once empty, by a publisher finishing now
        try:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=os.path.dirname(final), prefix=f".{os.path.basename(final)}.", suffix=".tmp")
        except FileNotFoundError:
            continue
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.link(temporary, final)
            return True
        except FileExistsError:
            return False
        except FileNotFoundError:
            continue
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
    raise TableError("cannot create the claim: its folder keeps disappearing", uri=str(path))


def _read_claim(path: ObjectStoragePath) -> dict[str, Any] | None:
    """A claim's record, ``None`` when there is no claim (an unreadable one reads as ``{}``)."""
    import json

    try:
        record = json.loads(_read_bytes(path))
    except FileNotFoundError:
        return None
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _claim(path: ObjectStoragePath, record: dict[str, Any], generation: str) -> dict[str, Any] | None:
    """Take the claim at ``path`` for this run: ``None`` when this run holds it (now, or since an
    earlier try), else the record of the run holding it."""
    import datetime as dt
    import json

    data = json.dumps({**record, "claimed_at": dt.datetime.now(dt.UTC).isoformat()}, sort_keys=True).encode()
    for _ in range(5):
        if _create_exclusive(path, data):
            return None
        holder = _read_claim(path)
        if holder is None:  # released between the create and the read: try again
            continue
        return None if holder.get("generation") == generation else holder
    return {}


def _release_claims(folder: ObjectStoragePath, generation: str) -> None:
    """Delete the claims this run (``generation``) holds on the partition. Only these: another run's
    claim may be live, and a claim is released only once its run published (or lost)."""
    claims = _uncached(folder / CLAIMS_DIR)
    try:
        found = [child for child in claims.iterdir() if child.name.endswith(".json")]
    except (FileNotFoundError, NotADirectoryError):
        return
    for child in found:
        if (_read_claim(child) or {}).get("generation") == generation:
            child.unlink(missing_ok=True)
    _remove_if_empty(claims)


def _discard(staging: ObjectStoragePath) -> None:
    """Remove a run's staging folder (and the staging root, once empty)."""
    _remove_folder(staging)
    _remove_if_empty(staging.parent)


def _conflict(handle: Mapping[str, Any], *, winner: Mapping[str, Any] | None, publishing: bool, claim: ObjectStoragePath) -> PartitionConflictError:
    """The refusal of a run that lost the claim to ``winner`` (the winner's claim record while it is
    ``publishing``, else the manifest it published)."""
    name = str((winner or {}).get("run_key") or "unknown")
    run_key = handle["run_key"]
    if publishing:
        since = (winner or {}).get("claimed_at") or "an unknown time"
        detail = (
            f"another run ({name}) claimed this partition after {run_key} started and is publishing it (claimed at {since}); "
            f"nothing of this run was published. Rerun to replace that run's files once it is done (if {name} crashed and "
            f"will not be retried, rerun it to finish its publish, or delete {claim})"
        )
    else:
        detail = (
            f"another run ({name}) published this partition after {run_key} started; nothing of this run was published, "
            "the partition holds that run's files. Rerun to replace them"
        )
    return PartitionConflictError(detail, uri=handle["uri"], winner=name)


def _clean_up(folder: ObjectStoragePath, staging: ObjectStoragePath, *, final: Sequence[str], generation: str) -> None:
    """After this run's manifest: release its claims, delete the data files it does not name (the replaced
    version's) and stray staging files, this run's staging and other runs' staging untouched for long."""
    import time

    _release_claims(folder, generation)
    for child in _uncached(folder).iterdir():
        if (_is_data_file(child.name) and child.name not in final) or (child.name.startswith(".") and child.name.endswith(".tmp")):
            child.unlink(missing_ok=True)
    _remove_folder(staging)
    stage_root = _uncached(staging.parent)
    try:
        run_folders = list(stage_root.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return
    for run_folder in run_folders:
        if time.time() - _mtime(run_folder) > STALE_STAGING_SECONDS:
            _remove_folder(run_folder)
    _remove_if_empty(stage_root)


def _mtime(path: ObjectStoragePath) -> float:
    """Newest modification time of a staging folder's files; now when it has none or the store cannot tell
    (so a folder is never taken for stale by mistake)."""
    import time

    try:
        times = [float(child.stat().st_mtime) for child in path.iterdir() if child.is_file()]
    except (OSError, AttributeError, TypeError, ValueError):
        times = []
    return max(times) if times else time.time()


def _remove_if_empty(path: ObjectStoragePath) -> None:
    """Delete a local folder left empty (object stores have no empty folders). ``os.rmdir``, not
    ``rmdir()`` (recursive in universal-pathlib): a file another run adds meanwhile stays, with its folder."""
    if _is_local(path):
        with suppress(OSError):  # not empty, or gone already
            os.rmdir(path.path)


def _remove_folder(path: ObjectStoragePath) -> None:
    """Delete a staging folder and the flat files in it, if it exists."""
    if not _uncached(path).exists():
        return
    for child in path.iterdir():
        child.unlink(missing_ok=True)
    _remove_if_empty(path)  # object stores have no folders: the prefix is gone with its last object

"""Tables on any ``ObjectStoragePath`` (``file://``, ``s3://``): where they live and how a file is
written (:mod:`~airflow_mlops.tables.storage`), when a folder is ready to read
(:mod:`~airflow_mlops.tables.readiness`), how it is read (:mod:`~airflow_mlops.tables.readers`, in the CSV dialect of
:mod:`~airflow_mlops.tables.dialects`), and
how a partition is sealed or republished as a compare-and-swap
(:mod:`~airflow_mlops.tables.partitions`).

The names below are the package's public surface; ``from airflow_mlops import tables`` then
``tables.read_table(...)`` is how the provider and its users call them.
"""

from __future__ import annotations

from airflow_mlops.exceptions import PartitionConflictError, PartitionNotReadyError, TableError
from airflow_mlops.tables.dialects import CSV_KEYS, CsvOptions
from airflow_mlops.tables.partitions import (
    CLAIMS_DIR,
    STAGING_DIR,
    finish_partition,
    open_partition,
    publish_partition,
)
from airflow_mlops.tables.readers import (
    DEFAULT_BATCH_ROWS,
    TableReader,
    iter_batches,
    iter_file_batches,
    parquet_row_count,
    read_schema,
    read_table,
    write_table,
)
from airflow_mlops.tables.readiness import (
    FORMATS,
    MISSING_MARKER,
    NO_MARKER_HINT,
    SUCCESS_MARKER,
    list_data_files,
    read_manifest,
    ready_files,
    seconds_since_change,
    table_format,
)
from airflow_mlops.tables.storage import is_below, read_text, staged_output, storage_path, write_text

__all__ = [
    "CLAIMS_DIR", "CSV_KEYS", "DEFAULT_BATCH_ROWS", "FORMATS", "MISSING_MARKER", "NO_MARKER_HINT", "STAGING_DIR", "SUCCESS_MARKER",
    "CsvOptions", "PartitionConflictError", "PartitionNotReadyError", "TableError", "TableReader",
    "finish_partition", "is_below", "iter_batches", "iter_file_batches", "list_data_files", "open_partition", "parquet_row_count",
    "publish_partition", "read_manifest", "read_schema", "read_table", "read_text", "ready_files", "seconds_since_change",
    "staged_output", "storage_path", "table_format", "write_table", "write_text",
]  # fmt: skip

"""When a folder is ready to read: its ``_SUCCESS`` marker and the manifest in it, or (for producers
that write none) files that have not changed for a while.

Readiness is one policy for every reader (sensor, validation, drift, training, inference): a folder
needs its ``_SUCCESS`` marker unless the reader opts out (``require_marker=False``, default
``[mlops] require_marker``) for producers that write none (pandas, most ETL tools); the partition
sensor then waits until the files have not changed for a while instead. A marker's manifest names the
files that make up the partition: readers take exactly those.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops import settings
from airflow_mlops.exceptions import PartitionNotReadyError, TableError
from airflow_mlops.tables.storage import _is_local, storage_path

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


SUCCESS_MARKER = "_SUCCESS"


#: Why a folder without its marker is not ready (the start of :class:`PartitionNotReadyError`'s detail).
MISSING_MARKER = f"partition has no {SUCCESS_MARKER} marker (still being written?)"


#: What a reader of another producer's folders may do about it.
NO_MARKER_HINT = (
    "If its producer writes no marker (pandas, most ETL tools), pass require_marker=False to the operator or sensor that "
    "reads it (airflow-mlops infer-spec: --no-marker), or set [mlops] require_marker = False (AIRFLOW__MLOPS__REQUIRE_MARKER=False)"
)


FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def table_format(uri: str | ObjectStoragePath) -> str:
    """Return ``"parquet"`` or ``"csv"`` from the file suffix; raise :class:`TableError` otherwise."""
    suffix = os.path.splitext(str(uri))[1].lower()
    if suffix not in FORMATS:
        raise TableError(
            f"unsupported table format {suffix or '(no suffix)'!r}; use one of {sorted(FORMATS)}", uri=str(uri)
        )
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
            raise PartitionNotReadyError(
                f"the {SUCCESS_MARKER} manifest names files that are gone ({missing[:3]}): being replaced? try again",
                uri=str(uri),
            )
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
            raise TableError(
                f"the store reports no modification time for {info.get('name')}; use a _SUCCESS marker", uri=str(uri)
            )
        if isinstance(stamp, str):
            import datetime as dt

            stamp = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        newest = max(newest, stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp))
    return time.time() - newest


def ready_files(
    uri: str | ObjectStoragePath,
    *,
    conn_id: str | None = None,
    require_marker: bool | None = None,
    stable_seconds: float = 0.0,
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

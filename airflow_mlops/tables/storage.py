"""Where tables live and how a file is written: ``ObjectStoragePath`` for ``file://`` and ``s3://``
(through an Airflow connection), confinement below a prefix, and atomic writes.

Writers never let a reader see a partial file: output is staged and published in one step (an atomic
rename on local disk, a single upload on object stores, where a PUT or a completed multipart upload is
all-or-nothing). The exclusive create the partition protocol builds on lives here too (a hard link on
local disk, a conditional PUT ``If-None-Match: *`` on S3).
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

from airflow_mlops import settings
from airflow_mlops.exceptions import TableError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)


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


def is_below(uri: str, prefix: str) -> bool:
    """Whether ``uri`` is ``prefix`` or lies below it, after normalising ``file://`` and plain paths and
    resolving ``..`` (so ``<root>/../secrets`` is not below ``<root>``)."""
    from urllib.parse import unquote, urlsplit

    def normal(text: str) -> tuple[tuple[str, str], str]:
        parts = urlsplit(text if "://" in text else f"file://{os.path.abspath(text)}")
        return (parts.scheme, parts.netloc), os.path.normpath(unquote(parts.path) or "/")

    (where, path), (prefix_where, prefix_path) = normal(uri), normal(prefix)
    return where == prefix_where and (path == prefix_path or path.startswith(prefix_path.rstrip("/") + "/"))


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
            except (
                Exception
            ) as exc:  # endpoint down or connection cut (botocore/aiohttp/OSError): the PUT did not complete
                raise TableError(
                    f"upload failed, nothing was published: {type(exc).__name__}: {exc}", uri=str(uri)
                ) from exc
        log.debug("Published %s", uri)
    finally:
        if os.path.exists(staging):
            os.remove(staging)


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
            fd, temporary = tempfile.mkstemp(
                dir=os.path.dirname(final), prefix=f".{os.path.basename(final)}.", suffix=".tmp"
            )
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

"""The partition protocol: seal a folder once (:func:`finish_partition`), or rewrite a published one
as a compare-and-swap (:func:`open_partition`, :func:`publish_partition`).

A run that rewrites a published partition (a rerun of a month) stages its files per run and publishes
them in one step at the end: until then readers keep the earlier version, and a failed rerun leaves it
untouched. Publishing is a compare-and-swap on the version the run started from: the publisher first
claims that version with an exclusive create of ``_claims/<version>.json`` (a hard link on local
disk, a conditional PUT ``If-None-Match: *`` on S3; other stores are refused), and only the claimant
moves its files in and writes the manifest. Of concurrent runs that started from one version exactly
one publishes; the others publish nothing and fail at once (:class:`PartitionConflictError`, naming
the winner). The claim is released once the manifest is written, so a published partition holds its
marker and data files only.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import PartitionConflictError, TableError
from airflow_mlops.tables.readiness import SUCCESS_MARKER, _is_data_file
from airflow_mlops.tables.storage import (
    _create_exclusive,
    _is_local,
    _mtime,
    _read_bytes,
    _remove_folder,
    _remove_if_empty,
    _stamp,
    _uncached,
    storage_path,
    write_text,
)

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)


#: Per-run staging folders inside a partition (``_`` hides them from every reader, pyarrow's too).
STAGING_DIR = "_staging"


#: Staging folders of other runs untouched this long are left-overs of killed runs: removed at publish.
STALE_STAGING_SECONDS = 24 * 3600


def finish_partition(
    uri: str | ObjectStoragePath,
    *,
    keep: Sequence[str],
    conn_id: str | None = None,
    extra: dict[str, Any] | None = None,
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
    return write_text(
        json.dumps({"files": sorted(keep), **(extra or {})}, sort_keys=True),
        f"{base}/{SUCCESS_MARKER}",
        conn_id=conn_id,
    )


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


def publish_partition(
    handle: Mapping[str, Any], *, files: Sequence[str], extra: dict[str, Any] | None = None, conn_id: str | None = None
) -> str:
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
            _clean_up(
                folder, staging, final=[str(f) for f in (published or {}).get("files") or []], generation=generation
            )
            return f"{base}/{SUCCESS_MARKER}"
        claimed = version  # its writers ran again since: their files replace the run's own version
    claim = storage_path(f"{base}/{CLAIMS_DIR}/{claimed}.json", conn_id=conn_id)
    holder = _claim(claim, {"generation": generation, "run_key": run_key}, generation)
    if holder is not None:
        version, published = _published_version(folder)
        _discard(staging)
        raise _conflict(
            handle, winner=holder if version == claimed else published, publishing=version == claimed, claim=claim
        )
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


def _conflict(
    handle: Mapping[str, Any], *, winner: Mapping[str, Any] | None, publishing: bool, claim: ObjectStoragePath
) -> PartitionConflictError:
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
        if (_is_data_file(child.name) and child.name not in final) or (
            child.name.startswith(".") and child.name.endswith(".tmp")
        ):
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

"""MLflow model-registry glue: resolve versions and aliases, record decisions as version tags."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import ModelResolutionError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous_champion"
CHALLENGER = "challenger"


def quote_filter(value: str) -> str:
    """Quote a value for an MLflow search filter string."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def is_not_found(exc: Exception) -> bool:
    """Whether an MLflow error says "no such model, version or alias" (and waiting may help).

    MLflow reports a missing alias as ``INVALID_PARAMETER_VALUE`` ("Registered model alias x not
    found."), the same code as a malformed alias name: only the first is "not there yet", so a sensor
    given a malformed alias fails at once instead of waiting for its timeout.
    """
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException):
        return False
    if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
        return True
    return exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc.message).lower()


def resolve_version(client: MlflowClient, name: str, ref: str | int) -> ModelVersion:
    """Resolve ``ref`` (an alias like ``champion`` or a version number) to a READY model version.

    :raises ModelResolutionError: the model, alias or version does not exist or is not READY.
    """
    from mlflow.exceptions import MlflowException

    text = str(ref).strip()
    try:
        version = client.get_model_version(name, text) if text.isdigit() else client.get_model_version_by_alias(name, text)
    except MlflowException as exc:
        if not is_not_found(exc):
            raise
        what = f"version {text}" if text.isdigit() else f"alias {text!r}"
        raise ModelResolutionError(f"{what} does not exist ({exc.message})", model_name=name) from exc
    if version.status != "READY":
        raise ModelResolutionError(f"version {version.version} is {version.status}, not READY", model_name=name)
    return version


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """Return the version ``alias`` points at, or ``None`` when the alias (or model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise


def record_decision(client: MlflowClient, name: str, version: str, decision: dict[str, Any]) -> None:
    """Write a decision onto the model version as ``mlops.decision.*`` tags (the audit trail).

    Each key of ``decision`` becomes a tag; a timestamp is added. Read back with
    ``client.get_model_version(name, version).tags``.
    """
    stamped = decision | {"decided_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    for key, value in stamped.items():
        client.set_model_version_tag(name, version, f"mlops.decision.{key}", "" if value is None else str(value))


#: Registered-model tag holding the promotion lock: ``{"token", "holder", "expires_at"}`` as JSON.
LOCK_TAG = "mlops.promotion_lock"


class PromotionLockTimeout(TimeoutError):
    """Another task held the promotion lock of a model for longer than we were willing to wait."""


def _read_lock(client: MlflowClient, name: str) -> dict[str, Any] | None:
    import json

    raw = client.get_registered_model(name).tags.get(LOCK_TAG)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None  # a hand-edited or truncated tag is no lock


@contextmanager
def promotion_lock(
    client: MlflowClient, name: str, *, holder: str, ttl: float = 300.0, settle: float = 1.0, timeout: float = 600.0
) -> Iterator[str]:
    """Hold the advisory lock that serialises alias changes of model ``name``; yield its token.

    MLflow has no compare-and-set on aliases, so two promotions that read the champion, then both
    move it, would both believe they won. Whoever changes ``champion`` takes this lock first, re-reads
    the champion inside it, and releases it after recording the decision.

    The lock is a registered-model tag. To take it: wait until the tag is absent or expired, write our
    unique token, wait ``settle`` seconds, and read it back. Two contenders who both saw the lock free
    both write; the later write wins and both read it back, so exactly one holds the lock (or, when
    the tag did not exist yet, the store's unique key refuses the second insert outright). This is
    sound as long as the gap between a contender's read (lock free) and its write is shorter than
    ``settle`` (a couple of HTTP round trips against one second). A holder that dies leaves a tag that
    expires after ``ttl`` seconds.

    :raises PromotionLockTimeout: the lock stayed taken for ``timeout`` seconds.
    """
    import json
    import time
    import uuid

    from mlflow.exceptions import MlflowException

    token = uuid.uuid4().hex
    deadline = time.monotonic() + timeout
    while True:
        current = _read_lock(client, name)
        if current is None or float(current.get("expires_at", 0)) < time.time():
            lock = {"token": token, "holder": holder, "expires_at": time.time() + ttl}
            try:
                client.set_registered_model_tag(name, LOCK_TAG, json.dumps(lock))
            except MlflowException:
                # The store inserts a new tag with a unique key: when two contenders create it at once,
                # the slower insert fails. Lost to a rival if the tag is now there; a real error otherwise.
                current = _read_lock(client, name)
                if current is None:
                    raise
            else:
                time.sleep(settle)
                current = _read_lock(client, name)
                if current is not None and current.get("token") == token:
                    break
        if time.monotonic() > deadline:
            raise PromotionLockTimeout(f"model {name!r}: promotion lock held by {current and current.get('holder')} for over {timeout:.0f} s")
        time.sleep(settle / 2)
    try:
        yield token
    finally:
        mine = _read_lock(client, name)
        if mine is not None and mine.get("token") == token:
            client.delete_registered_model_tag(name, LOCK_TAG)

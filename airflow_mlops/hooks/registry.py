"""The MLflow model-registry protocol of the provider, in one module: its names (aliases, tags), and
:class:`ModelRegistry`, the operations on versions, aliases, decisions and the promotion lock.

Reach it through :attr:`airflow_mlops.hooks.mlflow.MlflowHook.registry`, which builds it on the hook's
client (the connection's credentials travel with the client, never through the process environment).
Nothing here imports MLflow at module level.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import ModelResolutionError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous_champion"
CHALLENGER = "challenger"
#: Aliases only a promotion (or a rollback) moves: training refuses them.
RESERVED_ALIASES = (CHAMPION, PREVIOUS_CHAMPION)
#: Registered-model tag holding the promotion lock: ``{"token", "holder", "expires_at"}`` as JSON.
LOCK_TAG = "mlops.promotion_lock"


class PromotionLockTimeout(TimeoutError):
    """Another task held the promotion lock of a model for longer than we were willing to wait."""


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


class ModelRegistry:
    """The registry protocol on one MLflow client: versions, aliases, decisions and the promotion lock.

    :param client: the ``MlflowClient`` to talk through (:attr:`MlflowHook.client <airflow_mlops.hooks.mlflow.MlflowHook.client>`).
    :param refusal: turns an MLflow error into the provider's "credentials refused" error, or returns
        ``None`` for any other error (the hook passes one that names its connection).
    """

    def __init__(self, client: MlflowClient, *, refusal: Callable[[Exception], Exception | None] | None = None) -> None:
        self._client = client
        self._refusal = refusal or (lambda exc: None)

    def register_version(self, name: str, model_uri: str, *, run_id: str, tags: dict[str, str], model_id: str | None = None) -> Any:
        """Register ``model_uri`` as a new version of ``name`` (created on first use) with ``tags``;
        return the ``ModelVersion``. The client's calls, as ``mlflow.register_model`` makes them,
        without its messages printed to stderr (an ``[error]`` line per training in a task log)."""
        from mlflow.exceptions import MlflowException

        client = self._client
        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        return client.create_model_version(name, model_uri, run_id=run_id, tags=tags, model_id=model_id)

    def set_version_tag(self, name: str, version: str | int, key: str, value: str) -> None:
        """Set one tag on a model version (e.g. the retraining signals its decision answered)."""
        self._client.set_model_version_tag(name, str(version), key, value)

    def get_version(self, name: str, version: str | int) -> ModelVersion:
        """The model version ``version`` of ``name`` (with its tags)."""
        return self._client.get_model_version(name, str(version))

    def versions_tagged(self, name: str, key: str, value: str) -> list[ModelVersion]:
        """The versions of ``name`` whose tag ``key`` equals ``value`` (e.g. the task instance that registered them)."""
        return list(self._client.search_model_versions(f"name={quote_filter(name)} and tags.`{key}` = {quote_filter(value)}"))

    def resolve_version(self, name: str, ref: str | int) -> ModelVersion:
        """Resolve ``ref`` (an alias like ``champion`` or a version number) to a READY model version.

        :raises ModelResolutionError: the model, alias or version does not exist or is not READY.
        """
        from mlflow.exceptions import MlflowException

        text = str(ref).strip()
        try:
            version = self._client.get_model_version(name, text) if text.isdigit() else self._client.get_model_version_by_alias(name, text)
        except MlflowException as exc:
            if not is_not_found(exc):
                raise
            what = f"version {text}" if text.isdigit() else f"alias {text!r}"
            raise ModelResolutionError(f"{what} does not exist ({exc.message})", model_name=name) from exc
        if version.status != "READY":
            raise ModelResolutionError(f"version {version.version} is {version.status}, not READY", model_name=name)
        return version

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version ``alias`` points at, or ``None`` when the alias (or the model) does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self._client.get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            if is_not_found(exc):
                return None
            raise

    def set_alias(self, name: str, alias: str, version: str | int) -> None:
        """Point ``alias`` of ``name`` at ``version``."""
        self._client.set_registered_model_alias(name, alias, str(version))

    def crown(self, name: str, version: str | int, *, replaced: str | None) -> None:
        """Make ``version`` the champion; the ``replaced`` champion (if any) becomes ``previous_champion``.
        Call it under :meth:`promotion_lock`, after re-reading the champion there."""
        if replaced:
            self.set_alias(name, PREVIOUS_CHAMPION, replaced)
        self.set_alias(name, CHAMPION, version)

    def ready_version(self, name: str, *, model_ref: str | None = None, after_version: int | None = None) -> dict[str, Any] | None:
        """The READY version a sensor waits for, as ``{"version", "run_id"}``, or ``None`` while there is none.

        :param model_ref: an alias (the version it points at, once the alias exists) or a version number
            (that version), once that version is READY.
        :param after_version: the newest READY version newer than this one (any READY version when ``None``);
            with ``model_ref``, the version it names must be newer too.
        :raises MlflowAuthError: the server refused the connection's credentials (waiting would not help).
        """
        from mlflow.exceptions import MlflowException

        ref = str(model_ref).strip() if model_ref is not None else ""
        try:
            found: list[ModelVersion]
            if not ref:
                found = list(self._client.search_model_versions(f"name={quote_filter(name)}"))
            elif ref.isdigit():
                found = [self._client.get_model_version(name, ref)]
            else:
                found = [self._client.get_model_version_by_alias(name, ref)]
        except MlflowException as exc:
            if is_not_found(exc):
                return None
            refused = self._refusal(exc)
            if refused is None:
                raise
            raise refused from None
        ready = [v for v in found if v.status == "READY" and (after_version is None or int(v.version) > after_version)]
        if not ready:
            return None
        best = max(ready, key=lambda v: int(v.version))
        return {"version": str(best.version), "run_id": best.run_id}

    def record_decision(self, name: str, version: str | int, decision: dict[str, Any]) -> None:
        """Write a decision onto the model version as ``mlops.decision.*`` tags (the audit trail).

        Each key of ``decision`` becomes a tag; ``decided_at`` is added. Read back with :meth:`get_version`.
        """
        stamped = decision | {"decided_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        for key, value in stamped.items():
            self._client.set_model_version_tag(name, str(version), f"mlops.decision.{key}", "" if value is None else str(value))

    def model_tag(self, name: str, key: str) -> str | None:
        """The registered model's tag ``key``, or ``None`` when the tag or the model does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            return self._client.get_registered_model(name).tags.get(key)
        except MlflowException as exc:
            if is_not_found(exc):
                return None
            raise

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        """Set the registered model's tag ``key`` (e.g. the retraining signals' watermark)."""
        self._client.set_registered_model_tag(name, key, value)

    def decided_versions(self, name: str) -> list[ModelVersion]:
        """The versions of ``name`` with a recorded promotion decision (promoted or rejected), newest first;
        empty when the model does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            found = self._client.search_model_versions(f"name={quote_filter(name)}")
        except MlflowException as exc:
            if is_not_found(exc):
                return []
            raise
        decided = [v for v in found if (v.tags or {}).get("mlops.decision.decision") in ("promoted", "rejected")]
        return sorted(decided, key=lambda v: int(v.version), reverse=True)

    def _read_lock(self, name: str) -> dict[str, Any] | None:
        raw = self._client.get_registered_model(name).tags.get(LOCK_TAG)
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None  # a hand-edited or truncated tag is no lock

    @contextmanager
    def promotion_lock(self, name: str, *, holder: str, ttl: float = 300.0, settle: float = 1.0, timeout: float = 600.0) -> Iterator[str]:
        """Hold the advisory lock that serialises alias changes of model ``name``; yield its token.

        MLflow has no compare-and-set on aliases, so two promotions that read the champion, then both
        move it, would both believe they won. Whoever changes ``champion`` takes this lock first, re-reads
        the champion inside it, and releases it after recording the decision. In an Airflow deployment
        the promotion tasks also share a pool with one slot per model (see the reference retraining DAG),
        so the lock is the second line: for promotions from other DAGs or outside the pool.

        The lock is a registered-model tag. To take it: wait until the tag is absent or expired, write our
        unique token, wait, and read it back. Two contenders who both saw the lock free both write; the
        later write wins and both read it back, so exactly one holds the lock (or, when the tag did not
        exist yet, the store's unique key refuses the second insert outright). That holds while a rival's
        gap between reading "free" and writing is shorter than our wait plus one round trip; the wait is
        ``settle`` seconds or three times our own write's round trip, whichever is longer, so a slow
        network lengthens it instead of breaking it. A holder that dies leaves a tag that expires after
        ``ttl`` seconds.

        :raises PromotionLockTimeout: the lock stayed taken for ``timeout`` seconds.
        """
        from mlflow.exceptions import MlflowException

        token = uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        while True:
            current = self._read_lock(name)
            if current is None or float(current.get("expires_at", 0)) < time.time():
                lock = {"token": token, "holder": holder, "expires_at": time.time() + ttl}
                started = time.monotonic()
                try:
                    self._client.set_registered_model_tag(name, LOCK_TAG, json.dumps(lock))
                except MlflowException:
                    # The store inserts a new tag with a unique key: when two contenders create it at once,
                    # the slower insert fails. Lost to a rival if the tag is now there; a real error otherwise.
                    current = self._read_lock(name)
                    if current is None:
                        raise
                else:
                    time.sleep(max(settle, 3 * (time.monotonic() - started)))
                    current = self._read_lock(name)
                    if current is not None and current.get("token") == token:
                        break
            if time.monotonic() > deadline:
                raise PromotionLockTimeout(f"model {name!r}: promotion lock held by {current and current.get('holder')} for over {timeout:.0f} s")
            time.sleep(settle / 2)
        try:
            yield token
        finally:
            mine = self._read_lock(name)
            if mine is not None and mine.get("token") == token:
                self._client.delete_registered_model_tag(name, LOCK_TAG)

"""Hook for an MLflow tracking server and model registry, configured by an Airflow connection.

The one gateway to MLflow: operators, sensors, the trigger and the MLOps page reach the registry through
:class:`MlflowHook`'s methods (resolve a version or an alias, move the champion under the promotion
lock, record a decision, wait for a version). Its client carries the connection's credentials itself,
so the multi-threaded triggerer and API server never share them through the process environment.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_mlops import settings
from airflow_mlops.exceptions import ModelResolutionError
from airflow_mlops.hooks.mlflow_client import (
    _AUTH_ENV,
    _URI_ENV,
    HTTP_DEFAULTS,
    MlflowConfig,
    build_client,
    config_from,
    fluent_uris,
    refusal,
)
from airflow_mlops.utils.registry import (
    CHAMPION,
    LOCK_TAG,
    PREVIOUS_CHAMPION,
    PromotionLockTimeout,
    is_not_found,
    quote_filter,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

#: Where a training run keeps its samples (``runs:/<run id>/<name>``): the reference sample that drift
#: checks compare with, and the holdout that promotion judges challenger and champion on.
REFERENCE_ARTIFACT = "reference/reference.parquet"
HOLDOUT_ARTIFACT = "holdout/holdout.parquet"


class MlflowHook(BaseHook):
    """Talk to MLflow (tracking and registry) through an Airflow connection of type ``mlflow``.

    The connection's host is the tracking URI (``http://mlflow:5000``); login/password give basic
    auth, extra ``token`` a bearer token, extra ``registry_uri`` a separate registry and extra
    ``ui_base_url`` the address used for links in the Airflow UI. When the connection does not exist,
    ``MLFLOW_TRACKING_URI`` is used, else the embedded store ``sqlite:///$AIRFLOW_HOME/mlflow.db`` with
    artifacts under ``$AIRFLOW_HOME/mlflow-artifacts``. Nothing is read at construction time.

    Credentials travel with the hook's client (:func:`build_client`), never through the process
    environment, except inside :meth:`activated`, which MLflow's fluent API (``mlflow.start_run``,
    ``log_model``, ``load_model``) needs: use that in a task's own process only.

    :param mlflow_conn_id: the Airflow connection id (default ``mlflow_default``).
    :param config: an already resolved :class:`MlflowConfig` (the trigger resolves the connection
        asynchronously); when given, no connection is read.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = settings.DEFAULT_MLFLOW_CONN_ID
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name, *, config: MlflowConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id
        if config is not None:
            self.__dict__["config"] = config  # the cached_property's value: no connection lookup
        from airflow_mlops.utils.noise import route_library_logging

        route_library_logging()  # before any MLflow import this hook leads to

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form as the provider info declares it (its one definition), in the hook API's spelling."""
        from airflow_mlops.get_provider_info import get_provider_info

        (declared,) = [c["ui-field-behaviour"] for c in get_provider_info()["connection-types"] if c["connection-type"] == cls.conn_type]
        return {key.replace("-", "_"): value for key, value in declared.items()}

    @cached_property
    def config(self) -> MlflowConfig:
        """Resolve the MLflow location once: connection, else env var, else the embedded store."""
        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            conn = None
        return self.resolve_config(conn)

    @staticmethod
    def resolve_config(conn: Any | None) -> MlflowConfig:
        """Build the :class:`MlflowConfig` from a connection (or ``None``: env var, then embedded store).

        Static so that triggers, which must fetch connections asynchronously, share the same rules.
        """
        return config_from(conn)

    @contextmanager
    def activated(self) -> Iterator[MlflowConfig]:
        """Point MLflow's fluent API (``mlflow.start_run``, ``log_model``) at this connection.

        Sets the tracking/registry URIs and the auth variables for the duration of the block and
        restores the previous values afterwards, so two hooks in one process do not leak into each other.
        The state is process-wide: do not enter it from concurrent threads with different connections
        (Airflow runs one task per process); the trigger and the MLOps page use the hook's methods, whose
        client carries its own credentials. A refusal by the server (HTTP 401/403) inside the block
        becomes :class:`~airflow_mlops.exceptions.MlflowAuthError` (no retry).
        """
        import mlflow

        cfg = self.config
        saved_env = {name: os.environ.get(name) for name in _AUTH_ENV + _URI_ENV + tuple(HTTP_DEFAULTS)}
        # The raw settings, not get_tracking_uri()/get_registry_uri(): those resolve defaults, and
        # setting a resolved value back would pin it, so that a later MlflowClient(tracking_uri=X) in
        # this process (the API server's plugin, a test) kept talking to the old registry. None = unset.
        saved_uris = fluent_uris()
        try:
            for name, value in zip(_AUTH_ENV, (cfg.username, cfg.password, cfg.token), strict=True):
                if value:
                    os.environ[name] = value
                else:
                    os.environ.pop(name, None)
            for name, value in (HTTP_DEFAULTS | dict(cfg.http)).items():
                if name not in dict(cfg.http) and saved_env[name] is not None:
                    continue  # the deployment's own setting wins over our default
                os.environ[name] = value
            mlflow.set_tracking_uri(cfg.tracking_uri)
            mlflow.set_registry_uri(cfg.registry_uri or cfg.tracking_uri)
            try:
                yield cfg
            except Exception as exc:
                refused = refusal(exc, cfg, self.mlflow_conn_id)
                if refused is None:
                    raise
                raise refused from None  # MLflow's own message may quote the request; ours names what to fix
        finally:
            # Both setters take None (= unset) at run time; their annotations only say str.
            mlflow.set_tracking_uri(saved_uris[0])  # type: ignore[arg-type]
            mlflow.set_registry_uri(saved_uris[1])  # type: ignore[arg-type]
            for name, old in saved_env.items():
                if old is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = old

    def get_conn(self) -> MlflowClient:
        """Return an ``MlflowClient`` for this connection, carrying its credentials (:func:`build_client`)."""
        return build_client(self.config)

    @cached_property
    def client(self) -> MlflowClient:
        """The ``MlflowClient`` of :meth:`get_conn`, built once."""
        return self.get_conn()

    def get_or_create_experiment(self, name: str) -> str:
        """Return the id of experiment ``name``, creating it (with the configured artifact root) if absent."""
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        location = f"{self.config.artifact_root}/{name}" if self.config.artifact_root else None
        try:
            return str(self.client.create_experiment(name, artifact_location=location))
        except Exception:
            # Another task created it between our lookup and create: use theirs.
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return str(experiment.experiment_id)

    def register_version(self, name: str, model_uri: str, *, run_id: str, tags: dict[str, str], model_id: str | None = None) -> Any:
        """Register ``model_uri`` as a new version of ``name`` (created on first use) with ``tags``;
        return the ``ModelVersion``. The client's calls, as ``mlflow.register_model`` makes them,
        without its messages printed to stderr (an ``[error]`` line per training in a task log)."""
        from mlflow.exceptions import MlflowException

        client = self.client
        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        return client.create_model_version(name, model_uri, run_id=run_id, tags=tags, model_id=model_id)

    def set_version_tag(self, name: str, version: str | int, key: str, value: str) -> None:
        """Set one tag on a model version (e.g. the retraining signals its decision answered)."""
        self.client.set_model_version_tag(name, str(version), key, value)

    # -- the registry protocol: versions, aliases, decisions, the promotion lock -----------------------

    def get_version(self, name: str, version: str | int) -> ModelVersion:
        """The model version ``version`` of ``name`` (with its tags)."""
        return self.client.get_model_version(name, str(version))

    def versions_tagged(self, name: str, key: str, value: str) -> list[ModelVersion]:
        """The versions of ``name`` whose tag ``key`` equals ``value`` (e.g. the task instance that registered them)."""
        return list(self.client.search_model_versions(f"name={quote_filter(name)} and tags.`{key}` = {quote_filter(value)}"))

    def resolve_version(self, name: str, ref: str | int) -> ModelVersion:
        """Resolve ``ref`` (an alias like ``champion`` or a version number) to a READY model version.

        :raises ModelResolutionError: the model, alias or version does not exist or is not READY.
        """
        from mlflow.exceptions import MlflowException

        text = str(ref).strip()
        try:
            version = self.client.get_model_version(name, text) if text.isdigit() else self.client.get_model_version_by_alias(name, text)
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
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            if is_not_found(exc):
                return None
            raise

    def set_alias(self, name: str, alias: str, version: str | int) -> None:
        """Point ``alias`` of ``name`` at ``version``."""
        self.client.set_registered_model_alias(name, alias, str(version))

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
                found = list(self.client.search_model_versions(f"name={quote_filter(name)}"))
            elif ref.isdigit():
                found = [self.client.get_model_version(name, ref)]
            else:
                found = [self.client.get_model_version_by_alias(name, ref)]
        except MlflowException as exc:
            if is_not_found(exc):
                return None
            refused = refusal(exc, self.config, self.mlflow_conn_id)
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
            self.client.set_model_version_tag(name, str(version), f"mlops.decision.{key}", "" if value is None else str(value))

    def model_tag(self, name: str, key: str) -> str | None:
        """The registered model's tag ``key``, or ``None`` when the tag or the model does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(name).tags.get(key)
        except MlflowException as exc:
            if is_not_found(exc):
                return None
            raise

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        """Set the registered model's tag ``key`` (e.g. the retraining signals' watermark)."""
        self.client.set_registered_model_tag(name, key, value)

    def decided_versions(self, name: str) -> list[ModelVersion]:
        """The versions of ``name`` with a recorded promotion decision (promoted or rejected), newest first;
        empty when the model does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name={quote_filter(name)}")
        except MlflowException as exc:
            if is_not_found(exc):
                return []
            raise
        decided = [v for v in found if (v.tags or {}).get("mlops.decision.decision") in ("promoted", "rejected")]
        return sorted(decided, key=lambda v: int(v.version), reverse=True)

    def _read_lock(self, name: str) -> dict[str, Any] | None:
        raw = self.client.get_registered_model(name).tags.get(LOCK_TAG)
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
                    self.client.set_registered_model_tag(name, LOCK_TAG, json.dumps(lock))
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
                self.client.delete_registered_model_tag(name, LOCK_TAG)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        """Return the MLflow UI URL of a run, or ``""`` when the store has no UI."""
        base = self.config.ui_base_url
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}" if base else ""

    def model_version_url(self, name: str, version: str | int) -> str:
        """Return the MLflow UI URL of a registered model version, or ``""`` when there is no UI."""
        from urllib.parse import quote

        base = self.config.ui_base_url
        return f"{base}/#/models/{quote(name)}/versions/{version}" if base else ""

    def test_connection(self) -> tuple[bool, str]:
        """Check that the tracking server answers; return ``(ok, message)`` for the Airflow UI."""
        try:
            with self.activated():
                self.client.search_experiments(max_results=1)
        except Exception as exc:
            return False, f"MLflow at {self.config.tracking_uri} did not answer: {type(exc).__name__}: {exc}"
        return True, f"Connected to MLflow at {self.config.tracking_uri}"

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
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_mlops import settings
from airflow_mlops.exceptions import MlflowAuthError, ModelResolutionError
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
    from mlflow.utils.rest_utils import MlflowHostCreds

#: MLflow reads credentials for HTTP tracking servers from these variables (see ``mlflow.environment_variables``).
_AUTH_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
#: ``mlflow.set_tracking_uri`` / ``set_registry_uri`` also export these, so they are restored too.
_URI_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
#: MLflow's own HTTP retry defaults (7 retries, backoff factor 2, 120 s timeout) can keep a task
#: waiting for minutes on a dead tracking server, while Airflow's task retries (with backoff) are the
#: recovery we want. So unless the environment or the connection extras say otherwise, a request
#: gives up after ~15 s of retrying; the connection extra of the same lower-case name overrides.
#: Where a training run keeps its samples (``runs:/<run id>/<name>``): the reference sample that drift
#: checks compare with, and the holdout that promotion judges challenger and champion on.
REFERENCE_ARTIFACT = "reference/reference.parquet"
HOLDOUT_ARTIFACT = "holdout/holdout.parquet"
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


@dataclass(frozen=True)
class MlflowConfig:
    """Where MLflow lives and how to authenticate, resolved from a connection, env or the default.

    :param tracking_uri: MLflow tracking URI (``http://...``, ``sqlite:///...``).
    :param registry_uri: model registry URI; ``None`` means the tracking URI.
    :param ui_base_url: base URL of the MLflow UI for links; empty when the store has no UI.
    :param artifact_root: artifact location for experiments this hook creates; ``None`` lets the
        server decide (a tracking server with ``--serve-artifacts`` or its default root).
    :param source: ``"connection"``, ``"env"`` or ``"embedded"``, for logs and errors.
    """

    tracking_uri: str
    registry_uri: str | None = None
    ui_base_url: str = ""
    artifact_root: str | None = None
    username: str | None = None
    password: str | None = None
    token: str | None = None
    source: str = "connection"
    http: tuple[tuple[str, str], ...] = ()

    @property
    def is_http(self) -> bool:
        """Whether the tracking server is reached over HTTP (where credentials and timeouts apply)."""
        return self.tracking_uri.startswith(("http://", "https://"))

    def host_creds(self, uri: str | None = None) -> MlflowHostCreds:
        """MLflow's credentials object for ``uri`` (default the tracking URI), built from this config alone."""
        from mlflow.utils.rest_utils import MlflowHostCreds

        return MlflowHostCreds(uri or self.tracking_uri, username=self.username, password=self.password, token=self.token)

    def __repr__(self) -> str:  # never show credentials in logs or tracebacks
        return (
            f"MlflowConfig(tracking_uri={self.tracking_uri!r}, registry_uri={self.registry_uri!r}, "
            f"source={self.source!r})"
        )


def _mask(secret: str | None) -> None:
    """Register a credential with Airflow's secrets masker, so task logs show ``***`` instead."""
    if secret:
        from airflow.sdk.log import mask_secret

        mask_secret(secret)


def _tracking_uri_from_connection(host: str, port: int | None, scheme: str | None) -> str:
    if "://" in host:
        return host.rstrip("/")
    return f"{scheme or 'http'}://{host}{f':{port}' if port else ''}"


def apply_http_defaults() -> None:
    """Give this process bounded MLflow HTTP retries and timeouts (:data:`HTTP_DEFAULTS`) unless it has its own.

    MLflow reads them from the environment at each request; they are process-wide constants, the same for
    every connection, so setting the missing ones once is safe in a multi-threaded process. A connection's
    own values (its extras) apply inside :meth:`MlflowHook.activated`, in a task's process.
    """
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def build_client(config: MlflowConfig) -> MlflowClient:
    """An ``MlflowClient`` for ``config`` whose HTTP requests carry ``config``'s credentials.

    MLflow's own client reads credentials from the process environment at each request, so two clients
    with different credentials cannot coexist in one process, and setting them around a call races with
    other threads (the triggerer's event loop threads, the API server's workers). Here the client's
    tracking and registry stores are MLflow's REST stores given this config's credentials directly.
    Local stores (``sqlite:``, ``file:``) need none and keep MLflow's own stores.
    """
    from mlflow import MlflowClient

    registry_uri = config.registry_uri or config.tracking_uri
    client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=registry_uri)
    if not config.is_http:
        return client
    from mlflow.store.model_registry.rest_store import RestStore as RegistryRestStore
    from mlflow.store.tracking.rest_store import RestStore as TrackingRestStore
    from mlflow.tracking._model_registry.client import ModelRegistryClient
    from mlflow.tracking._tracking_service.client import TrackingServiceClient

    apply_http_defaults()
    tracking_store = TrackingRestStore(lambda: config.host_creds())
    registry_store = RegistryRestStore(lambda: config.host_creds(registry_uri))

    class _Tracking(TrackingServiceClient):
        store = tracking_store  # a fixed store instead of one resolved from the environment

    class _Registry(ModelRegistryClient):
        store = registry_store

    # MlflowClient keeps its tracking client in _tracking_client and builds its registry client lazily
    # into _registry_client_lazy (mlflow/tracking/client.py); both are replaced by the bound ones.
    client._tracking_client = _Tracking(config.tracking_uri)
    client._registry_client_lazy = _Registry(registry_uri, config.tracking_uri)  # type: ignore[attr-defined]
    return client


def refusal(exc: BaseException, config: MlflowConfig, conn_id: str) -> MlflowAuthError | None:
    """The :class:`MlflowAuthError` that ``exc`` amounts to when the server refused the credentials
    (HTTP 401) or their rights (HTTP 403); ``None`` for any other error. The message names the server,
    the connection and the login, never a secret."""
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException):
        return None
    text = str(exc.message)
    if exc.error_code == "UNAUTHENTICATED" or "error code 401" in text:
        what = "refused the credentials of"
    elif exc.error_code == "PERMISSION_DENIED" or "error code 403" in text:
        what = "denied the request made with"
    else:
        return None
    who = f"login {config.username!r}" if config.username else ("a token" if config.token else "no credentials")
    return MlflowAuthError(
        f"MLflow at {config.tracking_uri} {what} connection {conn_id!r} ({who}): {exc.error_code}. Check the "
        "connection's login and password (or extra 'token') and the user's permissions on the MLflow server (no retry)"
    )


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
        if conn is not None and conn.host:
            extra = conn.extra_dejson
            tracking_uri = _tracking_uri_from_connection(conn.host, conn.port, extra.get("scheme"))
            ui = extra.get("ui_base_url") or (tracking_uri if tracking_uri.startswith("http") else "")
            for secret in (conn.password, extra.get("token")):
                _mask(secret)
            return MlflowConfig(
                tracking_uri=tracking_uri,
                registry_uri=extra.get("registry_uri") or None,
                ui_base_url=ui.rstrip("/"),
                artifact_root=extra.get("artifact_root") or None,
                username=conn.login or None,
                password=conn.password or None,
                token=extra.get("token") or None,
                source="connection",
                http=tuple((k, str(extra[k.lower()])) for k in HTTP_DEFAULTS if extra.get(k.lower()) not in (None, "")),
            )
        env_uri = os.environ.get("MLFLOW_TRACKING_URI")
        if env_uri:
            ui = os.environ.get("MLOPS_MLFLOW_UI_URL") or (env_uri if env_uri.startswith("http") else "")
            return MlflowConfig(
                tracking_uri=env_uri,
                registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or None,
                ui_base_url=ui.rstrip("/"),
                source="env",
            )
        if not settings.embedded_defaults():
            raise settings.missing_shared_setting(
                "MLflow connection", f"the {settings.DEFAULT_MLFLOW_CONN_ID} connection "
                """(AIRFLOW_CONN_MLFLOW_DEFAULT='{"conn_type": "mlflow", "host": "http://mlflow:5000"}') or MLFLOW_TRACKING_URI""",
            )
        settings.airflow_home().mkdir(parents=True, exist_ok=True)
        return MlflowConfig(
            tracking_uri=settings.embedded_tracking_uri(),
            artifact_root=settings.embedded_artifact_root(),
            ui_base_url=os.environ.get("MLOPS_MLFLOW_UI_URL", "").rstrip("/"),
            source="embedded",
        )

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
        from mlflow.tracking._model_registry import utils as registry_state
        from mlflow.tracking._tracking_service import utils as tracking_state

        cfg = self.config
        saved_env = {name: os.environ.get(name) for name in _AUTH_ENV + _URI_ENV + tuple(HTTP_DEFAULTS)}
        # The raw settings, not get_tracking_uri()/get_registry_uri(): those resolve defaults, and
        # setting a resolved value back would pin it, so that a later MlflowClient(tracking_uri=X) in
        # this process (the API server's plugin, a test) kept talking to the old registry. None = unset.
        saved_uris = (tracking_state._tracking_uri, registry_state._registry_uri)
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

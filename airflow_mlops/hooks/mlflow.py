"""Hook for an MLflow tracking server and model registry, configured by an Airflow connection."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_mlops import settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

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


class MlflowHook(BaseHook):
    """Talk to MLflow (tracking and registry) through an Airflow connection of type ``mlflow``.

    The connection's host is the tracking URI (``http://mlflow:5000``); login/password give basic
    auth, extra ``token`` a bearer token, extra ``registry_uri`` a separate registry and extra
    ``ui_base_url`` the address used for links in the Airflow UI. When the connection does not exist,
    ``MLFLOW_TRACKING_URI`` is used, else the embedded store ``sqlite:///$AIRFLOW_HOME/mlflow.db`` with
    artifacts under ``$AIRFLOW_HOME/mlflow-artifacts``. Nothing is read at construction time.

    :param mlflow_conn_id: the Airflow connection id (default ``mlflow_default``).
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = settings.DEFAULT_MLFLOW_CONN_ID
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id
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
        (Airflow runs one task per process).
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
            yield cfg
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
        """Return an ``MlflowClient`` for this connection.

        The client reads credentials from the process environment when it sends requests, so use it
        inside :meth:`activated` when the server needs auth.
        """
        from mlflow import MlflowClient

        cfg = self.config
        return MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.registry_uri or cfg.tracking_uri)

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
        with self.activated():
            self.client.set_model_version_tag(name, str(version), key, value)

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

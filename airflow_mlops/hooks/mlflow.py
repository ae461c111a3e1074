"""Hook for an MLflow tracking server and model registry, configured by an Airflow connection.

The one gateway to MLflow: operators, sensors, the trigger and the MLOps page reach the tracking server
through :class:`MlflowHook` and the registry through its :attr:`~MlflowHook.registry`
(:class:`~airflow_mlops.hooks.registry.ModelRegistry`: versions, aliases, decisions, the promotion lock).
Its client carries the connection's credentials itself, so the multi-threaded triggerer and API server
never share them through the process environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_mlops import settings
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
from airflow_mlops.hooks.registry import ModelRegistry

if TYPE_CHECKING:
    from mlflow import MlflowClient

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

    @cached_property
    def registry(self) -> ModelRegistry:
        """The registry protocol (:class:`~airflow_mlops.hooks.registry.ModelRegistry`) on this hook's
        client; a refusal of the connection's credentials raises ``MlflowAuthError`` naming the connection."""
        return ModelRegistry(self.client, refusal=lambda exc: refusal(exc, self.config, self.mlflow_conn_id))

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

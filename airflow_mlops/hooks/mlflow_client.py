"""How the hook reaches MLflow: the connection resolved to an :class:`MlflowConfig`, and a client that
carries that config's credentials itself.

The one module that touches MLflow's private attributes, because MLflow has no public way to give a
client its own credentials or to read the fluent API's unresolved URIs: ``MlflowClient._tracking_client``
and ``._registry_client_lazy``, the stores of ``TrackingServiceClient`` / ``ModelRegistryClient``, and
``mlflow.tracking._tracking_service.utils._tracking_uri`` / ``_model_registry.utils._registry_uri``.
They are checked against the MLflow version in :data:`CHECKED_MLFLOW` by
``tests/unit/test_mlflow_private_api.py``, which fails when the installed MLflow differs, so an upgrade
re-checks them first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops import settings
from airflow_mlops.exceptions import MlflowAuthError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.utils.rest_utils import MlflowHostCreds

#: The MLflow release whose private attributes this module was checked against.
CHECKED_MLFLOW = "3.17"
#: MLflow reads credentials for HTTP tracking servers from these variables (see ``mlflow.environment_variables``).
_AUTH_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
#: ``mlflow.set_tracking_uri`` / ``set_registry_uri`` also export these, so they are restored too.
_URI_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
#: MLflow's own HTTP retry defaults (7 retries, backoff factor 2, 120 s timeout) can keep a task
#: waiting for minutes on a dead tracking server, while Airflow's task retries (with backoff) are the
#: recovery we want. So unless the environment or the connection extras say otherwise, a request
#: gives up after ~15 s of retrying; the connection extra of the same lower-case name overrides.
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


def fluent_uris() -> tuple[str | None, str | None]:
    """The fluent API's tracking and registry URIs as set, ``None`` when unset (not resolved to defaults:
    setting a resolved value back would pin it for every later client of the process)."""
    from mlflow.tracking._model_registry import utils as registry_state
    from mlflow.tracking._tracking_service import utils as tracking_state

    return tracking_state._tracking_uri, registry_state._registry_uri


def config_from(conn: Any | None) -> MlflowConfig:
    """Build the :class:`MlflowConfig` from a connection (or ``None``: env var, then embedded store)."""
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

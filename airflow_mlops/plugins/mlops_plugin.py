"""The ``mlops`` Airflow plugin class.

Kept cheap to import: Airflow imports plugins in every process (workers load them for macros), while
only the API server needs the FastAPI app. The app is built the first time the API server asks for
``fastapi_apps`` (:func:`airflow_mlops.plugins.app.create_app`).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.plugins_manager import AirflowPlugin

from airflow_mlops.plugins import PLUGIN_NAME
from airflow_mlops.reports import PLUGIN_PREFIX, api_base_path


class MlopsPlugin(AirflowPlugin):
    """Adds the MLOps page (UI navigation "Browse > MLOps"), its JSON API and report serving under ``/mlops``.

    Access follows the API server's auth manager: plugin access for the page, read access to the
    producing DAGs for each model and report (see :mod:`airflow_mlops.plugins.access`).
    """

    name = PLUGIN_NAME
    # url_route: the UI embeds the page at /plugin/mlops (an iframe that sends the session cookie);
    # href follows [api] base_url, so an API server behind a path prefix serves the page it links to.
    external_views = [
        {"name": "MLOps", "href": f"{api_base_path()}{PLUGIN_PREFIX}/", "url_route": "mlops", "destination": "nav", "category": "browse"}
    ]
    _apps: list[dict[str, Any]] | None = None

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:
        """The FastAPI app mounted at ``/mlops``, built on first access (in the API server only)."""
        if self._apps is None:
            from airflow_mlops.plugins.app import create_app

            type(self)._apps = [{"app": create_app(), "url_prefix": PLUGIN_PREFIX, "name": "MLOps"}]
        return type(self)._apps or []

    @fastapi_apps.setter
    def fastapi_apps(self, value: list[dict[str, Any]]) -> None:
        type(self)._apps = value

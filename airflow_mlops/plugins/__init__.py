"""The MLOps Airflow plugin: an "MLOps" page in the UI navigation, its JSON API and report serving.

Modules: :mod:`~.mlops_plugin` (the plugin class, cheap to import), :mod:`~.app` (the FastAPI app),
:mod:`~.dashboard` (what the page shows, from MLflow and the reports root), :mod:`~.charts` (its SVG
charts), :mod:`~.access` (who may see which model and report: the rule) and :mod:`~.permissions`
(the questions put to the deployment's Airflow auth manager). The plugin has no rights of its own:
a user sees the page only with plugin access, and a model or report only if they may read the DAGs
that produced it.

Registered through the ``airflow.plugins`` entry point (``pyproject.toml``), which Airflow loads in
every component. The repository's ``plugins/`` folder holds a thin module for deployments that mount a
plugins folder instead; it stands back when the entry point is installed (:func:`folder_plugin`).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

PLUGIN_NAME = "mlops"
PLUGIN_CLASS = "airflow_mlops.plugins.mlops_plugin:MlopsPlugin"


def entry_point_installed() -> bool:
    """Whether an installed distribution registers the plugin through the ``airflow.plugins`` entry point."""
    return any(ep.value.replace(" ", "") == PLUGIN_CLASS for ep in entry_points(group="airflow.plugins"))


def folder_plugin() -> Any:
    """The plugin class for a plugins-folder module, or ``None`` when the entry point registers it.

    Airflow loads the plugins folder first and then entry points, and skips a second plugin of the
    same name with a warning that it also lists as a plugin import error. Exposing the class only
    when no entry point does keeps a deployment that has both free of that error.
    """
    if entry_point_installed():
        return None
    from airflow_mlops.plugins.mlops_plugin import MlopsPlugin

    return MlopsPlugin

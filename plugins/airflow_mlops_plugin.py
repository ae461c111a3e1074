"""MLOps plugin for deployments that mount this folder as Airflow's plugins folder.

The ``airflow-mlops`` package normally registers the plugin through its ``airflow.plugins`` entry
point; then this module exposes nothing, so Airflow does not see the plugin twice. Without the entry
point (the package only on ``PYTHONPATH``) it exposes the plugin class.
"""

from __future__ import annotations

from airflow_mlops.plugins import folder_plugin

MlopsPlugin = folder_plugin()

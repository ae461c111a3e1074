"""Provider metadata read by Airflow's provider discovery (entry point ``apache_airflow_provider``).

``package-name`` must equal the distribution name (``airflow-mlops``): a mismatch makes Airflow's whole
provider discovery fail. Keep this module free of imports so discovery stays fast.
"""

from __future__ import annotations

from typing import Any


def _option(description: str, example: str, type_: str = "string", default: str | None = None) -> dict[str, Any]:
    return {"description": description, "version_added": "0.1.0", "type": type_, "example": example, "default": default}


def get_provider_info() -> dict[str, Any]:
    """Return the provider description Airflow validates against ``provider_info.schema.json``."""
    return {
        "package-name": "airflow-mlops",
        "name": "MLOps",
        "description": (
            "Production life of tabular ML models on Airflow 3: data validation (Great Expectations), "
            "training and tracking (scikit-learn + MLflow), champion/challenger promotion, batch inference "
            "and drift checks (Evidently)."
        ),
        "integrations": [
            {"integration-name": "MLflow", "external-doc-url": "https://mlflow.org/docs/latest/", "tags": ["software"]},
            {"integration-name": "Great Expectations", "external-doc-url": "https://docs.greatexpectations.io/", "tags": ["software"]},
            {"integration-name": "Evidently", "external-doc-url": "https://docs.evidentlyai.com/", "tags": ["software"]},
        ],
        "hooks": [{"integration-name": "MLflow", "python-modules": ["airflow_mlops.hooks.mlflow"]}],
        "operators": [
            {"integration-name": "Great Expectations", "python-modules": ["airflow_mlops.operators.validation"]},
            {
                "integration-name": "MLflow",
                "python-modules": [
                    "airflow_mlops.operators.window",
                    "airflow_mlops.operators.training",
                    "airflow_mlops.operators.registry",
                    "airflow_mlops.operators.inference",
                    "airflow_mlops.operators.scoring",
                    "airflow_mlops.operators.signals",
                ],
            },
            {"integration-name": "Evidently", "python-modules": ["airflow_mlops.operators.drift", "airflow_mlops.operators.quality"]},
        ],
        "sensors": [
            {"integration-name": "MLflow", "python-modules": ["airflow_mlops.sensors.mlflow", "airflow_mlops.sensors.partition"]}
        ],
        "triggers": [
            {"integration-name": "MLflow", "python-modules": ["airflow_mlops.triggers.mlflow", "airflow_mlops.triggers.partition"]}
        ],
        "extra-links": [
            "airflow_mlops.links.mlflow.MlflowRunLink",
            "airflow_mlops.links.mlflow.MlflowModelVersionLink",
            "airflow_mlops.links.reports.ValidationReportLink",
            "airflow_mlops.links.reports.DriftReportLink",
            "airflow_mlops.links.reports.QualityReportLink",
        ],
        "connection-types": [
            {
                "connection-type": "mlflow",
                "hook-class-name": "airflow_mlops.hooks.mlflow.MlflowHook",
                "hook-name": "MLflow",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {"host": "Tracking URI", "login": "Username", "password": "Password"},  # nosec B105: a form label, not a password
                    "placeholders": {"host": "http://mlflow:5000", "login": "basic-auth user (optional)"},
                },
                "conn-fields": {
                    "registry_uri": {
                        "label": "Registry URI",
                        "description": "Model registry URI when it differs from the tracking URI.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "token": {
                        "label": "Token",
                        "description": "Bearer token (MLFLOW_TRACKING_TOKEN) for servers behind token auth.",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "ui_base_url": {
                        "label": "UI base URL",
                        "description": "Address of the MLflow UI as users reach it, for the links on task instances.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "artifact_root": {
                        "label": "Artifact root",
                        "description": "Artifact location for experiments the provider creates (default: the server's).",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            }
        ],
        "config": {
            "mlops": {
                "description": "Options of the airflow-mlops provider.",
                "options": {
                    "data_root": _option(
                        "URI under which data, reports and predictions live (file:// or s3://). "
                        "Falls back to MLOPS_DATA_ROOT, then file://$AIRFLOW_HOME/mlops-data.",
                        "s3://mlops/data",
                    ),
                    "reports_root": _option("URI for validation and drift reports (default <data_root>/reports).", "s3://mlops/reports"),
                    "data_conn_id": _option("Airflow connection for s3:// data URIs (default aws_default).", "aws_default"),
                    "batch_catchup": _option(
                        "Whether mlops_batch_prediction catches up every month since its start date when unpaused "
                        "(default true). Backfills work either way.",
                        "false", "boolean", "True",
                    ),
                    "require_marker": _option(
                        "Whether readers demand a partition's _SUCCESS marker (default true). Set false for producers "
                        "that write none (pandas, most ETL tools): the partition sensor then waits until the files stop changing.",
                        "false", "boolean", "True",
                    ),
                    "allowed_estimators": _option(
                        "Estimator classes outside scikit-learn that training may import, comma-separated dotted paths "
                        "(scikit-learn's own estimators are always allowed; anything else is refused before any import).",
                        "xgboost.XGBClassifier,lightgbm.LGBMClassifier",
                    ),
                    "allowed_data_prefixes": _option(
                        "URIs besides the data root that operators with confine_to_data may read (comma-separated); the "
                        "reference retraining DAG reads its trigger form's snapshot URI only there.",
                        "s3://team-a-features,s3://shared/snapshots",
                    ),
                    "embedded_defaults": _option(
                        "Whether a missing data_root or mlflow_default connection falls back to a folder and a SQLite MLflow "
                        "store under $AIRFLOW_HOME (default: true with LocalExecutor, false with a distributed executor, "
                        "where every worker would get its own).",
                        "false", "boolean",
                    ),
                    "partition_poke_interval": _option(
                        "Seconds between checks for the month's input partition in mlops_batch_prediction (default 300).",
                        "60", "float", "300",
                    ),
                },
            }
        },
    }

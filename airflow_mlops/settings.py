"""Every setting of the provider in one place.

Settings come from the ``[mlops]`` Airflow config section (so ``AIRFLOW__MLOPS__<KEY>`` works), then from
the plain environment variables documented in the README, then from the embedded default under
``$AIRFLOW_HOME``. Nothing here touches the network or the metadata database.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MLFLOW_CONN_ID = "mlflow_default"
DEFAULT_AWS_CONN_ID = "aws_default"
#: Executors that run every task on the scheduler's host, where one embedded store is shared by all.
LOCAL_EXECUTORS = ("LocalExecutor", "SequentialExecutor", "DebugExecutor")


def airflow_home() -> Path:
    """Return ``$AIRFLOW_HOME`` (Airflow's own default ``~/airflow`` when unset)."""
    return Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()


def _conf_get(key: str) -> str | None:
    from airflow.sdk import conf

    value = conf.get("mlops", key, fallback=None)
    return value or None


def data_root() -> str:
    """Return the URI under which data, reports and predictions live (no trailing slash).

    Order: ``[mlops] data_root`` / ``AIRFLOW__MLOPS__DATA_ROOT``, then ``MLOPS_DATA_ROOT``, then
    ``file://$AIRFLOW_HOME/mlops-data``.
    """
    root = _conf_get("data_root") or os.environ.get("MLOPS_DATA_ROOT")
    if not root:
        if not embedded_defaults():
            raise missing_shared_setting("data root", "AIRFLOW__MLOPS__DATA_ROOT=s3://bucket/mlops (or [mlops] data_root)")
        root = (airflow_home() / "mlops-data").as_uri()
    return root.rstrip("/")


def embedded_defaults() -> bool:
    """Whether a missing data root or MLflow connection may fall back to the embedded folder and store
    under ``$AIRFLOW_HOME`` (``[mlops] embedded_defaults``).

    Default: true with a local executor (``make demo``, ``airflow standalone``), false with a
    distributed one (Celery, Kubernetes, Edge...): there every worker, the triggerer and the API
    server have an ``$AIRFLOW_HOME`` of their own, so each would get its own registry and data.
    """
    from airflow.sdk import conf

    if (conf.get("mlops", "embedded_defaults", fallback="") or "").strip():
        return conf.getboolean("mlops", "embedded_defaults")
    executors = [e.strip().rsplit(":", 1)[-1].rsplit(".", 1)[-1] for e in conf.get("core", "executor", fallback="").split(",") if e.strip()]
    return all(e in LOCAL_EXECUTORS for e in executors)


def missing_shared_setting(what: str, how: str) -> Exception:
    """The error for a setting a distributed deployment must give: ``what`` is missing, ``how`` to set it."""
    from airflow_mlops.exceptions import MlopsConfigurationError

    return MlopsConfigurationError(
        f"no {what} is configured, and with a distributed executor the embedded default under $AIRFLOW_HOME would differ "
        f"on every worker: set {how}, or [mlops] embedded_defaults = True (AIRFLOW__MLOPS__EMBEDDED_DEFAULTS) for a single host"
    )


def reports_root() -> str:
    """Return the URI under which validation and drift reports are written."""
    return _conf_get("reports_root") or f"{data_root()}/reports"


def data_conn_id() -> str | None:
    """Return the Airflow connection used for ``s3://`` data URIs (``[mlops] data_conn_id``)."""
    return _conf_get("data_conn_id") or os.environ.get("MLOPS_DATA_CONN_ID") or DEFAULT_AWS_CONN_ID


def embedded_tracking_uri() -> str:
    """Return the embedded MLflow store used when no ``mlflow`` connection and no env var exist."""
    return f"sqlite:///{airflow_home() / 'mlflow.db'}"


def embedded_artifact_root() -> str:
    """Return the artifact root paired with :func:`embedded_tracking_uri`."""
    return (airflow_home() / "mlflow-artifacts").as_uri()


def batch_catchup() -> bool:
    """Whether the reference batch-prediction DAG catches up past months (``[mlops] batch_catchup``, default true)."""
    from airflow.sdk import conf

    return conf.getboolean("mlops", "batch_catchup", fallback=True)


def partition_poke_interval() -> float:
    """Seconds between checks for a month's input partition in the reference batch DAG.

    ``[mlops] partition_poke_interval``, default 300: partitions land once a month, so a deferred
    sensor polling every five minutes costs nothing and is prompt enough.
    """
    from airflow.sdk import conf

    return conf.getfloat("mlops", "partition_poke_interval", fallback=300.0)


def allowed_data_prefixes() -> list[str]:
    """Where operators with ``confine_to_data`` may read: the data root and ``[mlops] allowed_data_prefixes``
    (comma-separated URIs)."""
    extra = [p.strip().rstrip("/") for p in (_conf_get("allowed_data_prefixes") or "").split(",") if p.strip()]
    return [data_root(), *extra]


def allowed_estimators() -> set[str]:
    """Estimator classes outside scikit-learn that training may import (``[mlops] allowed_estimators``,
    comma-separated dotted paths, e.g. ``xgboost.XGBClassifier``). scikit-learn's own are always allowed."""
    return {p.strip() for p in (_conf_get("allowed_estimators") or "").split(",") if p.strip()}


def require_marker() -> bool:
    """Whether readers demand a partition's ``_SUCCESS`` marker (``[mlops] require_marker``, default true).

    Turn it off for producers that write no marker (pandas, most ETL tools); the partition sensor
    then waits until the files have stopped changing. A value that is not a boolean fails (a typo
    must not silently turn the markers off).
    """
    from airflow.sdk import conf

    return conf.getboolean("mlops", "require_marker", fallback=True)

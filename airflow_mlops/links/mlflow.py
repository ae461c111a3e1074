"""Extra links on task instances: the MLflow run and the registered model version.

Operators push the finished URL to XCom; the worker stores it when the task ends, so the API server
never needs to import this module or reach MLflow. A missing or broken value yields no link, never an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey


class XComUrlLink(BaseOperatorLink):
    """A link whose URL an operator pushed to XCom under ``key`` (``""`` = no link)."""

    name: ClassVar[str] = ""
    key: ClassVar[str] = ""

    @classmethod
    def persist(cls, context: Context, url: str) -> None:
        """Push ``url`` for this link from inside ``execute``."""
        context["ti"].xcom_push(key=cls.key, value=url or "")

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        try:
            value: Any = XCom.get_value(key=self.key, ti_key=ti_key)
        except Exception:  # a broken link must never break the task page
            return ""
        return value if isinstance(value, str) and value.startswith(("http://", "https://", "/")) else ""


class MlflowRunLink(XComUrlLink):
    """"MLflow run": the training (or evaluation) run in the MLflow UI."""

    name = "MLflow run"
    key = "mlflow_run_url"


class MlflowModelVersionLink(XComUrlLink):
    """"Model version": the registered model version the task produced or decided on."""

    name = "Model version"
    key = "mlflow_model_version_url"

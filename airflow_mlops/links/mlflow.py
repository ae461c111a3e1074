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

    @classmethod
    def url_from(cls, value: str) -> str:
        """Turn the pushed value into the link's URL (``""`` = no link): here, accept only URLs and paths."""
        return value if value.startswith(("http://", "https://", "/")) else ""

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        try:
            value: Any = XCom.get_value(key=self.key, ti_key=ti_key)
            return self.url_from(value) if isinstance(value, str) else ""
        except Exception:  # a broken link must never break the task page
            return ""


class MlflowRunLink(XComUrlLink):
    """"MLflow run": the training (or evaluation) run in the MLflow UI."""

    name = "MLflow run"
    key = "mlflow_run_url"


class MlflowModelVersionLink(XComUrlLink):
    """"Model version": the registered model version the task produced or decided on."""

    name = "Model version"
    key = "mlflow_model_version_url"

"""Sensor that waits for the MLflow model registry: an alias on a READY version, or a new version."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import PokeReturnValue, conf

from airflow_mlops import settings
from airflow_mlops.sensors.base import MlopsDeferrableSensor
from airflow_mlops.triggers.mlflow import MlflowModelVersionTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class MlflowModelVersionSensor(MlopsDeferrableSensor):
    """Wait until ``alias`` of ``model_name`` points at a READY version, or (without an alias) until a
    READY version newer than ``after_version`` exists.

    Works in poke/reschedule mode, or deferrable with
    :class:`~airflow_mlops.triggers.mlflow.MlflowModelVersionTrigger`.

    :param model_name: registered model (templated).
    :param alias: alias to wait for, e.g. ``champion`` (templated).
    :param after_version: wait for a version newer than this (templated).
    :param mlflow_conn_id: ``mlflow`` connection (templated).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :return: (XCom) ``{"model_name", "version", "run_id"}``.
    """

    template_fields: Sequence[str] = ("model_name", "alias", "after_version", "mlflow_conn_id")

    def __init__(
        self,
        *,
        model_name: str,
        alias: str | None = None,
        after_version: int | str | None = None,
        mlflow_conn_id: str = settings.DEFAULT_MLFLOW_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias
        self.after_version = after_version
        self.mlflow_conn_id = mlflow_conn_id
        self.deferrable = deferrable

    def _after(self) -> int | None:
        from airflow_mlops.utils.values import optional_text

        after = optional_text(self.after_version)  # the one reading of an unset rendered value
        return None if after is None else int(str(after))

    def poke(self, context: Context) -> PokeReturnValue:
        from airflow_mlops.hooks.mlflow import MlflowHook

        found = MlflowHook(mlflow_conn_id=self.mlflow_conn_id).ready_version(self.model_name, alias=self.alias or None, after_version=self._after())
        if not found:
            self.log.info("Waiting for %s (alias=%s, after=%s)", self.model_name, self.alias, self.after_version)
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value={"model_name": self.model_name, **found})

    def build_trigger(self) -> MlflowModelVersionTrigger:
        return MlflowModelVersionTrigger(
            model_name=self.model_name, alias=self.alias or None, after_version=self._after(),
            mlflow_conn_id=self.mlflow_conn_id, poll_interval=self.poke_interval,
        )  # fmt: skip

    def result_from_event(self, event: dict[str, Any]) -> dict[str, Any]:
        return {"model_name": event["model_name"], "version": event["version"], "run_id": event["run_id"]}

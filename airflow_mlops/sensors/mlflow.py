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
    """Wait until ``model_ref`` of ``model_name`` is a READY version (an alias that points at one, or
    a version number), or (without ``model_ref``) until a READY version newer than ``after_version`` exists.

    Works in poke/reschedule mode, or deferrable with
    :class:`~airflow_mlops.triggers.mlflow.MlflowModelVersionTrigger`.

    :param model_name: registered model (templated).
    :param model_ref: the alias (e.g. ``champion``) or version to wait for (templated); empty: any version.
    :param after_version: wait for a version newer than this (templated); with ``model_ref``, the version
        it names must be newer.
    :param mlflow_conn_id: ``mlflow`` connection (templated).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :return: (XCom) ``{"model_name", "version", "run_id"}``.
    """

    template_fields: Sequence[str] = ("model_name", "model_ref", "after_version", "mlflow_conn_id")

    def __init__(
        self,
        *,
        model_name: str,
        model_ref: str | int | None = None,
        after_version: int | str | None = None,
        mlflow_conn_id: str = settings.DEFAULT_MLFLOW_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.model_ref = model_ref
        self.after_version = after_version
        self.mlflow_conn_id = mlflow_conn_id
        self.deferrable = deferrable

    def _ref(self) -> str | None:
        from airflow_mlops.values import optional_text

        ref = optional_text(self.model_ref)  # an unset rendered value ("None", "") waits for any version
        return None if ref is None else str(ref)

    def _after(self) -> int | None:
        from airflow_mlops.values import optional_text

        after = optional_text(self.after_version)  # the one reading of an unset rendered value
        return None if after is None else int(str(after))

    def poke(self, context: Context) -> PokeReturnValue:
        from airflow_mlops.hooks.mlflow import MlflowHook

        found = MlflowHook(mlflow_conn_id=self.mlflow_conn_id).registry.ready_version(self.model_name, model_ref=self._ref(), after_version=self._after())
        if not found:
            self.log.info("Waiting for %s (model_ref=%s, after=%s)", self.model_name, self.model_ref, self.after_version)
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value={"model_name": self.model_name, **found})

    def build_trigger(self) -> MlflowModelVersionTrigger:
        return MlflowModelVersionTrigger(
            model_name=self.model_name, model_ref=self._ref(), after_version=self._after(),
            mlflow_conn_id=self.mlflow_conn_id, poll_interval=self.poke_interval,
        )  # fmt: skip

    def result_from_event(self, event: dict[str, Any]) -> dict[str, Any]:
        return {"model_name": event["model_name"], "version": event["version"], "run_id": event["run_id"]}

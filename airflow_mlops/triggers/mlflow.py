"""Trigger that waits, in the triggerer, for a model-registry condition (alias or new version)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from airflow_mlops.hooks.mlflow import MlflowHook


class MlflowModelVersionTrigger(BaseTrigger):
    """Fire when ``model_ref`` (an alias or a version number) is a READY version of ``model_name`` (or,
    without it, when a version newer than ``after_version`` is READY). MLflow calls are blocking, so each check
    (:meth:`~airflow_mlops.hooks.mlflow.MlflowHook.ready_version`) runs in a thread.

    :param model_name: registered model.
    :param model_ref: the alias (``champion``) or version to wait for.
    :param after_version: wait for a version newer than this.
    :param mlflow_conn_id: ``mlflow`` connection (fetched asynchronously).
    :param poll_interval: seconds between checks.
    :return: (event) ``{"status": "success", "model_name", "version", "run_id"}`` or ``{"status": "error", "message"}``.
    """

    def __init__(
        self,
        *,
        model_name: str,
        model_ref: str | None = None,
        after_version: int | None = None,
        mlflow_conn_id: str = "mlflow_default",
        poll_interval: float = 60.0,
    ) -> None:
        super().__init__()
        self.model_name = model_name
        self.model_ref = model_ref
        self.after_version = after_version
        self.mlflow_conn_id = mlflow_conn_id
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_mlops.triggers.mlflow.MlflowModelVersionTrigger",
            {
                "model_name": self.model_name,
                "model_ref": self.model_ref,
                "after_version": self.after_version,
                "mlflow_conn_id": self.mlflow_conn_id,
                "poll_interval": self.poll_interval,
            },
        )

    async def _hook(self) -> MlflowHook:
        """The hook of ``mlflow_conn_id``, its connection fetched without blocking the event loop; its client
        carries the connection's credentials (the triggerer runs many triggers in one process)."""
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        from airflow_mlops.hooks.mlflow import MlflowHook

        try:
            conn = await BaseHook.aget_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            conn = None
        return MlflowHook(self.mlflow_conn_id, config=MlflowHook.resolve_config(conn))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            hook = await self._hook()
            while True:
                found = await asyncio.to_thread(hook.registry.ready_version, self.model_name, model_ref=self.model_ref, after_version=self.after_version)
                if found:
                    yield TriggerEvent({"status": "success", "model_name": self.model_name, **found})
                    return
                self.log.info("Waiting for %s (model_ref=%s, after=%s)", self.model_name, self.model_ref, self.after_version)
                await asyncio.sleep(self.poll_interval)
        except Exception as exc:  # report to the task, which fails with the message
            yield TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})

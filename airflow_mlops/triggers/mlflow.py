"""Trigger that waits, in the triggerer, for a model-registry condition (alias or new version)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


def check_registry(client: Any, model_name: str, alias: str | None, after_version: int | None) -> dict[str, Any] | None:
    """Return the matching READY version as ``{"version", "run_id"}``, or ``None`` if not there yet.

    :param alias: wait until this alias exists and points at a READY version.
    :param after_version: wait until a READY version newer than this one exists.
    """
    from mlflow.exceptions import MlflowException

    from airflow_mlops.utils.registry import is_not_found, quote_filter

    try:
        if alias:
            found = [client.get_model_version_by_alias(model_name, alias)]
        else:
            found = client.search_model_versions(f"name={quote_filter(model_name)}")
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise
    ready = [v for v in found if v.status == "READY" and (after_version is None or int(v.version) > after_version)]
    if not ready:
        return None
    best = max(ready, key=lambda v: int(v.version))
    return {"version": str(best.version), "run_id": best.run_id}


class MlflowModelVersionTrigger(BaseTrigger):
    """Fire when ``alias`` points at a READY version of ``model_name`` (or a version newer than
    ``after_version`` is READY). MLflow calls are blocking, so each check runs in a thread.

    :param model_name: registered model.
    :param alias: alias to wait for (``champion``).
    :param after_version: wait for a version newer than this.
    :param mlflow_conn_id: ``mlflow`` connection (fetched asynchronously).
    :param poll_interval: seconds between checks.
    :return: (event) ``{"status": "success", "model_name", "version", "run_id"}`` or ``{"status": "error", "message"}``.
    """

    def __init__(
        self,
        *,
        model_name: str,
        alias: str | None = None,
        after_version: int | None = None,
        mlflow_conn_id: str = "mlflow_default",
        poll_interval: float = 60.0,
    ) -> None:
        super().__init__()
        self.model_name = model_name
        self.alias = alias
        self.after_version = after_version
        self.mlflow_conn_id = mlflow_conn_id
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_mlops.triggers.mlflow.MlflowModelVersionTrigger",
            {
                "model_name": self.model_name,
                "alias": self.alias,
                "after_version": self.after_version,
                "mlflow_conn_id": self.mlflow_conn_id,
                "poll_interval": self.poll_interval,
            },
        )

    async def _client(self) -> Any:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException
        from mlflow import MlflowClient

        from airflow_mlops.hooks.mlflow import MlflowHook

        try:
            conn = await BaseHook.aget_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            conn = None
        cfg = MlflowHook.resolve_config(conn)
        return MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.registry_uri or cfg.tracking_uri)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            client = await self._client()
            while True:
                found = await asyncio.to_thread(check_registry, client, self.model_name, self.alias, self.after_version)
                if found:
                    yield TriggerEvent({"status": "success", "model_name": self.model_name, **found})
                    return
                self.log.info("Waiting for %s (alias=%s, after=%s)", self.model_name, self.alias, self.after_version)
                await asyncio.sleep(self.poll_interval)
        except Exception as exc:  # report to the task, which fails with the message
            yield TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})

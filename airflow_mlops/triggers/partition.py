"""Trigger that waits, in the triggerer, until a data partition is complete."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class DataPartitionTrigger(BaseTrigger):
    """Fire once the partition at ``uri`` is ready: data files and its ``_SUCCESS`` marker, or (with
    ``require_marker=False``) data files unchanged for ``stable_seconds``.

    Listing object storage is blocking I/O, so each check runs in a worker thread and the event
    loop of the triggerer stays free.

    :param uri: partition folder (``file://``, ``s3://``).
    :param data_conn_id: connection for ``s3://`` and other remote stores.
    :param poll_interval: seconds between checks.
    :param require_marker: demand the ``_SUCCESS`` marker.
    :param stable_seconds: without a marker, how long the files must have been unchanged.
    :return: (event) ``{"status": "success", "uri": ..., "files": [...]}``.
    """

    def __init__(
        self, *, uri: str, data_conn_id: str | None = None, poll_interval: float = 60.0, require_marker: bool = True, stable_seconds: float = 60.0
    ) -> None:
        super().__init__()
        self.uri = uri
        self.data_conn_id = data_conn_id
        self.poll_interval = poll_interval
        self.require_marker = require_marker
        self.stable_seconds = stable_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_mlops.triggers.partition.DataPartitionTrigger",
            {
                "uri": self.uri, "data_conn_id": self.data_conn_id, "poll_interval": self.poll_interval,
                "require_marker": self.require_marker, "stable_seconds": self.stable_seconds,
            },  # fmt: skip
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_mlops.exceptions import PartitionNotReadyError
        from airflow_mlops.tables import ready_files

        while True:
            try:
                files = await asyncio.to_thread(
                    ready_files, self.uri, conn_id=self.data_conn_id, require_marker=self.require_marker, stable_seconds=self.stable_seconds
                )
            except PartitionNotReadyError as exc:
                self.log.info("Partition %s not ready: %s", self.uri, exc.detail)
            else:
                yield TriggerEvent({"status": "success", "uri": self.uri, "files": files})
                return
            await asyncio.sleep(self.poll_interval)

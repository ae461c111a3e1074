"""Trigger that waits, in the triggerer, until a data partition is complete."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class DataPartitionTrigger(BaseTrigger):
    """Fire once the partition at ``uri`` has data files and its ``_SUCCESS`` marker.

    Listing object storage is blocking I/O, so each check runs in a worker thread and the event
    loop of the triggerer stays free.

    :param uri: partition folder (``file://``, ``s3://``).
    :param conn_id: connection for remote stores.
    :param poll_interval: seconds between checks.
    :return: (event) ``{"status": "success", "uri": ..., "files": [...]}``.
    """

    def __init__(self, *, uri: str, conn_id: str | None = None, poll_interval: float = 60.0) -> None:
        super().__init__()
        self.uri = uri
        self.conn_id = conn_id
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_mlops.triggers.partition.DataPartitionTrigger",
            {"uri": self.uri, "conn_id": self.conn_id, "poll_interval": self.poll_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_mlops.exceptions import PartitionNotReadyError
        from airflow_mlops.tables import list_data_files

        while True:
            try:
                files = await asyncio.to_thread(list_data_files, self.uri, conn_id=self.conn_id, require_marker=True)
            except PartitionNotReadyError as exc:
                self.log.info("Partition %s not ready: %s", self.uri, exc.detail)
            else:
                yield TriggerEvent({"status": "success", "uri": self.uri, "files": files})
                return
            await asyncio.sleep(self.poll_interval)

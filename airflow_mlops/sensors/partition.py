"""Sensor that waits for a data partition (files plus ``_SUCCESS`` marker) on object storage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import PokeReturnValue, conf

from airflow_mlops.sensors.base import MlopsDeferrableSensor
from airflow_mlops.triggers.partition import DataPartitionTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class DataPartitionSensor(MlopsDeferrableSensor):
    """Wait until a partition folder has data files and its ``_SUCCESS`` completion marker.

    Works in poke/reschedule mode, or deferrable: it checks once on the worker, then hands the wait
    to :class:`~airflow_mlops.triggers.partition.DataPartitionTrigger` in the triggerer.

    :param uri: partition folder, e.g. ``s3://lake/churn/month={{ ds[:7] }}`` (templated).
    :param data_conn_id: connection for ``s3://`` (templated).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :return: (XCom) ``{"uri": ..., "files": [...]}`` of the ready partition.
    """

    template_fields: Sequence[str] = ("uri", "data_conn_id")
    ui_color = "#e8f7e4"

    def __init__(
        self,
        *,
        uri: str,
        data_conn_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.uri = uri
        self.data_conn_id = data_conn_id
        self.deferrable = deferrable

    def poke(self, context: Context) -> PokeReturnValue:
        from airflow_mlops.exceptions import PartitionNotReadyError
        from airflow_mlops.tables import list_data_files

        try:
            files = list_data_files(self.uri, conn_id=self.data_conn_id, require_marker=True)
        except PartitionNotReadyError as exc:
            self.log.info("Waiting for %s: %s", self.uri, exc.detail)
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value={"uri": self.uri, "files": files})

    def build_trigger(self) -> DataPartitionTrigger:
        return DataPartitionTrigger(uri=self.uri, conn_id=self.data_conn_id, poll_interval=self.poke_interval)

    def result_from_event(self, event: dict[str, Any]) -> dict[str, Any]:
        return {"uri": event["uri"], "files": event["files"]}

"""Sensor that waits for a data partition on object storage: its ``_SUCCESS`` marker, or files that stopped changing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import PokeReturnValue, conf

from airflow_mlops.sensors.base import MlopsDeferrableSensor
from airflow_mlops.triggers.partition import DataPartitionTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class DataPartitionSensor(MlopsDeferrableSensor):
    """Wait until a partition folder is ready: data files plus its ``_SUCCESS`` completion marker, or,
    for producers that write no marker (``require_marker=False``), data files that have not changed
    for ``stable_seconds``.

    Works in poke/reschedule mode, or deferrable: it checks once on the worker, then hands the wait
    to :class:`~airflow_mlops.triggers.partition.DataPartitionTrigger` in the triggerer. The marker-free
    check compares the files' modification times with the clock, so it keeps no state between pokes.

    :param uri: partition folder, e.g. ``s3://lake/churn/month={{ ds[:7] }}`` (templated).
    :param data_conn_id: connection for ``s3://`` (templated).
    :param require_marker: demand the ``_SUCCESS`` marker; ``None`` (default) = ``[mlops] require_marker`` (true).
    :param stable_seconds: without a marker, how long the files must have been unchanged (default 60).
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
        require_marker: bool | None = None,
        stable_seconds: float = 60.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.uri = uri
        self.data_conn_id = data_conn_id
        self.require_marker = require_marker
        self.stable_seconds = stable_seconds
        self.deferrable = deferrable

    def poke(self, context: Context) -> PokeReturnValue:
        from airflow_mlops.exceptions import PartitionNotReadyError
        from airflow_mlops.tables import ready_files

        try:
            files = ready_files(self.uri, conn_id=self.data_conn_id, require_marker=self.require_marker, stable_seconds=self.stable_seconds)
        except PartitionNotReadyError as exc:
            self.log.info("Waiting for %s: %s", self.uri, exc.detail)
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value={"uri": self.uri, "files": files})

    def build_trigger(self) -> DataPartitionTrigger:
        from airflow_mlops import settings

        require_marker = settings.require_marker() if self.require_marker is None else self.require_marker  # resolved on the worker
        return DataPartitionTrigger(
            uri=self.uri, data_conn_id=self.data_conn_id, poll_interval=self.poke_interval,
            require_marker=require_marker, stable_seconds=self.stable_seconds,
        )  # fmt: skip

    def result_from_event(self, event: dict[str, Any]) -> dict[str, Any]:
        return {"uri": event["uri"], "files": event["files"]}

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the partition waited for, as the input the rest of the DAG run reads."""
        from airflow_mlops import lineage

        if not lineage.available():
            return None
        return lineage.operator_lineage(inputs=[lineage.input_dataset(self.uri)])

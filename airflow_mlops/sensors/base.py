"""The poke-then-defer flow shared by the provider's sensors."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger


class MlopsDeferrableSensor(BaseSensorOperator):
    """A sensor that pokes on the worker, or, when ``self.deferrable``, pokes once and hands the wait to
    the trigger of :meth:`build_trigger` in the triggerer.

    Subclasses implement ``poke`` (returning a ``PokeReturnValue``), :meth:`build_trigger` and
    :meth:`result_from_event`; the success event's result is the task's XCom value.
    """

    deferrable: bool

    def build_trigger(self) -> BaseTrigger:
        """The trigger that waits for the same condition as ``poke``."""
        raise NotImplementedError

    def result_from_event(self, event: dict[str, Any]) -> Any:
        """Turn a success event into the task's return value."""
        raise NotImplementedError

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if first:  # a PokeReturnValue is truthy when done
            return getattr(first, "xcom_value", None)
        self.defer(trigger=self.build_trigger(), method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired; fail on anything but a success event."""
        if not event or event.get("status") != "success":
            raise RuntimeError(f"{self.task_id}: waiting ended without success: {event}")
        return self.result_from_event(event)

"""What every MLflow run and model version the provider writes is tagged with: the DAG run and task
instance that wrote it (the audit trail the MLOps page and the access rules read)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import Context


def ti_key(context: Context) -> str:
    """Return ``dag_id/task_id/run_id[map_index]``: the same for every try of one task instance."""
    ti = context["ti"]
    suffix = f"[{ti.map_index}]" if getattr(ti, "map_index", -1) not in (-1, None) else ""
    return f"{ti.dag_id}/{ti.task_id}/{ti.run_id}{suffix}"


def run_tags(context: Context) -> dict[str, str]:
    """Tags naming the DAG run and task instance, for MLflow runs and model versions (audit trail)."""
    ti = context["ti"]
    logical = context.get("logical_date")
    return {
        "mlops.dag_id": ti.dag_id,
        "mlops.task_id": ti.task_id,
        "mlops.run_id": ti.run_id,
        "mlops.try_number": str(ti.try_number),
        "mlops.logical_date": logical.isoformat() if logical else "",
        "mlops.ti_key": ti_key(context),
    }

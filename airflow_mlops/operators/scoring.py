"""Score a partition as one unit: pin the model version once for the whole fan-out, then publish the
scored files as the partition in one compare-and-swap (see :mod:`airflow_mlops.tables`).

:class:`BatchScoringPlanOperator` -> :class:`~airflow_mlops.operators.inference.MlflowBatchPredictOperator`
mapped over its plan -> :class:`PublishPartitionOperator`. The task-group factory
:func:`airflow_mlops.task_groups.batch_scoring_group` wires the three; these are the pieces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.operators.base import (
    READ_TEMPLATE_FIELDS,
    MlopsBaseOperator,
    MlopsTableOperator,
    mlops_template_fields,
)
from airflow_mlops.values import optional_text

if TYPE_CHECKING:
    from airflow.sdk import Context

#: XCom key under which the plan pushes the open partition's handle (what publish needs).
PARTITION_KEY = "partition"


def output_name(input_uri: str) -> str:
    """The scored file's name for an input file: its stem with ``.parquet`` (``part-1.csv`` -> ``part-1.parquet``)."""
    return input_uri.rsplit("/", 1)[-1].rsplit(".", 1)[0] + ".parquet"


class BatchScoringPlanOperator(MlopsTableOperator):
    """Plan the scoring of one partition: resolve the model reference to one version for every file (a
    promotion during the fan-out cannot mix versions in one month), list the partition's files by its
    readiness policy, and open a new version of the output partition in a staging folder (the published
    month stays readable until :class:`PublishPartitionOperator` switches it).

    :param input_uri: the partition to score (templated).
    :param output_uri: the partition the predictions are published as (templated).
    :param model_name: registered model (templated).
    :param model_ref: alias or version that scores (templated; default ``champion``). Resolved here, once.
    :param shadow_ref: alias or version to score beside it, e.g. ``challenger`` (templated; empty = none);
        left out when it resolves to the same version or does not exist.
    :param bool|None require_marker: the input partition's readiness policy (default ``[mlops] require_marker``).
    :return: (XCom) one ``{"input_uri", "output_uri", "model_ref", "shadow_ref", "require_marker",
        "csv_options", "confine_to_data"}`` per input file, to ``expand_kwargs`` the predict task over: each
        file is read as this task read the partition (its reading options, from its arguments or the DAG's
        ``default_args``, which a mapped task's ``partial()`` would not receive); also pushes the partition handle under the key
        ``partition`` and the pinned version under ``model_version``.
    :raises ModelResolutionError: the model or reference does not exist or is not READY.
    """

    template_fields: Sequence[str] = mlops_template_fields(
        "input_uri", "output_uri", "model_name", "model_ref", "shadow_ref", *READ_TEMPLATE_FIELDS
    )
    ui_color = "#e3f2fd"

    def __init__(
        self, *, input_uri: str, output_uri: str, model_name: str, model_ref: str = "champion", shadow_ref: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.input_uri = input_uri
        self.output_uri = output_uri
        self.model_name = model_name
        self.model_ref = model_ref
        self.shadow_ref = shadow_ref

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airflow_mlops import tables

        ti = context["ti"]
        version = str(self.mlflow_hook.registry.resolve_version(self.model_name, self.model_ref).version)
        shadow_ref = optional_text(self.shadow_ref)
        shadow = None
        if shadow_ref:
            shadow = shadow_ref if shadow_ref.isdigit() else self.mlflow_hook.registry.alias_version(self.model_name, shadow_ref)
            if shadow is None:
                self.log.warning("Shadow %s of %s does not exist: scoring with v%s alone", shadow_ref, self.model_name, version)
        files = self.reader.files(self.input_uri)
        partition = tables.open_partition(self.output_uri, run_key=f"{ti.dag_id}/{ti.run_id}", conn_id=self.data_conn_id)
        ti.xcom_push(key=PARTITION_KEY, value=partition)
        ti.xcom_push(key="model_version", value=version)
        self.log.info("Scoring %d files of %s with %s v%s into %s", len(files), self.input_uri, self.model_name, version, partition["staging"])
        return [
            {
                "input_uri": uri,
                "output_uri": f"{partition['staging']}/{output_name(uri)}",
                "model_ref": version,
                "shadow_ref": shadow if shadow and shadow != version else None,
                "require_marker": self.require_marker,
                "csv_options": self.csv_options,
                "confine_to_data": self.confine_to_data,
            }
            for uri in files
        ]


class PublishPartitionOperator(MlopsBaseOperator):
    """Publish the files a run staged as the partition, in one step: a compare-and-swap of the partition's
    ``_SUCCESS`` manifest (:func:`airflow_mlops.tables.publish_partition`). Of two runs publishing the
    same month, exactly one wins; the other publishes nothing, fails without retry
    (:class:`~airflow_mlops.exceptions.PartitionConflictError`) and names the winner.

    The manifest records the rows and model versions, and what the quality check, the training window,
    lineage and the MLOps page read. Give the task ``outlets=[predictions_asset(model)]`` to announce the
    month: the event carries the summary.

    :param partition: the handle :class:`BatchScoringPlanOperator` pushed (``plan.output["partition"]``),
        or any handle of :func:`airflow_mlops.tables.open_partition` (templated).
    :param results: the summaries of the tasks that wrote the staged files (e.g. the mapped predict
        task's ``output``): each names its ``output_uri`` and, optionally, ``rows`` and ``model_version``.
    :return: (XCom) ``{"uri", "files", "rows", "model_versions", "marker_uri"}``.
    """

    template_fields: Sequence[str] = mlops_template_fields("partition", "results")
    ui_color = "#e3f2fd"

    def __init__(self, *, partition: Any, results: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.partition = partition
        self.results = results

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops import tables

        # One slice request of a mapped task's results (iterating probes one index past the end: an error line).
        results = list(self.results[:]) if hasattr(self.results, "__getitem__") else list(self.results)
        names = [str(r["output_uri"]).rsplit("/", 1)[-1] for r in results]
        rows = sum(int(r.get("rows") or 0) for r in results)
        versions = sorted({str(r["model_version"]) for r in results if r.get("model_version") is not None})
        marker = tables.publish_partition(self.partition, files=names, extra={"rows": rows, "model_versions": versions}, conn_id=self.data_conn_id)
        summary = {"uri": self.partition["uri"], "files": len(names), "rows": rows, "model_versions": versions, "marker_uri": marker}
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {k: v for k, v in summary.items() if k != "marker_uri"}
        return summary

"""Assemble a retrain's data from the newest labelled months: what the model should learn from now."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops import tables
from airflow_mlops.exceptions import PartitionNotReadyError, TableError
from airflow_mlops.operators.base import READ_TEMPLATE_FIELDS, MlopsTableOperator, mlops_template_fields
from airflow_mlops.periods import month_name, month_ordinal
from airflow_mlops.values import optional_text

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlops.spec import FeatureSpec

#: Tags the window hands to training (``data_tags``): which months trained and which judged.
TRAIN_MONTHS_TAG = "mlops.window.train_months"
HOLDOUT_MONTH_TAG = "mlops.window.holdout_month"
SNAPSHOT_TAG = "mlops.window.snapshot"
WINDOW_FILE = "window.json"


class TrainingWindowOperator(MlopsTableOperator):
    """Assemble a retrain's training and holdout tables from the newest labelled months.

    A month is labelled when both its features partition and its labels partition are ready (the
    readiness policy of every reader). Searching back from ``end_month``, the newest labelled month
    becomes the holdout, on which challenger and champion are both judged (today's reality, not a
    random slice of the past), and the ``window_months`` labelled months before it become the
    training data; with ``include_snapshot`` the labelled snapshot is added to them. Months without
    labels (not arrived yet) are skipped and reported. Features and labels are joined by the spec's
    id columns (:mod:`airflow_mlops.labels`).

    With ``window_months`` = 0, or when no labelled month exists yet (a cold start), the snapshot alone
    is the training data and the holdout is a seeded split of it (``holdout_uri`` is ``None``).

    Written below ``output_uri``: ``train/`` and ``holdout/`` (partitions with their ``_SUCCESS``
    manifest) and ``window.json``, the months used and their row counts; a rerun replaces them. When
    the snapshot alone trains, ``train_uri`` is the snapshot itself (no copy).

    :param features_uri: a month's features partition, with ``{month}`` for ``YYYY-MM`` (templated).
    :param labels_uri: a month's labels partition, with ``{month}`` (templated); ``None`` when the
        features partitions carry the target themselves.
    :param spec_uri: FeatureSpec YAML (templated).
    :param output_uri: folder for ``train/``, ``holdout/`` and ``window.json`` (templated).
    :param snapshot_uri: the labelled snapshot (training table of the first model) (templated).
    :param window_months: labelled months to train on, before the holdout month (templated; 0..120).
    :param include_snapshot: add the snapshot to the window's months (templated).
    :param end_month: the newest month considered, ``YYYY-MM`` (templated); default the month of
        the run (``run_after``).
    :param lookback_months: how far back from ``end_month`` to search for labelled months.
    :param bool|None require_marker: the readiness policy of features and labels (default ``[mlops] require_marker``).
    :param dict|str|None csv_options: CSV dialect (see :class:`~airflow_mlops.operators.base.MlopsTableOperator`).
    :return: (XCom, also one XCom per key: ``window.output["train_uri"]``) ``{"train_uri", "holdout_uri", "train_months", "holdout_month", "snapshot" (bool),
        "skipped_months" {month: reason}, "rows" {"train", "holdout"}, "tags" (for training's
        ``data_tags``), "window_uri"}``.
    """

    template_fields: Sequence[str] = mlops_template_fields(
        "features_uri", "labels_uri", "spec_uri", "output_uri", "snapshot_uri", "window_months", "include_snapshot", "end_month",
        *READ_TEMPLATE_FIELDS,
    )  # fmt: skip
    ui_color = "#fff8e1"

    def __init__(
        self,
        *,
        features_uri: str,
        spec_uri: str,
        output_uri: str,
        labels_uri: str | None = None,
        snapshot_uri: str | None = None,
        window_months: int | str = 3,
        include_snapshot: bool | str = False,
        end_month: str | None = None,
        lookback_months: int = 24,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)  # downstream tasks take window.output["train_uri"]
        super().__init__(**kwargs)
        self.features_uri = features_uri
        self.labels_uri = labels_uri
        self.spec_uri = spec_uri
        self.output_uri = output_uri
        self.snapshot_uri = snapshot_uri
        self.window_months = window_months
        self.include_snapshot = include_snapshot
        self.end_month = end_month
        self.lookback_months = lookback_months

    def _month_uri(self, pattern: str, month: str) -> str:
        if "{month}" not in pattern:
            raise ValueError(f"{pattern!r} has no {{month}} placeholder for the month (e.g. .../month={{month}})")
        return pattern.replace("{month}", month)

    def _unready(self, month: str) -> str | None:
        """Why ``month`` is not labelled yet, or ``None`` when its features (and labels) are ready."""
        for kind, pattern in (("features", self.features_uri), ("labels", optional_text(self.labels_uri))):
            if pattern is None:
                continue
            try:
                self.reader.files(self._month_uri(pattern, month))
            except PartitionNotReadyError as exc:
                return f"{kind}: {exc}"
        return None

    def _labelled_month(self, spec: FeatureSpec, month: str, path: str) -> int:
        """Write ``month``'s labelled training rows (features joined with their labels, in the features'
        order) to the local parquet file ``path``; return their number. Streamed, in bounded memory
        (:mod:`airflow_mlops.labels`)."""
        from airflow_mlops.labels import LabelJoin

        features_uri = self._month_uri(self.features_uri, month)
        labels_pattern = optional_text(self.labels_uri)
        if labels_pattern is None:
            return self._copy(features_uri, spec.training_columns(), path)
        labels_uri = self._month_uri(labels_pattern, month)
        with LabelJoin(spec, what="features") as join:
            join.load_rows(self.reader, features_uri, spec.scoring_columns())
            join.load_labels(self.reader, labels_uri)
            join.check()
            rows = join.write(path, spec.training_columns())
        if not rows:
            raise TableError(f"no row of {features_uri} has a label here: are the ids of the two feeds the same?", uri=labels_uri)
        return rows

    def _copy(self, uri: str, columns: list[str], path: str) -> int:
        """Stream ``columns`` of the table at ``uri`` to the local parquet file ``path``; return the rows."""
        import pyarrow.parquet as pq

        rows, writer = 0, None
        try:
            for batch in self.reader.batches(uri, columns=columns):
                writer = writer or pq.ParquetWriter(path, batch.schema, compression="snappy")
                writer.write_batch(batch, row_group_size=tables.DEFAULT_BATCH_ROWS)
                rows += batch.num_rows
        finally:
            if writer is not None:
                writer.close()
        return rows

    def _write(self, files: dict[str, str], uri: str, run_key: str, rows: int) -> str:
        """One part file per source (month or snapshot), each a local file assembled before, published in
        one step (a rerun replaces it all)."""
        import shutil

        partition = tables.open_partition(uri, run_key=run_key, conn_id=self.data_conn_id)
        names = []
        for index, (source, local) in enumerate(files.items()):
            name = f"part-{index:05d}-{source}.parquet"
            with tables.staged_output(f"{partition['staging']}/{name}", conn_id=self.data_conn_id) as staged:
                shutil.move(local, staged)
            names.append(name)
        extra = {"sources": list(files), "rows": rows}
        tables.publish_partition(partition, files=names, extra=extra, conn_id=self.data_conn_id)
        return uri

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        spec = self.load_spec(self.spec_uri)
        try:
            window = int(self.window_months)
            with_snapshot = str(self.include_snapshot).strip().lower() in ("true", "1", "yes")
            end = optional_text(self.end_month) or context["dag_run"].run_after.strftime("%Y-%m")
            newest = month_ordinal(end)
            if not 0 <= window <= 120:
                raise ValueError(f"window_months must be 0..120, got {window}")
            if not spec.id_columns and optional_text(self.labels_uri) is not None:
                raise ValueError("the FeatureSpec has no id_columns: a separate labels feed cannot be joined")
        except ValueError as exc:
            raise AirflowFailException(f"{exc} (no retry: a configuration error does not heal)") from exc
        self.check_confined(optional_text(self.snapshot_uri), "snapshot_uri")
        self.check_confined(self.features_uri.replace("{month}", end), "features_uri")
        self.check_confined((optional_text(self.labels_uri) or "").replace("{month}", end), "labels_uri")

        labelled: list[str] = []
        skipped: dict[str, str] = {}
        if window > 0:
            for back in range(self.lookback_months):
                month = month_name(newest - back)
                reason = self._unready(month)
                if reason is None:
                    labelled.append(month)
                    if len(labelled) == window + 1:
                        break
                elif not labelled:  # only gaps above the newest labelled month are news; older ones are history
                    skipped[month] = reason
        holdout_month = labelled[0] if labelled else None
        train_months = sorted(labelled[1:])
        use_snapshot = with_snapshot or not train_months
        if use_snapshot and not optional_text(self.snapshot_uri):
            raise AirflowFailException(
                f"no labelled month before {holdout_month or end} within {self.lookback_months} months and no snapshot_uri to train on"
            )
        for month, reason in skipped.items():
            self.log.info("Month %s is not labelled yet (%s)", month, reason)

        base = str(self.output_uri).rstrip("/")
        run_key = f"{context['ti'].dag_id}/{context['ti'].run_id}/{context['ti'].task_id}"
        # Every month is joined (and checked) into a local file first, one month at a time in bounded
        # memory; only then is anything written below output_uri, so a bad feed leaves nothing there.
        with tempfile.TemporaryDirectory(prefix="mlops-window-") as local:
            train: dict[str, str] = {}
            holdout: dict[str, str] = {}
            counts: dict[str, int] = {}
            try:
                for month in train_months:
                    train[month] = f"{local}/{month}.parquet"
                    counts[month] = self._labelled_month(spec, month, train[month])
                if use_snapshot and train:
                    train["snapshot"] = f"{local}/snapshot.parquet"
                    counts["snapshot"] = self._copy(str(self.snapshot_uri), spec.training_columns(), train["snapshot"])
                if holdout_month is not None:
                    holdout[holdout_month] = f"{local}/holdout-{holdout_month}.parquet"
                    counts["holdout"] = self._labelled_month(spec, holdout_month, holdout[holdout_month])
            except PartitionNotReadyError:
                raise
            except TableError as exc:  # a missing column or an id clash stays so on a retry
                raise AirflowFailException(f"{exc} (no retry: the data must change)") from exc
            rows = {"train": sum(counts[s] for s in train), "holdout": counts.get("holdout", 0)}
            holdout_uri = self._write(holdout, f"{base}/holdout", run_key, rows["holdout"]) if holdout else None
            # The snapshot alone is used where it is (no copy): validation reads it and names its own file.
            train_uri = self._write(train, f"{base}/train", run_key, rows["train"]) if train else str(self.snapshot_uri)
        tags = {
            TRAIN_MONTHS_TAG: ",".join(train_months) or "none",
            HOLDOUT_MONTH_TAG: holdout_month or "none (a split of the training data)",
            SNAPSHOT_TAG: str(use_snapshot).lower(),
        }
        summary = {
            "train_uri": train_uri, "holdout_uri": holdout_uri, "train_months": train_months, "holdout_month": holdout_month,
            "snapshot": use_snapshot, "snapshot_uri": optional_text(self.snapshot_uri) if use_snapshot else None,
            "skipped_months": skipped, "rows": rows, "tags": tags,
        }  # fmt: skip
        summary["window_uri"] = tables.write_text(json.dumps(summary, indent=2), f"{base}/{WINDOW_FILE}", conn_id=self.data_conn_id)
        self.log.info(
            "Training on %s%s (%d rows); judged on %s (%d rows)", ", ".join(train_months) or "no labelled month",
            " + the snapshot" if use_snapshot else "", rows["train"], holdout_month or "a split of the training data", rows["holdout"],
        )  # fmt: skip
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: each month's features and labels partitions (and the snapshot) it read as inputs,
        the ``train/`` and ``holdout/`` partitions it wrote, with the spec's schema and their rows, as outputs."""
        from airflow_mlops import lineage

        if not lineage.available():
            return None
        spec, summary = self.lineage_spec, self.lineage_summary
        if not summary:
            return None
        schema = {"schema": lineage.schema_facet(spec)} if spec else {}
        months = [*summary["train_months"], *([summary["holdout_month"]] if summary["holdout_month"] else [])]
        patterns = [p for p in (self.features_uri, optional_text(self.labels_uri)) if p]
        read = [self._month_uri(p, m) for m in months for p in patterns] + ([summary["snapshot_uri"]] if summary["snapshot_uri"] else [])
        written = {summary["holdout_uri"]: summary["rows"]["holdout"]}
        if summary["train_uri"] != summary["snapshot_uri"]:  # the snapshot alone trains where it is: nothing written
            written[summary["train_uri"]] = summary["rows"]["train"]
        outputs = [
            lineage.output_dataset(uri, schema, {"outputStatistics": lineage.output_statistics_facet(rows)}) for uri, rows in written.items() if uri
        ]
        return lineage.operator_lineage(inputs=[lineage.input_dataset(uri, schema) for uri in read], outputs=outputs)

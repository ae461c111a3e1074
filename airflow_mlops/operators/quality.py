"""Measure a model's quality on a scored period once its labels have arrived, and call decay."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops import reports, tables
from airflow_mlops.exceptions import PartitionNotReadyError, TableError
from airflow_mlops.labels import LabelJoin
from airflow_mlops.links.reports import QualityReportLink
from airflow_mlops.operators.base import (
    READ_TEMPLATE_FIELDS,
    PeriodicCheckOperator,
    check_outcome,
    mlops_template_fields,
)
from airflow_mlops.values import optional_float, optional_text

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from airflow_mlops.metrics import LabelSpace
    from airflow_mlops.spec import FeatureSpec

#: Columns the batch-inference output carries besides ids, segments and probabilities.
PREDICTION = "prediction"
VERSION = "model_version"


def _plain_labels(column: pd.Series) -> pd.Series:
    """``column.map(plain_label)``, without a Python call per row where it would change nothing: integer
    and boolean columns and columns of text hold plain labels already (10M calls take seconds)."""
    from pandas.api.types import infer_dtype

    from airflow_mlops.metrics import plain_label

    if column.dtype.kind in "ib" or (column.dtype.kind == "O" and infer_dtype(column, skipna=False) == "string"):
        return column
    return column.map(plain_label)


class ModelQualityCheckOperator(PeriodicCheckOperator):
    """Join a period's labels (arriving weeks after scoring) to its published predictions, measure the
    model's quality with the metric definitions of training (:mod:`airflow_mlops.metrics`), per
    segment too, and compare it with the scoring version's holdout baseline from the registry.

    The predictions are the batch-inference output partition of the period, as the batch-scoring
    block publishes it (its ``_SUCCESS`` manifest is always required, whatever ``require_marker`` says:
    an unpublished period is refused); they are joined to the labels by the spec's id
    columns, out of core (:mod:`airflow_mlops.labels`: both sides streamed into DuckDB on local disk,
    only the labelled rows' target, prediction, probabilities and segments held in memory). Label coverage (labelled predictions / predictions) below ``min_coverage`` fails the task
    (a retry later may find more labels). Duplicate label ids and labels of classes the model never
    learnt are errors; labels of ids never scored are counted in the summary.

    Decay: the period's ``metric`` dropped, against the version's holdout value, by more than
    ``max_absolute_drop`` or by more than ``max_relative_drop`` (a share of the baseline); with
    ``consecutive`` = N > 1, ``trigger_retraining`` needs N decayed periods in a row. Segments
    (the spec's ``segments``, carried into the predictions by batch inference) are measured with
    the same definitions on each group (:mod:`airflow_mlops.utils.segments`); a segment with at least ``min_segment_rows`` labelled rows below the
    same limits is flagged. An Evidently classification/regression report (HTML) and a JSON summary
    are written to ``<reports root>/quality/<model>/period=<period>/``; a rerun of a period replaces
    them. The period's metrics are logged to the version's monitoring run in MLflow, one step per
    period (see :func:`airflow_mlops.utils.monitoring.record_period`).

    :param predictions_uri: the period's published prediction partition (templated).
    :param labels_uri: the period's labels: a file or partition with the id columns and the target (templated).
    :param spec_uri: FeatureSpec YAML (templated).
    :param model_name: registered model (templated).
    :param period: the period, ``YYYY-MM`` (templated).
    :param metric: the metric judged (default ``roc_auc`` / ``rmse``) (templated).
    :param max_absolute_drop: largest allowed drop below the baseline, in metric units (templated).
    :param max_relative_drop: largest allowed drop as a share of the baseline, 0..1 (templated; default 0.05).
    :param min_coverage: smallest share of predictions that must have a label (templated; default 0.5).
    :param min_segment_rows: labelled rows a segment needs to be judged (default 50).
    :param on_decay: what to do when decay is found (one of :data:`~airflow_mlops.operators.base.OUTCOMES`):
        ``fail``, ``skip``, or ``continue`` (default: log a warning, succeed; ``trigger_retraining`` says it) (templated).
    :param consecutive: decayed periods in a row needed before ``trigger_retraining`` (templated).
    :param reports_uri: the folder of this model's quality records (templated): each period is written
        to ``period=<period>/`` below it, and the hysteresis reads the earlier periods there; default
        ``<reports root>/quality/<model>``.
    :param bool|None require_marker: the labels' readiness policy (default ``[mlops] require_marker``); the
        predictions always need their ``_SUCCESS`` manifest.
    :param dict|str|None csv_options: CSV dialect of the labels (see :class:`~airflow_mlops.operators.base.MlopsTableOperator`).
    :return: (XCom) ``{"period", "model_name", "model_version", "metric", "value", "baseline", "limit"
        (the value past which the period counts as decayed), "drop",
        "relative_drop", "decayed", "trigger_retraining", "metrics", "baseline_metrics", "rows" {"predictions",
        "labels", "labelled", "unscored_labels"}, "coverage", "segments" [...], "flagged_segments",
        "report_uri", "summary_uri", "mlflow_run_id"}``.
    """

    template_fields: Sequence[str] = mlops_template_fields(
        "predictions_uri", "labels_uri", "spec_uri", "model_name", "period", "metric", "max_absolute_drop",
        "max_relative_drop", "min_coverage", "on_decay", "consecutive", "reports_uri", *READ_TEMPLATE_FIELDS,
    )  # fmt: skip
    operator_extra_links = (QualityReportLink(),)
    ui_color = "#e8f5e9"
    records_kind = reports.QUALITY
    flag_key = "decayed"

    def __init__(
        self,
        *,
        predictions_uri: str,
        labels_uri: str,
        spec_uri: str,
        model_name: str,
        period: str,
        metric: str | None = None,
        max_absolute_drop: float | str | None = None,
        max_relative_drop: float | str | None = 0.05,
        min_coverage: float | str = 0.5,
        min_segment_rows: int = 50,
        on_decay: str = "continue",
        consecutive: int | str = 1,
        reports_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_name=model_name, period=period, consecutive=consecutive, reports_uri=reports_uri, **kwargs)
        self.predictions_uri = predictions_uri
        self.labels_uri = labels_uri
        self.spec_uri = spec_uri
        self.metric = metric
        self.max_absolute_drop = max_absolute_drop
        self.max_relative_drop = max_relative_drop
        self.min_coverage = min_coverage
        self.min_segment_rows = min_segment_rows
        self.on_decay = on_decay

    # -- inputs ------------------------------------------------------------------------------------

    def _predictions(self, spec: FeatureSpec, join: LabelJoin) -> list[str]:
        """Load the published predictions of the period into ``join`` (our own output: its marker is always
        required, whatever ``require_marker`` says; that option is the labels' readiness policy): the ids,
        the prediction, the scoring version, the probabilities and the segments, nothing else. Returns
        the columns loaded besides the ids.

        :raises PartitionNotReadyError: the partition is not published, saying what publishes it.
        :raises TableError: the partition lacks a column every batch-inference output has.
        """
        own = tables.TableReader(conn_id=self.data_conn_id, require_marker=True)
        try:
            names = own.partition_schema(self.predictions_uri).names
            missing = [c for c in [*spec.id_columns, PREDICTION, VERSION] if c not in names]
            if missing:
                raise TableError(f"not a batch-inference output: column(s) {missing} missing", uri=self.predictions_uri)
            probabilities = [c for c in names if c == "probability" or c.startswith("probability_")]
            columns = list(dict.fromkeys([PREDICTION, VERSION, *probabilities, *(c for c in spec.segments if c in names)]))
            join.load_rows(own, self.predictions_uri, columns)
        except PartitionNotReadyError as exc:
            reason = tables.MISSING_MARKER if exc.detail.startswith(tables.MISSING_MARKER) else exc.detail
            raise PartitionNotReadyError(
                f"not a published predictions partition ({reason}). The quality check reads predictions only once they are "
                f"published, with the {tables.SUCCESS_MARKER} manifest naming their files; the batch-scoring block's publish "
                f"step writes it (PublishPartitionOperator, or airflow_mlops.tables.publish_partition), after every file "
                f"is scored. require_marker governs the labels only",
                uri=self.predictions_uri,
            ) from exc
        return columns

    # -- quality -----------------------------------------------------------------------------------

    @staticmethod
    def _probabilities(frame: pd.DataFrame, labels: LabelSpace | None) -> Any:
        """The probability matrix in ``labels.classes`` order, as ``predict_proba`` gave it, or ``None``."""
        import numpy as np

        if labels is None:
            return None
        if labels.binary:
            if "probability" not in frame.columns:
                return None
            positive = frame["probability"].to_numpy(dtype="float64")
            return np.column_stack([1 - positive, positive] if labels.positive_index == 1 else [positive, 1 - positive])
        columns = [f"probability_{c}" for c in labels.classes]
        return frame[columns].to_numpy(dtype="float64") if all(c in frame.columns for c in columns) else None

    def _measure(self, spec: FeatureSpec, frame: pd.DataFrame, labels: LabelSpace | None) -> dict[str, float]:
        from airflow_mlops import metrics

        return metrics.compute(spec.task, frame[spec.target].to_numpy(), frame[PREDICTION].to_numpy(), self._probabilities(frame, labels), labels)

    def _segments(self, spec: FeatureSpec, frame: pd.DataFrame, labels: LabelSpace | None, baseline: dict[str, Any], limit: Any) -> list[dict[str, Any]]:
        """Each segment's metric against the same segment on the version's holdout, and whether it decayed.

        A segment is judged when it has ``min_segment_rows`` labelled rows here and a holdout value.
        """
        from airflow_mlops.utils import segments

        measured = segments.measure(spec, frame, frame[PREDICTION].to_numpy(), self._probabilities(frame, labels), labels)
        out = []
        for column, values in measured.items():
            for value, scores in values.items():
                before = baseline.get(column, {}).get(value, {}).get(self._metric)
                now = scores.get(self._metric)
                judged = scores["rows"] >= self.min_segment_rows and before is not None and now is not None
                out.append(
                    {"segment": column, "value": value, "rows": int(scores["rows"]), self._metric: now, "baseline": before,
                     "judged": bool(judged), "decayed": bool(judged and limit(now, before))}
                )  # fmt: skip
        return out

    # -- execute -----------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_mlops import metrics
        from airflow_mlops.metrics import LabelSpace, plain_label, same_label
        from airflow_mlops.utils import monitoring

        check_outcome("on_decay", self.on_decay)
        self.reset_links(context)
        spec = self.load_spec(self.spec_uri)
        try:
            chosen = metrics.metric(optional_text(self.metric) or metrics.default_metric(spec.task), spec.task)
            absolute = optional_float(self.max_absolute_drop, "max_absolute_drop")
            relative = optional_float(self.max_relative_drop, "max_relative_drop")
            coverage_floor = float(self.min_coverage)
            consecutive = int(self.consecutive)
        except ValueError as exc:
            raise AirflowFailException(f"{exc} (no retry: a configuration error does not heal)") from exc
        if absolute is None and relative is None:
            raise AirflowFailException("set max_absolute_drop or max_relative_drop: decay needs a limit")
        self._metric = chosen.name

        # Out of core (airflow_mlops.labels): both sides go through DuckDB on local disk, and only the
        # labelled rows' target, prediction, probabilities and segments come back, in the predictions' order.
        with LabelJoin(spec, what="predictions") as join:
            columns = self._predictions(spec, join)
            versions = sorted({str(v) for v in join.distinct(VERSION)})
            if len(versions) != 1:
                raise TableError(f"the period was scored by several versions {versions}; judge one scoring at a time", uri=self.predictions_uri)
            version = versions[0]
            join.load_labels(self.reader, self.labels_uri)
            join.check()
            joined = join.fetch(list(dict.fromkeys([spec.target, *(c for c in columns if c != VERSION)])))
        scored, labelled = join.counts["rows"], len(joined)
        coverage = labelled / scored if scored else 0.0
        rows = {"predictions": scored, "labels": join.counts["labels"], "labelled": labelled, "unscored_labels": join.counts["labels"] - labelled}
        if coverage < coverage_floor or joined.empty:
            raise ValueError(
                f"label coverage {coverage:.1%} of {self.predictions_uri} is below min_coverage {coverage_floor:.0%} "
                f"({labelled} of {scored} predictions have a label in {self.labels_uri}); later, with more labels, it may pass"
            )

        with self.mlflow_hook.activated():
            model_version = self.mlflow_hook.registry.get_version(self.model_name, version)
            labels = None
            if spec.task == "classification":
                labels = LabelSpace.from_tags(model_version.tags) or LabelSpace.resolve(spec, joined[PREDICTION].unique(), where=self.predictions_uri)
                unknown = sorted({str(v) for v in map(plain_label, joined[spec.target].unique()) if not any(same_label(v, c) for c in labels.classes)})
                if unknown:
                    raise AirflowFailException(f"{self.labels_uri}: labels {unknown} are not classes v{version} learnt ({list(labels.classes)})")
                joined[spec.target] = _plain_labels(joined[spec.target])
            baseline_metrics = {k.removeprefix("mlops.metric."): float(v) for k, v in model_version.tags.items() if k.startswith("mlops.metric.")}
            if chosen.name not in baseline_metrics:
                raise AirflowFailException(f"{self.model_name} v{version} records no holdout {chosen.name} (tag mlops.metric.{chosen.name})")
            baseline = baseline_metrics[chosen.name]

            def decayed(value: float, before: float) -> bool:
                drop = (before - value) if chosen.greater_is_better else (value - before)
                return (absolute is not None and drop > absolute) or (relative is not None and drop > relative * abs(before))

            current = self._measure(spec, joined, labels)
            if chosen.name not in current:
                raise AirflowFailException(
                    f"{chosen.name} is undefined on {self.period} of {self.predictions_uri}: its labels lack a class of "
                    f"{self.model_name} (ROC AUC needs every class); judge such periods on another metric (accuracy, f1)"
                )
            value = current[chosen.name]
            from airflow_mlops.utils.segments import from_tags

            segments = self._segments(spec, joined, labels, from_tags(model_version.tags), decayed) if spec.segments else []
            drop = (baseline - value) if chosen.greater_is_better else (value - baseline)
            is_decayed = decayed(value, baseline)
            allowed = [d for d in (absolute, None if relative is None else relative * abs(baseline)) if d is not None]
            # The value past which the period counts as decayed: the stricter of the two drops.
            limit = None if not allowed else baseline - min(allowed) if chosen.greater_is_better else baseline + min(allowed)
            written = self.period_records()
            summary: dict[str, Any] = {
                "period": self.period, "model_name": self.model_name, "model_version": version, "metric": chosen.name,
                "value": value, "baseline": baseline, "limit": limit, "drop": drop, "relative_drop": drop / abs(baseline) if baseline else None,
                "max_absolute_drop": absolute, "max_relative_drop": relative, "decayed": is_decayed, "consecutive": consecutive,
                "metrics": current, "baseline_metrics": baseline_metrics, "rows": rows, "coverage": coverage,
                "segments": segments, "flagged_segments": [s for s in segments if s["decayed"]],
                "predictions_uri": self.predictions_uri, "labels_uri": self.labels_uri,
            }  # fmt: skip
            summary["trigger_retraining"] = self.asks_for_retraining(is_decayed)
            summary["report_uri"] = monitoring.write_quality_report(spec, joined, labels, f"{written}/{reports.REPORT}", conn_id=self.data_conn_id)
            summary["mlflow_run_id"] = monitoring.record_period(self.mlflow_hook, self.model_name, version, self.period, summary, context)
        summary["summary_uri"] = tables.write_text(json.dumps(summary, indent=2, default=str), f"{written}/{reports.SUMMARY}", conn_id=self.data_conn_id)
        QualityReportLink.persist(context, summary["report_uri"])
        self.log.info(
            "%s v%s on %s: %s = %.4f vs holdout %.4f (drop %.4f) -> %s; coverage %.1f%% (%d labelled)%s", self.model_name, version,
            self.period, chosen.name, value, baseline, drop, "DECAYED" if is_decayed else "no decay", 100 * coverage, len(joined),
            f"; segments below the limit: {[(s['segment'], s['value']) for s in summary['flagged_segments']]}" if summary["flagged_segments"] else "",
        )  # fmt: skip
        if not is_decayed:
            return summary
        from airflow_mlops.exceptions import ModelDecayError

        message = f"{self.model_name} v{version} decayed on {self.period}: {chosen.name} {value:.4f} vs holdout {baseline:.4f}"
        return self.settle(context, summary, self.on_decay, ModelDecayError(message, summary=summary))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the period's predictions (rows evaluated, a "no decay" assertion for the period and
        each judged segment, the ``mlops_modelQuality`` facet with metric, value, baseline, limit, drop,
        coverage), its labels and the scoring model version as inputs."""
        from airflow_mlops import lineage

        if not lineage.available():
            return None
        summary, tracking_uri = self.lineage_summary, lineage.resolved_tracking_uri(self)
        labels_schema = {"schema": lineage.schema_facet(self.lineage_spec, [*self.lineage_spec.id_columns, self.lineage_spec.target])} if self.lineage_spec else {}
        if not summary:
            return lineage.operator_lineage(inputs=[lineage.input_dataset(self.predictions_uri), lineage.input_dataset(self.labels_uri, labels_schema)])
        metric, rows = summary["metric"], summary["rows"]
        checks = [{"assertion": "no_decay", "success": not summary["decayed"], "name": metric, "expected": summary["limit"], "actual": summary["value"]}]
        checks += [
            {"assertion": "no_decay", "column": s["segment"], "success": not s["decayed"], "name": f"{metric} on {s['segment']}={s['value']}",
             "expected": s["baseline"], "actual": s[metric]}
            for s in summary["segments"] if s["judged"]
        ]  # fmt: skip
        quality = lineage.custom_facet(
            "mlops_modelQuality", period=summary["period"], modelName=self.model_name, modelVersion=summary["model_version"], metric=metric,
            value=summary["value"], baseline=summary["baseline"], limit=summary["limit"], drop=summary["drop"], decayed=summary["decayed"],
            coverage=summary["coverage"], labelledRows=rows["labelled"], metrics=summary["metrics"],
        )  # fmt: skip
        predictions = lineage.input_dataset(
            self.predictions_uri, {"mlops_modelQuality": quality},
            {"dataQualityMetrics": lineage.metrics_facet(rows["labelled"]), "dataQualityAssertions": lineage.assertions_facet(checks)},
        )  # fmt: skip
        labels = lineage.input_dataset(self.labels_uri, labels_schema, {"dataQualityMetrics": lineage.metrics_facet(rows["labels"])})
        model = [lineage.model_version_dataset(tracking_uri, self.model_name, summary["model_version"])] if tracking_uri else []
        return lineage.operator_lineage(inputs=[predictions, labels, *model])

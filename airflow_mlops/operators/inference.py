"""Score a table with a registered model, streaming in bounded batches, publishing atomically.

The operator and its streaming pipeline (:class:`Scorer`: read ahead, check against the spec, predict,
write behind) stay in one module of a little over 400 lines: the pipeline exists only for this task, and
its batching, threads and byte-identical reruns are read together; the spec's row checks live in
``conformance``, the Arrow building blocks in ``streaming``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_mlops import streaming, tables
from airflow_mlops.exceptions import ModelResolutionError
from airflow_mlops.hooks import registry
from airflow_mlops.links.mlflow import MlflowModelVersionLink
from airflow_mlops.operators.base import READ_TEMPLATE_FIELDS, MlopsTableOperator, check_choice, mlops_template_fields
from airflow_mlops.utils.modeling import check_input_schema, check_signature
from airflow_mlops.values import optional_text

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import Context

    from airflow_mlops.metrics import LabelSpace
    from airflow_mlops.spec import FeatureSpec

#: Rows per scored batch (``batch_rows``) by default; the benchmarks (bench/RESULTS.md) ran with it.
DEFAULT_BATCH_ROWS = 262_144
#: Where models may be loaded from by default: the tracked registry and tracked runs only.
ALLOWED_MODEL_URI_SCHEMES = ("models", "runs")
PROGRESS_EVERY_SECONDS = 30.0
ON_INVALID_ROWS = ("fail", "flag", "score")
#: Column that ``on_invalid_rows="flag"`` adds: the spec rules a row breaks, null when it conforms.
INVALID_REASON_COLUMN = "invalid_reason"
def split_model_uri(ref: str) -> tuple[str, str] | None:
    """Return ``(scheme, rest)`` when ``ref`` is a model URI (``models:/...``, ``runs:/...``, ``s3://...``),
    ``None`` for a plain alias or version."""
    scheme, sep, rest = ref.partition(":")
    if not sep or not rest.startswith("/") or not scheme.replace("-", "").replace("+", "").isalnum():
        return None
    return scheme.lower(), rest


class MlflowBatchPredictOperator(MlopsTableOperator):
    """Score one input file with a registered model and write its predictions as one parquet file.

    The model reference (alias or version) is resolved once, at the start, to a pinned version that
    is recorded in every row and in the result; pass a version resolved upstream to pin a whole
    mapped fan-out. The input's columns are checked against the model signature and the FeatureSpec
    before anything is predicted, then streamed in batches of ``batch_rows`` rows (memory bounded by
    the batch, not the file); each batch's rows are checked against the spec's bounds, allowed values
    and nullability before they are scored (``on_invalid_rows``), so the operator protects itself
    without an upstream validate task. The output is published atomically: a rerun replaces it, and
    with the same model version gives a byte-identical file; a failed run leaves an earlier output as it was.

    Output columns: the spec's id (and timestamp) columns, its ``segments`` columns, ``prediction`` (in the target's own labels:
    strings, booleans or integers), for classifiers ``probability`` = P(positive label) when binary
    or one ``probability_<class>`` column per class when multiclass, ``model_name``,
    ``model_version``, ``scored_at`` (the run's logical date, not the wall clock); with ``shadow_ref``
    also ``shadow_prediction``, ``shadow_probability`` (or ``shadow_probability_<class>``),
    ``shadow_model_version`` scored by e.g. the challenger for comparison before promotion; with
    ``on_invalid_rows="flag"``, or a spec with a tolerance, also ``invalid_reason``.

    :param input_uri: file to score (templated; map over a partition's files with ``expand``).
    :param output_uri: parquet file to write (templated).
    :param spec_uri: FeatureSpec YAML (templated).
    :param model_name: registered model (templated).
    :param model_ref: alias (``champion``) or version (templated); or a model URI: ``models:/<name>/<version>``,
        ``models:/<name>@<alias>`` or ``runs:/<run_id>/<path>`` (an unregistered model, recorded by its URI).
    :param shadow_ref: optional alias/version/URI to score beside it (templated; empty = none).
    :param allow_model_uri_schemes: URI schemes a model may be loaded from. Default ``models`` and
        ``runs``: a model is code (it is unpickled), so it comes from the tracked registry, never from
        an arbitrary ``file://`` or ``s3://`` path unless the DAG author allows that scheme here.
    :param scored_at: ISO timestamp written in ``scored_at`` (templated; default the logical date).
    :param batch_rows: rows per scored batch (also the output's parquet row group).
    :param on_invalid_rows: rows that break the spec: ``fail`` (default: the task fails naming column,
        count and a few values, and publishes nothing; rows that break a rule of a column with a
        FeatureSpec ``tolerance`` are scored and flagged in ``invalid_reason`` as long as they stay within
        it, and fail the task, publishing nothing, beyond it), ``flag`` (score them all and add
        ``invalid_reason``) or ``score`` (score them, log a warning) (templated).
    :param allow_empty: publish an empty output for an input with no rows (default: fail). Even then
        an earlier output with rows is never replaced by an empty one.
    :param dict|str|None csv_options: CSV dialect of the input (see :class:`~airflow_mlops.operators.base.MlopsTableOperator`).
    :return: (XCom) ``{"input_uri", "output_uri", "rows", "invalid_rows", "violations", "broken_rules"
        ([{"column", "rule", "rows", "tolerance"}]: the spec's rules that scored rows broke), "model_name",
        "model_version", "shadow_version", "seconds", "rows_per_second"}``; lineage reports the broken
        rules as data-quality assertions of the input (successful when within the column's tolerance).
    """

    template_fields: Sequence[str] = mlops_template_fields(
        "input_uri", "output_uri", "spec_uri", "model_name", "model_ref", "shadow_ref", "scored_at", "on_invalid_rows",
        *READ_TEMPLATE_FIELDS,
    )  # allow_model_uri_schemes is deliberately not templated: the UI form must not widen it
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#e3f2fd"

    def __init__(
        self,
        *,
        input_uri: str,
        output_uri: str,
        spec_uri: str,
        model_name: str,
        model_ref: str = registry.CHAMPION,
        shadow_ref: str | None = None,
        scored_at: str | None = None,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        allow_model_uri_schemes: Sequence[str] = ALLOWED_MODEL_URI_SCHEMES,
        on_invalid_rows: str = "fail",
        allow_empty: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_uri = input_uri
        self.output_uri = output_uri
        self.spec_uri = spec_uri
        self.model_name = model_name
        self.model_ref = model_ref
        self.shadow_ref = shadow_ref
        self.scored_at = scored_at
        self.batch_rows = batch_rows
        self.allow_model_uri_schemes = allow_model_uri_schemes
        self.on_invalid_rows = on_invalid_rows
        self.allow_empty = allow_empty

    def _model_uri(self, ref: str) -> tuple[str, str]:
        """Turn ``ref`` into ``(version label, URI to load)``; registry references are pinned to a version."""
        split = split_model_uri(ref)
        if split is None:
            version = self.mlflow_hook.registry.resolve_version(self.model_name, ref)
            return str(version.version), f"models:/{self.model_name}/{version.version}"
        scheme, rest = split
        allowed = [s.lower() for s in self.allow_model_uri_schemes]
        if scheme not in allowed:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(
                f"Model {self.model_name!r}: refusing to load {ref!r}: scheme {scheme!r} is not in allow_model_uri_schemes "
                f"{allowed} (models are unpickled code; load them from the registry, or allow the scheme explicitly)"
            )
        if scheme == "file":  # MLflow's Model.load tests os.path.exists() on the string: give it a path
            from urllib.parse import unquote, urlparse

            return ref, unquote(urlparse(ref).path)
        if scheme != "models":
            return ref, ref
        name, at, alias = rest.strip("/").partition("@")
        name, _, number = name.partition("/") if not at else (name, "", "")
        if name != self.model_name:
            raise ModelResolutionError(f"the model URI {ref!r} names another model", model_name=self.model_name)
        version = self.mlflow_hook.registry.resolve_version(name, alias or number or registry.CHAMPION)
        return str(version.version), f"models:/{name}/{version.version}"

    def _load(self, ref: str) -> tuple[str, Any, Any]:
        import mlflow

        label, uri = self._model_uri(str(ref))
        model = mlflow.sklearn.load_model(uri)
        signature = mlflow.models.get_model_info(uri).signature
        return label, model, signature

    def _scored_at(self, context: Context) -> Any:
        import pandas as pd

        stamp = optional_text(self.scored_at) or context.get("logical_date") or context.get("data_interval_end")
        if optional_text(stamp) is None:
            raise ValueError("scored_at is needed when the run has no logical date (e.g. an asset-triggered run)")
        parsed = pd.Timestamp(stamp)
        return parsed.tz_localize("UTC") if parsed.tzinfo is None else parsed.tz_convert("UTC")

    def _labels(self, spec: FeatureSpec, model: Any, version: str) -> LabelSpace | None:
        """The classifier's label space: its classes and positive label, checked against the spec and
        against what the version recorded at training (an edited ``positive_label`` would silently
        flip what ``probability`` means).

        :raises AirflowFailException: the spec and the model disagree (no retry: the spec must change).
        """
        if spec.task != "classification" or not hasattr(model, "predict_proba"):
            return None
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_mlops.metrics import LabelSpace

        where = f"model {self.model_name} v{version}"
        try:
            labels = LabelSpace.resolve(spec, model.classes_, where=where)
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from exc
        recorded = LabelSpace.from_tags(self.mlflow_hook.registry.get_version(self.model_name, version).tags) if version.isdigit() else None
        if recorded is not None and recorded != labels:
            raise AirflowFailException(
                f"{where} was trained with classes {list(recorded.classes)} and positive label {recorded.positive!r}, but the "
                f"FeatureSpec {spec.source or spec.name!r} now says {list(labels.classes)} and {labels.positive!r}"
            )
        return labels

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_mlops import conformance

        check_choice("on_invalid_rows", self.on_invalid_rows, ON_INVALID_ROWS)
        self.reset_links(context)
        spec = self.load_spec(self.spec_uri)
        scored_at = self._scored_at(context)
        reader = self.reader
        schema = reader.schema(self.input_uri)
        with self.mlflow_hook.activated():
            version, model, signature = self._load(self.model_ref)
            check_signature(signature, spec, f"{self.model_name} v{version}")
            check_input_schema(schema, spec, signature, self.input_uri)
            scorers = [Scorer("", version, model, self._labels(spec, model, version))]
            if self.shadow_ref:
                shadow_version, shadow_model, shadow_signature = self._load(self.shadow_ref)
                check_signature(shadow_signature, spec, f"{self.model_name} v{shadow_version}")
                scorers.append(Scorer("shadow_", shadow_version, shadow_model, self._labels(spec, shadow_model, shadow_version)))
        MlflowModelVersionLink.persist(context, self.mlflow_hook.model_version_url(self.model_name, version) if version.isdigit() else "")
        shadow = scorers[1].version if len(scorers) > 1 else None
        self.log.info("Scoring %s with %s v%s%s", self.input_uri, self.model_name, version, f" (shadow v{shadow})" if shadow else "")

        columns = spec.passthrough_columns + spec.feature_columns
        violations: list[conformance.Violation] = []
        invalid = 0
        # A spec with a tolerance scores the rows that break a tolerant rule and flags them; whether they
        # stay within the tolerance is known once every row is read, before anything is published.
        tolerant = self.on_invalid_rows == "fail" and any(spec.tolerance_of(c) > 0 for c in spec.feature_columns)
        flag = self.on_invalid_rows == "flag" or tolerant
        start = last_log = time.monotonic()
        # One I/O thread reads the next batch and writes the previous one while this one is scored.
        with tables.staged_output(self.output_uri, conn_id=self.data_conn_id) as local, ThreadPoolExecutor(1, "scoring-io") as io:
            sink = streaming.ParquetWriteBehind(local, io, row_group_size=self.batch_rows)
            try:
                batches = reader.file_batches(
                    self.input_uri, columns=columns, batch_rows=self.batch_rows, dictionary_columns=spec.categorical_columns
                )
                for batch in streaming.read_ahead(batches, io):
                    if batch.num_rows == 0 and sink.started:
                        continue
                    check = conformance.check_batch(spec, batch, want_reasons=flag)
                    if check.violations:
                        conformance.merge(violations, check.violations)
                        invalid += check.invalid_rows
                        if self.on_invalid_rows == "fail" and any(spec.tolerance_of(v.column) == 0 for v in check.violations):
                            raise AirflowFailException(self._invalid_message(violations, sink.rows + batch.num_rows, partial=True))
                    table = self._score_batch(spec, batch, scorers, scored_at)
                    sink.write(table.append_column(INVALID_REASON_COLUMN, check.reasons) if flag else table)
                    if time.monotonic() - last_log >= PROGRESS_EVERY_SECONDS:
                        last_log = time.monotonic()
                        self.log.info("%d rows scored (%.0f rows/s)", sink.rows, sink.rows / (last_log - start))
                if sink.rows == 0:
                    self._check_empty_allowed()
                if not sink.started:  # allowed empty input: still publish an empty, well-typed file
                    table = self._score_batch(spec, _empty_batch(schema, columns), scorers, scored_at)
                    sink.write(table.append_column(INVALID_REASON_COLUMN, _no_reasons()) if flag else table)
                if tolerant:
                    self._check_tolerance(spec, violations, sink.rows)
            except BaseException:
                sink.abort()
                raise
            sink.close()
        rows = sink.rows
        if violations:
            self.log.warning("%s", self._invalid_message(violations, rows, partial=False, spec=spec if tolerant else None))
        seconds = time.monotonic() - start
        self.log.info("Scored %d rows in %.1f s (%.0f rows/s) -> %s", rows, seconds, rows / max(seconds, 1e-9), self.output_uri)
        return {
            "input_uri": self.input_uri,
            "output_uri": self.output_uri,
            "rows": rows,
            "invalid_rows": invalid,
            "violations": [v.describe() for v in violations],
            "broken_rules": [
                {"column": v.column, "rule": v.rule, "rows": v.count, "tolerance": spec.tolerance_of(v.column)} for v in violations
            ],
            "model_name": self.model_name,
            "model_version": version,
            "shadow_version": shadow,
            "seconds": round(seconds, 3),
            "rows_per_second": round(rows / max(seconds, 1e-9), 1),
        }

    def _check_tolerance(self, spec: FeatureSpec, violations: list[Any], rows: int) -> None:
        """Fail (nothing is published yet) when a rule is broken by more rows than its column's tolerance allows."""
        from airflow.sdk.exceptions import AirflowFailException

        beyond = [v for v in violations if v.count > spec.tolerance_of(v.column) * rows]
        if beyond:
            what = "; ".join(f"{v.describe()}: {v.count / max(rows, 1):.3%} of {rows} rows, tolerance {spec.tolerance_of(v.column):.3%}" for v in beyond)
            raise AirflowFailException(
                f"{self.input_uri}: rows break the FeatureSpec {self.spec_uri} beyond its tolerance: {what}. Nothing was written. "
                f"Fix the data, or widen the rule or the column's tolerance in the spec."
            )

    def _invalid_message(self, violations: list[Any], rows: int, *, partial: bool, spec: FeatureSpec | None = None) -> str:
        what = "; ".join(v.describe() for v in violations)
        if spec is not None:  # within the spec's tolerance: scored and flagged in invalid_reason
            shares = "; ".join(f"{v.describe()} ({v.count / max(rows, 1):.3%} of {rows} rows, tolerance {spec.tolerance_of(v.column):.3%})" for v in violations)
            return f"{self.input_uri}: scored and flagged ({INVALID_REASON_COLUMN}) rows that break the FeatureSpec {self.spec_uri} within its tolerance: {shares}"
        if not partial:
            return f"{self.input_uri}: scored rows that break the FeatureSpec {self.spec_uri} (on_invalid_rows={self.on_invalid_rows}): {what}"
        return (
            f"{self.input_uri}: rows break the FeatureSpec {self.spec_uri} (found in the first {rows} rows): {what}. "
            f"Nothing was written. Fix the data or the spec, or pass on_invalid_rows='flag' (score and mark them) or 'score'."
        )

    def _check_empty_allowed(self) -> None:
        """Refuse an input with no rows, unless allowed; never let an empty output replace one with rows."""
        from airflow.sdk.exceptions import AirflowFailException

        if not self.allow_empty:
            raise AirflowFailException(
                f"{self.input_uri}: the input has no rows; nothing was written (pass allow_empty=True if an empty input is expected)"
            )
        earlier = tables.storage_path(self.output_uri, conn_id=self.data_conn_id)
        if earlier.exists() and tables.parquet_row_count(self.output_uri, conn_id=self.data_conn_id) > 0:
            raise AirflowFailException(
                f"{self.input_uri}: the input has no rows, but the earlier output {self.output_uri} has rows; it is kept. "
                f"Delete it first if the period is really empty."
            )

    def _score_batch(self, spec: FeatureSpec, batch: pa.RecordBatch, scorers: list[Scorer], scored_at: Any) -> pa.Table:
        """Score one input batch; return its output rows as an Arrow table.

        Only the model's features go through pandas (the pipeline wants a DataFrame); the id columns
        are carried over as Arrow columns and the constant columns are built as repeated scalars, so
        the output costs no per-row Python objects and keeps the input's exact types.
        """
        import pyarrow as pa

        from airflow_mlops.utils import modeling

        x = modeling.feature_frame(batch.select(spec.feature_columns).to_pandas(), spec)
        n = batch.num_rows
        # ids, then the segments, so monitoring can judge quality per segment from the output alone
        out: dict[str, pa.Array] = {name: batch.column(name) for name in [*spec.passthrough_columns, *spec.segments]}
        for scorer in scorers:
            out.update(scorer.score(x, n, spec.task))
        out["model_name"] = pa.repeat(pa.scalar(self.model_name, pa.string()), n)
        out["model_version"] = pa.repeat(pa.scalar(scorers[0].version, pa.string()), n)
        if len(scorers) > 1:
            out["shadow_model_version"] = pa.repeat(pa.scalar(scorers[1].version, pa.string()), n)
        out["scored_at"] = pa.repeat(pa.scalar(scored_at.to_pydatetime(), pa.timestamp("us", tz="UTC")), n)
        return pa.Table.from_pydict(out)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the scored file (with the spec's scoring schema) and the pinned model version(s)
        as inputs, the predictions file with the rows written as output."""
        from airflow_mlops import lineage

        if not lineage.available():
            return None
        spec, summary, tracking_uri = self.lineage_spec, self.lineage_summary, lineage.resolved_tracking_uri(self)
        facets = {"schema": lineage.schema_facet(spec, spec.scoring_columns())} if spec else {}
        if not summary:  # failed: nothing was published
            return lineage.operator_lineage(inputs=[lineage.input_dataset(self.input_uri, facets)])
        checks = {"dataQualityMetrics": lineage.metrics_facet(summary["rows"])}
        if summary.get("broken_rules"):  # scored anyway: within the spec's tolerance, or flagged / scored on request
            rules = summary["broken_rules"]
            facets["dataQualityAssertions"] = lineage.assertions_facet(
                {"assertion": f"{r['column']} {r['rule']}", "column": r["column"], "actual": f"{r['rows']} row(s)",
                 "success": r["rows"] <= r["tolerance"] * summary["rows"], "params": {"tolerance": r["tolerance"]}}
                for r in rules
            )  # fmt: skip
        inputs = [lineage.input_dataset(self.input_uri, facets, checks)]
        versions = [v for v in (summary["model_version"], summary["shadow_version"]) if v and str(v).isdigit()]  # registry versions only
        if tracking_uri:
            inputs += [lineage.model_version_dataset(tracking_uri, self.model_name, v) for v in versions]
        output = lineage.output_dataset(self.output_uri, output_facets={"outputStatistics": lineage.output_statistics_facet(summary["rows"])})
        return lineage.operator_lineage(inputs=inputs, outputs=[output])


class Scorer(NamedTuple):
    """One model that scores every batch: its output-column prefix, pinned version, model and labels."""

    prefix: str
    version: str
    model: Any
    labels: LabelSpace | None

    def score(self, x: Any, n: int, task: str) -> dict[str, pa.Array]:
        """Prediction (and probability) columns for the feature frame ``x`` of ``n`` rows."""
        import numpy as np
        import pyarrow as pa

        p = self.prefix
        labels = self.labels
        if labels is None:  # regression, or a classifier without probabilities
            kind = pa.float64() if task == "regression" else None
            return {f"{p}prediction": pa.array(self.model.predict(x) if n else [], kind)}
        label_type = pa.array(list(labels.classes)).type
        # One pass of the model: the label is the arg-max of the probabilities (what predict() does).
        proba = self.model.predict_proba(x) if n else np.empty((0, len(labels.classes)))
        out = {f"{p}prediction": pa.array(self.model.classes_[proba.argmax(axis=1)] if n else [], label_type)}
        if labels.binary:
            out[f"{p}probability"] = pa.array(proba[:, labels.positive_index], pa.float64())
        else:
            for i, label in enumerate(labels.classes):
                out[f"{p}probability_{label}"] = pa.array(proba[:, i], pa.float64())
        return out


def _no_reasons() -> pa.Array:
    import pyarrow as pa

    return pa.array([], pa.string())


def _empty_batch(schema: pa.Schema, columns: list[str]) -> pa.RecordBatch:
    """A zero-row batch with the input's column types (to publish an empty but typed output)."""
    import pyarrow as pa

    return pa.RecordBatch.from_pylist([], schema=pa.schema([schema.field(c) for c in columns]))

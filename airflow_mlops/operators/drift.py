"""Check a data partition for drift against the champion's training reference with Evidently 0.7."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops import reports, tables
from airflow_mlops.hooks.mlflow import REFERENCE_ARTIFACT
from airflow_mlops.links.reports import DriftReportLink
from airflow_mlops.operators.base import (
    READ_TEMPLATE_FIELDS,
    PeriodicCheckOperator,
    check_outcome,
    mlops_template_fields,
)
from airflow_mlops.utils import drift_methods
from airflow_mlops.values import as_mapping, optional_float, optional_text

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from airflow_mlops.spec import FeatureSpec

#: Rows per side given to Evidently. Its cost is super-linear in rows (1M vs 1M: ~114 s, 2.2 GB),
#: while a seeded 100k-row sample keeps the verdict (see bench/RESULTS.md) in ~10 s.
DEFAULT_SAMPLE_ROWS = 100_000
#: Share of drifted columns that means dataset drift, tuned on the reference churn data (the batch
#: DAG's form default); Evidently's ``DataDriftPreset`` defaults to 0.5.
DEFAULT_DRIFT_SHARE = 0.2


def sample_table(uri: str, columns: list[str], rows: int, seed: int, reader: tables.TableReader) -> pd.DataFrame:
    """Read at most ``rows`` rows of a table, streaming: a seeded uniform sample of each batch.

    Every batch keeps the same fraction (``rows / total rows``), so memory is bounded by the sample
    plus one batch, and the same inputs and seed give the same sample.
    """
    import numpy as np
    import pandas as pd

    files = reader.files(uri)
    total = 0
    for file_uri in files:
        if tables.table_format(file_uri) != "parquet":
            total = -1  # csv has no cheap row count: read it whole
            break
        total += tables.parquet_row_count(file_uri, conn_id=reader.conn_id)  # a corrupt file fails here, named
    fraction = 1.0 if total <= rows or total < 0 else rows / total
    rng = np.random.default_rng(seed)
    parts = []
    for batch in reader.batches(uri, columns=columns):
        frame = batch.to_pandas()
        if fraction < 1.0:
            frame = frame[rng.random(len(frame)) < fraction]
        parts.append(frame)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


class EvidentlyDriftCheckOperator(PeriodicCheckOperator):
    """Compare a partition with a reference sample using Evidently's ``DataDriftPreset``.

    The reference is the sample the champion's training run logged (``reference/reference.parquet``)
    or ``reference_uri``. Column roles come from the FeatureSpec (numeric vs categorical features;
    ids and target are left out). Both sides are sampled to ``sample_rows`` rows, seeded.

    Evidently has no single dataset-drift flag: drift is detected when the share of drifted columns
    reaches ``drift_share`` (``share >= drift_share``, the boundary counts as drift, as in Evidently's
    own "share of drifted columns less than" test).

    With ``consecutive`` = N > 1, ``trigger_retraining`` is true only when this period and the N-1
    periods before it all drifted (hysteresis against one noisy month); the summaries of earlier
    periods are read from the reports location.

    :param current_uri: partition to check (templated).
    :param spec_uri: FeatureSpec YAML (templated).
    :param model_name: registered model whose champion supplies the reference (templated).
    :param reference_uri: explicit reference table instead of the champion's (templated).
    :param model_ref: alias or version whose training reference is used (templated; ``champion``).
    :param period: label of the checked period, e.g. ``{{ ds[:7] }}`` (templated).
    :param drift_share: share of drifted columns that means dataset drift (templated). Default 0.2, the
        value tuned on the reference churn data and used by the reference batch DAG's form, the
        benchmarks and the small-month measurements (Evidently's own default is 0.5).
    :param numeric_method: Evidently method for every numeric column, e.g. ``"psi"`` (templated);
        default chosen per column from both sample sizes (:mod:`airflow_mlops.utils.drift_methods`:
        KS / chi-square / z when the smaller side has at most ``small_sample_rows`` rows, Wasserstein /
        Jensen-Shannon beyond).
    :param categorical_method: the same for categorical columns (templated).
    :param method: one method for both kinds (it must apply to both, e.g. ``"psi"``).
    :param column_methods: ``{column: method}`` overrides (templated).
    :param small_sample_rows: the smaller side's row count up to which hypothesis tests are used.
    :param threshold: drift threshold of the chosen methods (templated): a p-value for tests, a distance
        for distances. The default choice switches between the two with the sample sizes, so a
        threshold needs ``numeric_method`` and ``categorical_method`` (or ``method``) set too.
    :param sample_rows: rows per side (seeded sample).
    :param seed: sampling seed.
    :param on_drift: what to do when drift is detected (one of :data:`~airflow_mlops.operators.base.OUTCOMES`):
        ``fail``, ``skip``, or ``continue`` (default: log a warning, succeed; ``trigger_retraining`` says it) (templated).
    :param consecutive: drifted periods in a row needed before ``trigger_retraining`` (templated).
    :param reports_uri: the folder of this model's drift records (templated): each period is written
        to ``period=<period>/`` below it, and the hysteresis reads the earlier periods there; default
        ``<reports root>/drift/<model>``.
    :param bool|None require_marker: a partition folder must have its ``_SUCCESS`` marker (default ``[mlops] require_marker``).
    :param dict|str|None csv_options: CSV dialect (see :class:`~airflow_mlops.operators.base.MlopsTableOperator`).
    :return: (XCom) ``{"drift_detected", "share", "drifted_columns", "columns", "drift_share",
        "trigger_retraining", "period", "report_uri", "summary_uri", "reference_uri", "model_version" (the version whose
        reference was compared; None with reference_uri), "rows",
        "methods" ({column: method})}``.
    """

    template_fields: Sequence[str] = mlops_template_fields(
        "current_uri", "spec_uri", "model_name", "reference_uri", "model_ref", "period", "drift_share",
        "column_methods", "threshold", "on_drift", "consecutive", "reports_uri", "numeric_method", "categorical_method",
        *READ_TEMPLATE_FIELDS,
    )  # fmt: skip
    operator_extra_links = (DriftReportLink(),)
    ui_color = "#f3e5f5"
    records_kind = reports.DRIFT
    flag_key = "drift_detected"

    def __init__(
        self,
        *,
        current_uri: str,
        spec_uri: str,
        model_name: str,
        period: str,
        reference_uri: str | None = None,
        model_ref: str = "champion",
        drift_share: float | str = DEFAULT_DRIFT_SHARE,
        method: str | None = None,
        numeric_method: str | None = None,
        categorical_method: str | None = None,
        column_methods: dict[str, str] | str | None = None,
        small_sample_rows: int = drift_methods.SMALL_SAMPLE_ROWS,
        threshold: float | str | None = None,
        sample_rows: int = DEFAULT_SAMPLE_ROWS,
        seed: int = 42,
        on_drift: str = "continue",
        consecutive: int | str = 1,
        reports_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_name=model_name, period=period, consecutive=consecutive, reports_uri=reports_uri, **kwargs)
        self.current_uri = current_uri
        self.spec_uri = spec_uri
        self.reference_uri = reference_uri
        self.model_ref = model_ref
        self.drift_share = drift_share
        self.method = method
        self.numeric_method = numeric_method
        self.categorical_method = categorical_method
        self.column_methods = column_methods
        self.small_sample_rows = small_sample_rows
        self.threshold = threshold
        self.sample_rows = sample_rows
        self.seed = seed
        self.on_drift = on_drift

    #: The model version whose training reference was compared (``None`` with an explicit ``reference_uri``).
    _version: str | None = None

    def _reference(self, spec: FeatureSpec) -> tuple[pd.DataFrame, str]:
        if self.reference_uri:
            return sample_table(self.reference_uri, spec.feature_columns, self.sample_rows, self.seed, self.reader), self.reference_uri
        import tempfile

        import mlflow

        with self.mlflow_hook.activated():
            version = self.mlflow_hook.registry.resolve_version(self.model_name, self.model_ref)
            uri = f"runs:/{version.run_id}/{REFERENCE_ARTIFACT}"
            with tempfile.TemporaryDirectory() as tmp:
                local = mlflow.artifacts.download_artifacts(uri, dst_path=tmp)
                frame = sample_table(local, spec.feature_columns, self.sample_rows, self.seed, tables.TableReader())
        self._version = str(version.version)
        return frame, f"{uri} ({self.model_name} v{version.version})"

    def _methods(self, spec: FeatureSpec, current: pd.DataFrame, reference: pd.DataFrame) -> dict[str, str]:
        """Each column's drift method (a bad choice fails here, before Evidently runs, without retry)."""
        try:
            explicit = optional_text(self.method) or (optional_text(self.numeric_method) and optional_text(self.categorical_method))
            if optional_text(self.threshold) is not None and not explicit:
                raise ValueError(
                    "threshold needs the methods it applies to: set numeric_method and categorical_method (or method); "
                    "the default switches between p-value tests and distances with the sample sizes"
                )
            return drift_methods.choose(
                spec, reference, current,
                numeric_method=optional_text(self.numeric_method) or optional_text(self.method),
                categorical_method=optional_text(self.categorical_method) or optional_text(self.method),
                column_methods=as_mapping(self.column_methods, "column_methods"),
                small_sample_rows=int(self.small_sample_rows),
            )  # fmt: skip
        except ValueError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{exc} (no retry: a configuration error does not heal)") from exc

    def _run_report(self, spec: FeatureSpec, current: pd.DataFrame, reference: pd.DataFrame, methods: dict[str, str]) -> Any:
        import os

        os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently telemetry off unless the user opted in
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(numerical_columns=spec.numeric_columns, categorical_columns=spec.categorical_columns)
        preset = DataDriftPreset(
            columns=spec.feature_columns,
            drift_share=float(self.drift_share),
            per_column_method=methods,
            threshold=optional_float(self.threshold, "threshold"),
        )
        current_ds = Dataset.from_pandas(current, data_definition=definition)
        reference_ds = Dataset.from_pandas(reference, data_definition=definition)
        return Report([preset], include_tests=True).run(current_ds, reference_ds)  # current first

    def execute(self, context: Context) -> dict[str, Any]:
        check_outcome("on_drift", self.on_drift)
        self.reset_links(context)
        share_limit = float(self.drift_share)
        if not 0 < share_limit <= 1:
            raise ValueError(f"drift_share must be in (0, 1], got {share_limit}")
        consecutive = int(self.consecutive)
        spec = self.load_spec(self.spec_uri)
        current = sample_table(self.current_uri, spec.feature_columns, self.sample_rows, self.seed, self.reader)
        reference, reference_label = self._reference(spec)
        if current.empty or reference.empty:
            raise ValueError(f"drift check needs rows on both sides: current {len(current)}, reference {len(reference)} ({self.current_uri})")
        self.log.info("Drift check of %s (%d rows) against %s (%d rows)", self.current_uri, len(current), reference_label, len(reference))

        methods = self._methods(spec, current, reference)
        snapshot = self._run_report(spec, current, reference, methods)
        result = snapshot.dict()
        self.lineage_report = result  # lineage reports each column's drift score
        counted = next(m for m in result["metrics"] if m["config"]["type"].endswith("DriftedColumnsCount"))
        drifted = sorted(
            t["metric_config"]["params"]["column"]
            for t in result["tests"]
            if t["metric_config"]["params"].get("type", "").endswith("ValueDrift") and t["status"] == "FAIL"
        )
        share = float(counted["value"]["share"])
        detected = share >= share_limit
        trigger = self.asks_for_retraining(detected)
        written = self.period_records()
        html_uri = f"{written}/{reports.REPORT}"
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            snapshot.save_html(f"{tmp}/report.html")
            with open(f"{tmp}/report.html", encoding="utf-8") as handle:
                tables.write_text(handle.read(), html_uri, conn_id=self.data_conn_id)
        summary = {
            "period": self.period,
            "drift_detected": detected,
            "share": share,
            "drift_share": share_limit,
            "drifted_columns": drifted,
            "columns": len(spec.feature_columns),
            "trigger_retraining": trigger,
            "consecutive": consecutive,
            "rows": {"current": len(current), "reference": len(reference)},
            "methods": methods,
            "current_uri": self.current_uri,
            "reference_uri": reference_label,
            "model_version": self._version,
            "report_uri": html_uri,
        }
        summary["summary_uri"] = tables.write_text(
            json.dumps(summary | {"evidently": result}, indent=2, default=str), f"{written}/{reports.SUMMARY}", conn_id=self.data_conn_id
        )
        context["ti"].xcom_push(key="drift_report_uri", value=html_uri)
        self.log.info(
            "Drift %s for %s: %.0f%% of columns drifted (limit %.0f%%): %s", "DETECTED" if detected else "not detected",
            self.period, 100 * share, 100 * share_limit, drifted,
        )  # fmt: skip
        if not detected:
            return summary
        from airflow_mlops.exceptions import DriftDetectedError

        message = f"drift detected in {self.current_uri}: {drifted} ({share:.0%} of columns)"
        return self.settle(context, summary, self.on_drift, DriftDetectedError(message, summary=summary))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the checked partition (schema of the spec's features, rows checked, one "no drift"
        assertion per feature and one on the share, the ``mlops_drift`` facet with share, threshold and
        each column's method, score and verdict) and the reference (a table, or the model version whose
        training sample it is) as inputs."""
        from airflow_mlops import lineage

        if not lineage.available():
            return None
        spec, summary = self.lineage_spec, self.lineage_summary
        schema = {"schema": lineage.schema_facet(spec, spec.feature_columns)} if spec else {}
        if not summary:
            return lineage.operator_lineage(inputs=[lineage.input_dataset(self.current_uri, schema)])
        columns = lineage.drift_columns(getattr(self, "lineage_report", None) or {}, summary["drifted_columns"])
        checks = [
            {"assertion": "no_drift", "column": c, "success": not test["drifted"], "name": f"drift ({test['method']})",
             "expected": test["threshold"], "actual": test["score"], "params": {"method": test["method"]}}
            for c, test in columns.items()
        ]  # fmt: skip
        checks.append(
            {"assertion": "drifted_columns_share", "success": not summary["drift_detected"], "expected": f"< {summary['drift_share']}", "actual": summary["share"]}
        )
        drift = lineage.custom_facet(
            "mlops_drift", period=summary["period"], share=summary["share"], driftShare=summary["drift_share"], detected=summary["drift_detected"],
            reference=summary["reference_uri"], rowCount=summary["rows"]["current"], referenceRowCount=summary["rows"]["reference"], columns=columns,
        )  # fmt: skip
        checked = lineage.input_dataset(
            self.current_uri, schema | {"mlops_drift": drift},
            {"dataQualityMetrics": lineage.metrics_facet(summary["rows"]["current"]), "dataQualityAssertions": lineage.assertions_facet(checks)},
        )  # fmt: skip
        table, model, version = lineage.parse_reference(summary["reference_uri"])
        tracking_uri = lineage.resolved_tracking_uri(self)
        reference = (
            [lineage.input_dataset(table, schema)] if table
            else [lineage.model_version_dataset(tracking_uri, str(model), str(version))] if tracking_uri and version else []
        )  # fmt: skip
        return lineage.operator_lineage(inputs=[checked, *reference])

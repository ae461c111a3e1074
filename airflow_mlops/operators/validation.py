"""Validate a table against its FeatureSpec (and an optional GX suite) with Great Expectations."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops import tables
from airflow_mlops.exceptions import DataValidationError
from airflow_mlops.links.reports import ValidationReportLink
from airflow_mlops.operators.base import READ_TEMPLATE_FIELDS, MlopsTableOperator, check_outcome, mlops_template_fields
from airflow_mlops.reports import validation_folder

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context


class GxValidateTableOperator(MlopsTableOperator):
    """Validate a table (file or partition) with Great Expectations against expectations derived from
    a FeatureSpec: columns present, dtypes, non-null where required, ranges, allowed categories, at
    least one row; plus an optional user GX expectation suite (JSON).

    The table is streamed in batches of ``batch_rows`` rows, so memory is bounded by the batch, not the
    table. The spec's expectations are judged in one pass of Arrow kernels (:mod:`airflow_mlops.rules`,
    the rule code batch inference enforces the spec with), including the uniqueness of the spec's
    ``id_columns`` over the whole table, and reported as GX results (the same verdicts, counts and
    examples GX gives on the same batches; see :func:`~airflow_mlops.utils.gx_engine.validate_batches`);
    a suite of your own runs through GX on the same batches in the same pass and joins the result.
    The full result JSON and GX Data Docs HTML are written under ``reports_uri``.

    :param table_uri: file or partition folder to validate (templated).
    :param spec_uri: FeatureSpec YAML (templated).
    :param labelled: the table must hold the target too (training/holdout); ``False`` for scoring data.
    :param suite_uri: optional GX expectation suite JSON added to the spec's expectations (templated).
    :param on_failure: what to do when the table fails its expectations (one of
        :data:`~airflow_mlops.operators.base.OUTCOMES`): ``fail`` (raise :class:`DataValidationError`),
        ``skip`` (skip this task and so its downstream) or ``continue`` (log a warning, succeed) (templated).
    :param reports_uri: folder for ``result.json`` and ``data_docs.html`` (templated); default
        ``<reports root>/validation/<dag>/<run>/<task>``.
    :param batch_rows: rows per validated batch.
    :param engine: ``arrow`` (default: the spec's expectations in Arrow, as above) or ``gx`` (every
        expectation through GX on pandas batches, the spec's uniqueness left out: the former path, kept to
        compare with).
    :param bool|None require_marker: a partition folder must have its ``_SUCCESS`` marker (default ``[mlops] require_marker``).
    :param dict|str|None csv_options: CSV dialect (see :class:`~airflow_mlops.operators.base.MlopsTableOperator`).
    :return: (XCom) ``{"success", "table_uri", "rows", "batches", "evaluated", "successful",
        "failed": [{"expectation", "column", ...}] (at most 20), "tolerated": [...] (expectations met
        within the FeatureSpec's tolerance that some rows broke, with their counts and examples, as
        ``failed`` lists them), "report_uri", "data_docs_uri"}``; pushed before any failure is raised,
        so it survives one.
    """

    template_fields: Sequence[str] = mlops_template_fields("table_uri", "spec_uri", "suite_uri", "on_failure", "reports_uri", *READ_TEMPLATE_FIELDS)
    operator_extra_links = (ValidationReportLink(),)
    ui_color = "#ffefd5"

    def __init__(
        self,
        *,
        table_uri: str,
        spec_uri: str,
        labelled: bool = True,
        suite_uri: str | None = None,
        on_failure: str = "fail",
        reports_uri: str | None = None,
        batch_rows: int = 500_000,
        engine: str = "arrow",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table_uri = table_uri
        self.spec_uri = spec_uri
        self.labelled = labelled
        self.suite_uri = suite_uri
        self.on_failure = on_failure
        self.reports_uri = reports_uri
        self.batch_rows = batch_rows
        if engine not in ("arrow", "gx"):
            raise ValueError(f"engine must be 'arrow' or 'gx', not {engine!r}")
        self.engine = engine

    def _frames(self) -> Iterator[pd.DataFrame]:
        for batch in self.reader.batches(self.table_uri, batch_rows=self.batch_rows):
            yield batch.to_pandas()

    def execute(self, context: Context) -> dict[str, Any]:
        check_outcome("on_failure", self.on_failure)
        self.reset_links(context)
        from airflow_mlops.utils import data_docs, expectations, gx_batches, gx_engine

        expectations.gx_analytics_off()
        spec = self.load_spec(self.spec_uri)
        configs = expectations.spec_expectations(spec, labelled=self.labelled, unique=self.engine == "arrow")
        theirs = []
        if self.suite_uri:
            theirs = expectations.load_suite_json(tables.read_text(self.suite_uri, conn_id=self.data_conn_id), source=self.suite_uri)
        # Fail fast (and clearly) on an unreadable or incomplete table before GX starts.
        files = self.reader.files(self.table_uri)
        self.log.info("Validating %s (%d file(s)) against %d expectations from %s", self.table_uri, len(files), len(configs) + len(theirs), self.spec_uri)

        suite_name = f"{spec.name}_{'labelled' if self.labelled else 'scoring'}"
        try:
            if self.engine == "gx":
                merged = gx_batches.validate_frames(self._frames(), configs + theirs, suite_name=suite_name)
            else:
                batches = self.reader.batches(self.table_uri, batch_rows=self.batch_rows)
                merged = gx_engine.validate_batches(batches, configs, suite_name=suite_name, user_configs=theirs)
        except expectations.WholeTableOnlyError as exc:  # a suite that batches cannot judge: a configuration error, no retry
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{self.suite_uri}: {exc}") from exc

        reports = (self.reports_uri or validation_folder(context)).rstrip("/")
        result_uri = tables.write_text(
            json.dumps(merged.result.to_json_dict(), indent=2, default=str), f"{reports}/result.json", conn_id=self.data_conn_id
        )
        docs_uri = tables.write_text(data_docs.render_data_docs(merged.result), f"{reports}/data_docs.html", conn_id=self.data_conn_id)
        stats = merged.result.statistics
        self.lineage_validation = merged.result  # lineage reports every expectation's outcome
        summary = {
            "success": merged.success,
            "table_uri": self.table_uri,
            "rows": merged.rows,
            "batches": merged.batches,
            "evaluated": stats["evaluated_expectations"],
            "successful": stats["successful_expectations"],
            "failed": merged.failures[: expectations.MAX_FAILURES_IN_SUMMARY],
            "tolerated": merged.tolerated[: expectations.MAX_FAILURES_IN_SUMMARY],
            "report_uri": result_uri,
            "data_docs_uri": docs_uri,
        }
        context["ti"].xcom_push(key="validation_report_uri", value=docs_uri)
        for tolerated in merged.tolerated:
            self.log.warning("Within the spec's tolerance: %s", expectations.describe_failure(tolerated))
        if merged.success:
            self.log.info("Validation of %s passed: %d rows, %d expectations", self.table_uri, merged.rows, stats["evaluated_expectations"])
            return summary
        described = "; ".join(expectations.describe_failure(f) for f in merged.failures[:5])
        message = f"{self.table_uri} failed {len(merged.failures)} expectation(s): {described}. Report: {docs_uri}"
        return self.settle(context, summary, self.on_failure, DataValidationError(message, summary=summary))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the validated table with the spec's schema, the rows read, and one
        data-quality assertion per expectation (type, column, pass/fail, expected and observed)."""
        from airflow_mlops import lineage

        if not lineage.available():
            return None
        spec, result = self.lineage_spec, getattr(self, "lineage_validation", None)
        facets = {"schema": lineage.schema_facet(spec, spec.training_columns() if self.labelled else spec.scoring_columns())} if spec else {}
        checks = {}
        if result is not None:
            checks = {
                "dataQualityAssertions": lineage.assertions_facet(lineage.gx_assertions(result)),
                "dataQualityMetrics": lineage.metrics_facet((self.lineage_summary or {}).get("rows")),
            }
        return lineage.operator_lineage(inputs=[lineage.input_dataset(self.table_uri, facets, checks)])

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """OpenLineage of a failed validation: the same facets, the failed expectations with ``success: false``."""
        return self.get_openlineage_facets_on_complete(task_instance)

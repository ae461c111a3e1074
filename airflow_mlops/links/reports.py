"""Extra links to the validation, drift and quality reports a task wrote.

The operators push the report's storage URI (``validation_report_uri``, ``drift_report_uri``, ``quality_report_uri``); the
worker turns it into a browsable URL when the task ends (:func:`airflow_mlops.reports.url`) and stores that as the
link. Reports under the reports root (``file://`` or ``s3://``) are served by the MLOps plugin at
``/mlops/reports/<path below the reports root>``, so the link is a path on the Airflow API server and
the browser sends the user's Airflow session with it. A report elsewhere, or any error, gives no link.
"""

from __future__ import annotations

from airflow_mlops import reports
from airflow_mlops.links.mlflow import XComUrlLink


class ReportLink(XComUrlLink):
    """A link to a report whose storage URI the operator pushed to XCom under ``key``."""

    @classmethod
    def url_from(cls, value: str) -> str:
        """The report's browsable URL (:func:`airflow_mlops.reports.url`)."""
        return reports.url(value)


class ValidationReportLink(ReportLink):
    """"Validation report": the Great Expectations Data Docs page of the validation."""

    name = "Validation report"
    key = "validation_report_uri"


class DriftReportLink(ReportLink):
    """"Drift report": the Evidently HTML report of the drift check."""

    name = "Drift report"
    key = "drift_report_uri"


class QualityReportLink(ReportLink):
    """"Quality report": the Evidently classification/regression report of a labelled period."""

    name = "Quality report"
    key = "quality_report_uri"

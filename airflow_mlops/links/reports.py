"""Extra links to the validation and drift reports a task wrote.

The operators push the report's storage URI (``validation_report_uri`` / ``drift_report_uri``); the
worker turns it into a browsable URL when the task ends (:func:`report_url`) and stores that as the
link. Reports under the reports root (``file://`` or ``s3://``) are served by the MLOps plugin at
``/mlops/reports/<path below the reports root>``, so the link is a path on the Airflow API server and
the browser sends the user's Airflow session with it. A report elsewhere, or any error, gives no link.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

from airflow_mlops import settings
from airflow_mlops.links.mlflow import XComUrlLink

#: Where the plugin's FastAPI app is mounted on the API server (see ``airflow_mlops.plugins``).
PLUGIN_PREFIX = "/mlops"
REPORTS_ROUTE = f"{PLUGIN_PREFIX}/reports"


def _api_base_path() -> str:
    """Path part of ``[api] base_url`` (an API server behind a path prefix), without trailing slash."""
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="") or ""
    return urlsplit(base).path.rstrip("/")


def report_relative_path(uri: str, root: str | None = None) -> str | None:
    """Return ``uri``'s path below the reports root (``root``, default ``settings.reports_root()``),
    percent-decoded, or ``None`` when ``uri`` is not under it."""
    # Compared decoded: Path.as_uri() writes "period%3D2025-01" where the operators write "period=2025-01".
    base = unquote((root or settings.reports_root()).rstrip("/"))
    text = unquote(str(uri))
    if "://" not in text and text.startswith("/"):
        text = "file://" + text  # a plain local path, as tests and users sometimes pass
    if not text.startswith(base + "/"):
        return None
    relative = text[len(base) + 1 :]
    return relative or None


def report_url(uri: str | None, root: str | None = None) -> str:
    """Return a browsable URL for a report URI, or ``""``.

    ``http(s)://`` URIs are returned as they are; URIs under the reports root become
    ``[<api base path>]/mlops/reports/<relative path>``; anything else has no URL.
    """
    if not uri:
        return ""
    if uri.startswith(("http://", "https://")):
        return uri
    relative = report_relative_path(uri, root)
    if relative is None:
        return ""
    return f"{_api_base_path()}{REPORTS_ROUTE}/{quote(relative)}"


class ReportLink(XComUrlLink):
    """A link to a report whose storage URI the operator pushed to XCom under ``key``."""

    @classmethod
    def url_from(cls, value: str) -> str:
        """The report's browsable URL (:func:`report_url`)."""
        return report_url(value)


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

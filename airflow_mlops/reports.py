"""Where reports live and how they are reached: the one definition of the reports layout.

Below the reports root (``[mlops] reports_root``, default ``<data root>/reports``)::

    validation/<dag>/<run>/<task>[_<map index>]/   result.json, data_docs.html
    drift/<model>/period=<YYYY-MM>/                report.html, summary.json
    quality/<model>/period=<YYYY-MM>/              report.html, summary.json

The operators write there, the hysteresis reads earlier periods from there, the extra links and the
MLOps plugin turn those URIs into URLs served by the plugin at ``/mlops/reports/<path below the root>``.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from airflow_mlops import settings, tables
from airflow_mlops.periods import month_name, month_ordinal

if TYPE_CHECKING:
    from collections.abc import Iterable

    from airflow.sdk import Context

log = logging.getLogger(__name__)

#: Where the plugin's FastAPI app is mounted on the API server (see ``airflow_mlops.plugins``).
PLUGIN_PREFIX = "/mlops"
REPORTS_ROUTE = f"{PLUGIN_PREFIX}/reports"
#: The periodic checks: each writes ``<kind>/<model>/period=<period>/summary.json``.
DRIFT = "drift"
QUALITY = "quality"
SUMMARY = "summary.json"
REPORT = "report.html"


def root() -> str:
    """The reports root URI, without a trailing slash."""
    return settings.reports_root().rstrip("/")


def validation_folder(context: Context) -> str:
    """``<root>/validation/<dag_id>/<run_id>/<task_id>[_<map_index>]``: stable across tries, unique per task."""
    ti = context["ti"]
    run = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in ti.run_id)
    mapped = f"_{ti.map_index}" if getattr(ti, "map_index", -1) not in (-1, None) else ""
    return f"{root()}/validation/{ti.dag_id}/{run}/{ti.task_id}{mapped}"


def model_folder(kind: str, model_name: str, base: str | None = None) -> str:
    """The folder of one model's periodic ``kind`` checks: ``base`` when given, else ``<root>/<kind>/<model>``."""
    return (base or f"{root()}/{kind}/{model_name}").rstrip("/")


def period_folder(folder: str, period: str) -> str:
    """``<folder>/period=<period>``: one check's report and summary."""
    return f"{folder}/period={period}"


def earlier_periods(folder: str, period: str, needed: int, flag: str, *, conn_id: str | None) -> bool:
    """Whether the ``needed`` periods before ``period`` all have a summary in ``folder`` whose ``flag`` is true
    (the hysteresis of the drift and quality checks)."""
    try:
        ordinal = month_ordinal(period)
    except ValueError as exc:
        raise ValueError(f"consecutive > 1 needs period as YYYY-MM, got {period!r}") from exc
    for back in range(1, needed + 1):
        summary_uri = f"{period_folder(folder, month_name(ordinal - back))}/{SUMMARY}"
        if not tables.storage_path(summary_uri, conn_id=conn_id).exists():
            return False
        if not json.loads(tables.read_text(summary_uri, conn_id=conn_id)).get(flag):
            return False
    return True


def summaries(
    kind: str, model_name: str, fields: Iterable[str], *, reports_root: str | None = None, limit: int = 24
) -> list[dict[str, Any]]:
    """The latest ``limit`` summaries of a model's ``kind`` checks below ``reports_root`` (default
    :func:`root`), newest period first, reduced to ``fields`` plus ``report_url`` and ``summary_url``.
    Unreadable summaries (a check still being written, a foreign folder) are skipped; an unlistable
    folder gives ``[]`` with a warning."""
    top = (reports_root or root()).rstrip("/")
    folder = f"{top}/{kind}/{model_name}"
    listing = tables.storage_path(folder)
    try:
        if not listing.is_dir():
            return []
        periods = sorted((c.name for c in listing.iterdir() if c.name.startswith("period=")), reverse=True)
    except OSError:
        log.warning("Cannot list %s checks under %s", kind, folder, exc_info=True)
        return []
    found = []
    for period in periods[:limit]:
        summary_uri = f"{folder}/{period}/{SUMMARY}"
        try:
            summary = json.loads(tables.read_text(summary_uri))
        except (ValueError, OSError):
            continue
        row = {k: summary.get(k) for k in fields}
        row["period"] = summary.get("period") or period.removeprefix("period=")
        row["report_url"] = url(summary.get("report_uri"), top)
        row["summary_url"] = url(summary_uri, top)
        found.append(row)
    return found


# -- URLs ------------------------------------------------------------------------------------------


def api_base_path() -> str:
    """Path part of ``[api] base_url`` (an API server behind a path prefix), without trailing slash."""
    from airflow.sdk import conf

    base = conf.get("api", "base_url", fallback="") or ""
    return urlsplit(base).path.rstrip("/")


def relative_path(uri: str, reports_root: str | None = None) -> str | None:
    """Return ``uri``'s path below the reports root (``reports_root``, default :func:`root`),
    percent-decoded, or ``None`` when ``uri`` is not under it."""
    # Compared decoded: Path.as_uri() writes "period%3D2025-01" where the operators write "period=2025-01".
    base = unquote((reports_root or root()).rstrip("/"))
    text = unquote(str(uri))
    if "://" not in text and text.startswith("/"):
        text = "file://" + text  # a plain local path, as tests and users sometimes pass
    if not text.startswith(base + "/"):
        return None
    return text[len(base) + 1 :] or None


def url(uri: str | None, reports_root: str | None = None) -> str:
    """Return a browsable URL for a report URI, or ``""``.

    ``http(s)://`` URIs are returned as they are; URIs under the reports root become
    ``[<api base path>]/mlops/reports/<relative path>``; anything else has no URL.
    """
    if not uri:
        return ""
    if uri.startswith(("http://", "https://")):
        return uri
    relative = relative_path(uri, reports_root)
    if relative is None:
        return ""
    return f"{api_base_path()}{REPORTS_ROUTE}/{quote(relative)}"

"""What the MLOps page shows, gathered from MLflow and the reports root; and safe report lookup.

No web framework here: the FastAPI app (:mod:`airflow_mlops.plugins.app`) only renders what these
functions return, so they are tested without a server. MLflow is reached only through
``MlflowHook.client`` (imported inside the hook: it costs seconds), never ``MlflowHook.activated()``:
the API server answers requests on several threads, and ``activated()`` changes process-wide MLflow
settings and environment variables under all of them.

Which models and reports a user may see is decided before anything here is read
(:mod:`airflow_mlops.plugins.access`): :func:`registered_models` returns each model with the tags its
versions carry (its provenance), and only the admitted ones are summarised by :func:`model_summary`.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from airflow_mlops import reports, settings, tables
from airflow_mlops.hooks.registry import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, quote_filter
from airflow_mlops.plugins import access

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from airflow_mlops.hooks.mlflow import MlflowHook

log = logging.getLogger(__name__)

DECISION_PREFIX = "mlops.decision."
#: Version tags the training window writes (``airflow_mlops.operators.window``): what a version learnt
#: from and the labelled month its metrics were measured on.
HOLDOUT_MONTH_TAG = "mlops.window.holdout_month"
TRAIN_MONTHS_TAG = "mlops.window.train_months"
_MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
#: Monthly checks and decisions shown per model; older ones stay in MLflow and the reports root.
MAX_PERIODS = 24
MAX_HISTORY = 50
#: Fields of a drift summary (written by ``EvidentlyDriftCheckOperator``) the page shows.
DRIFT_FIELDS = ("period", "drift_detected", "share", "drift_share", "drifted_columns", "columns", "trigger_retraining", "rows")
#: Fields of a quality summary (written by ``ModelQualityCheckOperator``) the page shows.
QUALITY_FIELDS = (
    "period", "model_version", "metric", "value", "baseline", "limit", "decayed", "trigger_retraining", "coverage", "rows",
    "segments", "flagged_segments",
)  # fmt: skip


class ReportPathError(ValueError):
    """A report path that is malformed or tries to leave the reports root (HTTP 400)."""


class ReportNotFoundError(LookupError):
    """No report file at that path below the reports root (HTTP 404)."""


# -- models ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisteredModel:
    """A registered model as read from the registry: its aliases and all its versions."""

    name: str
    aliases: dict[str, str] = field(default_factory=dict)
    versions: tuple[Any, ...] = ()

    @property
    def dags(self) -> frozenset[str] | None:
        """The DAGs that trained or decided on its versions; ``None``: unknown provenance (see :mod:`~airflow_mlops.plugins.access`)."""
        return access.model_dags(dict(v.tags or {}) for v in self.versions)


def _run_data(client: MlflowClient, run_id: str | None) -> tuple[dict[str, float], dict[str, str]]:
    """The metrics (less MLflow's ``system/`` ones) and the params of a version's training run."""
    if not run_id:
        return {}, {}
    try:
        data = client.get_run(run_id).data
    except Exception:  # a deleted run must not hide the rest of the page
        log.warning("Cannot read metrics of MLflow run %s", run_id, exc_info=True)
        return {}, {}
    metrics = {k: float(v) for k, v in sorted(data.metrics.items()) if not k.startswith("system/")}
    return metrics, dict(data.params or {})


def holdout_month(tags: dict[str, str]) -> str | None:
    """The labelled month a version was judged on when it was trained (its ``mlops.window.holdout_month``
    tag), or ``None``: judged on a split of its training data, or trained outside a window."""
    month = (tags.get(HOLDOUT_MONTH_TAG) or "").strip()
    return month if _MONTH.match(month) else None


def measured_on(tags: dict[str, str], params: dict[str, str]) -> dict[str, Any]:
    """What a version's training metrics were measured on, for the page to say next to them.

    ``{"holdout_month": "2025-03" | None, "train_months": [...], "label": "..."}``: the label names the
    holdout month (and the months learnt from), else the share of the training data held out, else
    says nothing is recorded (a version trained without the provider's training operator).
    """
    month = holdout_month(tags)
    train_months = [m.strip() for m in (tags.get(TRAIN_MONTHS_TAG) or "").split(",") if _MONTH.match(m.strip())]
    if month:
        learnt = f"; trained on {', '.join(train_months)}" if train_months else ""
        label = f"holdout month {month}{learnt}"
    elif HOLDOUT_MONTH_TAG in tags or params.get("test_size"):
        try:
            share = f"{float(params.get('test_size') or ''):.0%} "
        except ValueError:
            share = ""
        label = f"a {share}split of the training data"
    else:
        label = "a holdout this version did not record"
    return {"holdout_month": month, "train_months": train_months, "label": label}


def _decision(tags: dict[str, str]) -> dict[str, str]:
    return {k.removeprefix(DECISION_PREFIX): v for k, v in sorted(tags.items()) if k.startswith(DECISION_PREFIX)}


def _version_info(hook: MlflowHook, name: str, version: Any, aliases: dict[str, str]) -> dict[str, Any]:
    metrics, params = _run_data(hook.client, version.run_id)
    tags = dict(version.tags or {})
    return {
        "version": str(version.version),
        "run_id": version.run_id,
        "status": version.status,
        "created_at": version.creation_timestamp,
        # search_model_versions leaves a version's aliases empty: take them from the registered model.
        "aliases": sorted(alias for alias, number in aliases.items() if str(number) == str(version.version)),
        "metrics": metrics,
        "measured_on": measured_on(tags, params),
        "decision": _decision(tags),
        "url": hook.model_version_url(name, version.version),
    }


def _history(versions: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Every recorded decision (promotion, rejection, rollback), newest first."""
    rows = []
    for version in versions:
        decision = _decision(dict(version.tags or {}))
        if decision.get("decision"):
            rows.append({"version": str(version.version), **decision})
    rows.sort(key=lambda row: (row.get("decided_at", ""), int(row["version"])), reverse=True)
    return rows[:MAX_HISTORY]


def _all_pages(search: Callable[..., Any]) -> list[Any]:
    """Every result of an MLflow search, page after page: a model's provenance is all its versions
    (one unseen version could name a DAG the user may not read), and a deployment can hold more
    models than one page (100 by default)."""
    found: list[Any] = []
    token = None
    while True:
        page = search(page_token=token)
        found.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return found


def _versions(client: MlflowClient, name: str) -> tuple[Any, ...]:
    return tuple(_all_pages(functools.partial(client.search_model_versions, f"name={quote_filter(name)}")))


def registered_models(hook: MlflowHook) -> list[RegisteredModel]:
    """Every registered model with its aliases and versions, by name (one versions search per model)."""
    client = hook.client
    registered = sorted(_all_pages(client.search_registered_models), key=lambda m: m.name)
    return [RegisteredModel(m.name, dict(m.aliases or {}), _versions(client, m.name)) for m in registered]


def registered_model(hook: MlflowHook, name: str) -> RegisteredModel | None:
    """Model ``name`` with its aliases and versions, or ``None`` when no such model is registered."""
    from airflow_mlops.hooks.registry import is_not_found

    client = hook.client
    try:
        aliases = dict(client.get_registered_model(name).aliases or {})
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise
    return RegisteredModel(name, aliases, _versions(client, name))


def model_summary(hook: MlflowHook, model: RegisteredModel) -> dict[str, Any]:
    """Champion, previous champion and a challenger that is not the champion (each with metrics, what
    they were measured on and their decision), decision history, and the latest drift and quality checks
    (newest first) of one registered model.

    A quality check of a month that was the scoring version's own holdout month is marked
    (``holdout_of_version``): that version was chosen on those labels, so the check is not an
    out-of-sample judgement.
    """
    by_number = {str(v.version): v for v in model.versions}
    roles: dict[str, Any] = {}
    for alias in (CHAMPION, PREVIOUS_CHAMPION):
        number = model.aliases.get(alias)
        found = by_number.get(str(number)) if number is not None else None
        roles[alias] = _version_info(hook, model.name, found, model.aliases) if found is not None else None
    challenger, champion = model.aliases.get(CHALLENGER), model.aliases.get(CHAMPION)
    pending = by_number.get(str(challenger)) if challenger is not None and str(challenger) != str(champion) else None
    holdouts = {number: holdout_month(dict(v.tags or {})) for number, v in by_number.items()}
    quality = [
        q | {"holdout_of_version": q.get("period") is not None and holdouts.get(str(q.get("model_version"))) == q.get("period")}
        for q in quality_checks(model.name)
    ]
    return {
        "name": model.name,
        "champion": roles[CHAMPION],
        "previous_champion": roles[PREVIOUS_CHAMPION],
        "challenger": str(challenger) if challenger is not None else None,
        "challenger_version": _version_info(hook, model.name, pending, model.aliases) if pending is not None else None,
        "versions": len(model.versions),
        "history": _history(model.versions),
        "drift": drift_checks(model.name),
        "quality": quality,
    }


# -- periodic checks ------------------------------------------------------------------------------


def drift_checks(model_name: str, root: str | None = None, limit: int = MAX_PERIODS) -> list[dict[str, Any]]:
    """The latest drift checks of a model, newest period first, from the summaries
    ``EvidentlyDriftCheckOperator`` writes (see :mod:`airflow_mlops.reports`)."""
    return reports.summaries(reports.DRIFT, model_name, DRIFT_FIELDS, reports_root=root, limit=limit)


def quality_checks(model_name: str, root: str | None = None, limit: int = MAX_PERIODS) -> list[dict[str, Any]]:
    """The latest quality checks of a model, newest period first, from the summaries
    ``ModelQualityCheckOperator`` writes (see :mod:`airflow_mlops.reports`)."""
    return reports.summaries(reports.QUALITY, model_name, QUALITY_FIELDS, reports_root=root, limit=limit)


# -- report files ----------------------------------------------------------------------------------


def check_relative(path: str) -> list[str]:
    """Split a request path below the reports root into segments, refusing anything that could leave it.

    Refused (:class:`ReportPathError`): empty, absolute, backslashes, NUL, ``.``/``..``/empty segments,
    and the same once more percent-decoded (a double-encoded ``%252e%252e`` reaches us as ``%2e%2e``).
    """
    if not path or "\x00" in path or "\\" in path or path.startswith("/"):
        raise ReportPathError(f"invalid report path {path!r}")
    segments = path.split("/")
    for segment in segments:
        decoded = unquote(segment)
        if segment in ("", ".", "..") or decoded in ("", ".", "..") or "/" in decoded or "\\" in decoded or "\x00" in decoded:
            raise ReportPathError(f"invalid report path {path!r}")
    return segments


@dataclass(frozen=True)
class ReportFile:
    """A report file found below the reports root: its name, how to read it, and where it really is.

    ``segments`` is the file's path below the root once symlinks are followed: a link inside the root
    may point into another DAG's or model's folder, so the app authorizes that path as well as the
    requested one.
    """

    name: str
    uri: str
    local_path: str | None = None
    segments: tuple[str, ...] = ()

    def read_bytes(self) -> bytes:
        """Return the file's content (local disk or object storage)."""
        if self.local_path is not None:
            return Path(self.local_path).read_bytes()
        return tables.storage_path(self.uri).read_bytes()


def find_report(path: str, root: str | None = None) -> ReportFile:
    """Return the report at ``path`` below the reports root.

    Local roots are resolved with symlinks followed and the result must still lie inside the
    (resolved) root, so a symlink cannot point outside it. Object stores have no symlinks; the
    segment check of :func:`check_relative` is what keeps a key below the root there.

    :raises ReportPathError: the path is malformed or leaves the root.
    :raises ReportNotFoundError: no such file.
    """
    segments = check_relative(path)
    base = (root or settings.reports_root()).rstrip("/")
    if base.startswith("file://") or "://" not in base:
        local_root = Path(unquote(urlsplit(base).path) if base.startswith("file://") else base).resolve()
        target = local_root.joinpath(*segments).resolve()
        if not target.is_relative_to(local_root) or target == local_root:
            raise ReportNotFoundError(path)
        if not target.is_file():
            raise ReportNotFoundError(path)
        return ReportFile(name=target.name, uri=target.as_uri(), local_path=os.fspath(target), segments=target.relative_to(local_root).parts)
    uri = f"{base}/{'/'.join(segments)}"
    try:
        if not tables.storage_path(uri).is_file():
            raise ReportNotFoundError(path)
    except OSError as exc:
        raise ReportNotFoundError(path) from exc
    return ReportFile(name=segments[-1], uri=uri, segments=tuple(segments))

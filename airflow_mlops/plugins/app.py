"""The MLOps FastAPI app, mounted by the plugin at ``/mlops`` on the Airflow API server.

Every route requires an authenticated Airflow user (a Bearer JWT or the UI's ``_token`` cookie; none
-> 401) whom the deployment's auth manager grants plugin access (``AccessView.PLUGINS``; refused ->
403). What each user then sees follows :mod:`airflow_mlops.plugins.access`: a model only if they may
read every DAG that trained or decided on its versions (models of unknown provenance and reports
outside the known layout: only users who may read every DAG). The auth manager is asked through
:mod:`airflow_mlops.plugins.permissions`.

- ``GET /mlops/``: the MLOps page (server-rendered HTML with inline SVG charts; the UI embeds it under
  "Browse > MLOps"), listing the models the user may see.
- ``GET /mlops/api/models``: per model the user may see, champion and previous champion with metrics,
  the decision history and the latest drift and quality checks (JSON). Others are omitted.
- ``GET /mlops/api/models/{name}``: the same for one model; 403 when the user may not see it
  (including a model that does not exist, so names cannot be probed), 404 when it is not registered
  and the user may read every DAG.
- ``GET /mlops/reports/{path}``: a file below the reports root (validation, drift, quality reports).
  Malformed or escaping paths -> 400; a path the user may not read -> 403, decided before the file is
  looked up (so existence cannot be probed) and again for where a symlink inside the root leads;
  missing files (or symlinks leaving the root) -> 404.

Refusals carry ``{"detail": "Forbidden"}`` and nothing else; errors never echo exception text (an
MLflow failure is logged and answered 503 with a fixed message).

Built only by :func:`create_app`, which the plugin calls inside the API server: importing FastAPI and
Airflow's API security module costs over a second, which workers loading plugins must not pay.
"""

from __future__ import annotations

import functools
import logging
import math
import mimetypes
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, Response

from airflow_mlops.plugins import access, charts, dashboard, permissions

log = logging.getLogger(__name__)

#: Reports contain scripts (Evidently, GX Data Docs). Served from Airflow's own origin, a sandboxed
#: document runs them in an opaque origin: they cannot read the session cookie or call the API.
REPORT_HEADERS = {"Content-Security-Policy": "sandbox allow-scripts allow-popups", "X-Content-Type-Options": "nosniff"}


def _hook() -> Any:
    from airflow_mlops.hooks.mlflow import MlflowHook

    return MlflowHook()


#: What a client sees when MLflow fails; the exception itself goes to the API server's log only
#: (its text can carry a tracking URI with credentials or a server's internals).
MLFLOW_UNAVAILABLE = "MLflow is not reachable; the API server log has the details"
#: The whole body of a refusal, as Airflow's own routes answer: no name, no reason.
FORBIDDEN = "Forbidden"


class MlflowUnavailableError(RuntimeError):
    """Reading MLflow failed; the cause is chained (``__cause__``) and logged, never shown."""


def _mlflow_unavailable(exc: Exception) -> HTTPException:
    cause = exc.__cause__ if isinstance(exc, MlflowUnavailableError) and isinstance(exc.__cause__, Exception) else exc
    log.error("MLOps page: MLflow request failed: %s", type(cause).__name__, exc_info=cause)
    return HTTPException(status_code=503, detail=MLFLOW_UNAVAILABLE)


def _forbidden() -> HTTPException:
    return HTTPException(status_code=403, detail=FORBIDDEN)


def visible_models(user: Any) -> list[dict[str, Any]]:
    """Summaries of the registered models ``user`` may see, by name.

    :raises MlflowUnavailableError: reading MLflow failed (errors of the auth manager propagate as they are).
    """
    hook = _hook()
    try:
        found = dashboard.registered_models(hook)
    except Exception as exc:
        raise MlflowUnavailableError from exc
    readable = permissions.readable(user, {dag for m in found for dag in (m.dags or ())})
    try:
        return [dashboard.model_summary(hook, m) for m in found if readable.admits(m.dags)]
    except Exception as exc:
        raise MlflowUnavailableError from exc


def may_read_report(user: Any, segments: Sequence[str]) -> bool:
    """Whether ``user`` may read the report at ``segments`` below the reports root.

    :raises MlflowUnavailableError: looking up the model a report belongs to failed.
    """
    if permissions.reads_all_dags(user):
        return True  # no registry lookup: what they may read does not depend on it
    owner = access.report_owner(segments)
    dags: frozenset[str] | None = None
    if owner.kind == "dag":
        dags = frozenset({owner.name})
    elif owner.kind == "model":
        try:
            model = dashboard.registered_model(_hook(), owner.name)
        except Exception as exc:
            raise MlflowUnavailableError from exc
        dags = model.dags if model is not None else None
    return permissions.readable(user, dags or ()).admits(dags)


def create_app() -> FastAPI:
    """Build the app; every route requires an authenticated Airflow user with plugin access."""
    # One Depends object read as the routes' default (FastAPI caches it per request: the app-wide
    # plugin-access dependency resolved the same user already).
    current_user = Depends(permissions.current_user())
    # No /docs or /openapi.json: those routes would not carry the app-wide auth dependency.
    app = FastAPI(
        title="MLOps", dependencies=[Depends(permissions.plugin_access())], docs_url=None, redoc_url=None, openapi_url=None
    )

    @app.get("/api/models")
    def list_models(user: Any = current_user) -> dict[str, Any]:
        try:
            return {"models": visible_models(user)}
        except MlflowUnavailableError as exc:
            raise _mlflow_unavailable(exc) from exc

    @app.get("/api/models/{name}")
    def get_model(name: str, user: Any = current_user) -> dict[str, Any]:
        hook = _hook()
        try:
            found = dashboard.registered_model(hook, name)
        except Exception as exc:
            raise _mlflow_unavailable(exc) from exc
        dags = found.dags if found is not None else None
        if not permissions.readable(user, dags or ()).admits(dags):
            raise _forbidden()
        if found is None:  # only a user who may read every DAG learns that a name is not registered
            raise HTTPException(status_code=404, detail="no such registered model")
        try:
            return dashboard.model_summary(hook, found)
        except Exception as exc:
            raise _mlflow_unavailable(exc) from exc

    @app.get("/reports/{path:path}")
    def report(path: str, user: Any = current_user) -> Response:
        try:
            segments = dashboard.check_relative(path)
        except dashboard.ReportPathError as exc:
            raise HTTPException(status_code=400, detail="invalid report path") from exc
        _authorize_report(user, segments)  # before the lookup: a refused user learns nothing of the file
        try:
            found = dashboard.find_report(path)
        except dashboard.ReportPathError as exc:
            raise HTTPException(status_code=400, detail="invalid report path") from exc
        except dashboard.ReportNotFoundError as exc:
            raise HTTPException(status_code=404, detail="no such report") from exc
        if list(found.segments) != segments:  # a symlink inside the root: its target must be readable too
            _authorize_report(user, found.segments)
        try:
            content = found.read_bytes()
        except FileNotFoundError as exc:
            raise HTTPException(status_code=404, detail="no such report") from exc
        media_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        return Response(content, media_type=media_type, headers=REPORT_HEADERS)

    @app.get("/", response_class=HTMLResponse)
    def page(user: Any = current_user) -> HTMLResponse:
        try:
            found = visible_models(user)
        except MlflowUnavailableError as exc:
            _mlflow_unavailable(exc)
            return HTMLResponse(render_page([], error=MLFLOW_UNAVAILABLE), status_code=503)
        return HTMLResponse(render_page(found))

    return app


def _authorize_report(user: Any, segments: Sequence[str]) -> None:
    try:
        allowed = may_read_report(user, segments)
    except MlflowUnavailableError as exc:
        raise _mlflow_unavailable(exc) from exc
    if not allowed:
        raise _forbidden()


# -- HTML ------------------------------------------------------------------------------------------

TEMPLATES = Path(__file__).with_name("templates")


#: A decimal number with more than four digits after the point, inside a text.
_LONG_DECIMAL = re.compile(r"(?<![\w.])-?[0-9]+\.[0-9]{5,}(?![0-9])")


def four_digits(value: Any) -> Any:
    """A score as the page shows it: four decimals, whether MLflow gave a float or (a tag) its text;
    anything that is not a number comes back unchanged (``None`` as an empty cell)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return f"{value:.4f}"
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return f"{number:.4f}" if math.isfinite(number) else value
    return value


def readable(text: Any) -> str:
    """A decision reason as the page shows it: the long decimals MLflow writes into its validation
    messages (``candidate model roc_auc = 0.5070159403621707``) cut to four digits. Line breaks stay:
    the page keeps them (a reason with several failed checks has one per line)."""
    return _LONG_DECIMAL.sub(lambda m: f"{float(m.group()):.4f}", str(text or "")).strip()


@functools.cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["four_digits"] = four_digits
    env.filters["readable"] = readable
    return env


def render_page(models: list[dict[str, Any]], error: str | None = None) -> str:
    """The whole MLOps page (``templates/mlops.html``, autoescaped): per model its roles, the quality
    and drift charts (:mod:`airflow_mlops.plugins.charts`), the latest segment table and the history."""
    shown = [m | {"charts": {"quality": charts.quality_chart(m.get("quality") or []), "drift": charts.drift_chart(m.get("drift") or [])}} for m in models]
    return _templates().get_template("mlops.html").render(models=shown, error=error)

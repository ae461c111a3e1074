"""The MLOps FastAPI app, mounted by the plugin at ``/mlops`` on the Airflow API server.

Routes (every one behind Airflow's own authentication, ``requires_authenticated()``: a Bearer JWT or
the UI's ``_token`` cookie; no credentials -> 401):

- ``GET /mlops/``: the MLOps page (server-rendered HTML with inline SVG charts; the UI embeds it under
  "Browse > MLOps").
- ``GET /mlops/api/models``: per registered model, champion and previous champion with metrics, the
  decision history and the latest drift and quality checks (JSON).
- ``GET /mlops/api/models/{name}``: the same for one model (404 when it is not registered).
- ``GET /mlops/reports/{path}``: a file below the reports root (validation and drift reports), with
  path checks: malformed or escaping paths -> 400, missing files (or symlinks leaving the root) -> 404.

Built only by :func:`create_app`, which the plugin calls inside the API server: importing FastAPI and
Airflow's API security module costs over a second, which workers loading plugins must not pay.
"""

from __future__ import annotations

import functools
import logging
import mimetypes
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Depends, FastAPI, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from airflow_mlops.plugins import charts, dashboard

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


def _mlflow_unavailable(exc: Exception) -> HTTPException:
    log.error("MLOps page: MLflow request failed: %s", type(exc).__name__, exc_info=exc)
    return HTTPException(status_code=503, detail=MLFLOW_UNAVAILABLE)


def create_app() -> FastAPI:
    """Build the app; every route requires an authenticated Airflow user."""
    from airflow.api_fastapi.core_api.security import requires_authenticated

    # No /docs or /openapi.json: those routes would not carry the app-wide auth dependency.
    app = FastAPI(
        title="MLOps", dependencies=[Depends(requires_authenticated())], docs_url=None, redoc_url=None, openapi_url=None
    )

    @app.get("/api/models")
    def list_models() -> dict[str, Any]:
        try:
            return {"models": dashboard.models(_hook())}
        except Exception as exc:
            raise _mlflow_unavailable(exc) from exc

    @app.get("/api/models/{name}")
    def get_model(name: str) -> dict[str, Any]:
        try:
            found = dashboard.model(_hook(), name)
        except Exception as exc:
            raise _mlflow_unavailable(exc) from exc
        if found is None:
            raise HTTPException(status_code=404, detail=f"no registered model {name!r}")
        return found

    @app.get("/reports/{path:path}")
    async def report(path: str) -> Response:
        try:
            found = dashboard.find_report(path)
            content = await run_in_threadpool(found.read_bytes)
        except dashboard.ReportPathError as exc:
            raise HTTPException(status_code=400, detail="invalid report path") from exc
        except (dashboard.ReportNotFoundError, FileNotFoundError) as exc:
            raise HTTPException(status_code=404, detail="no such report") from exc
        media_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        return Response(content, media_type=media_type, headers=REPORT_HEADERS)

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        try:
            found = dashboard.models(_hook())
        except Exception as exc:
            _mlflow_unavailable(exc)
            return HTMLResponse(render_page([], error=MLFLOW_UNAVAILABLE), status_code=503)
        return HTMLResponse(render_page(found))

    return app


# -- HTML ------------------------------------------------------------------------------------------

TEMPLATES = Path(__file__).with_name("templates")


@functools.cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True)


def render_page(models: list[dict[str, Any]], error: str | None = None) -> str:
    """The whole MLOps page (``templates/mlops.html``, autoescaped): per model its roles, the quality
    and drift charts (:mod:`airflow_mlops.plugins.charts`), the latest segment table and the history."""
    shown = [m | {"charts": {"quality": charts.quality_chart(m.get("quality") or []), "drift": charts.drift_chart(m.get("drift") or [])}} for m in models]
    return _templates().get_template("mlops.html").render(models=shown, error=error)

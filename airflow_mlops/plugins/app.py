"""The MLOps FastAPI app, mounted by the plugin at ``/mlops`` on the Airflow API server.

Routes (every one behind Airflow's own authentication, ``requires_authenticated()``: a Bearer JWT or
the UI's ``_token`` cookie; no credentials -> 401):

- ``GET /mlops/``: the MLOps page (server-rendered HTML; the UI embeds it under "Browse > MLOps").
- ``GET /mlops/api/models``: per registered model, champion and previous champion with metrics, the
  decision history and the latest drift checks (JSON).
- ``GET /mlops/api/models/{name}``: the same for one model (404 when it is not registered).
- ``GET /mlops/reports/{path}``: a file below the reports root (validation and drift reports), with
  path checks: malformed or escaping paths -> 400, missing files (or symlinks leaving the root) -> 404.

Built only by :func:`create_app`, which the plugin calls inside the API server: importing FastAPI and
Airflow's API security module costs over a second, which workers loading plugins must not pay.
"""

from __future__ import annotations

import html
import mimetypes
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from airflow_mlops.plugins import dashboard

#: Reports contain scripts (Evidently, GX Data Docs). Served from Airflow's own origin, a sandboxed
#: document runs them in an opaque origin: they cannot read the session cookie or call the API.
REPORT_HEADERS = {"Content-Security-Policy": "sandbox allow-scripts allow-popups", "X-Content-Type-Options": "nosniff"}


def _hook() -> Any:
    from airflow_mlops.hooks.mlflow import MlflowHook

    return MlflowHook()


def _mlflow_unavailable(exc: Exception) -> HTTPException:
    return HTTPException(status_code=503, detail=f"MLflow is not reachable: {type(exc).__name__}: {exc}")


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
            body = render_models(dashboard.models(_hook()))
        except Exception as exc:
            body = f'<p class="error">MLflow is not reachable: {html.escape(f"{type(exc).__name__}: {exc}")}</p>'
            return HTMLResponse(render_page(body), status_code=503)
        return HTMLResponse(render_page(body))

    return app


# -- HTML ------------------------------------------------------------------------------------------

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a202c}
h1{font-size:1.4rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #cbd5e0}
h3{font-size:1rem;margin-bottom:.3rem}
table{border-collapse:collapse;margin:.3rem 0 1rem}td,th{border:1px solid #e2e8f0;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f7fafc}.yes{color:#c53030;font-weight:600}.no{color:#2f855a}.muted{color:#718096}.error{color:#c53030}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _link(url: str, text: str) -> str:
    return f'<a href="{_e(url)}" target="_blank" rel="noopener">{_e(text)}</a>' if url else _e(text)


def _score(value: Any) -> str:
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return _e(value)


def _role(label: str, info: dict[str, Any] | None, role_id: str) -> str:
    if info is None:
        return f'<h3>{label}</h3><p class="muted" id="{role_id}">none</p>'
    metrics = "".join(f"<tr><th>{_e(k)}</th><td>{_score(v)}</td></tr>" for k, v in info["metrics"].items())
    reason = info["decision"].get("reason", "")
    return (
        f'<h3>{label}: <span id="{role_id}">{_link(info["url"], "v" + info["version"])}</span></h3>'
        f'<p class="muted">{_e(info["decision"].get("decision", ""))} {_e(reason)}</p>'
        f"<table>{metrics or '<tr><td class=muted>no metrics</td></tr>'}</table>"
    )


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """An HTML table; ``rows`` hold cells already rendered (escaped) by the caller."""
    head = "<tr>" + "".join(f"<th>{h}</th>" for h in headers) + "</tr>"
    body = "".join("<tr>" + "".join(cell if cell.startswith("<td") else f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _history(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return '<p class="muted">no decisions recorded yet</p>'
    headers = ["version", "decision", "reason", "metric", "challenger", "champion", "against", "DAG run", "approver", "decided at"]
    return _table(headers, [
        [f"v{_e(r['version'])}", _e(r.get("decision")), _e(r.get("reason")), _e(r.get("metric")),
         _score(r.get("challenger_score")), _score(r.get("champion_score")), _e(r.get("compared_against")),
         _e(r.get("dag_run")), _e(r.get("approver")), _e(r.get("decided_at"))]
        for r in rows
    ])  # fmt: skip


def _drift(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return '<p class="muted">no drift checks yet</p>'
    verdict = {True: '<td class="yes">yes</td>', False: '<td class="no">no</td>'}
    return _table(["period", "drift", "share", "threshold", "drifted columns", "report"], [
        [_e(c["period"]), verdict[bool(c["drift_detected"])], _score(c["share"]), _score(c["drift_share"]),
         _e(", ".join(c.get("drifted_columns") or [])), _link(c["report_url"], "report")]
        for c in checks
    ])  # fmt: skip


def render_models(models: list[dict[str, Any]]) -> str:
    """The page body: one section per registered model."""
    if not models:
        return '<p class="muted">No registered models yet: run mlops_retraining.</p>'
    sections = []
    for m in models:
        key = _e(m["name"])
        challenger = f' <span class="muted">challenger v{_e(m["challenger"])}</span>' if m.get("challenger") else ""
        sections.append(
            f'<section data-model="{key}"><h2>{key}{challenger}</h2>'
            + _role("Champion", m["champion"], f"champion-{key}")
            + _role("Previous champion", m["previous_champion"], f"previous-champion-{key}")
            + "<h3>Promotion history</h3>"
            + _history(m["history"])
            + "<h3>Latest drift checks</h3>"
            + _drift(m["drift"])
            + "</section>"
        )
    return "".join(sections)


def render_page(body: str) -> str:
    """A whole HTML document around ``body``."""
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>MLOps</title>'
        f"<style>{STYLE}</style></head><body><h1>MLOps: registered models</h1>{body}</body></html>"
    )

"""Who sees what on the MLOps plugin, against the real API server running a per-DAG auth manager.

Two teams' models are registered in the stack's MLflow with the tags the training and promotion
operators write (``run_tags`` of the operators' base, ``ModelRegistry.record_decision``), as if trained by
``team_a_retraining`` and ``team_b_retraining``; each has a drift report and a validation report.
Beside them: a model both teams' DAGs trained versions of (a name collision) and one registered by
hand (no provenance). The users and their rights are in ``tests/ui/conftest.py`` (``TEAM_ACCESS``),
answered by ``tests/ui/team_auth_manager.py``: the plugin has no rights of its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.operators.base import run_tags
from tests.helpers import task_context
from tests.ui.conftest import TEAM_A_DAG, TEAM_B_DAG, UiStack, http

pytestmark = [pytest.mark.ui, pytest.mark.services]

FORBIDDEN = b'{"detail":"Forbidden"}'
TEAM_A, TEAM_B, COLLIDED, HANDMADE = "team_a_churn", "team_b_churn", "collided_churn", "handmade_churn"
#: Strings found only in one team's data: a refusal's body must not contain any of the other team's.
MARKERS = {TEAM_A: "TEAM-A-SAMPLE-ROW", TEAM_B: "TEAM-B-SAMPLE-ROW", COLLIDED: "COLLIDED-SAMPLE-ROW", HANDMADE: "HANDMADE-SAMPLE-ROW"}


def _register(client: Any, experiment: str, model: str, dag_id: str | None, run_id: str, auc: float) -> str:
    """One version of ``model`` as ``MlflowTrainModelOperator`` registers it from ``dag_id``'s run
    (``dag_id=None``: by hand, without provenance tags); return its number."""
    tags = (run_tags(task_context("train", run_id, dag_id)) | {"mlops.model_name": model}) if dag_id else {}
    run = client.create_run(experiment, tags=tags)
    client.log_metric(run.info.run_id, "roc_auc", auc)
    client.set_terminated(run.info.run_id)
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(model)
    except MlflowException as exc:  # the model's second version
        assert exc.error_code == "RESOURCE_ALREADY_EXISTS", exc
    return str(client.create_model_version(model, f"{run.info.artifact_uri}/model", run.info.run_id, tags=tags).version)


def _report(root: Path, relative: str, text: str) -> str:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return relative


@pytest.fixture(scope="module")
def teams(ui_stack: UiStack) -> dict[str, Any]:
    """The four models, their reports, and a symlink from team A's folder into team B's report."""
    from airflow_mlops.hooks.mlflow import MlflowConfig, MlflowHook

    hook = MlflowHook(config=MlflowConfig(tracking_uri=ui_stack.mlflow.url))
    client, record_decision = hook.client, hook.registry.record_decision
    experiment = client.create_experiment("ui-teams")
    versions = {}
    for model, dag_id in ((TEAM_A, TEAM_A_DAG), (TEAM_B, TEAM_B_DAG)):
        first = _register(client, experiment, model, dag_id, "scheduled__2025-01-01", 0.7)
        second = _register(client, experiment, model, dag_id, "scheduled__2025-02-01", 0.8)
        for version, against, run in ((first, "none", "scheduled__2025-01-01"), (second, first, "scheduled__2025-02-01")):
            record_decision(model, version, {"decision": "promoted", "reason": MARKERS[model], "compared_against": against,
                                             "dag_run": f"{dag_id}/{run}"})  # fmt: skip
        client.set_registered_model_alias(model, "champion", second)
        versions[model] = second
    _register(client, experiment, COLLIDED, TEAM_A_DAG, "manual__a", 0.7)
    collided = _register(client, experiment, COLLIDED, TEAM_B_DAG, "manual__b", 0.9)
    record_decision(COLLIDED, collided, {"decision": "promoted", "reason": MARKERS[COLLIDED], "dag_run": f"{TEAM_B_DAG}/manual__b"})
    client.set_registered_model_alias(COLLIDED, "champion", collided)
    handmade = _register(client, experiment, HANDMADE, None, "by-hand", 0.75)
    record_decision(HANDMADE, handmade, {"decision": "promoted", "reason": MARKERS[HANDMADE]})
    client.set_registered_model_alias(HANDMADE, "champion", handmade)

    root = ui_stack.reports_root
    reports: dict[str, dict[str, str]] = {}
    for model in (TEAM_A, TEAM_B, COLLIDED, HANDMADE):
        folder = f"drift/{model}/period=2025-01"
        summary = {"period": "2025-01", "drift_detected": False, "share": 0.1, "drift_share": 0.5, "drifted_columns": [], "columns": 3,
                   "report_uri": (root / folder / "report.html").as_uri()}  # fmt: skip
        _report(root, f"{folder}/summary.json", json.dumps(summary))
        reports[model] = {"drift": _report(root, f"{folder}/report.html", f"<html>{MARKERS[model]}</html>")}
    for model, dag_id in ((TEAM_A, TEAM_A_DAG), (TEAM_B, TEAM_B_DAG)):
        reports[model]["validation"] = _report(root, f"validation/{dag_id}/scheduled__2025-02-01/validate/data_docs.html",
                                               f"<html>validation {MARKERS[model]}</html>")  # fmt: skip
    # A link in team A's own folder to team B's report: authorized by where it leads, not where it sits.
    link = root / f"validation/{TEAM_A_DAG}/scheduled__2025-02-01/validate/borrowed.html"
    link.symlink_to(root / reports[TEAM_B]["drift"])
    reports[TEAM_A]["link_to_b"] = link.relative_to(root).as_posix()
    reports["top"] = {"file": _report(root, "notes.html", "<html>TOP-LEVEL-NOTES</html>")}
    return {"versions": versions, "reports": reports}


_TOKENS: dict[tuple[str, str], str] = {}


def get(stack: UiStack, path: str, user: str, *, cookie: bool = False) -> tuple[int, bytes]:
    """``GET path`` as ``user`` (a Bearer JWT, or the UI's session cookie); returns ``(status, body)``."""
    key = (stack.airflow.url, user)
    token = _TOKENS.get(key) or _TOKENS.setdefault(key, stack.token_for(user))
    status, body, _ = http("GET", f"{stack.airflow.url}{path}", **({"cookie": token} if cookie else {"token": token}))
    return status, body


def _model_names(stack: UiStack, user: str) -> list[str]:
    status, body = get(stack, "/mlops/api/models", user)
    assert status == 200, body[:300]
    return [m["name"] for m in json.loads(body)["models"]]


def _leaks(body: bytes, *models: str) -> list[str]:
    return [s for m in models for s in (m, MARKERS[m]) if s.encode() in body]


def test_each_team_viewer_lists_and_pages_only_their_own_model(ui_stack: UiStack, teams) -> None:
    # Exactly one model each: the collision, the hand-made model and any model other tests trained
    # with the reference DAGs (the viewers may not read mlops_retraining) are all left out.
    assert _model_names(ui_stack, "viewer_a") == [TEAM_A]
    assert _model_names(ui_stack, "viewer_b") == [TEAM_B]

    status, page = get(ui_stack, "/mlops/", "viewer_a", cookie=True)

    assert status == 200
    assert f'data-model="{TEAM_A}"'.encode() in page and MARKERS[TEAM_A].encode() in page  # the decision reason
    assert _leaks(page, TEAM_B, COLLIDED, HANDMADE) == []


def test_a_viewer_reads_their_models_details_and_reports(ui_stack: UiStack, teams) -> None:
    status, body = get(ui_stack, f"/mlops/api/models/{TEAM_A}", "viewer_a")

    assert status == 200, body[:300]
    model = json.loads(body)
    assert model["champion"]["version"] == teams["versions"][TEAM_A] and model["champion"]["metrics"] == {"roc_auc": 0.8}
    assert [h["dag_run"] for h in model["history"]] == [f"{TEAM_A_DAG}/scheduled__2025-02-01", f"{TEAM_A_DAG}/scheduled__2025-01-01"]
    assert model["drift"][0]["report_url"] == f"/mlops/reports/drift/{TEAM_A}/period%3D2025-01/report.html"
    for path in teams["reports"][TEAM_A]["drift"], teams["reports"][TEAM_A]["validation"]:
        status, body = get(ui_stack, f"/mlops/reports/{path}", "viewer_a")
        assert status == 200 and MARKERS[TEAM_A].encode() in body, (path, status)
    # Inside their own folders a missing file is a plain 404.
    assert get(ui_stack, f"/mlops/reports/drift/{TEAM_A}/period=2031-01/report.html", "viewer_a")[0] == 404


@pytest.mark.parametrize("model", [TEAM_B, COLLIDED, HANDMADE, "no_such_model"])
def test_a_viewer_is_refused_other_models_with_a_bare_403(ui_stack: UiStack, teams, model: str) -> None:
    # A model that does not exist is refused alike: names cannot be probed.
    status, body = get(ui_stack, f"/mlops/api/models/{model}", "viewer_a")

    assert (status, body) == (403, FORBIDDEN)


@pytest.mark.parametrize(
    "path",
    [
        "drift/team_b_churn/period=2025-01/report.html",
        "drift/team_b_churn/period=2025-01/summary.json",
        "validation/team_b_retraining/scheduled__2025-02-01/validate/data_docs.html",
        "drift/team_b_churn/period=2031-01/missing.html",  # refused before the lookup: no existence oracle
        "quality/team_b_churn/period=2025-01/report.html",
        "signals/team_b_churn/pending/x.json",
        "drift/collided_churn/period=2025-01/report.html",
        "drift/handmade_churn/period=2025-01/report.html",
        "drift/no_such_model/period=2025-01/report.html",
        "notes.html",
        "validation/team_a_retraining/scheduled__2025-02-01/validate/borrowed.html",  # own folder, links to team B's report
    ],
)
def test_a_viewer_is_refused_other_reports_with_a_bare_403(ui_stack: UiStack, teams, path: str) -> None:
    status, body = get(ui_stack, f"/mlops/reports/{path}", "viewer_a")

    assert (status, body) == (403, FORBIDDEN)


def test_the_admin_sees_every_model_and_report(ui_stack: UiStack, teams) -> None:
    assert {TEAM_A, TEAM_B, COLLIDED, HANDMADE} <= set(_model_names(ui_stack, "admin"))
    for model in (TEAM_A, TEAM_B, COLLIDED, HANDMADE):
        status, body = get(ui_stack, f"/mlops/api/models/{model}", "admin")
        assert status == 200 and json.loads(body)["name"] == model
        status, body = get(ui_stack, f"/mlops/reports/{teams['reports'][model]['drift']}", "admin")
        assert status == 200 and MARKERS[model].encode() in body
    status, body = get(ui_stack, f"/mlops/reports/{teams['reports'][TEAM_A]['link_to_b']}", "admin")
    assert status == 200 and MARKERS[TEAM_B].encode() in body
    assert get(ui_stack, f"/mlops/reports/{teams['reports']['top']['file']}", "admin")[0] == 200
    assert get(ui_stack, "/mlops/api/models/no_such_model", "admin")[0] == 404

    status, page = get(ui_stack, "/mlops/", "admin", cookie=True)
    assert status == 200 and all(f'data-model="{m}"'.encode() in page for m in (TEAM_A, TEAM_B, COLLIDED, HANDMADE))


@pytest.mark.parametrize(
    "path", ["/mlops/", "/mlops/api/models", f"/mlops/api/models/{TEAM_A}", "/mlops/reports/drift/team_a_churn/period=2025-01/report.html"]
)
def test_a_user_without_plugin_access_is_refused_everything(ui_stack: UiStack, teams, path: str) -> None:
    # The outsider may read team A's DAG, but the auth manager grants them no plugin access.
    for cookie in (False, True):
        status, body = get(ui_stack, path, "outsider", cookie=cookie)

        assert (status, body) == (403, FORBIDDEN)
    # Airflow's own plugin listing answers the same question the same way.
    assert get(ui_stack, "/api/v2/plugins", "outsider")[0] == 403
    assert get(ui_stack, "/api/v2/plugins", "viewer_a")[0] == 200

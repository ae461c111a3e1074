"""The MLOps plugin and the trigger forms over HTTP against the real API server (no browser).

A model ``seeded`` is registered straight in the stack's MLflow (two versions, a promotion and a
rejection recorded as the promote operator records them) and two drift checks are written where the
drift operator writes them, so these tests need no DAG run.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from tests.ui.conftest import UiStack, http

pytestmark = [pytest.mark.ui, pytest.mark.services]

SECRET = "top-secret-outside-the-reports-root"


@pytest.fixture(scope="module")
def seeded(ui_stack: UiStack) -> dict[str, Any]:
    """Model ``seeded``: v1 promoted then replaced by v2 (champion), v3 rejected; drift for 2025-01/02."""
    from airflow_mlops.hooks.mlflow import MlflowConfig, MlflowHook

    hook = MlflowHook(config=MlflowConfig(tracking_uri=ui_stack.mlflow.url))
    client = hook.client
    experiment = client.create_experiment("ui-seeded")
    client.create_registered_model("seeded")
    versions = []
    for auc in (0.71, 0.78, 0.74):
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "roc_auc", auc)
        client.log_metric(run.info.run_id, "system/cpu_utilization_percentage", 50.0)  # not a model metric
        client.set_terminated(run.info.run_id)
        versions.append(client.create_model_version("seeded", f"{run.info.artifact_uri}/model", run.info.run_id).version)
    v1, v2, v3 = (str(v) for v in versions)
    decisions = [
        (v1, "promoted", "no champion yet", "none", "2025-01-01"),
        (v2, "promoted", "roc_auc +0.07 over v1", v1, "2025-02-01"),
        (v3, "rejected", "roc_auc 0.74 < champion 0.78", v2, "2025-03-01"),
    ]
    for version, decision, reason, against, day in decisions:
        hook.registry.record_decision("seeded", version, {"decision": decision, "reason": reason, "metric": "roc_auc", "compared_against": against})
        # record_decision stamps the current second; fixed days make the expected order unambiguous.
        client.set_model_version_tag("seeded", version, "mlops.decision.decided_at", f"{day}T00:00:00+00:00")
    client.set_registered_model_alias("seeded", "champion", v2)
    client.set_registered_model_alias("seeded", "previous_champion", v1)

    reports = ui_stack.reports_root
    for period, share in (("2025-01", 0.1), ("2025-02", 0.6)):
        folder = reports / "drift" / "seeded" / f"period={period}"
        folder.mkdir(parents=True)
        (folder / "report.html").write_text(f"<html><body>drift report {period}</body></html>")
        summary = {
            "period": period, "drift_detected": share >= 0.5, "share": share, "drift_share": 0.5,
            "drifted_columns": ["monthly_charges"] if share >= 0.5 else [], "columns": 12, "trigger_retraining": share >= 0.5,
            "rows": {"current": 10, "reference": 10}, "report_uri": (folder / "report.html").as_uri(), "evidently": {"metrics": []},
        }  # fmt: skip
        (folder / "summary.json").write_text(json.dumps(summary))
    # Things that must never be served: a file beside the reports root and a symlink out of it.
    (ui_stack.data_root / "secret.txt").write_text(SECRET)
    (reports / "escape").symlink_to(ui_stack.data_root, target_is_directory=True)
    (reports / "link.txt").symlink_to(ui_stack.data_root / "secret.txt")
    return {"champion": v2, "previous": v1, "rejected": v3}


def get(stack: UiStack, path: str, **kwargs: Any) -> tuple[int, bytes, dict[str, str]]:
    return http("GET", f"{stack.airflow.url}{path}", **kwargs)


@pytest.mark.parametrize("path", ["/mlops/", "/mlops/api/models", "/mlops/api/models/seeded", "/mlops/reports/drift/seeded/period=2025-01/report.html"])
def test_unauthenticated_requests_get_401_and_no_data(ui_stack: UiStack, seeded, path: str) -> None:
    for credentials in ({}, {"token": "not-a-jwt"}, {"cookie": "forged"}):
        status, body, _ = get(ui_stack, path, **credentials)

        # No credentials: 401. A token that does not verify: Airflow answers 403 ("Invalid JWT token").
        assert status == (401 if not credentials else 403), (credentials, status, body[:200])
        assert b"seeded" not in body and b"drift report" not in body


def test_models_api_shows_champion_previous_history_and_drift(ui_stack: UiStack, seeded) -> None:
    status, body, _ = get(ui_stack, "/mlops/api/models", token=ui_stack.airflow.token)

    assert status == 200, body[:500]
    model = next(m for m in json.loads(body)["models"] if m["name"] == "seeded")
    assert model["champion"]["version"] == seeded["champion"] and model["champion"]["aliases"] == ["champion"]
    assert model["champion"]["metrics"] == {"roc_auc": 0.78}
    assert model["champion"]["decision"]["reason"] == "roc_auc +0.07 over v1"
    assert model["previous_champion"]["version"] == seeded["previous"] and model["previous_champion"]["metrics"] == {"roc_auc": 0.71}
    assert [(h["version"], h["decision"]) for h in model["history"]] == [
        (seeded["rejected"], "rejected"), (seeded["champion"], "promoted"), (seeded["previous"], "promoted"),
    ]  # fmt: skip
    assert model["history"][0]["reason"] == "roc_auc 0.74 < champion 0.78"
    assert [(d["period"], d["share"], d["drift_detected"]) for d in model["drift"]] == [("2025-02", 0.6, True), ("2025-01", 0.1, False)]
    assert model["drift"][0]["report_url"] == "/mlops/reports/drift/seeded/period%3D2025-02/report.html"

    one = get(ui_stack, "/mlops/api/models/seeded", token=ui_stack.airflow.token)
    assert one[0] == 200 and json.loads(one[1])["champion"]["version"] == seeded["champion"]
    assert get(ui_stack, "/mlops/api/models/no-such-model", token=ui_stack.airflow.token)[0] == 404


def test_page_and_reports_work_with_the_ui_session_cookie(ui_stack: UiStack, seeded) -> None:
    status, body, _ = get(ui_stack, "/mlops/", cookie=ui_stack.airflow.token)

    assert status == 200
    page = body.decode()
    assert 'id="champion-seeded"' in page and f"v{seeded['champion']}" in page
    assert "roc_auc 0.74 &lt; champion 0.78" in page  # escaped, from the decision tags
    assert 'href="/mlops/reports/drift/seeded/period%3D2025-02/report.html"' in page

    status, body, headers = get(ui_stack, "/mlops/reports/drift/seeded/period%3D2025-02/report.html", cookie=ui_stack.airflow.token)
    assert status == 200 and b"drift report 2025-02" in body
    assert headers["content-type"].startswith("text/html")
    assert "sandbox" in headers["content-security-policy"]  # report scripts cannot act as the user


#: Paths that would leave the reports root, as the client sends them (urllib keeps ``..`` and percent
#: escapes as written; the server decodes the escapes once), and the app's answer (airflow_mlops/plugins/app.py):
#: 400 for a path that is malformed or names a way out (a ``..``, ``.`` or empty segment, a backslash or
#: NUL, also once more percent-decoded); 404 for a well-formed path with no report file below the root:
#: a symlink out of it, or a folder.
ESCAPES = [
    ("../secret.txt", 400),
    ("../../mlops-data/secret.txt", 400),
    ("drift/../../secret.txt", 400),
    ("%2e%2e/secret.txt", 400),
    ("%2E%2E%2Fsecret.txt", 400),
    ("..%2fsecret.txt", 400),
    ("%252e%252e/secret.txt", 400),  # double-encoded: %2e%2e once the server decoded it
    ("..%5csecret.txt", 400),
    ("/" + "%2F".join(["", "etc", "passwd"]), 400),  # absolute once decoded
    ("secret.txt%00.html", 400),
    ("", 400),
    ("escape/secret.txt", 404),  # a symlink to the data root
    ("link.txt", 404),  # a symlink to a file outside the root
    ("drift/seeded", 404),  # a folder, not a file
]


@pytest.mark.parametrize(("path", "expected"), ESCAPES, ids=[path or "(empty)" for path, _ in ESCAPES])
def test_report_serving_refuses_paths_outside_the_reports_root(ui_stack: UiStack, seeded, path: str, expected: int) -> None:
    status, body, _ = get(ui_stack, f"/mlops/reports/{path}", token=ui_stack.airflow.token)

    assert status == expected, (path, status, body[:200])
    assert json.loads(body) == {"detail": "invalid report path" if expected == 400 else "no such report"}
    assert SECRET.encode() not in body and b"root:" not in body


def test_plugin_is_registered_once_without_import_errors(ui_stack: UiStack) -> None:
    # The stack mounts the repository's plugins/ folder and has the package's entry point installed.
    plugins = ui_stack.airflow.request("GET", "/api/v2/plugins")["plugins"]
    errors = ui_stack.airflow.request("GET", "/api/v2/plugins/importErrors")

    mlops = [p for p in plugins if p["name"] == "mlops"]
    assert len(mlops) == 1 and "airflow.plugins" in mlops[0]["source"]
    assert mlops[0]["external_views"][0]["name"] == "MLOps" and mlops[0]["external_views"][0]["href"] == "/mlops/"
    assert errors["import_errors"] == []


def test_every_param_of_both_dags_has_a_title_and_a_description(ui_stack: UiStack) -> None:
    for dag_id in ("mlops_retraining", "mlops_batch_prediction"):
        params = ui_stack.airflow.request("GET", f"/api/v2/dags/{dag_id}/details")["params"]

        for name, param in params.items():
            assert param["schema"].get("title"), (dag_id, name)
            assert param.get("description"), (dag_id, name)


@pytest.mark.parametrize(
    ("dag_id", "conf", "message"),
    [
        ("mlops_retraining", {"test_size": 0.9}, "greater than the maximum"),
        ("mlops_retraining", {"test_size": 0}, "less than or equal to the minimum"),
        ("mlops_retraining", {"estimator": "sklearn.svm.SVC"}, "is not one of"),
        ("mlops_retraining", {"hyperparameters": "max_iter=3"}, "is not of type 'object'"),
        ("mlops_retraining", {"min_relative_change": 2}, "greater than the maximum"),
        ("mlops_batch_prediction", {"month": "2025-13"}, "does not match"),
        ("mlops_batch_prediction", {"model_alias": "latest"}, "is not one of"),
        ("mlops_batch_prediction", {"drift_share": 0}, "less than or equal to the minimum"),
        ("mlops_batch_prediction", {"consecutive_drift_months": 0}, "less than the minimum"),
    ],
)
def test_invalid_trigger_input_is_refused_and_creates_no_run(ui_stack: UiStack, dag_id: str, conf: dict[str, Any], message: str) -> None:
    airflow = ui_stack.airflow
    runs = f"/api/v2/dags/{dag_id}/dagRuns"
    before = airflow.request("GET", runs)["total_entries"]

    status, body, _ = http("POST", f"{airflow.url}{runs}", token=airflow.token, body={"logical_date": None, "conf": conf})

    assert status == 400, body[:500]
    assert message in json.loads(body)["detail"]
    assert airflow.request("GET", runs)["total_entries"] == before


def test_report_url_of_the_api_matches_the_extra_link_route(ui_stack: UiStack, seeded) -> None:
    # The same helper builds the extra links on the worker: its URL must be what the plugin serves.
    from airflow_mlops.reports import url as report_url

    uri = (ui_stack.reports_root / "drift" / "seeded" / "period=2025-01" / "report.html").as_uri()
    url = report_url(uri, reports_root=ui_stack.reports_root.as_uri())

    assert url == "/mlops/reports/" + quote("drift/seeded/period=2025-01/report.html")
    assert get(ui_stack, url, token=ui_stack.airflow.token)[0] == 200

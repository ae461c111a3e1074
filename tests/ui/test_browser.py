"""The Airflow UI in a real browser: log in, see both trigger forms, trigger a retraining with changed
parameters, follow the links of the finished run, and find the new champion on the MLOps page.

Screenshots of every step land in ``test-artifacts/ui/`` (and the Airflow logs with them).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.ui.conftest import ARTIFACTS, PASSWORD, USER, UiStack

pytestmark = [pytest.mark.ui, pytest.mark.services]

LOGISTIC = "sklearn.linear_model.LogisticRegression"
TEST_SIZE = 0.3


def param_titles(stack: UiStack, dag_id: str) -> list[str]:
    params = stack.airflow.request("GET", f"/api/v2/dags/{dag_id}/details")["params"]
    return [p["schema"]["title"] for p in params.values()]


def training_run(stack: UiStack, dag_run_id: str) -> Any:
    """The MLflow run the ``train`` task of ``dag_run_id`` logged (found by the tags it sets)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack.mlflow.url)
    experiment = client.get_experiment_by_name("mlops/churn")
    found = client.search_runs(
        [experiment.experiment_id], f"tags.`mlops.run_id` = '{dag_run_id}' and tags.`mlops.task_id` = 'train'"
    )
    assert len(found) == 1, found
    return found[0]


def test_trigger_forms_a_retraining_with_changed_params_its_links_and_the_mlops_page(ui_stack: UiStack, browser) -> None:
    forms = {dag_id: param_titles(ui_stack, dag_id) for dag_id in ("mlops_retraining", "mlops_batch_prediction")}
    session = {"url": ui_stack.airflow.url, "user": USER, "password": PASSWORD, "state": str(ARTIFACTS / "storage-state.json")}

    started = browser(
        "trigger",
        session | {"forms": forms, "trigger": {"dag_id": "mlops_retraining", "estimator": LOGISTIC, "test_size": TEST_SIZE, "out_of_range": 0.9, "window_months": 0}},
    )

    assert started["forms"] == forms  # every param's title is on its form
    assert started["corrected"] == "0.5"  # the form holds "Holdout share" to its maximum (the API refuses 0.9: test_plugin_api)
    assert started["status"] == 200
    run = started["run"]
    assert run["conf"]["estimator"] == LOGISTIC and run["conf"]["test_size"] == TEST_SIZE and run["conf"]["window_months"] == 0
    assert run["conf"]["metric"] == "roc_auc"  # untouched fields keep their defaults

    airflow = ui_stack.airflow
    path = f"/api/v2/dags/mlops_retraining/dagRuns/{run['dag_run_id']}"
    done = airflow.wait_until("the retraining run", lambda: (r := airflow.request("GET", path))["state"] in ("success", "failed") and r, 150, every=2)
    states = {t["task_id"]: t["state"] for t in airflow.request("GET", f"{path}/taskInstances")["task_instances"]}
    assert done["state"] == "success", states
    assert states["promote"] == "success", states

    mlflow_run = training_run(ui_stack, run["dag_run_id"])
    assert mlflow_run.data.params["estimator"] == LOGISTIC  # the form's values reached the training task
    assert float(mlflow_run.data.params["test_size"]) == TEST_SIZE

    seen = browser(
        "inspect",
        session | {"dag_id": "mlops_retraining", "run_id": run["dag_run_id"], "model": "churn", "expect_in_conf": LOGISTIC},
    )

    assert seen["mlflow_href"] == f"{ui_stack.mlflow.url}/#/experiments/{mlflow_run.info.experiment_id}/runs/{mlflow_run.info.run_id}"
    assert seen["report_href"].startswith("/mlops/reports/validation/mlops_retraining/") and seen["report_href"].endswith("/data_docs.html")
    assert seen["report_status"] == 200 and "Great Expectations" in seen["report_title"]
    assert seen["mlops_url"].endswith("/plugin/mlops") or "/plugin/mlops" in seen["mlops_url"]
    from mlflow import MlflowClient

    champion = MlflowClient(tracking_uri=ui_stack.mlflow.url).get_model_version_by_alias("churn", "champion")
    assert champion.run_id == mlflow_run.info.run_id
    assert seen["champion"] == f"v{champion.version}"


def test_mlops_page_charts_the_months_scored_and_monitored_on_the_scheduler(ui_stack: UiStack, browser) -> None:
    """After the retraining above: score 2025-01 and 2025-02 and judge both once their labels are in,
    all on the real scheduler; the page's charts in Chromium carry the values the checks recorded."""
    import json

    airflow = ui_stack.airflow
    for dag_id in ("mlops_batch_prediction", "mlops_model_monitoring"):
        airflow.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    # Logical dates as the schedules give them (a run dated before a DAG's start_date has no tasks).
    for month, scored, judged in (("2025-01", "2025-02-01", "2025-03-01"), ("2025-02", "2025-03-01", "2025-04-01")):
        airflow.run_dag("mlops_batch_prediction", {"logical_date": f"{scored}T00:00:00Z", "conf": {"month": month}})
        airflow.run_dag("mlops_model_monitoring", {"logical_date": f"{judged}T00:00:00Z", "conf": {"month": month}})
    recorded = {
        kind: {month: json.loads((ui_stack.reports_root / kind / "churn" / f"period={month}" / "summary.json").read_text()) for month in ("2025-01", "2025-02")}
        for kind in ("quality", "drift")
    }

    seen = browser("charts", {"url": airflow.url, "state": str(ARTIFACTS / "storage-state.json")})

    drawn = {(d["chart"], d["series"], d["period"]): (d["value"], d["flagged"]) for d in seen["drawn"]}
    assert all(d["visible"] for d in seen["drawn"]), seen["drawn"]
    for month, q in recorded["quality"].items():
        assert drawn["quality", "value", month] == (pytest.approx(q["value"], abs=1e-9), q["decayed"])
        assert drawn["quality", "baseline", month][0] == pytest.approx(q["baseline"], abs=1e-9)
        assert drawn["quality", "limit", month][0] == pytest.approx(q["limit"], abs=1e-9)
    for month, d in recorded["drift"].items():
        assert drawn["drift", "share", month] == (pytest.approx(d["share"], abs=1e-9), d["drift_detected"])
        assert drawn["drift", "threshold", month][0] == pytest.approx(d["drift_share"], abs=1e-9)
    latest = recorded["quality"]["2025-02"]
    assert sorted(seen["segments"]) == sorted(f"{s['segment']}={s['value']}" for s in latest["segments"]) and seen["segments"]
    assert (ARTIFACTS / "09-mlops-charts.png").stat().st_size > 10_000


def _register_clarity_model(stack: UiStack) -> None:
    """Model ``clarity`` as the reference DAGs leave one after a retraining that answered decay: v1 from
    the snapshot (a 20% split), v2 the champion (learnt from 2025-01..02, judged on 2025-03), v3 a
    challenger MLflow's validation rejected with two failed checks; 2025-03 and 2025-04 judged with v2."""
    import json

    from airflow_mlops.hooks.mlflow import MlflowConfig, MlflowHook
    from tests.ui.test_page_clarity import MULTI_LINE_REASON

    hook = MlflowHook(config=MlflowConfig(tracking_uri=stack.mlflow.url))
    client = hook.client
    experiment = client.create_experiment("ui-clarity")
    client.create_registered_model("clarity")
    windows = [
        ("none (a split of the training data)", "none", "0.2"),
        ("2025-03", "2025-01,2025-02", ""),
        ("2025-04", "2025-02,2025-03", ""),
    ]
    decisions = [("promoted", "roc_auc passed against no champion yet", "none"), ("promoted", "roc_auc passed against champion v1", "1"),
                 ("rejected", MULTI_LINE_REASON, "2")]  # fmt: skip
    for (holdout, train, test_size), (decision, reason, against), auc in zip(
        windows, decisions, (0.7840031930954274, 0.6731961651815659, 0.5512345678901234), strict=True
    ):
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "roc_auc", auc)
        client.log_param(run.info.run_id, "test_size", test_size)
        client.set_terminated(run.info.run_id)
        tags = {"mlops.window.holdout_month": holdout, "mlops.window.train_months": train}
        version = client.create_model_version(
            "clarity", f"{run.info.artifact_uri}/model", run.info.run_id, tags=tags
        ).version
        hook.registry.record_decision("clarity", version, {"decision": decision, "reason": reason, "metric": "roc_auc", "compared_against": against,
                                                  "challenger_score": repr(auc)})  # fmt: skip
    for alias, version in (("champion", "2"), ("previous_champion", "1"), ("challenger", "3")):
        client.set_registered_model_alias("clarity", alias, version)
    for period, value in (("2025-03", 0.6731961651815659), ("2025-04", 0.6612345678901234)):
        folder = stack.reports_root / "quality" / "clarity" / f"period={period}"
        folder.mkdir(parents=True)
        summary = {"period": period, "model_version": "2", "metric": "roc_auc", "value": value, "baseline": 0.6731961651815659,
                   "limit": 0.6395363569224876, "decayed": False, "coverage": 1.0, "segments": []}  # fmt: skip
        (folder / "summary.json").write_text(json.dumps(summary))


def test_mlops_page_says_what_each_number_is_in_chromium(ui_stack: UiStack, browser) -> None:
    """The page as a reader sees it: the header names the model and its champion (the challenger is its
    own role), every version's metrics name their holdout, numbers have four decimals, the month v2 was
    judged on at promotion is marked, and MLflow's two-line rejection reason shows on two lines."""
    import re

    _register_clarity_model(ui_stack)

    seen = browser("clarity", {"url": ui_stack.airflow.url, "user": USER, "password": PASSWORD, "model": "clarity"})

    assert seen["header"] == "clarity champion v2"
    assert seen["measured"] == [
        "Metrics measured on holdout month 2025-03; trained on 2025-01, 2025-02:",
        "Metrics measured on holdout month 2025-04; trained on 2025-02, 2025-03:",
        "Metrics measured on a 20% split of the training data:",
    ]
    assert not re.findall(r"\d\.\d{5,}", seen["text"]), re.findall(r"\d\.\d{5,}", seen["text"])
    assert "0.6732" in seen["text"] and "0.5512" in seen["text"]
    rejected = [r for r in seen["reasons"] if r["text"].startswith("Metric roc_auc value threshold")]
    assert rejected and all(
        r["whiteSpace"] == "pre-line" and len(r["text"].strip().split("\n")) == 2 for r in rejected
    ), seen["reasons"]
    assert seen["holdout_rows"] == ["2025-03"]
    assert [(m["period"], m["visible"]) for m in seen["holdout_marks"]] == [("2025-03", True)]
    assert (ARTIFACTS / "10-mlops-page-clarity.png").stat().st_size > 10_000

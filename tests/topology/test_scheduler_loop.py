"""The retraining loop on a real scheduler, as a production deployment runs it: ``api-server``,
``scheduler``, ``dag-processor`` and ``triggerer`` with ``LocalExecutor`` on PostgreSQL, the embedded
MLflow store, local data. A backfill of eight months whose last four drift: every run succeeds, every
partition is one run's files, every drift signal (an event on the drift Asset) is answered by exactly one
retraining decision, even those whose event Airflow delivered to no run (apache/airflow#56050: the DAG
was at max_active_runs), no retraining run trains on a window a decision already learnt from, a run
triggered from the CLI without a logical date succeeds, and no task log has an error line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_cluster import Airflow
from tests.conftest import REPO, VENV_BIN, free_port
from tests.topology import services

pytestmark = [pytest.mark.services, pytest.mark.topology]

PASSWORD = "loop-secret"
MONTHS = [f"2025-{m:02d}" for m in range(1, 9)]
DRIFTED = MONTHS[4:]


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory) -> Iterator[dict[str, Any]]:
    services.ensure_postgres()
    user, admin = services.postgres_admin()
    database = f"mlops_loop_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {database}")
    home = tmp_path_factory.mktemp("loop")
    data = home / "mlops-data"
    port = free_port()
    (home / "passwords.json").write_text(json.dumps({"admin": PASSWORD}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "MLFLOW_"))} | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{user}@127.0.0.1:5432/{database}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API_AUTH__JWT_SECRET": f"loop-jwt-{port}",
        "AIRFLOW__API__SECRET_KEY": f"loop-api-{port}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__MLOPS__DATA_ROOT": data.as_uri(),
        "AIRFLOW__MLOPS__BATCH_CATCHUP": "False",
        "AIRFLOW__MLOPS__PARTITION_POKE_INTERVAL": "2",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    airflow: Airflow | None = None
    try:
        migrate = subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True, timeout=600)
        assert migrate.returncode == 0, migrate.stderr[-3000:]
        subprocess.run(
            [str(VENV_BIN / "airflow-mlops"), "generate-data", "--rows", "1500", "--months", f"{MONTHS[0]}:{MONTHS[-1]}",
             "--training-rows", "3000", "--drift-from", DRIFTED[0], "--rows-per-file", "1500", "--to", (data / "churn").as_uri()],
            env=env, check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        for month in DRIFTED:  # the drifted months' outcomes are not known yet: labels arrive late
            shutil.rmtree(data / "churn" / "labels" / f"month={month}")
        airflow = Airflow(env, home, port)
        for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
            airflow.start(component, *([component, "--port", str(port)] if component == "api-server" else [component]))
        airflow.wait_until("api-server", lambda: airflow.request("GET", "/api/v2/version"), 120, every=1)
        airflow.token = airflow.request("POST", "/auth/token", {"username": "admin", "password": PASSWORD})["access_token"]
        airflow.create_promotion_pool()
        for dag_id in ("mlops_retraining", "mlops_batch_prediction"):
            airflow.wait_until(f"{dag_id} parsed", lambda d=dag_id: airflow.request("GET", f"/api/v2/dags/{d}"), 120, every=1)
            airflow.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        yield {"airflow": airflow, "home": home, "data": data, "env": env}
    finally:
        if airflow is not None:
            airflow.stop()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.close()


def runs(airflow: Airflow, dag_id: str) -> list[dict[str, Any]]:
    return airflow.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&order_by=run_after")["dag_runs"]


def error_lines(home: Path) -> list[str]:
    """Lines logged at error level in any task log (JSON lines under ``logs/dag_id=...``)."""
    found = []
    for log in sorted(home.glob("logs/dag_id=*/**/*.log")):
        for line in log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("level") in ("error", "critical"):
                found.append(f"{log.relative_to(home)}: {record.get('event')} {record.get('logger', '')}")
    return found


@pytest.mark.timeout(1800)
def test_backfill_with_drift_closes_the_loop_on_a_real_scheduler(scheduler) -> None:
    from airflow_mlops import tables

    airflow: Airflow = scheduler["airflow"]
    # The first champion, from the snapshot. Unpausing also let the scheduler start this week's retraining
    # run (its cron schedule, catchup off): wait for both, as a deployment would see them.
    airflow.run_dag("mlops_retraining", {"logical_date": None, "conf": {"window_months": 0}}, timeout=600)
    airflow.wait_until("the first retraining runs", lambda: not any(r["state"] in ("queued", "running") for r in runs(airflow, "mlops_retraining")), 600, every=5)

    backfill = airflow.request(
        "POST", "/api/v2/backfills",
        {"dag_id": "mlops_batch_prediction", "from_date": "2025-02-01T00:00:00Z", "to_date": "2025-09-01T00:00:00Z", "max_active_runs": 3},
    )  # fmt: skip
    def backfilled() -> list[dict[str, Any]]:  # the scheduler's own @monthly run (for 2026-10) waits for data that never comes
        return [r for r in runs(airflow, "mlops_batch_prediction") if r["run_type"] == "backfill"]

    scored = airflow.wait_until(
        "the eight monthly runs", lambda: len(done := [r for r in backfilled() if r["state"] in ("success", "failed")]) == len(MONTHS) and done, 900, every=5
    )
    assert backfill["dag_id"] == "mlops_batch_prediction"
    assert {r["state"] for r in scored} == {"success"}, [(r["dag_run_id"], r["state"]) for r in scored]

    from mlflow import MlflowClient

    from airflow_mlops import signals

    registry = MlflowClient(f"sqlite:///{scheduler['home'] / 'mlflow.db'}")

    def drift_events() -> list[dict[str, Any]]:
        found = airflow.request("GET", "/api/v2/assets/events?source_dag_id=mlops_batch_prediction&limit=100")["asset_events"]
        return [e for e in found if (e.get("extra") or {}).get("kind") == "drift"]

    def watermark() -> int:
        return signals.parse_watermark(registry.get_registered_model("churn").tags.get(signals.WATERMARK_TAG))

    def settled() -> list[dict[str, Any]] | None:
        retrains = runs(airflow, "mlops_retraining")
        busy = any(r["state"] in ("queued", "running") for r in retrains)
        events = drift_events()
        answered = events and watermark() >= max(e["id"] for e in events)
        return retrains if not busy and answered and len(retrains) > 1 else None

    retrains = airflow.wait_until("retraining to answer every drift signal", settled, 900, every=5)
    print("retraining runs:", [(r["dag_run_id"], r["run_type"], r["state"]) for r in retrains])
    assert {r["state"] for r in retrains} == {"success"}, [(r["dag_run_id"], r["state"]) for r in retrains]

    events = drift_events()
    assert sorted(e["extra"]["period"] for e in events) == DRIFTED  # one signal per drifted month
    delivered = {e["id"] for r in retrains for e in airflow.request("GET", f"/api/v2/dags/mlops_retraining/dagRuns/{r['dag_run_id']}/upstreamAssetEvents")["asset_events"]}
    print("drift events delivered to no run:", sorted({e["id"] for e in events} - delivered))
    versions = registry.search_model_versions("name='churn'")
    answers = [name for v in versions for name in (v.tags.get(signals.ANSWERED_TAG) or "").split(", ") if name.startswith("drift")]
    assert sorted(answers) == [f"drift {m}" for m in DRIFTED], answers  # each drifted month answered exactly once, by a decision
    decided = [v for v in versions if v.tags.get("mlops.decision.decision") in ("promoted", "rejected")]
    assert all(v.tags.get("mlops.decision.reason") for v in decided)
    windows = [(v.tags.get("mlops.window.train_months"), v.tags.get("mlops.window.holdout_month")) for v in decided]
    assert len(set(windows)) == len(windows), windows  # no two versions learnt from the same window

    for month in MONTHS:  # every partition is exactly what its manifest lists: one run's files
        folder = scheduler["data"] / "churn" / "predictions" / f"month={month}"
        manifest = tables.read_manifest(str(folder))
        assert sorted(p.name for p in folder.iterdir() if p.suffix == ".parquet") == manifest["files"], month
        assert len(tables.read_table(str(folder))) == manifest["rows"] == 1500

    cli = subprocess.run(
        [str(VENV_BIN / "airflow"), "dags", "trigger", "mlops_batch_prediction", "--conf", json.dumps({"month": "2025-03"})],
        env=scheduler["env"], capture_output=True, text=True, timeout=120,
    )  # no --logical-date: Airflow 3's default
    assert cli.returncode == 0, cli.stderr[-2000:]
    manual = airflow.wait_until(
        "the CLI run",
        lambda: (r := [x for x in runs(airflow, "mlops_batch_prediction") if x["run_type"] == "manual"]) and r[0]["state"] in ("success", "failed") and r[0],
        300, every=3,
    )
    assert manual["state"] == "success" and manual["logical_date"] is None
    rescored = tables.read_table(str(scheduler["data"] / "churn" / "predictions" / "month=2025-03"))
    assert set(rescored["scored_at"].astype(str)) == {"2025-04-01 00:00:00+00:00"}  # the month's, not the trigger's time

    assert error_lines(scheduler["home"]) == []

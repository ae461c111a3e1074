"""One real Airflow for the UI tests: ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer``
(LocalExecutor on SQLite, as ``airflow standalone`` runs it) on a free port with its own
``AIRFLOW_HOME``, a fresh ``mlflow server``, small demo data, and the repository's ``plugins/`` folder
mounted next to the installed entry point.

Auth: :class:`tests.ui.team_auth_manager.TeamAuthManager`, the simple auth manager plus per-DAG
rights, with known passwords: ``admin`` (role admin: everything), two team viewers who may read one
DAG each (``team_a_retraining``, ``team_b_retraining``) and an ``outsider`` who may read team A's DAG
but has no plugin access (:data:`TEAM_ACCESS`).

Package-scoped: the REST/plugin tests and the browser test share it (starting Airflow costs ~40 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_cluster import Airflow
from tests.conftest import REPO, VENV_BIN, Server, free_port

PASSWORD = "ui-test-secret"
USER = "admin"
#: The teams' DAGs: the tests register models as if these DAGs had trained them (tests/ui/test_plugin_authz.py).
TEAM_A_DAG = "team_a_retraining"
TEAM_B_DAG = "team_b_retraining"
#: Per-user rights the test auth manager grants (users not listed, the admin, keep their role's rights).
TEAM_ACCESS = {
    "viewer_a": {"dags": [TEAM_A_DAG], "plugins": True},
    "viewer_b": {"dags": [TEAM_B_DAG], "plugins": True},
    "outsider": {"dags": [TEAM_A_DAG], "plugins": False},
}
ARTIFACTS = REPO / "test-artifacts" / "ui"


@dataclass
class UiStack:
    """The running stack: the Airflow client (with a token), MLflow, and where things live."""

    airflow: Airflow
    mlflow: Server
    home: Path
    data_root: Path
    env: dict[str, str]

    @property
    def reports_root(self) -> Path:
        return self.data_root / "reports"

    def token_for(self, user: str) -> str:
        """A JWT for ``user`` (``POST /auth/token`` with the stack's password)."""
        status, body, _ = http("POST", f"{self.airflow.url}/auth/token", body={"username": user, "password": PASSWORD})
        assert status in (200, 201), (user, status, body[:300])
        return str(json.loads(body)["access_token"])


def http(method: str, url: str, *, token: str | None = None, cookie: str | None = None, body: Any = None) -> tuple[int, bytes, dict[str, str]]:
    """One request; returns ``(status, body, headers)`` for any status (no exception on 4xx/5xx)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if cookie:
        req.add_header("Cookie", f"_token={cookie}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def _airflow_env(home: Path, port: int, data_root: Path, mlflow_url: str) -> dict[str, str]:
    # The session conftest points AIRFLOW_*/MLOPS_* at the pytest process's own home: drop all of it.
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "MLFLOW_"))}
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(dict.fromkeys([USER, *TEAM_ACCESS], PASSWORD)))
    users = ",".join([f"{USER}:admin", *(f"{name}:viewer" for name in TEAM_ACCESS)])
    return base | {
        # The test auth manager lives in the repository: the API server imports it from there.
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), base.get("PYTHONPATH", "")) if p),
        "AIRFLOW__CORE__AUTH_MANAGER": "tests.ui.team_auth_manager.TeamAuthManager",
        "MLOPS_TEST_TEAM_ACCESS": json.dumps(TEAM_ACCESS),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",  # two cores
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": f"ui-jwt-{port}",
        "AIRFLOW__API__SECRET_KEY": f"ui-api-{port}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": users,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        # Only the runs the tests trigger: unpausing mlops_retraining would also start this week's
        # scheduled run, and max_active_runs=1 would queue the test's run behind it.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__MLOPS__DATA_ROOT": data_root.as_uri(),
        "AIRFLOW__MLOPS__BATCH_CATCHUP": "False",
        "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps({"conn_type": "mlflow", "host": mlflow_url}),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GIT_PYTHON_REFRESH": "quiet",
    }


@pytest.fixture(scope="package")
def ui_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiStack]:
    """Start everything, log in over REST, wait until both reference DAGs are parsed."""
    home = tmp_path_factory.mktemp("ui-airflow-home")
    data_root = home / "mlops-data"
    port = free_port()
    ml_port = free_port()
    ml_url = f"http://127.0.0.1:{ml_port}"
    env = _airflow_env(home, port, data_root, ml_url)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # The slow steps overlap: DB migration, demo data and the MLflow server start together.
    steps = {
        "migrate": [str(VENV_BIN / "airflow"), "db", "migrate"],
        "generate-data": [
            # Two scored months for the page's charts, the second with the demo's concept drift.
            str(VENV_BIN / "airflow-mlops"), "generate-data", "--rows", "1000", "--months", "2025-01:2025-02", "--training-rows", "1500",
            "--concept-drift-from", "2025-02",
            "--rows-per-file", "1500", "--to", (data_root / "churn").as_uri(),
        ],
    }  # fmt: skip
    running = {name: subprocess.Popen(argv, env=env, stdout=(home / f"{name}.log").open("wb"), stderr=subprocess.STDOUT) for name, argv in steps.items()}
    mlflow = Server(
        "mlflow",
        [str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(ml_port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{home}/mlflow.db", "--artifacts-destination", str(home / "mlflow-artifacts"),
         "--serve-artifacts"],
        ml_url, f"{ml_url}/health", home, env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    ).start()  # fmt: skip
    airflow: Airflow | None = None
    try:
        for name, proc in running.items():
            assert proc.wait(timeout=300) == 0, f"{name} failed:\n{(home / f'{name}.log').read_text()[-3000:]}"
        airflow = Airflow(env, home, port)
        airflow.start("api-server", "api-server", "--port", str(port))
        airflow.start("scheduler", "scheduler")
        airflow.start("dag-processor", "dag-processor")
        airflow.start("triggerer", "triggerer")  # the monitoring DAG's labels sensor defers
        airflow.wait_until("api-server", lambda: airflow.request("GET", "/api/v2/version"), 120, every=1)
        airflow.token = airflow.request("POST", "/auth/token", {"username": USER, "password": PASSWORD})["access_token"]
        airflow.create_promotion_pool()
        for dag_id in ("mlops_retraining", "mlops_batch_prediction", "mlops_model_monitoring"):
            airflow.wait_until(f"{dag_id} parsed", lambda d=dag_id: airflow.request("GET", f"/api/v2/dags/{d}"), 120, every=1)
        yield UiStack(airflow=airflow, mlflow=mlflow, home=home, data_root=data_root, env=env)
    finally:
        if airflow is not None:
            airflow.stop()
            for name in airflow.procs:  # kept with the screenshots: the first thing to read when a UI test fails
                (ARTIFACTS / f"{name}.log").write_text(airflow.log(name)[-200_000:])
        mlflow.stop()


BROWSER_DIR = Path(__file__).with_name("browser")
CHROMIUM = os.environ.get("MLOPS_UI_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="package")
def browser() -> Any:
    """Run a step of ``browser/ui.mjs`` (headless Chromium via playwright-core) and return its JSON result.

    Missing Chromium, node or the npm packages fail the test with the command that installs them: the
    UI tests never skip (``make test`` installs all three, see the Makefile's ``ui-deps``).
    """
    import shutil

    missing = [
        what
        for what, ok in (
            (f"Chromium at {CHROMIUM} (apt-get install -y chromium)", Path(CHROMIUM).exists()),
            ("node (apt-get install -y nodejs npm)", shutil.which("node") is not None),
            (f"playwright-core (cd {BROWSER_DIR} && npm ci)", (BROWSER_DIR / "node_modules" / "playwright-core").is_dir()),
        )
        if not ok
    ]
    if missing:
        pytest.fail("UI tests need " + "; ".join(missing) + " — or run `make ui-deps`", pytrace=False)

    def run(step: str, args: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
        argv = ["node", str(BROWSER_DIR / "ui.mjs"), step, json.dumps({"chromium": CHROMIUM, "artifacts": str(ARTIFACTS), **args})]
        out = subprocess.run(argv, cwd=BROWSER_DIR, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            pytest.fail(f"browser step {step!r} failed (screenshots in {ARTIFACTS}):\n{out.stderr[-4000:]}", pytrace=False)
        return json.loads(out.stdout.strip().splitlines()[-1])

    return run

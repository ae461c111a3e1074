"""`make airflow`: the Airflow UI locally, in one command, on the embedded default.

Starts ``airflow standalone`` (api-server, scheduler, dag-processor, triggerer; LocalExecutor, SQLite)
with this provider, the repository's ``dags/`` and ``plugins/``, the demo data (generated once), and an
``mlflow ui`` on the embedded MLflow store so the "MLflow run" / "Model version" links open something.
Everything lives in ``$AIRFLOW_HOME`` (make sets ``.airflow/``); delete it to start over. Ctrl-C stops all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
USER, PASSWORD = "admin", "admin"  # local only: the simple auth manager, as `airflow standalone` uses


def environment(home: Path, port: int, mlflow_port: int) -> dict[str, str]:
    """The environment of every process: the repo's DAGs and plugins, a known login, no catch-up."""
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    return os.environ | {
        # standalone starts its components as `airflow ...` found on PATH: this venv's.
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        # Unpausing the monthly batch DAG would otherwise start one run per month since 2025-02.
        "AIRFLOW__MLOPS__BATCH_CATCHUP": os.environ.get("AIRFLOW__MLOPS__BATCH_CATCHUP", "False"),
        "MLOPS_MLFLOW_UI_URL": os.environ.get("MLOPS_MLFLOW_UI_URL", f"http://localhost:{mlflow_port}"),
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GIT_PYTHON_REFRESH": "quiet",
    }


def seed_demo_data(env: dict[str, str]) -> None:
    """Write the churn demo data under the data root unless it is there already."""
    os.environ.update(env)
    from airflow_mlops import settings, tables
    from airflow_mlops.example_data import churn

    root = f"{settings.data_root()}/churn"
    if tables.storage_path(f"{root}/churn_spec.yaml").exists():
        print(f"Demo data: {root} (already there)")
        return
    print(f"Demo data: writing {root} ...")
    churn.generate_dataset(
        root, rows=20_000, months=churn.month_range("2025-01:2025-03"), training_rows=40_000, drift_from="2025-03", rows_per_file=10_000
    )


def wait_for(url: str, procs: list[subprocess.Popen[bytes]], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise SystemExit(f"a process exited before {url} answered; see airflow-local.log in AIRFLOW_HOME")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"{url} did not answer within {timeout:.0f}s")


def main() -> int:
    home = Path(os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".airflow"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    port = int(os.environ.get("AIRFLOW_PORT", "8080"))
    mlflow_port = int(os.environ.get("MLFLOW_UI_PORT", "5000"))
    env = environment(home, port, mlflow_port)
    seed_demo_data(env)

    from airflow_mlops import settings
    from airflow_mlops.operators.registry import promotion_pool

    # Ctrl-C and `kill` both end in the cleanup below (a shell may start us with SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    log = home / "airflow-local.log"
    print(f"Starting airflow standalone and mlflow ui (output: {log}) ...", flush=True)
    with log.open("ab") as out:
        procs = [
            # One process group each, so the cleanup stops standalone's children too (SIGTERM to
            # standalone alone has left its scheduler running).
            subprocess.Popen([str(BIN / "airflow"), "standalone"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True),
            subprocess.Popen(
                [str(BIN / "mlflow"), "ui", "--host", "127.0.0.1", "--port", str(mlflow_port),
                 "--backend-store-uri", settings.embedded_tracking_uri()],
                env=env | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            ),
        ]  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/api/v2/version", procs)
        # The reference retraining DAG promotes in a pool with one slot per model (standalone migrated the DB).
        subprocess.run([str(BIN / "airflow"), "pools", "set", promotion_pool("churn"), "1", "promotions of churn, one at a time"],
                       env=env, stdout=subprocess.DEVNULL, check=True)  # fmt: skip
        print(
            f"\n  Airflow UI : http://localhost:{port}   (login: {USER} / {PASSWORD}; simple auth manager)"
            f"\n  MLOps page : http://localhost:{port}/plugin/mlops   (Browse > MLOps)"
            f"\n  MLflow UI  : {env['MLOPS_MLFLOW_UI_URL']}"
            f"\n  Home       : {home}   (delete it to start over; logs in {log.name})"
            "\n  Unpause and trigger mlops_retraining, then mlops_batch_prediction. Ctrl-C stops everything.\n",
            flush=True,
        )
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        print(f"A process exited; see {log}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Stopping ...", flush=True)
        return 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())

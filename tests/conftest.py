"""Test setup shared by every test.

The environment is fixed before Airflow is imported: a throwaway ``AIRFLOW_HOME`` per pytest session,
the repository's ``dags/`` as DAG folder, no example DAGs, analytics/telemetry off. Fixtures start
the real servers some tests need (an ``mlflow server`` process, a moto S3 endpoint over HTTP); they
fail, never skip, when a server cannot start.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

_HOME = tempfile.mkdtemp(prefix="mlops-test-airflow-home-")
_LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
os.environ.update(
    {
        # The reference DAGs and the teams' examples, each a bundle so dag.test() finds them.
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
            [
                {"name": "dags-folder", "classpath": _LOCAL_BUNDLE, "kwargs": {"path": str(REPO / "dags")}},
                {"name": "examples", "classpath": _LOCAL_BUNDLE, "kwargs": {"path": str(REPO / "examples")}},
            ]
        ),
        "AIRFLOW_HOME": _HOME,
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLOPS_DATA_ROOT": Path(_HOME, "mlops-data").as_uri(),
        "GIT_PYTHON_REFRESH": "quiet",
    }
)
for _var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "AIRFLOW_CONN_MLFLOW_DEFAULT", "AIRFLOW__MLOPS__DATA_ROOT"):
    os.environ.pop(_var, None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)


def free_port() -> int:
    """Return a TCP port that is free on localhost right now, below the kernel's ephemeral range.

    A port from ``bind(0)`` lies in the ephemeral range, which the suite's own outgoing connections
    (to Postgres, MLflow, S3) draw from too: one of them took an api-server's port in the seconds before
    the server bound it. Ports below that range are never handed out to outgoing connections.
    """
    import random

    ranges = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low = int(ranges.read_text().split()[0]) if ranges.exists() else 32768
    for _ in range(200):
        port = random.randrange(15000, low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port between 15000 and {low}")


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90.0) -> None:
    """Wait until ``url`` answers 2xx/4xx; fail with the server's log if it dies or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server for {url} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.3)
    proc.kill()
    pytest.fail(f"server for {url} did not answer in {timeout}s:\n{log.read_text()[-4000:]}")


class Server:
    """A server process started by the suite: its URL, and how to stop and restart it."""

    def __init__(self, name: str, argv: list[str], url: str, health: str, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.name, self.argv, self.url, self.health, self.workdir = name, argv, url, health, workdir
        self.env = os.environ | (env or {})
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir, env=self.env, start_new_session=True
            )
        wait_http(self.health, self.proc, self.log)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Migrate the session's SQLite metadata DB (dag.test() needs it)."""
    from airflow.utils import db

    db.initdb()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real ``mlflow server`` process (sqlite backend, served artifacts) on a free localhost port."""
    work = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{work}/mlflow.db",
        "--artifacts-destination", str(work / "artifacts"), "--serve-artifacts",
    ]  # fmt: skip
    # No background job runners (huey): the tracking server is all the tests need, and they cost CPU.
    server = Server("mlflow", argv, url, f"{url}/health", work, env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}).start()
    yield server
    server.stop()


#: The admin of every basic-auth MLflow server the suite starts (its own user store per server).
MLFLOW_ADMIN = ("admin", "admin-secret-8d1f")


def basic_auth_mlflow(work: Path, *, backend: str, artifacts: str, auth_database: str | None = None, env: dict[str, str] | None = None) -> Server:
    """A real ``mlflow server --app-name basic-auth`` as docker-compose runs it: admin :data:`MLFLOW_ADMIN`,
    ``default_permission = NO_PERMISSIONS`` (a user reaches only what it created or was granted),
    users in ``auth_database`` (default a SQLite file in ``work``). Started, not yet with any other user."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = work / "basic_auth.ini"
    config.write_text(
        "[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
        f"database_uri = {auth_database or f'sqlite:///{work}/basic_auth.db'}\n"
        f"admin_username = {MLFLOW_ADMIN[0]}\nadmin_password = {MLFLOW_ADMIN[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    argv = [
        str(VENV_BIN / "mlflow"), "server", "--app-name", "basic-auth", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", backend, "--artifacts-destination", artifacts, "--serve-artifacts",
    ]  # fmt: skip
    server_env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": f"flask-{port}",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    } | (env or {})
    return Server("mlflow-auth", argv, url, f"{url}/health", work, env=server_env).start()


@pytest.fixture(scope="session")
def mlflow_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real basic-auth ``mlflow server`` (sqlite backend, served artifacts): see :func:`basic_auth_mlflow`."""
    work = tmp_path_factory.mktemp("mlflow-auth")
    server = basic_auth_mlflow(work, backend=f"sqlite:///{work}/mlflow.db", artifacts=str(work / "artifacts"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real S3-compatible endpoint over HTTP (moto in server mode), as its own process."""
    work = tmp_path_factory.mktemp("moto")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Server("moto", [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], url, f"{url}/moto-api/", work)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def aws_conn(s3_server: Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """An Airflow ``aws`` connection (``aws_moto``) pointing at the S3 endpoint, with a fresh bucket.

    Returns the bucket URI (``s3://<bucket>``).
    """
    import json
    import uuid

    conn = {
        "conn_type": "aws",
        "login": "testing-key-id",
        "password": "testing-secret-key",
        "extra": {"endpoint_url": s3_server.url, "region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_MOTO", json.dumps(conn))
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    bucket = f"mlops-{uuid.uuid4().hex[:10]}"
    S3Hook(aws_conn_id="aws_moto").create_bucket(bucket)
    return f"s3://{bucket}"

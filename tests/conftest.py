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
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
                {"name": "test-dags", "classpath": _LOCAL_BUNDLE, "kwargs": {"path": str(REPO / "tests" / "e2e" / "dags")}},
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


# -- tiers -----------------------------------------------------------------------------------------
#
# ``make test-fast`` runs ``pytest --tier fast``, ``make test-unit`` ``pytest --tier unit``, ``make test``
# everything. The folder a test lives in decides its tier (the longest matching folder below tests/),
# so a new test joins its folder's tier without anyone listing it:
#
# - fast: pure unit tests. No process spawned, no SQLite database opened (the Airflow metadata DB, an
#   embedded MLflow store), no connection to a server: checked while each one runs (see
#   ``_PurityWatch``). A test of a fast folder that needs one of those carries ``@pytest.mark.slow``
#   and runs in the unit tier instead.
# - unit: the fast tier plus the operators, sensors, DAG parsing and real-data tests on the embedded
#   stores (SQLite Airflow DB, embedded MLflow, local files); no server.
# - all: whatever no folder below names (e2e, integration, reliability, topology, ui): ``make test`` only.
#
# Every test gets the marker of its tier and of the tiers above it (a fast test is marked ``fast`` and
# ``unit``), so ``-m fast`` / ``-m unit`` select the same tests as ``--tier`` in any run.

TIERS = ("fast", "unit", "all")
FOLDER_TIERS = {
    "unit": "fast",
    "unit/operators": "unit",
    "unit/sensors": "unit",
    "dags": "unit",
    "byod": "unit",
}
_TESTS = Path(__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tier", choices=TIERS, default="all",
        help="run only the tests of this tier and the tiers below it (fast < unit < all); see tests/conftest.py",
    )  # fmt: skip


def folder_tier(path: Path) -> str:
    """The tier of a test file's or folder's location: its longest matching :data:`FOLDER_TIERS` entry."""
    try:
        rel = path.resolve().relative_to(_TESTS).as_posix()
    except ValueError:
        return "all"
    if path.suffix == ".py":
        rel = rel.rpartition("/")[0]
    matches = [folder for folder in FOLDER_TIERS if rel == folder or rel.startswith(folder + "/")]
    return FOLDER_TIERS[max(matches, key=len)] if matches else "all"


def item_tier(item: pytest.Item) -> str:
    tier = folder_tier(Path(str(item.path)))
    if tier == "fast" and item.get_closest_marker("slow") is not None:
        return "unit"
    return tier


def _within(tier: str, limit: str) -> bool:
    return TIERS.index(tier) <= TIERS.index(limit)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With ``--tier``, folders and files that cannot hold a test of it are not even imported."""
    limit = config.getoption("--tier")
    if limit == "all" or collection_path.resolve() == _TESTS:
        return None
    if collection_path.is_file() and collection_path.suffix != ".py":
        return None
    if _within(folder_tier(collection_path), limit):
        return None
    rel = collection_path.resolve().relative_to(_TESTS).as_posix() if collection_path.resolve().is_relative_to(_TESTS) else None
    below = rel is not None and collection_path.is_dir() and any(
        folder.startswith(rel + "/") and _within(tier, limit) for folder, tier in FOLDER_TIERS.items()
    )
    return None if below else True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    limit = config.getoption("--tier")
    kept, dropped = [], []
    for item in items:
        tier = item_tier(item)
        for marker in TIERS[TIERS.index(tier) : -1]:
            item.add_marker(marker)
        (kept if _within(tier, limit) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


class _PurityWatch:
    """Records, through a Python audit hook, what a fast test must not do while it runs (setup and call):
    spawn a process, open a SQLite database other than an in-memory one, connect a socket.

    Only the test's own thread is watched: a thread an earlier test left running (an MLflow or SQLAlchemy
    worker) is not the test's doing. Nor is what a module does while it is first imported: only the
    first test to import it would see it (croniter runs ``file`` through ``platform.architecture()`` at
    import). Either would make a test's verdict depend on which tests ran before it.
    """

    EVENTS = {
        "subprocess.Popen": "spawns a process",
        "os.system": "spawns a process",
        "os.posix_spawn": "spawns a process",
        "os.spawn": "spawns a process",
        "os.fork": "forks a process",
        "os.exec": "execs a program",
        "sqlite3.connect": "opens a SQLite database (the Airflow metadata DB, an embedded MLflow store)",
        "socket.connect": "connects a socket",
    }

    def __init__(self) -> None:
        self.seen: list[str] | None = None
        self.thread: int | None = None
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.seen is None or event not in self.EVENTS or threading.get_ident() != self.thread:
            return
        what = args[1] if event == "socket.connect" else (args[0] if args else "")
        if event == "sqlite3.connect" and str(what) in (":memory:", ""):
            return
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
                return  # an import's side effect
            frame = frame.f_back
        self.seen.append(f"{self.EVENTS[event]}: {event} {what!r}"[:300])

    def start(self) -> None:
        self.seen, self.thread = [], threading.get_ident()

    def stop(self) -> list[str]:
        seen, self.seen = self.seen or [], None
        return seen


_PURITY = _PurityWatch()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    if item.get_closest_marker("fast") is not None:
        _PURITY.start()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    try:
        result = yield
    except BaseException:
        _PURITY.stop()
        raise
    seen = _PURITY.stop()
    if seen:
        pytest.fail(
            "a fast test (tier of its folder, see tests/conftest.py) "
            + "; ".join(dict.fromkeys(seen))
            + ": mark it @pytest.mark.slow (it then runs in make test-unit) or keep it pure",
            pytrace=False,
        )
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    _PURITY.stop()
    return (yield)


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

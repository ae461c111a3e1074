"""``make airflow`` (scripts/airflow_local.py): every local server listens on loopback unless
``BIND_HOST`` says otherwise, a busy port stops the start naming the port and the variable that moves
it, Ctrl-C stops every process it started, and sensors wait at most ``LOCAL_MAX_WAIT`` there.

The bind test starts the real stack (api-server, scheduler, dag-processor, triggerer, both log
servers, the MLflow UI) in a temporary ``AIRFLOW_HOME`` on free ports and reads the listening sockets
of its process tree with psutil, as ``ss -ltnp`` would.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_port
from tests.scripts.conftest import SCRIPTS, load

REPO = SCRIPTS.parent
PORT_VARIABLES = ("AIRFLOW_PORT", "MLFLOW_UI_PORT", "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT")
READY = "Ctrl-C stops everything."


def script_env(home: Path, ports: dict[str, int], **extra: str) -> dict[str, str]:
    """The environment of a `make airflow` in a shell that set nothing of Airflow's (the suite's own
    AIRFLOW_* settings point at the pytest process's home: dropped)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "MLFLOW_", "BIND_HOST", "LOCAL_MAX_WAIT"))}
    return base | {"AIRFLOW_HOME": str(home)} | {k: str(v) for k, v in ports.items()} | extra


def free_ports() -> dict[str, int]:
    chosen: dict[str, int] = {}
    while len(chosen) < len(PORT_VARIABLES):
        port = free_port()
        if port not in chosen.values():
            chosen[PORT_VARIABLES[len(chosen)]] = port
    return chosen


def listening(root: psutil.Process) -> dict[int, set[str]]:
    """Port -> the addresses listening on it, over ``root`` and all its descendants."""
    found: dict[int, set[str]] = {}
    for proc in [root, *root.children(recursive=True)]:
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.setdefault(conn.laddr.port, set()).add(conn.laddr.ip)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, dict[str, int]]]:
    """``scripts/airflow_local.py`` started in a temporary home on free ports, until its banner is out."""
    ports = free_ports()
    out = tmp_path / "make-airflow.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, str(SCRIPTS / "airflow_local.py")], env=script_env(tmp_path / "home", ports),
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while READY not in out.read_text(errors="replace"):
            assert proc.poll() is None, f"make airflow exited {proc.returncode}:\n{out.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"no banner within 600 s:\n{out.read_text()[-4000:]}"
            time.sleep(2)
        yield proc, out, ports
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.services
def test_every_local_server_listens_on_loopback_only_and_ctrl_c_stops_them_all(stack) -> None:
    proc, out, ports = stack
    root = psutil.Process(proc.pid)
    # The servers may still be binding when the API server answers: give the rest a moment.
    deadline = time.monotonic() + 60
    while not set(ports.values()) <= set(found := listening(root)) and time.monotonic() < deadline:
        time.sleep(2)
    children = root.children(recursive=True)

    assert set(ports.values()) <= set(found), (ports, found)
    assert all(ipaddress.ip_address(ip).is_loopback for ips in found.values() for ip in ips), found
    banner = out.read_text()
    assert "Listening  : 127.0.0.1 (loopback only" in banner and "BIND_HOST=0.0.0.0" in banner
    assert f"http://127.0.0.1:{ports['AIRFLOW_PORT']}/plugin/mlops" in banner

    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert proc.wait(120) == 0
    time.sleep(1)
    left = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, [(p.pid, p.name()) for p in left]


@pytest.mark.parametrize("variable", PORT_VARIABLES)
def test_a_busy_port_stops_the_start_naming_the_port_and_its_variable(tmp_path: Path, variable: str) -> None:
    ports = free_ports()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[variable]))
        holder.listen()

        done = subprocess.run([sys.executable, str(SCRIPTS / "airflow_local.py")], env=script_env(tmp_path / "home", ports),
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip

    assert done.returncode == 2, done.stdout + done.stderr
    assert f"port {ports[variable]} (" in done.stderr and "is in use" in done.stderr
    suggested = int(done.stderr.split(f"{variable}=")[1].split()[0])
    assert suggested not in ports.values() and suggested != ports[variable]  # a port none of the other servers uses
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", suggested))  # and free: taking the advice works
    assert not (tmp_path / "home").exists()  # stopped before anything was written or started


def test_bind_host_changes_every_server_and_the_urls_stay_reachable() -> None:
    local = load("airflow_local")
    listen = local.ports({"AIRFLOW_PORT": "18080", "MLFLOW_UI_PORT": "15000"})

    commands = local.commands("0.0.0.0", listen, Path("/tmp/home"))

    hosts = {name: argv[argv.index("--host") + 1] for name, argv in commands.items() if "--host" in argv}
    assert hosts == dict.fromkeys(["api-server", "worker-log-server", "trigger-log-server", "mlflow-ui"], "0.0.0.0")
    assert "--skip-serve-logs" in commands["scheduler"] and "--skip-serve-logs" in commands["triggerer"]
    assert local.reachable("0.0.0.0") == "127.0.0.1" and local.reachable("::") == "127.0.0.1" and local.reachable("10.1.2.3") == "10.1.2.3"


def test_without_airflow_home_it_opens_the_demos_state() -> None:
    local = load("airflow_local")

    assert local.resolve_home({}) == (REPO / ".demo", "make demo's state")
    assert local.resolve_home({"AIRFLOW_HOME": "/tmp/x"}) == (Path("/tmp/x"), "from AIRFLOW_HOME")


def test_the_local_policy_caps_a_sensors_wait_and_skips_instead_of_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import DAG

    from airflow_mlops.sensors.partition import DataPartitionSensor

    settings = load("airflow_local_settings", SCRIPTS / "local_stack" / "airflow_local_settings.py")
    with DAG("policy_probe", schedule=None):
        month = DataPartitionSensor(task_id="month", uri="file:///nowhere", timeout=3 * 24 * 3600, deferrable=True)
        quick = DataPartitionSensor(task_id="quick", uri="file:///nowhere", timeout=60)

    monkeypatch.setenv("LOCAL_MAX_WAIT", "120")
    settings.task_policy(month)
    settings.task_policy(quick)

    assert (month.timeout, month.soft_fail) == (120, True)
    assert (quick.timeout, quick.soft_fail) == (60, False)  # shorter waits are left as they are
    assert settings.__all__ == ["task_policy"]

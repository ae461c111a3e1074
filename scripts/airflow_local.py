"""`make airflow`: the Airflow UI locally, in one command, on loopback, with finished runs to look at.

Which state it opens (its ``AIRFLOW_HOME``):

- ``$AIRFLOW_HOME`` when the caller sets it (``AIRFLOW_HOME=$PWD/.airflow make airflow``: an empty
  stack with the demo data; the banner says which forms to fill);
- else ``.demo/``, the state of ``make demo``: when it is new (no MLflow store yet), the demo's story runs
  into it first (``scripts/demo.py``: a champion, three months scored, their labels judged, the
  retraining the signals scheduled), so the UI opens on finished runs and the whole story on the MLOps page.

It starts what ``airflow standalone`` starts (api-server, scheduler, dag-processor, triggerer;
LocalExecutor, SQLite), the two log servers and an ``mlflow ui`` on the embedded store, every one of
them listening on ``BIND_HOST`` (default 127.0.0.1: nothing is reachable from the network). A busy
port stops the start with the port and the variable that changes it. Every sensor waits at most
``LOCAL_MAX_WAIT`` seconds here (``scripts/local_stack/airflow_local_settings.py``): the stack has the
demo's months, not today's. Ctrl-C stops everything.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
USER, PASSWORD = "admin", "admin"  # local only: the simple auth manager, as `airflow standalone` uses
LOCAL_SETTINGS = Path(__file__).resolve().with_name("local_stack")
DEMO_HOME = REPO / ".demo"
#: What scripts/demo.py writes when its story finished: the UI has something to show.
DEMO_DONE = "demo-summary.json"
LOOPBACK = "127.0.0.1"
#: The months the demo data holds (scripts/demo.py writes the same).
DEMO_MONTHS = ("2025-01", "2025-02", "2025-03")
#: Settings that would send the stack's data or models elsewhere than its home.
ELSEWHERE = (
    "AIRFLOW__MLOPS__DATA_ROOT", "AIRFLOW__MLOPS__REPORTS_ROOT", "MLOPS_DATA_ROOT", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI",
    "AIRFLOW_CONN_MLFLOW_DEFAULT",
)  # fmt: skip


@dataclass(frozen=True)
class Port:
    """A port one of the local servers listens on, and the variable that moves it."""

    what: str
    number: int
    variable: str


def ports(env: dict[str, str]) -> list[Port]:
    """The ports of every local server, from the environment (defaults: Airflow's and MLflow's)."""

    def number(variable: str, default: int) -> int:
        raw = env.get(variable) or str(default)
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise SystemExit(f"{variable}={raw!r} is not a port number")
        return int(raw)

    return [
        Port("the Airflow UI and API server", number("AIRFLOW_PORT", 8080), "AIRFLOW_PORT"),
        Port("the MLflow UI", number("MLFLOW_UI_PORT", 5000), "MLFLOW_UI_PORT"),
        Port(
            "the scheduler's log server",
            number("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", 8793),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
        ),
        Port(
            "the triggerer's log server",
            number("AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT", 8794),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
        ),
    ]


def bind_error(host: str, number: int) -> OSError | None:
    """Why ``host:number`` cannot be listened on right now, or ``None`` when it can."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, number))
        except OSError as exc:
            return exc
    return None


def busy_ports(host: str, wanted: list[Port]) -> list[str]:
    """One sentence per port of ``wanted`` that something else holds on ``host``: which port, and the
    variable that moves it to a port that is free now (and is none of the other servers')."""
    problems = []
    taken = {p.number for p in wanted}
    for port in wanted:
        exc = bind_error(host, port.number)
        if exc is None:
            continue
        why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
        free = next((n for n in range(port.number + 1, min(port.number + 200, 65536)) if n not in taken and bind_error(host, n) is None), None)
        if free is not None:
            taken.add(free)
        move = f"{port.variable}={free} make airflow" if free else f"{port.variable}=<another port> make airflow"
        problems.append(
            f"port {port.number} ({port.what}) on {host} {why}: stop what holds it (`ss -ltnp 'sport = :{port.number}'` names it) or move it: {move}"
        )
    return problems


def reachable(host: str) -> str:
    """The address a local client uses to reach a server bound to ``host``."""
    return LOOPBACK if host in ("", "0.0.0.0", "::") else host


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def resolve_home(environ: dict[str, str]) -> tuple[Path, str]:
    """Where the stack keeps its state, and why there: ``$AIRFLOW_HOME`` when set, else ``.demo/``."""
    if environ.get("AIRFLOW_HOME"):
        return Path(environ["AIRFLOW_HOME"]).resolve(), "from AIRFLOW_HOME"
    return DEMO_HOME, "make demo's state"


def environment(home: Path, host: str, listen: list[Port]) -> dict[str, str]:
    """The environment of every process: the repo's DAGs and plugins, a known login, loopback servers.

    Settings the stack relies on are set here whatever the calling shell exported (another executor,
    metadata DB, data root or MLflow store must not change what ``make airflow`` shows); the DAGs folder
    is the one it takes from the caller, so ``AIRFLOW_HOME=$PWD/.byod AIRFLOW__CORE__DAGS_FOLDER=$PWD/examples
    make airflow`` opens the bring-your-own-data walk-through's state. The banner names both.
    """
    api, mlflow_ui, worker_logs, trigger_logs = (p.number for p in listen)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    local = reachable(host)
    pythonpath = os.pathsep.join(p for p in (str(LOCAL_SETTINGS), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ) | {
        # The components are started as `airflow ...` found on PATH: this venv's.
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": pythonpath,  # scripts/local_stack/airflow_local_settings.py: the local sensor limit
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__API__HOST": host,
        "AIRFLOW__API__PORT": str(api),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{url_host(local)}:{api}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_logs),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_logs),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "airflow_local_settings.local_hostname",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        # Unpausing the monthly batch DAG would otherwise start one run per month since 2025-02.
        "AIRFLOW__MLOPS__BATCH_CATCHUP": "False",
        # Data written while a run waits is seen within half a minute (a deployment polls every 5 min).
        "AIRFLOW__MLOPS__PARTITION_POKE_INTERVAL": "30",
        "MLOPS_MLFLOW_UI_URL": f"http://{url_host(local)}:{mlflow_ui}",
        "BIND_HOST": host,
        # The MLflow UI serves the store; no background jobs (they cost CPU on a laptop).
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    for variable in ELSEWHERE:
        env.pop(variable, None)  # the embedded store and data root under the home: what the MLflow UI shows
    return env


def demo_summary(home: Path) -> dict | None:
    """What scripts/demo.py recorded when its story finished in ``home``, else ``None``."""
    try:
        return json.loads((home / DEMO_DONE).read_text())
    except (OSError, ValueError):
        return None


def run_demo(home: Path) -> None:
    """Play the demo's story into ``home`` (scripts/demo.py), so the UI opens on finished runs."""
    print(
        f"No finished demo in {home}: running make demo's story into it first (about 2 min; 5 on a busy machine) ...",
        flush=True,
    )
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW_HOME"} | {"AIRFLOW_HOME": str(home)}
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py")], env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the demo's story failed in {home} (exit {done.returncode}); its output is above")


def seed_demo_data(env: dict[str, str]) -> None:
    """Write the churn demo data under the data root unless it is there already: the same months and
    drift as ``make demo`` (the inputs drift in 2025-03; what drives churn changes from 2025-02)."""
    os.environ.update(env)
    from airflow_mlops import settings, tables
    from airflow_mlops.example_data import churn

    root = f"{settings.data_root()}/churn"
    if tables.storage_path(f"{root}/churn_spec.yaml").exists():
        print(f"Demo data: {root} (already there)")
        return
    print(f"Demo data: writing {root} ...", flush=True)
    churn.generate_dataset(
        root, rows=20_000, months=churn.month_range(f"{DEMO_MONTHS[0]}:{DEMO_MONTHS[-1]}"), training_rows=40_000,
        drift_from="2025-03", concept_drift_from="2025-02", rows_per_file=10_000,
    )  # fmt: skip


def wait_for(url: str, procs: dict[str, subprocess.Popen[bytes]], log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exited = [name for name, p in procs.items() if p.poll() is not None]
        if exited:
            raise SystemExit(f"{', '.join(exited)} exited before {url} answered; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"{url} did not answer within {timeout:.0f}s; see {log}")


def commands(host: str, listen: list[Port], home: Path) -> dict[str, list[str]]:
    """What runs: ``airflow standalone``'s four components, but each server on ``host``. The scheduler's
    and triggerer's own log servers listen on every interface (Airflow has no setting for it), so they
    are off and the same log-server app runs on ``host`` instead."""
    api, mlflow_ui, worker_logs, trigger_logs = (p.number for p in listen)
    airflow = str(BIN / "airflow")
    log_server = [
        str(BIN / "python"),
        "-m",
        "uvicorn",
        "--factory",
        "airflow.utils.serve_logs.log_server:get_app",
        "--host",
        host,
        "--no-access-log",
    ]
    from airflow_mlops import settings

    return {
        "api-server": [airflow, "api-server", "--host", host, "--port", str(api)],
        "scheduler": [airflow, "scheduler", "--skip-serve-logs"],
        "dag-processor": [airflow, "dag-processor"],
        "triggerer": [airflow, "triggerer", "--skip-serve-logs"],
        "worker-log-server": [*log_server, "--port", str(worker_logs)],
        "trigger-log-server": [*log_server, "--port", str(trigger_logs)],
        "mlflow-ui": [
            str(BIN / "mlflow"),
            "ui",
            "--host",
            host,
            "--port",
            str(mlflow_ui),
            "--workers",
            "1",
            "--backend-store-uri",
            settings.embedded_tracking_uri(),
        ],
    }


def banner(env: dict[str, str], home: Path, why: str, host: str, listen: list[Port], log: Path) -> str:
    api, mlflow_ui, worker_logs, trigger_logs = (p.number for p in listen)
    base = f"http://{url_host(reachable(host))}:{api}"
    where = (
        "loopback only: nothing is reachable from the network"
        if host in (LOOPBACK, "::1", "localhost")
        else "reachable from the network"
    )
    lines = [
        "",
        f"  Airflow UI : {base}   (login: {USER} / {PASSWORD}; simple auth manager)",
        f"  MLOps page : {base}/plugin/mlops   (Browse > MLOps)",
        f"  MLflow UI  : {env['MLOPS_MLFLOW_UI_URL']}",
        f"  Listening  : {host} ({where}): API server :{api}, MLflow UI :{mlflow_ui}, log servers :{worker_logs} and :{trigger_logs};"
        " BIND_HOST=0.0.0.0 make airflow opens them",
        f"  Home       : {home}   ({why}; delete it to start over)",
        f"  DAGs       : {env['AIRFLOW__CORE__DAGS_FOLDER']}",
        f"  Logs       : {log} (the servers), {home / 'logs'} (the tasks)",
    ]
    summary = demo_summary(home)
    if summary:
        lines += [
            "",
            f"  Shown: make demo's story. Champion churn v{summary.get('champion', '?')}; months {', '.join(summary.get('months', []))} scored"
            " and their labels judged, the retraining the signals scheduled; the MLOps page shows which months drifted or decayed.",
            "  Those runs ran in-process (dag.test): their task logs are make demo's output; runs started here log in the UI.",
        ]
    elif why == "make demo's state":
        lines += ["", f"  {home} holds no finished demo (an older or interrupted one): delete it to play the story again."]
    elif env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO / "dags"):
        months = ", ".join(DEMO_MONTHS)
        lines += [
            "",
            "  No runs yet. To see the loop, trigger (Trigger button, the form's fields) in this order, each after the last finished:",
            "    1. mlops_retraining        Training window (months) = 0   (the first champion, from the training snapshot)",
            f"    2. mlops_batch_prediction  Month = {months}   (one run each; the data holds only these months)",
            f"    3. mlops_model_monitoring  Month = {months}   (one run each: 2025-02 and 2025-03 decay)",
            "    mlops_retraining then runs by itself on the drift and decay signals.",
        ]
    lines += [
        "",
        f"  The DAGs start paused. Unpausing one starts its scheduled run for the month before today, which this data does not hold:"
        f" here a sensor waits at most {env.get('LOCAL_MAX_WAIT') or 600} s (LOCAL_MAX_WAIT), then skips the run.",
        "  Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def stop(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    host = os.environ.get("BIND_HOST", LOOPBACK).strip() or LOOPBACK
    listen = ports(dict(os.environ))
    problems = busy_ports(host, listen)
    if problems:
        print("make airflow cannot start:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    home, why = resolve_home(dict(os.environ))
    home.mkdir(parents=True, exist_ok=True)
    dags_folder = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or str(REPO / "dags")
    if why == "make demo's state" and not (home / "mlflow.db").exists():
        run_demo(home)  # a new .demo/: the UI opens on the demo's finished runs
    env = environment(home, host, listen)
    if dags_folder == str(REPO / "dags"):
        seed_demo_data(env)
    os.environ.update(env)

    # Ctrl-C and `kill` both end in the cleanup below (a shell may start us with SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    log = home / "airflow-local.log"
    print(f"Starting Airflow and the MLflow UI on {host} (output: {log}) ...", flush=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        with log.open("ab") as out:
            migrated = subprocess.run(
                [str(BIN / "airflow"), "db", "migrate"], env=env, stdout=out, stderr=subprocess.STDOUT, check=False
            )
            if migrated.returncode != 0:
                raise SystemExit(f"airflow db migrate failed; see {log}")
            for name, argv in commands(host, listen, home).items():
                # One process group each, so the cleanup stops their children too.
                procs[name] = subprocess.Popen(
                    argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
        wait_for(f"http://{url_host(reachable(host))}:{listen[0].number}/api/v2/version", procs, log)
        # The reference retraining DAG promotes in a pool with one slot per model.
        from airflow_mlops.operators.registry import promotion_pool

        subprocess.run([str(BIN / "airflow"), "pools", "set", promotion_pool("churn"), "1", "promotions of churn, one at a time"],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)  # fmt: skip
        print(banner(env, home, why, host, listen, log), flush=True)
        while True:
            exited = [name for name, p in procs.items() if p.poll() is not None]
            if exited:
                print(f"{', '.join(exited)} exited; see {log}", file=sys.stderr)
                return 1
            time.sleep(1)
    except KeyboardInterrupt:
        print("Stopping ...", flush=True)
        return 0
    finally:
        stop(procs)


if __name__ == "__main__":
    sys.exit(main())

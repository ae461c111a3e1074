"""MLflow with authentication, against a real ``mlflow server --app-name basic-auth``
configured as docker-compose runs it (``default_permission = NO_PERMISSIONS``).

The connection's user is created by ``airflow-mlops mlflow-user`` (as compose's ``airflow-init`` does)
and is not an admin: it reaches what it creates. Every client carries its own credentials, so a
process serving several connections at once (the triggerer, the API server) keeps them apart without
the environment; wrong credentials fail at once, naming what to fix and no secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from base64 import b64encode
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_mlops import signals
from airflow_mlops.assets import decay_asset, drift_asset
from airflow_mlops.exceptions import MlflowAuthError
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.operators.inference import MlflowBatchPredictOperator
from airflow_mlops.operators.registry import MlflowPromoteModelOperator
from airflow_mlops.operators.signals import AnswerSignalsOperator, PendingSignalsOperator
from airflow_mlops.sensors.mlflow import MlflowModelVersionSensor
from airflow_mlops.triggers.mlflow import MlflowModelVersionTrigger
from tests.conftest import MLFLOW_ADMIN, VENV_BIN, Server
from tests.helpers import task_context
from tests.reliability.conftest import SPEC, train

pytestmark = [pytest.mark.services]

#: Two teams' users (each its own connection) and the password of neither.
TEAM_A = ("mlflow_team_a", "team-a", "team-a-pw-31c7e2")
TEAM_B = ("mlflow_team_b", "team-b", "team-b-pw-90aa4d")
WRONG = ("mlflow_wrong", "team-a", "not-the-password-5be1")
SECRETS = (TEAM_A[2], TEAM_B[2], WRONG[2], MLFLOW_ADMIN[1])
#: Bounded HTTP retries, as a deployment's connection extras would set them.
FAST_HTTP = {"mlflow_http_request_max_retries": 1, "mlflow_http_request_backoff_factor": 1, "mlflow_http_request_timeout": 10}


def set_connection(conn_id: str, server: Server, login: str, password: str) -> None:
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
        {"conn_type": "mlflow", "host": server.url, "login": login, "password": password, "extra": FAST_HTTP}
    )


def mlflow_user(conn_id: str) -> subprocess.CompletedProcess[str]:
    """``airflow-mlops mlflow-user`` for ``conn_id``, signed in as the server's admin."""
    env = os.environ | {"MLFLOW_ADMIN_USER": MLFLOW_ADMIN[0], "MLFLOW_ADMIN_PASSWORD": MLFLOW_ADMIN[1]}
    return subprocess.run(
        [str(VENV_BIN / "airflow-mlops"), "mlflow-user", "--conn-id", conn_id, "--timeout", "30"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def status(server: Server, path: str, login: str, password: str) -> int:
    """The HTTP status of ``GET path`` signed in as ``login``."""
    request = urllib.request.Request(f"{server.url}{path}")
    request.add_header("Authorization", "Basic " + b64encode(f"{login}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.fixture(scope="module")
def teams(mlflow_auth_server: Server) -> Iterator[dict[str, Any]]:
    """Both teams' users, created by the CLI; their connections (and a wrong one) in the environment."""
    for conn_id, login, password in (TEAM_A, TEAM_B, WRONG):
        set_connection(conn_id, mlflow_auth_server, login, password)
    outputs = {conn_id: mlflow_user(conn_id) for conn_id, _, _ in (TEAM_A, TEAM_B)}
    yield {"server": mlflow_auth_server, "cli": outputs}
    for conn_id, _, _ in (TEAM_A, TEAM_B, WRONG):
        os.environ.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)


@pytest.fixture(scope="module")
def team_model(teams: dict[str, Any], small_data: dict[str, Any]) -> dict[str, Any]:
    """A model team A trained and promoted (as itself, not an admin)."""
    name = f"auth_{uuid.uuid4().hex[:6]}"
    trained = train(small_data, name, "auth", mlflow_conn_id=TEAM_A[0])
    decision = MlflowPromoteModelOperator(task_id="promote", model_name=name, spec_uri=SPEC, mlflow_conn_id=TEAM_A[0]).execute(
        task_context("promote", "auth")
    )
    return {"name": name, "trained": trained, "decision": decision}


def test_mlflow_user_creates_a_non_admin_user_and_a_rerun_sets_the_connections_password(teams) -> None:
    server = teams["server"]
    for conn_id, login, password in (TEAM_A, TEAM_B):
        assert teams["cli"][conn_id].returncode == 0, teams["cli"][conn_id].stderr
        assert teams["cli"][conn_id].stdout.strip() == f"created MLflow user {login}"
        assert status(server, "/api/2.0/mlflow/experiments/search?max_results=1", login, password) == 200
    admin_view = urllib.request.Request(f"{server.url}/api/2.0/mlflow/users/get?username={TEAM_A[1]}")
    admin_view.add_header("Authorization", "Basic " + b64encode(":".join(MLFLOW_ADMIN).encode()).decode())
    with urllib.request.urlopen(admin_view, timeout=10) as response:
        assert json.load(response)["user"]["is_admin"] is False

    rotating = ("mlflow_rotating", f"rotating-{uuid.uuid4().hex[:4]}", "first-pw-1a2b")
    set_connection(rotating[0], server, rotating[1], rotating[2])
    assert mlflow_user(rotating[0]).returncode == 0
    set_connection(rotating[0], server, rotating[1], "second-pw-3c4d")  # the deployment changed the connection's password
    rerun = mlflow_user(rotating[0])
    os.environ.pop(f"AIRFLOW_CONN_{rotating[0].upper()}")

    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.strip() == f"MLflow user {rotating[1]} exists; its password is the connection's"
    assert status(server, "/api/2.0/mlflow/experiments/search?max_results=1", rotating[1], "second-pw-3c4d") == 200
    assert status(server, "/api/2.0/mlflow/experiments/search?max_results=1", rotating[1], "first-pw-1a2b") == 401
    assert not any(secret in rerun.stdout + rerun.stderr for secret in ("first-pw-1a2b", "second-pw-3c4d", MLFLOW_ADMIN[1]))


def test_training_promotion_and_inference_work_as_a_non_admin_user(team_model, small_data, tmp_path) -> None:
    name = team_model["name"]
    assert team_model["trained"]["version"] == "1"
    assert team_model["decision"]["decision"] == "promoted"

    scored = MlflowBatchPredictOperator(
        task_id="predict", input_uri=small_data["files"][0], output_uri=str(tmp_path / "scored.parquet"), spec_uri=SPEC,
        model_name=name, mlflow_conn_id=TEAM_A[0], scored_at="2025-02-01T00:00:00+00:00",
    ).execute(task_context("predict", "auth"))  # fmt: skip

    assert scored["rows"] == 600 and scored["model_version"] == "1"
    version = MlflowHook(TEAM_A[0]).registry.get_version(name, 1)
    assert version.tags["mlops.decision.decision"] == "promoted"
    # Inside a task the fluent API needed the credentials in the environment; none is left behind.
    assert not {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"} & set(os.environ)


def test_clients_in_one_process_keep_their_own_credentials_across_threads(team_model) -> None:
    """As in the triggerer or the API server: several connections at once, nothing in the environment."""
    name = team_model["name"]
    hooks = {"a": MlflowHook(TEAM_A[0]), "b": MlflowHook(TEAM_B[0])}
    seen: dict[str, list[str]] = {"a": [], "b": []}
    environments: list[bool] = []

    def ask(team: str) -> None:
        for _ in range(10):
            try:
                seen[team].append(str(hooks[team].registry.alias_version(name, "champion")))
            except Exception as exc:
                seen[team].append(getattr(exc, "error_code", type(exc).__name__))
            environments.append("MLFLOW_TRACKING_PASSWORD" in os.environ or "MLFLOW_TRACKING_USERNAME" in os.environ)

    threads = [threading.Thread(target=ask, args=(team,)) for team in ("a", "b", "a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert seen["a"] == ["1"] * 20  # team A owns the model
    assert seen["b"] == ["PERMISSION_DENIED"] * 20  # team B has no permission on it, whatever A's thread did meanwhile
    assert environments == [False] * 40


def test_the_trigger_fires_with_its_connections_credentials_and_reports_a_refusal(team_model) -> None:
    async def first_event(conn_id: str) -> dict[str, Any]:
        trigger = MlflowModelVersionTrigger(model_name=team_model["name"], model_ref="champion", mlflow_conn_id=conn_id, poll_interval=0.5)
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    assert asyncio.run(first_event(TEAM_A[0])) == {"status": "success", "model_name": team_model["name"], "version": "1", "run_id": team_model["trained"]["run_id"]}
    refused = asyncio.run(first_event(TEAM_B[0]))
    assert refused["status"] == "error"
    url = MlflowHook(TEAM_B[0]).config.tracking_uri
    assert refused["message"].startswith(f"MlflowAuthError: MLflow at {url} denied the request made with connection 'mlflow_team_b' (login 'team-b')")


def test_wrong_credentials_fail_fast_naming_the_connection_and_no_secret(teams, small_data, caplog, capfd) -> None:
    started = time.monotonic()
    with pytest.raises(MlflowAuthError) as training:
        train(small_data, f"wrong_{uuid.uuid4().hex[:4]}", "wrong", mlflow_conn_id=WRONG[0])
    with pytest.raises(MlflowAuthError) as sensing:
        MlflowModelVersionSensor(task_id="wait", model_name="anything", model_ref="champion", mlflow_conn_id=WRONG[0]).poke(task_context("wait"))
    elapsed = time.monotonic() - started

    url = teams["server"].url
    for raised in (training.value, sensing.value):
        assert str(raised).startswith(f"MLflow at {url} refused the credentials of connection 'mlflow_wrong' (login 'team-a')")
    assert elapsed < 15  # a refusal is not retried (the connection allows one retry of transient errors)
    logged = caplog.text + "".join(capfd.readouterr())
    assert not [secret for secret in SECRETS if secret in logged + str(training.value) + str(sensing.value)]


def test_a_first_retraining_run_as_a_non_admin_reads_nothing_of_a_model_not_created_yet(teams) -> None:
    """Before its first training a model does not exist, and MLflow's basic-auth answers "permission
    denied" for it rather than "not found": the signal steps of a first run must not ask for it."""
    from mlflow.exceptions import MlflowException

    name = f"fresh_{uuid.uuid4().hex[:6]}"
    hook = MlflowHook(TEAM_B[0])
    with pytest.raises(MlflowException, match="Permission denied"):  # what a watermark read would meet
        hook.registry.model_tag(name, signals.WATERMARK_TAG)
    ctx = task_context("pending_signals", "auth")
    ctx["inlet_events"] = {drift_asset(name): [], decay_asset(name): []}

    pending = PendingSignalsOperator(task_id="pending_signals", model_name=name, mlflow_conn_id=TEAM_B[0]).execute(ctx)

    assert pending == {"signals": [], "answered": [], "watermark": 0, "newest_event": 0, "newest_period": None}
    assert hook.registry.decided_versions(name) == []  # the gate's question, answered by a search
    answer_ctx = task_context("answer_signals", "auth")
    answer_ctx["ti"].xcom_pull.return_value = {"decision": "promoted", "challenger_version": "1"}
    assert AnswerSignalsOperator(
        task_id="answer_signals", model_name=name, pending=pending, decision_task_id="promote", mlflow_conn_id=TEAM_B[0]
    ).execute(answer_ctx) == {"answered": [], "decision": "promoted", "version": "1"}

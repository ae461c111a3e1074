"""MlflowHook against a real ``mlflow server`` process."""

from __future__ import annotations

import json
import os

import pytest

from airflow_mlops import settings
from airflow_mlops.hooks.mlflow import MlflowHook


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "mlflow", **fields}))


def test_connection_to_real_server_tracks_and_registers(mlflow_server, monkeypatch) -> None:
    set_conn(monkeypatch, "mlflow_test", host=mlflow_server.url, extra={"ui_base_url": "http://mlflow.example:5000/"})
    hook = MlflowHook(mlflow_conn_id="mlflow_test")

    ok, message = hook.test_connection()
    assert ok, message
    assert mlflow_server.url in message

    exp_id = hook.get_or_create_experiment("hook-test")
    assert hook.get_or_create_experiment("hook-test") == exp_id  # reused, not duplicated
    run = hook.client.create_run(exp_id)
    hook.client.log_metric(run.info.run_id, "auc", 0.8)
    hook.client.set_terminated(run.info.run_id)
    assert hook.client.get_run(run.info.run_id).data.metrics == {"auc": 0.8}
    assert hook.run_url(exp_id, run.info.run_id) == f"http://mlflow.example:5000/#/experiments/{exp_id}/runs/{run.info.run_id}"
    assert hook.model_version_url("churn model", 3) == "http://mlflow.example:5000/#/models/churn%20model/versions/3"


def test_fluent_api_is_pointed_at_the_connection_and_restored(mlflow_server, monkeypatch) -> None:
    import mlflow

    set_conn(monkeypatch, "mlflow_test", host=mlflow_server.url, login="alice", password="s3cret", extra={"token": "tok"})
    hook = MlflowHook(mlflow_conn_id="mlflow_test")
    before = mlflow.get_tracking_uri()

    with hook.activated() as cfg:
        assert mlflow.get_tracking_uri() == mlflow_server.url
        assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice"
        assert os.environ["MLFLOW_TRACKING_TOKEN"] == "tok"
        mlflow.set_experiment("fluent-test")
        with mlflow.start_run() as run:
            mlflow.log_param("p", 1)

    assert mlflow.get_tracking_uri() == before
    # Nothing stays pinned: a client for another server also uses that server's registry.
    other = "http://127.0.0.1:9"
    assert mlflow.MlflowClient(tracking_uri=other)._registry_uri == other
    assert "MLFLOW_REGISTRY_URI" not in os.environ
    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ
    assert "s3cret" not in repr(cfg) and "tok" not in repr(cfg)
    assert hook.client.get_run(run.info.run_id).data.params == {"p": "1"}


def test_unreachable_server_fails_the_connection_test(monkeypatch) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    set_conn(monkeypatch, "mlflow_dead", host=f"http://127.0.0.1:{free_port()}")

    ok, message = MlflowHook(mlflow_conn_id="mlflow_dead").test_connection()

    assert not ok
    assert "did not answer" in message


def test_fallback_order_connection_env_embedded(monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    embedded = MlflowHook().config
    assert embedded.source == "embedded"
    assert embedded.tracking_uri == f"sqlite:///{settings.airflow_home() / 'mlflow.db'}"
    assert embedded.artifact_root == (settings.airflow_home() / "mlflow-artifacts").as_uri()

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-env:5000")
    assert MlflowHook().config.tracking_uri == "http://from-env:5000"
    assert MlflowHook().config.source == "env"

    set_conn(monkeypatch, "mlflow_default", host="mlflow.internal", port=5001)
    cfg = MlflowHook().config
    assert (cfg.source, cfg.tracking_uri, cfg.ui_base_url) == ("connection", "http://mlflow.internal:5001", "http://mlflow.internal:5001")


def test_embedded_store_keeps_artifacts_under_airflow_home(monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    hook = MlflowHook()

    exp_id = hook.get_or_create_experiment("embedded-test")

    location = hook.client.get_experiment(exp_id).artifact_location
    assert location == f"{settings.embedded_artifact_root()}/embedded-test"


def test_hook_reads_its_connection_on_first_use_not_at_construction(monkeypatch) -> None:
    from airflow.models.connection import Connection

    calls: list[str] = []

    def fetch(cls, conn_id: str) -> Connection:
        calls.append(conn_id)
        return Connection(conn_id=conn_id, conn_type="mlflow", host="http://mlflow.example:5000")

    monkeypatch.setattr(MlflowHook, "get_connection", classmethod(fetch))

    hook = MlflowHook(mlflow_conn_id="anything")
    assert calls == []  # DAG parsing builds operators (and their hooks) without touching connections

    assert hook.config.tracking_uri == "http://mlflow.example:5000"
    assert hook.config.tracking_uri == "http://mlflow.example:5000"
    assert calls == ["anything"]  # fetched once, on first use

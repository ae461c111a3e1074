"""Faults: the MLflow server stops during training, promotion and inference; the S3 endpoint stops in
the middle of an upload; the process scoring a file is SIGKILLed mid-write. Each fails clearly and in
bounded time, leaves nothing partial, and a retry of the same task instance succeeds once the
dependency is back. The reference DAGs give such tasks retries with exponential backoff.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops import tables
from airflow_mlops.exceptions import TableError
from airflow_mlops.hooks import registry
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.hooks.registry import ModelRegistry
from airflow_mlops.operators.inference import MlflowBatchPredictOperator
from airflow_mlops.operators.registry import MlflowPromoteModelOperator
from airflow_mlops.operators.training import MlflowTrainModelOperator
from tests.conftest import REPO
from tests.helpers import task_context
from tests.reliability.conftest import SPEC, aliases, reference_dag, train, versions
from tests.reliability.proxy import CuttableProxy

SCORED_AT = "2025-02-01T00:00:00+00:00"
#: With the connection's bounded HTTP retries, a dead server must fail a task well within this.
FAIL_WITHIN_SECONDS = 45


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def names_the_endpoint(error: BaseException, url: str) -> bool:
    text = "".join(str(e) for e in (error, error.__cause__, error.__context__) if e is not None)
    return url.removeprefix("http://") in text


# -- MLflow server -----------------------------------------------------------------------------------
# The tracking server is the session's real `mlflow server` process, reached through a proxy that
# "stops" it: open connections are reset and new ones refused, which is what a client sees when the
# server dies. Restarting the real process instead costs ~40 s per restart on two loaded cores.


@pytest.fixture(scope="module")
def mlflow_proxy(mlflow_server) -> Iterator[tuple[CuttableProxy, str]]:
    """An ``mlflow`` connection (``mlflow_flaky``, HTTP retries bounded by its extras) through a cuttable proxy."""
    proxy = CuttableProxy(int(mlflow_server.url.rsplit(":", 1)[1]))
    extra = {"mlflow_http_request_max_retries": 1, "mlflow_http_request_backoff_factor": 1, "mlflow_http_request_timeout": 10}
    os.environ["AIRFLOW_CONN_MLFLOW_FLAKY"] = json.dumps({"conn_type": "mlflow", "host": proxy.url, "extra": extra})
    yield proxy, "mlflow_flaky"
    os.environ.pop("AIRFLOW_CONN_MLFLOW_FLAKY", None)
    proxy.close()


@contextmanager
def fails_while_down(proxy: CuttableProxy) -> Iterator[Any]:
    """Expect the block to fail, clearly and in bounded time, while the proxy is down; heal it afterwards."""
    start = time.monotonic()
    try:
        with pytest.raises(Exception) as err:
            yield err
    finally:
        proxy.heal()
    assert proxy.cuts >= 1, "the fault was never injected"
    assert time.monotonic() - start < FAIL_WITHIN_SECONDS
    assert names_the_endpoint(err.value, proxy.url), str(err.value)


@pytest.fixture(scope="module")
def trained_through_a_fault(small_data, mlflow_proxy) -> dict[str, Any]:
    """Train a model while the server dies during the model upload, then retry the same task instance."""
    proxy, conn = mlflow_proxy
    name = f"fault_{uuid.uuid4().hex[:6]}"
    real = MlflowTrainModelOperator._log_model

    def dies_while_logging(self, *args: Any, **kwargs: Any) -> Any:
        proxy.stop()  # the model is fitted; its upload meets a dead server
        return real(self, *args, **kwargs)

    MlflowTrainModelOperator._log_model = dies_while_logging  # type: ignore[method-assign]
    try:
        with fails_while_down(proxy):
            train(small_data, name, "fault", mlflow_conn_id=conn)
    finally:
        MlflowTrainModelOperator._log_model = real  # type: ignore[method-assign]
    retry = train(small_data, name, "fault", mlflow_conn_id=conn)  # same task instance, next try
    return {"name": name, "conn": conn, "retry": retry, "proxy": proxy}


def test_tracking_server_stops_during_training_and_the_retry_registers_one_version(trained_through_a_fault) -> None:
    name, conn, retry = trained_through_a_fault["name"], trained_through_a_fault["conn"], trained_through_a_fault["retry"]

    assert retry["reused"] is False  # the dead try registered nothing
    assert versions(name, conn) == [retry["version"]]
    runs = MlflowHook(mlflow_conn_id=conn).client.search_runs([retry["experiment_id"]], "tags.`mlops.task_id` = 'train'")
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]  # the dead try's run is closed, not left RUNNING


def test_tracking_server_stops_during_promotion_and_the_retry_promotes_once(trained_through_a_fault, monkeypatch) -> None:
    name, conn, proxy = trained_through_a_fault["name"], trained_through_a_fault["conn"], trained_through_a_fault["proxy"]
    version = trained_through_a_fault["retry"]["version"]
    real = ModelRegistry.promotion_lock

    def dies_before_switching(*args: Any, **kwargs: Any) -> Any:
        proxy.stop()  # evaluated and judged; the alias switch meets a dead server
        return real(*args, **kwargs)

    monkeypatch.setattr(ModelRegistry, "promotion_lock", dies_before_switching)
    with fails_while_down(proxy):
        MlflowPromoteModelOperator(task_id="promote", model_name=name, spec_uri=SPEC, mlflow_conn_id=conn).execute(task_context("promote", "fault"))
    monkeypatch.setattr(ModelRegistry, "promotion_lock", real)
    assert "champion" not in aliases(name, conn)  # nothing moved

    decision = MlflowPromoteModelOperator(task_id="promote", model_name=name, spec_uri=SPEC, mlflow_conn_id=conn).execute(
        task_context("promote", "fault")
    )

    assert decision["decision"] == "promoted"
    assert aliases(name, conn) == {"champion": version, "challenger": version}
    client = MlflowHook(mlflow_conn_id=conn).client
    assert client.get_model_version(name, version).tags["mlops.decision.decision"] == "promoted"
    assert registry.LOCK_TAG not in client.get_registered_model(name).tags  # the lock was released


def test_tracking_server_stops_during_inference_and_the_retry_is_byte_identical(small_data, trained_through_a_fault, monkeypatch, tmp_path) -> None:
    name, conn, proxy = trained_through_a_fault["name"], trained_through_a_fault["conn"], trained_through_a_fault["proxy"]

    def predict(output: Path) -> dict[str, Any]:
        return MlflowBatchPredictOperator(
            task_id="predict", input_uri=small_data["files"][0], output_uri=str(output), spec_uri=SPEC, model_name=name,
            model_ref=trained_through_a_fault["retry"]["version"], scored_at=SCORED_AT, mlflow_conn_id=conn,
        ).execute(task_context("predict"))  # fmt: skip

    reference = tmp_path / "reference.parquet"
    predict(reference)
    real = ModelRegistry.resolve_version

    def dies_after_resolving(*args: Any, **kwargs: Any) -> Any:
        version = real(*args, **kwargs)
        proxy.stop()  # the version is pinned; loading the model meets a dead server
        return version

    monkeypatch.setattr(ModelRegistry, "resolve_version", dies_after_resolving)
    out = tmp_path / "out" / "part-00000.parquet"
    with fails_while_down(proxy):
        predict(out)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    monkeypatch.setattr(ModelRegistry, "resolve_version", real)

    predict(out)

    assert digest(out) == digest(reference)


# -- S3 endpoint -------------------------------------------------------------------------------------


@pytest.fixture
def flaky_s3(s3_server, aws_conn, monkeypatch) -> Iterator[tuple[CuttableProxy, str]]:
    """An aws connection ``aws_flaky`` to the S3 endpoint through a cuttable proxy; yields (proxy, bucket URI)."""
    proxy = CuttableProxy(int(s3_server.url.rsplit(":", 1)[1]))
    conn = {
        "conn_type": "aws", "login": "testing-key-id", "password": "testing-secret-key",
        "extra": {"endpoint_url": proxy.url, "region_name": "us-east-1", "config_kwargs": {"retries": {"max_attempts": 2}}},
    }  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_AWS_FLAKY", json.dumps(conn))
    yield proxy, aws_conn
    proxy.close()


def keys(bucket_uri: str) -> list[str]:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return sorted(S3Hook(aws_conn_id="aws_moto").list_keys(bucket_name=bucket_uri.removeprefix("s3://")) or [])


def test_s3_endpoint_dies_mid_upload_nothing_partial_is_visible_and_the_retry_publishes(flaky_s3) -> None:
    proxy, bucket = flaky_s3
    uri = f"{bucket}/predictions/month=2025-01/part-00000.parquet"
    good = pd.DataFrame({"id": np.arange(10)})
    tables.write_table(good, uri, conn_id="aws_flaky")
    big = pd.DataFrame({"id": np.arange(200_000), "x": np.random.default_rng(0).normal(size=200_000)})  # ~3 MB, uncompressible

    proxy.cut_after(400_000)  # the endpoint dies a fraction of the way through the body
    start = time.monotonic()
    with pytest.raises(TableError, match="upload failed, nothing was published") as err:
        tables.write_table(big, uri, conn_id="aws_flaky")
    assert time.monotonic() - start < FAIL_WITHIN_SECONDS
    assert "part-00000.parquet" in str(err.value)
    proxy.heal()

    assert keys(bucket) == ["predictions/month=2025-01/part-00000.parquet"]  # no partial object, no stray staging key
    pd.testing.assert_frame_equal(tables.read_table(uri, conn_id="aws_moto"), good)  # the earlier object is intact

    tables.write_table(big, uri, conn_id="aws_flaky")  # the retry, once the endpoint is back

    pd.testing.assert_frame_equal(tables.read_table(uri, conn_id="aws_moto"), big)


def test_failed_staged_write_on_s3_leaves_the_earlier_object(aws_conn: str) -> None:
    """(Moved from tests/integration/test_tables_s3.py.) A writer that fails before publishing leaves no trace."""
    uri = f"{aws_conn}/preds/part-00000.parquet"
    good = pd.DataFrame({"id": [1, 2, 3]})
    tables.write_table(good, uri, conn_id="aws_moto")

    with pytest.raises(RuntimeError, match="killed"), tables.staged_output(uri, conn_id="aws_moto") as local:
        with open(local, "wb") as handle:
            handle.write(b"PAR1 half written")
        raise RuntimeError("killed mid-write")

    assert keys(aws_conn) == ["preds/part-00000.parquet"]
    pd.testing.assert_frame_equal(tables.read_table(uri, conn_id="aws_moto"), good)


# -- worker killed -----------------------------------------------------------------------------------

KILL_SCRIPT = r"""
import sys, time
from airflow_mlops.operators import inference
from tests.helpers import task_context
real = inference.MlflowBatchPredictOperator._score_batch
def slow(self, *args, **kwargs):
    out = real(self, *args, **kwargs)
    print("CHUNK", flush=True)
    time.sleep(0.5)
    return out
inference.MlflowBatchPredictOperator._score_batch = slow
inference.MlflowBatchPredictOperator(
    task_id="predict", input_uri=sys.argv[1], output_uri=sys.argv[2], spec_uri=sys.argv[3], model_name=sys.argv[4],
    scored_at="2025-02-01T00:00:00+00:00", batch_rows=100,
).execute(task_context("predict"))
"""


def test_sigkill_mid_write_leaves_nothing_visible_and_the_rerun_is_identical(small_data, embedded_model, tmp_path) -> None:
    """(Moved from tests/unit/operators/test_inference.py.)"""
    out = tmp_path / "out" / "part-00000.parquet"
    argv = [sys.executable, "-c", KILL_SCRIPT, small_data["files"][0], str(out), SPEC, embedded_model["name"]]
    log = tmp_path / "scorer.log"
    with log.open("w") as stderr:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_") and k != "MLFLOW_REGISTRY_URI"}  # the embedded store
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    chunks = 0
    while chunks < 3:  # a few chunks are in the staged file
        line = proc.stdout.readline()
        assert line, f"the scoring process ended before it was killed:\n{log.read_text()[-3000:]}"
        chunks += line.startswith("CHUNK")
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    assert not out.exists()
    # Only a hidden staging file may remain; readers skip dot-files, so nothing partial is visible.
    assert [p.name for p in out.parent.iterdir() if not p.name.startswith(".")] == []

    def predict(output: Path) -> None:
        MlflowBatchPredictOperator(
            task_id="predict", input_uri=small_data["files"][0], output_uri=str(output), spec_uri=SPEC,
            model_name=embedded_model["name"], scored_at=SCORED_AT,
        ).execute(task_context("predict"))  # fmt: skip

    predict(out)
    reference = tmp_path / "reference.parquet"
    predict(reference)
    assert digest(out) == digest(reference)
    tables.finish_partition(str(out.parent), keep=[out.name])  # publishing sweeps the killed writer's staging file
    assert sorted(p.name for p in out.parent.iterdir()) == ["_SUCCESS", "part-00000.parquet"]


# -- retries -----------------------------------------------------------------------------------------

#: Tasks whose failure does not heal by retrying (bad data, a person's answer), and retrain_again,
#: whose retry could queue a second run.
NO_RETRY = {("mlops_retraining", "validate"), ("mlops_retraining", "approve"), ("mlops_retraining", "retrain_again"), ("mlops_batch_prediction", "validate")}


@pytest.mark.parametrize("dag_id", ["mlops_retraining", "mlops_batch_prediction"])
def test_reference_dag_tasks_retry_with_exponential_backoff(airflow_db, dag_id: str) -> None:
    dag = reference_dag(dag_id)

    for task in dag.tasks:
        if (dag_id, task.task_id) in NO_RETRY:
            assert task.retries == 0, task.task_id
            continue
        assert task.retries >= 2, task.task_id
        assert task.retry_exponential_backoff, task.task_id
        assert task.retry_delay.total_seconds() >= 30 and task.max_retry_delay.total_seconds() <= 600, task.task_id

"""Security: connection secrets never reach task logs; models load only from the registry or tracked
runs unless a DAG author allows another scheme; bandit finds nothing unexplained in the provider.

(The plugin's report-serving path checks live with the plugin's own tests in ``tests/ui``.)
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops import tables
from airflow_mlops.exceptions import ModelResolutionError
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.operators.inference import MlflowBatchPredictOperator
from tests.conftest import REPO, VENV_BIN
from tests.helpers import task_context
from tests.reliability.conftest import SPEC, train

SCORED_AT = "2025-02-01T00:00:00+00:00"
SECRETS = {"password": "pw-Xy7-never-log", "token": "tok-Qz9-never-log", "aws": "aws-Sk3-never-log"}


@pytest.fixture
def secret_conns(mlflow_server, s3_server, aws_conn, monkeypatch) -> dict[str, str]:
    """An ``mlflow`` connection with basic-auth password and token, an ``aws`` one with a secret key."""
    mlflow = {"conn_type": "mlflow", "host": mlflow_server.url, "login": "alice", "password": SECRETS["password"], "extra": {"token": SECRETS["token"]}}
    aws = {"conn_type": "aws", "login": "key-id", "password": SECRETS["aws"], "extra": {"endpoint_url": s3_server.url, "region_name": "us-east-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_SECRET", json.dumps(mlflow))
    monkeypatch.setenv("AIRFLOW_CONN_AWS_SECRET", json.dumps(aws))
    return {"mlflow": "mlflow_secret", "aws": "aws_secret", "bucket": aws_conn}


def test_connection_secrets_never_appear_in_task_logs(small_data, secret_conns, caplog, capfd) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level: the raw records, before any masking
    bucket, mlflow, aws = secret_conns["bucket"], secret_conns["mlflow"], secret_conns["aws"]
    training = tables.write_table(tables.read_table(small_data["training"]), f"{bucket}/training.parquet", conn_id=aws)
    month = tables.write_table(tables.read_table(small_data["files"][0]), f"{bucket}/month.parquet", conn_id=aws)
    name = f"secret_{uuid.uuid4().hex[:6]}"

    trained = train(small_data, name, "secrets", train_uri=training, mlflow_conn_id=mlflow, data_conn_id=aws)
    scored = MlflowBatchPredictOperator(
        task_id="predict", input_uri=month, output_uri=f"{bucket}/predictions/part-00000.parquet", spec_uri=SPEC,
        model_name=name, model_ref=trained["version"], scored_at=SCORED_AT, mlflow_conn_id=mlflow, data_conn_id=aws,
    ).execute(task_context("predict"))  # fmt: skip
    with pytest.raises(ModelResolutionError) as err:  # and an error path, whose message is logged by Airflow
        MlflowBatchPredictOperator(
            task_id="predict", input_uri=month, output_uri=f"{bucket}/never.parquet", spec_uri=SPEC, model_name=name,
            model_ref="gold", scored_at=SCORED_AT, mlflow_conn_id=mlflow, data_conn_id=aws,
        ).execute(task_context("predict"))  # fmt: skip

    assert scored["rows"] == 600
    out, errors = capfd.readouterr()
    logged = caplog.text + out + errors + str(err.value) + repr(MlflowHook(mlflow_conn_id=mlflow).config)
    assert "alias 'gold'" in logged and len(caplog.records) > 50  # the capture did see the task's logs
    for secret in SECRETS.values():
        assert secret not in logged


def test_connection_secrets_are_registered_with_airflows_secrets_masker(secret_conns) -> None:
    """Should a library print them anyway, Airflow's task-log masking replaces them with ``***``."""
    from airflow.sdk._shared.secrets_masker import redact

    _ = MlflowHook(mlflow_conn_id=secret_conns["mlflow"]).config  # resolving the connection registers its secrets
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    S3Hook(aws_conn_id=secret_conns["aws"]).get_credentials()

    line = f"Authorization: Basic alice:{SECRETS['password']} Bearer {SECRETS['token']} aws_secret_access_key={SECRETS['aws']}"
    masked = redact(line)
    assert all(secret not in masked for secret in SECRETS.values()), masked


# -- where models may come from --------------------------------------------------------------------


def predict(small_data: dict, model: str, out: Path, ref: str, **kwargs: Any) -> dict[str, Any]:
    return MlflowBatchPredictOperator(
        task_id="predict", input_uri=small_data["files"][0], output_uri=str(out), spec_uri=SPEC, model_name=model,
        model_ref=ref, scored_at=SCORED_AT, **kwargs,
    ).execute(task_context("predict"))  # fmt: skip


@pytest.mark.parametrize("uri", ["file:///tmp/model", "s3://some-bucket/models/churn", "https://example.com/model.pkl"])
def test_models_outside_the_registry_and_tracked_runs_are_refused_by_default(small_data, embedded_model, tmp_path, uri) -> None:
    with pytest.raises(AirflowFailException, match="allow_model_uri_schemes") as err:
        predict(small_data, embedded_model["name"], tmp_path / "p.parquet", uri)

    assert uri in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_registry_and_run_uris_load_and_other_schemes_only_when_allowed(small_data, embedded_model, tmp_path) -> None:
    import mlflow

    name = embedded_model["name"]
    client = MlflowHook().client
    run_id = client.get_model_version(name, embedded_model["champion"]).run_id
    by_alias = predict(small_data, name, tmp_path / "alias.parquet", "champion")

    by_registry_uri = predict(small_data, name, tmp_path / "models.parquet", f"models:/{name}@champion")
    by_run_uri = predict(small_data, name, tmp_path / "runs.parquet", f"runs:/{run_id}/model")
    local = tmp_path / "copy"  # the same model, saved as a plain folder
    with MlflowHook().activated():
        mlflow.sklearn.save_model(mlflow.sklearn.load_model(f"models:/{name}/{embedded_model['champion']}"), str(local), serialization_format="cloudpickle")
    allowed = predict(small_data, name, tmp_path / "file.parquet", Path(local).as_uri(), allow_model_uri_schemes=["models", "runs", "file"])

    assert by_registry_uri["model_version"] == by_alias["model_version"] == embedded_model["champion"]
    assert by_run_uri["model_version"] == f"runs:/{run_id}/model"  # an unregistered model is recorded by its URI
    assert allowed["model_version"] == Path(local).as_uri()
    scores = [pd.read_parquet(tmp_path / f"{n}.parquet")["probability"] for n in ("alias", "models", "runs", "file")]
    assert all(s.equals(scores[0]) for s in scores)
    with pytest.raises(ModelResolutionError, match="names another model"):
        predict(small_data, name, tmp_path / "x.parquet", "models:/someone_elses_model/1")


# -- static analysis -------------------------------------------------------------------------------


def test_bandit_finds_nothing_unexplained_in_the_provider() -> None:
    """The one bandit scan of ``make test`` (``make security`` runs this test alone): no finding, no
    error, and every accepted finding (``# nosec``) names its check and says why."""
    scan = subprocess.run(
        [str(VENV_BIN / "bandit"), "-r", "airflow_mlops", "-f", "json", "-q"], cwd=REPO, capture_output=True, text=True, check=False
    )
    report = json.loads(scan.stdout)

    assert report["results"] == [], report["results"]
    assert report["errors"] == []
    unexplained = [
        f"{path}:{number}: {line.strip()}"
        for path in (REPO / "airflow_mlops").rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "nosec" in line and not re.search(r"# nosec B\d{3}(,\s*B\d{3})*: \S", line)
    ]
    assert unexplained == []

"""The docker-compose topology, proven with real processes (no Docker engine here):

PostgreSQL (a fresh database per run for Airflow, one for MLflow, one for MLflow's users) + Redis
(Celery broker) + a moto S3 endpoint + ``mlflow server --app-name basic-auth`` (Postgres backend store,
S3 artifacts, ``--serve-artifacts``; nothing readable without a grant) + Airflow with ``CeleryExecutor``:
api-server, scheduler, dag-processor, triggerer and one celery worker. Airflow signs in to MLflow as its
own non-admin user, created by ``airflow-mlops mlflow-user`` as compose's ``airflow-init`` does. Both
reference DAGs are triggered through the REST API, as the UI would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.airflow_cluster import Airflow
from tests.conftest import MLFLOW_ADMIN, REPO, VENV_BIN, Server, basic_auth_mlflow, free_port
from tests.topology import services

pytestmark = [pytest.mark.services, pytest.mark.topology]

PASSWORD = "topology-secret"
#: Airflow's own MLflow user (the mlflow_default connection's login and password).
MLFLOW_USER = ("airflow", "mlflow-airflow-secret-6e0b")
_LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"


@pytest.fixture(scope="module")
def topology(tmp_path_factory) -> Iterator[dict[str, Any]]:
    services.ensure_postgres()
    services.ensure_redis()
    user, admin = services.postgres_admin()
    suffix = uuid.uuid4().hex[:8]
    airflow_db, mlflow_db, auth_db = (f"mlops_topo_{what}_{suffix}" for what in ("airflow", "mlflow", "mlflowauth"))
    with admin.cursor() as cur:
        for db in (airflow_db, mlflow_db, auth_db):
            cur.execute(f"CREATE DATABASE {db}")
    home = tmp_path_factory.mktemp("topology")
    started: list[Server] = []
    airflow: Airflow | None = None
    try:
        s3_port = free_port()
        s3 = Server("moto", [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], f"http://127.0.0.1:{s3_port}",
                    f"http://127.0.0.1:{s3_port}/moto-api/", home).start()  # fmt: skip
        started.append(s3)
        s3_env = {"AWS_ACCESS_KEY_ID": "topology", "AWS_SECRET_ACCESS_KEY": "topology", "AWS_DEFAULT_REGION": "us-east-1"}
        import boto3

        boto3.client("s3", endpoint_url=s3.url, **{k.lower(): v for k, v in s3_env.items() if k != "AWS_DEFAULT_REGION"},
                     region_name="us-east-1").create_bucket(Bucket="mlops")  # fmt: skip

        mlflow = basic_auth_mlflow(
            home, backend=f"postgresql+psycopg2://{user}@127.0.0.1:5432/{mlflow_db}", artifacts="s3://mlops/mlflow",
            auth_database=f"postgresql+psycopg2://{user}@127.0.0.1:5432/{auth_db}", env=s3_env | {"MLFLOW_S3_ENDPOINT_URL": s3.url},
        )  # fmt: skip
        started.append(mlflow)

        api_port = free_port()
        passwords = home / "passwords.json"
        passwords.write_text(json.dumps({"admin": PASSWORD}))
        pg = f"postgresql+psycopg2://{user}@127.0.0.1:5432/{airflow_db}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "MLFLOW_"))} | {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{int(suffix, 16) % 15 + 1}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{pg}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            # The reference DAGs, and the probe of the MLflow sensor in the triggerer.
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
                [{"name": "dags-folder", "classpath": _LOCAL_BUNDLE, "kwargs": {"path": str(REPO / "dags")}},
                 {"name": "topology-probes", "classpath": _LOCAL_BUNDLE, "kwargs": {"path": str(REPO / "tests" / "topology" / "dags")}}]
            ),  # fmt: skip
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API_AUTH__JWT_SECRET": f"jwt-{suffix}",
            "AIRFLOW__API__SECRET_KEY": f"api-{suffix}",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__MLOPS__DATA_ROOT": "s3://mlops/data",
            "AIRFLOW__MLOPS__BATCH_CATCHUP": "False",  # runs are triggered through the API, not caught up
            "AIRFLOW__MLOPS__PARTITION_POKE_INTERVAL": "5",  # the deferred sensor's trigger re-checks every 5 s
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                {"conn_type": "aws", "login": s3_env["AWS_ACCESS_KEY_ID"], "password": s3_env["AWS_SECRET_ACCESS_KEY"],
                 "extra": {"endpoint_url": s3.url, "region_name": "us-east-1"}}
            ),  # fmt: skip
            "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps({"conn_type": "mlflow", "host": mlflow.url, "login": MLFLOW_USER[0], "password": MLFLOW_USER[1]}),
            "GX_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        migrate = subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True, timeout=600)
        assert migrate.returncode == 0, migrate.stderr[-3000:] + migrate.stdout[-2000:]
        created = subprocess.run(  # as compose's airflow-init: the connection's user, signed in as the MLflow admin
            [str(VENV_BIN / "airflow-mlops"), "mlflow-user"], env=env | {"MLFLOW_ADMIN_USER": MLFLOW_ADMIN[0], "MLFLOW_ADMIN_PASSWORD": MLFLOW_ADMIN[1]},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert created.returncode == 0 and created.stdout.strip() == f"created MLflow user {MLFLOW_USER[0]}", created.stderr[-2000:]
        subprocess.run(
            [str(VENV_BIN / "airflow-mlops"), "generate-data", "--rows", "3000", "--months", "2025-01",
             "--training-rows", "6000", "--to", "s3://mlops/data/churn", "--conn-id", "aws_default"],
            env=env, check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        airflow = Airflow(env, home, api_port)
        airflow.start("api-server", "api-server", "--port", str(api_port))
        airflow.start("scheduler", "scheduler")
        airflow.start("dag-processor", "dag-processor")
        airflow.start("triggerer", "triggerer")
        airflow.start("worker", "celery", "worker", "--concurrency", "2")
        airflow.wait_until("api-server", lambda: airflow.request("GET", "/api/v2/version"), 120)
        airflow.token = airflow.request("POST", "/auth/token", {"username": "admin", "password": PASSWORD})["access_token"]
        airflow.create_promotion_pool()
        airflow.create_promotion_pool("pool_probe")
        for dag_id in ("mlops_retraining", "mlops_batch_prediction", "mlops_mlflow_probe", "mlops_pool_probe"):
            airflow.wait_until(f"{dag_id} parsed", lambda d=dag_id: airflow.request("GET", f"/api/v2/dags/{d}"), 180)
            airflow.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        yield {"airflow": airflow, "s3": s3, "mlflow": mlflow, "env": env, "s3_env": s3_env, "home": home}
    finally:
        if airflow is not None:
            airflow.stop()
        for server in started:
            server.stop()
        with admin.cursor() as cur:
            for db in (airflow_db, mlflow_db, auth_db):
                cur.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.close()


def s3_keys(topology: dict[str, Any], prefix: str) -> list[str]:
    import boto3

    client = boto3.client(
        "s3", endpoint_url=topology["s3"].url, aws_access_key_id="topology", aws_secret_access_key="topology", region_name="us-east-1"
    )
    return [o["Key"] for o in client.list_objects_v2(Bucket="mlops", Prefix=prefix).get("Contents", [])]


def mlflow_hook(topology: dict[str, Any]) -> Any:
    """A hook signed in as Airflow's MLflow user (the test reads what the DAGs wrote, as they would)."""
    from airflow_mlops.hooks.mlflow import MlflowConfig, MlflowHook

    return MlflowHook(config=MlflowConfig(tracking_uri=topology["mlflow"].url, username=MLFLOW_USER[0], password=MLFLOW_USER[1]))


def test_both_dags_run_on_celery_with_postgres_mlflow_and_s3(topology) -> None:

    airflow: Airflow = topology["airflow"]

    retraining = airflow.run_dag("mlops_retraining", {"logical_date": None, "conf": {"window_months": 0, "hyperparameters": {"max_iter": 30}}})

    states = {t["task_id"]: t["state"] for t in retraining["task_instances"]}
    assert {states[t] for t in ("validate", "train", "evaluate")} == {"success"}, states
    run_id = retraining["run"]["dag_run_id"]
    # Unpausing also starts this week's scheduled run, which may have promoted first: then ours may be
    # rejected. Either way promote does what evaluate decided.
    decision = airflow.request("GET", f"/api/v2/dags/mlops_retraining/dagRuns/{run_id}/taskInstances/evaluate/xcomEntries/return_value?deserialize=true")["value"]
    assert states["promote"] == {"would_promote": "success", "would_reject": "skipped"}[decision["decision"]], (decision, states)
    promote = next(t for t in retraining["task_instances"] if t["task_id"] == "promote")
    assert promote["pool"] == "mlops_promote_churn"  # the deployment's pool: one promotion of churn at a time
    worker_log = airflow.log("worker")
    assert "Executing workload in Celery: dag_rel_path=PurePosixPath('mlops_retraining.py')" in worker_log
    for task in ("validate", "train", "evaluate"):
        assert f"dag_id=mlops_retraining/run_id={run_id}/task_id={task}/" in worker_log, task
    champion = mlflow_hook(topology).registry.resolve_version("churn", "champion")  # READY, or it raises
    assert champion.tags["mlops.dag_id"] == "mlops_retraining"
    assert any(k.startswith("mlflow/") and k.endswith("MLmodel") for k in s3_keys(topology, "mlflow/"))

    batch = airflow.run_dag("mlops_batch_prediction", {"logical_date": "2025-02-01T00:00:00Z", "conf": {}})

    assert {t["task_id"] for t in batch["task_instances"] if t["state"] == "success"} >= {"validate", "drift_check", "predict", "publish"}
    batch_run = batch["run"]["dag_run_id"]
    assert f"dag_id=mlops_batch_prediction/run_id={batch_run}/task_id=predict/" in airflow.log("worker")
    keys = s3_keys(topology, "data/churn/predictions/month=2025-01/")
    assert "data/churn/predictions/month=2025-01/_SUCCESS" in keys
    assert any(re.search(r"/part-00000\.[0-9a-f]{12}\.parquet$", k) for k in keys)


def test_deferred_sensor_is_resumed_by_the_triggerer(topology) -> None:
    airflow: Airflow = topology["airflow"]
    run = airflow.request("POST", "/api/v2/dags/mlops_batch_prediction/dagRuns", {"logical_date": "2025-03-01T00:00:00Z", "conf": {}})
    run_id = run["dag_run_id"]
    ti_path = f"/api/v2/dags/mlops_batch_prediction/dagRuns/{run_id}/taskInstances/wait_for_partition"
    airflow.wait_until("the sensor to defer", lambda: airflow.request("GET", ti_path)["state"] == "deferred", 300)

    subprocess.run(  # the month's partition lands while the sensor waits in the triggerer
        [str(VENV_BIN / "airflow-mlops"), "generate-data", "--rows", "2000", "--months", "2025-02", "--training-rows", "0",
         "--to", "s3://mlops/data/churn", "--conn-id", "aws_default"],
        env=topology["env"], check=True, capture_output=True, timeout=300,
    )  # fmt: skip

    airflow.wait_until("the sensor to succeed", lambda: airflow.request("GET", ti_path)["state"] == "success", 600)
    # Only the triggerer resumes a deferred task; its log counts the trigger it ran.
    assert re.search(r"\b[1-9]\d* triggers? currently running", airflow.log("triggerer"))
    done = airflow.wait_until(
        "the run to finish",
        lambda: (r := airflow.request("GET", f"/api/v2/dags/mlops_batch_prediction/dagRuns/{run_id}"))["state"] in ("success", "failed") and r,
        600,
    )
    assert done["state"] == "success"
    assert "data/churn/predictions/month=2025-02/_SUCCESS" in s3_keys(topology, "data/churn/predictions/month=2025-02/")

def test_the_promotion_pool_serialises_two_promotions_of_a_model(topology) -> None:
    """Two read-wait-write tasks of one model, started together on a worker with two slots, without the
    registry lock: the model's one-slot pool runs them one after the other, and no write is lost."""
    airflow: Airflow = topology["airflow"]
    hook = mlflow_hook(topology)
    hook.client.create_registered_model("pool_probe")

    run = airflow.run_dag("mlops_pool_probe", {"logical_date": None, "conf": {}})

    spans = [
        airflow.request("GET", f"/api/v2/dags/mlops_pool_probe/dagRuns/{run['run']['dag_run_id']}/taskInstances/{t}/xcomEntries/return_value?deserialize=true")["value"]
        for t in ("contender_a", "contender_b")
    ]  # fmt: skip
    first, second = sorted(spans, key=lambda s: s["started"])
    assert first["ended"] <= second["started"], spans  # never both inside the read-wait-write at once
    assert {t["pool"] for t in run["task_instances"]} == {"mlops_promote_pool_probe"}
    assert hook.registry.model_tag("pool_probe", "probe.count") == "2"  # both writes count


def test_mlflow_sensor_waits_in_the_triggerer_as_airflows_mlflow_user(topology) -> None:
    """The deferred MLflow sensor polls the authenticated server from the triggerer, with the connection's
    credentials; the MLOps page, on the API server, reads the same registry as the same user."""
    airflow: Airflow = topology["airflow"]
    hook = mlflow_hook(topology)
    champion = hook.registry.alias_version("churn", "champion")  # trained by the first test
    assert champion is not None
    alias = f"probe_{uuid.uuid4().hex[:6]}"
    run = airflow.request("POST", "/api/v2/dags/mlops_mlflow_probe/dagRuns", {"logical_date": None, "conf": {"model_name": "churn", "alias": alias}})
    ti_path = f"/api/v2/dags/mlops_mlflow_probe/dagRuns/{run['dag_run_id']}/taskInstances/wait_for_alias"
    airflow.wait_until("the MLflow sensor to defer", lambda: airflow.request("GET", ti_path)["state"] == "deferred", 300)

    hook.registry.set_alias("churn", alias, champion)

    airflow.wait_until("the MLflow sensor to succeed", lambda: airflow.request("GET", ti_path)["state"] == "success", 300)
    found = airflow.request("GET", f"{ti_path}/xcomEntries/return_value?deserialize=true")["value"]
    assert found == {"model_name": "churn", "version": champion, "run_id": hook.registry.get_version("churn", champion).run_id}

    page = airflow.request("GET", "/mlops/api/models")  # the plugin, as the admin, through the same MLflow user
    assert {m["name"]: m["champion"] for m in page["models"]}["churn"]["version"] == champion  # pool_probe has no champion
    logs = [p for p in topology["home"].rglob("*.log") if p.is_file()]
    assert logs and not [str(p) for p in logs if MLFLOW_USER[1] in p.read_text(errors="replace")]  # the password in no log

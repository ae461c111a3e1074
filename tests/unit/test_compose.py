"""The docker-compose.yaml deployment, checked by parsing it (no Docker engine runs here)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from airflow_mlops.get_provider_info import get_provider_info
from tests.conftest import REPO

AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"}


#: What an operator puts in .env (the names of .env.example, made-up values).
ENV = {name: f"{name.lower()}-value" for name in re.findall(r"^([A-Z_]+)=", (REPO / ".env.example").read_text(), re.M)}


class MissingVariable(ValueError):
    """``${VAR:?message}`` with VAR unset: docker compose stops with the message."""


def interpolate(text: str, env: dict[str, str]) -> str:
    """docker compose's variable interpolation: ``$$`` is a literal ``$``; ``${VAR:?msg}`` needs VAR;
    ``${VAR:-default}`` and ``${VAR}`` take VAR's value (or the default, or "")."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise MissingVariable(f"{name}: {arg}")
        return arg if op == ":-" else ""

    return re.sub(r"\$\$|\$\{([A-Z0-9_]+)(:\?|:-)?([^}]*)\}", one, text)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(interpolate((REPO / "docker-compose.yaml").read_text(), ENV))


def test_services_commands_and_health(compose) -> None:
    services = compose["services"]
    assert AIRFLOW_SERVICES | {"airflow-init", "postgres", "redis", "mlflow", "minio", "minio-init"} == set(services)
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES}
    assert commands == {
        "airflow-apiserver": "api-server", "airflow-scheduler": "scheduler", "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer", "airflow-worker": "celery worker",
    }  # fmt: skip
    for name, service in services.items():
        if name not in ("airflow-init", "minio-init"):
            assert "healthcheck" in service, name
    mlflow_cmd = " ".join(services["mlflow"]["command"])
    assert "--serve-artifacts" in mlflow_cmd and "postgresql+psycopg2://" in mlflow_cmd and "s3://mlflow" in mlflow_cmd
    assert "--app-name basic-auth" in mlflow_cmd and services["mlflow"]["environment"]["MLFLOW_AUTH_CONFIG_PATH"] in mlflow_cmd


def test_dependencies_wait_for_health(compose) -> None:
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["redis"]["condition"] == "service_healthy", name
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    assert services["mlflow"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    for name in AIRFLOW_SERVICES:
        volumes = services[name]["volumes"]
        assert "./dags:/opt/airflow/dags" in volumes and "./plugins:/opt/airflow/plugins" in volumes


def test_environment_is_what_airflow_and_the_provider_read(compose) -> None:
    from airflow.configuration import conf
    from airflow.providers_manager import ProvidersManager

    ProvidersManager().initialize_providers_configuration()  # adds the celery and mlops sections
    declared = conf.configuration_description
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert set(get_provider_info()["config"]["mlops"]["options"]) <= set(declared["mlops"]["options"])
    for key in env:
        match = re.fullmatch(r"AIRFLOW__([A-Z_]+?)__([A-Z_]+)", key)
        if match:
            section, option = match.group(1).lower(), match.group(2).lower()
            assert option in declared.get(section, {}).get("options", {}), f"{key} is not an option Airflow or the provider reads"
    assert env["AIRFLOW__MLOPS__DATA_ROOT"].startswith("s3://")
    mlflow_conn = json.loads(env["AIRFLOW_CONN_MLFLOW_DEFAULT"])
    aws_conn = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert mlflow_conn["conn_type"] == "mlflow" and mlflow_conn["host"] == "http://mlflow:5000"
    assert (mlflow_conn["login"], mlflow_conn["password"]) == (ENV["MLFLOW_AIRFLOW_USER"], ENV["MLFLOW_AIRFLOW_PASSWORD"])  # from .env
    assert (aws_conn["login"], aws_conn["password"]) == (ENV["MINIO_ROOT_USER"], ENV["MINIO_ROOT_PASSWORD"])
    assert aws_conn["conn_type"] == "aws" and aws_conn["extra"]["endpoint_url"] == "http://minio:9000"
    assert env["AIRFLOW__MLOPS__DATA_CONN_ID"] == "aws_default"


def test_connections_in_compose_resolve_through_the_hook(compose, monkeypatch) -> None:
    from airflow_mlops import settings
    from airflow_mlops.hooks.mlflow import MlflowHook

    env = compose["services"]["airflow-worker"]["environment"]
    for key in ("AIRFLOW_CONN_MLFLOW_DEFAULT", "AIRFLOW_CONN_AWS_DEFAULT", "AIRFLOW__MLOPS__DATA_ROOT", "AIRFLOW__MLOPS__DATA_CONN_ID"):
        monkeypatch.setenv(key, env[key])

    config = MlflowHook().config
    assert (config.source, config.tracking_uri, config.ui_base_url) == ("connection", "http://mlflow:5000", "http://localhost:5000")
    assert settings.data_root() == "s3://mlops/data" and settings.data_conn_id() == "aws_default"


def test_image_installs_the_provider_from_the_lock() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}", dockerfile, re.M)
    assert "ARG AIRFLOW_VERSION=3.3" in dockerfile
    assert "--constraint /opt/airflow-mlops/constraints.txt" in dockerfile


def test_compose_fails_closed_without_each_secret() -> None:
    raw = (REPO / "docker-compose.yaml").read_text()

    for name in ENV:  # leaving any one of them unset stops `docker compose` before anything starts
        with pytest.raises(MissingVariable, match=f"^{name}: set {name} in .env"):
            interpolate(raw, {k: v for k, v in ENV.items() if k != name})
    for known in ("minioadmin", "change-me", "airflow:airflow@", "admin_password = password"):
        assert known not in raw, known


def test_airflow_signs_in_to_mlflow_as_its_own_user_created_at_init(compose) -> None:
    init = compose["services"]["airflow-init"]
    script = init["command"][1]
    assert "airflow-mlops mlflow-user" in script and script.index("airflow db migrate") < script.index("airflow-mlops mlflow-user")
    assert (init["environment"]["MLFLOW_ADMIN_USER"], init["environment"]["MLFLOW_ADMIN_PASSWORD"]) == (ENV["MLFLOW_ADMIN_USER"], ENV["MLFLOW_ADMIN_PASSWORD"])
    assert "MLFLOW_ADMIN_PASSWORD" not in compose["services"]["airflow-worker"]["environment"]  # tasks never hold the admin
    assert ENV["MLFLOW_AIRFLOW_USER"] != ENV["MLFLOW_ADMIN_USER"]


def test_init_creates_the_pool_that_serialises_promotions(compose) -> None:
    from airflow_mlops.operators.registry import promotion_pool

    script = compose["services"]["airflow-init"]["command"][1]
    created = f"airflow pools set {promotion_pool('churn')} 1 "
    assert created in script and script.index("airflow db migrate") < script.index(created)

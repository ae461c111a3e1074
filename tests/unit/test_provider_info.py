from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

from airflow_mlops.get_provider_info import get_provider_info
from tests.unit.provider_classes import ABSTRACT, provider_classes


def test_provider_info_matches_airflow_schema_and_dist_name() -> None:
    from importlib.metadata import distribution
    from importlib.resources import files

    schema = json.loads(files("airflow").joinpath("provider_info.schema.json").read_text())
    info = get_provider_info()

    jsonschema.validate(info, schema)
    assert info["package-name"] == distribution("airflow-mlops").metadata["Name"]


def _registered_modules(info: dict, section: str) -> set[str]:
    return {module for entry in info.get(section, []) for module in entry["python-modules"]}


def test_every_operator_sensor_trigger_hook_and_extra_link_is_registered() -> None:
    """Walk the package: a class nobody registered fails here, whoever added its module."""
    info = get_provider_info()
    found = provider_classes()
    paths = {c.path for c in found}
    # The walk must find what the package has (every kind), or this test could pass vacuously.
    assert {
        "airflow_mlops.operators.quality.ModelQualityCheckOperator",
        "airflow_mlops.operators.window.TrainingWindowOperator",
        "airflow_mlops.sensors.partition.DataPartitionSensor",
        "airflow_mlops.triggers.mlflow.MlflowModelVersionTrigger",
        "airflow_mlops.hooks.mlflow.MlflowHook",
        "airflow_mlops.links.reports.QualityReportLink",
    } <= paths
    assert paths >= ABSTRACT, f"an abstract base named in tests/unit/provider_classes.py is gone: {sorted(ABSTRACT - paths)}"

    missing = []
    for c in found:
        if c.abstract:
            continue
        if c.section == "extra-links":
            if c.path not in info["extra-links"]:
                missing.append(f"{c.path} (add it to extra-links)")
        elif c.module not in _registered_modules(info, c.section):
            missing.append(f"{c.path} (add {c.module} to the python-modules of {c.section!r})")
    assert not missing, f"not registered in airflow_mlops/get_provider_info.py: {missing}"

    hooks_with_connections = {c.path for c in found if c.section == "hooks" and getattr(c.cls, "conn_type", None)}
    assert hooks_with_connections == {t["hook-class-name"] for t in info["connection-types"]}


def test_the_provider_info_registers_nothing_that_is_not_there() -> None:
    """Each registered module holds a class of its section; each extra link is a concrete link class."""
    info = get_provider_info()
    found = provider_classes()
    for section in ("operators", "sensors", "triggers", "hooks"):
        modules = {c.module for c in found if c.section == section and not c.abstract}
        assert _registered_modules(info, section) <= modules, section
    links = {c.path for c in found if c.section == "extra-links" and not c.abstract}
    assert set(info["extra-links"]) <= links
    assert len(info["extra-links"]) == len(set(info["extra-links"]))


@pytest.mark.slow  # spawns a process
def test_airflow_discovers_the_provider_and_connection_type() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "get", "airflow-mlops", "-o", "json"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == [{"Provider": "airflow-mlops", "Version": "0.1.0"}]

    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    hook = manager.hooks["mlflow"]
    assert hook is not None and hook.hook_class_name == "airflow_mlops.hooks.mlflow.MlflowHook"
    fields = manager.connection_form_widgets
    assert {"extra__mlflow__registry_uri", "extra__mlflow__token", "extra__mlflow__ui_base_url", "extra__mlflow__artifact_root"} <= set(fields)
    assert "mlflow" in manager.field_behaviours


def test_mlops_config_section_is_honoured(monkeypatch) -> None:
    from airflow_mlops import settings

    monkeypatch.setenv("AIRFLOW__MLOPS__DATA_ROOT", "s3://bucket/prefix/")
    assert settings.data_root() == "s3://bucket/prefix"
    assert settings.reports_root() == "s3://bucket/prefix/reports"
    monkeypatch.delenv("AIRFLOW__MLOPS__DATA_ROOT")
    monkeypatch.setenv("MLOPS_DATA_ROOT", "file:///srv/data")
    assert settings.data_root() == "file:///srv/data"


# -- fail closed: a distributed deployment must name its shared stores ---------------------------------


@pytest.mark.parametrize("executor", ["CeleryExecutor", "airflow.providers.cncf.kubernetes.executors.kubernetes_executor.KubernetesExecutor"])
def test_a_distributed_deployment_without_data_root_or_mlflow_connection_fails_at_once(monkeypatch, executor: str) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_mlops import settings
    from airflow_mlops.hooks.mlflow import MlflowHook

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    monkeypatch.delenv("MLOPS_DATA_ROOT", raising=False)

    with pytest.raises(AirflowFailException, match=r"no data root is configured.*set AIRFLOW__MLOPS__DATA_ROOT=s3://bucket/mlops"):
        settings.data_root()
    with pytest.raises(AirflowFailException, match=r"no MLflow connection is configured.*AIRFLOW_CONN_MLFLOW_DEFAULT="):
        MlflowHook(mlflow_conn_id="mlflow_missing").config  # noqa: B018 - resolving the config is the act under test

    monkeypatch.setenv("AIRFLOW__MLOPS__EMBEDDED_DEFAULTS", "True")  # a single-host deployment says so
    assert settings.data_root() == (settings.airflow_home() / "mlops-data").as_uri()
    assert MlflowHook(mlflow_conn_id="mlflow_missing").config.source == "embedded"


def test_a_local_executor_keeps_the_embedded_defaults(monkeypatch) -> None:
    from airflow_mlops import settings

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    monkeypatch.delenv("MLOPS_DATA_ROOT", raising=False)

    assert settings.embedded_defaults() is True
    assert settings.data_root() == (settings.airflow_home() / "mlops-data").as_uri()

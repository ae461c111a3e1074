"""MLflow's private attributes the hook builds on (airflow_mlops/hooks/mlflow_client.py), checked against
the installed MLflow: an upgrade that moves one fails here, by name, before any credential goes astray."""

from __future__ import annotations

import mlflow

from airflow_mlops.hooks.mlflow_client import CHECKED_MLFLOW, MlflowConfig, build_client, fluent_uris


def test_the_installed_mlflow_is_the_release_the_private_attributes_were_checked_against() -> None:
    assert mlflow.__version__.startswith(CHECKED_MLFLOW + "."), (
        f"MLflow {mlflow.__version__} is installed; hooks/mlflow_client.py was checked against {CHECKED_MLFLOW}: re-check its "
        "private attributes (this file's other tests), then update CHECKED_MLFLOW"
    )


def test_a_client_for_an_http_server_carries_its_own_credentials_in_both_stores() -> None:
    from mlflow.tracking._model_registry.client import ModelRegistryClient
    from mlflow.tracking._tracking_service.client import TrackingServiceClient

    config = MlflowConfig(tracking_uri="http://127.0.0.1:9", username="team-a", password="pw-a")
    client = build_client(config)

    tracking, registry = client._tracking_client, client._get_registry_client()  # as MLflow reads them
    assert isinstance(tracking, TrackingServiceClient) and isinstance(registry, ModelRegistryClient)
    for store in (tracking.store, registry.store):
        creds = store.get_host_creds()
        assert (creds.host, creds.username, creds.password) == ("http://127.0.0.1:9", "team-a", "pw-a")


def test_the_fluent_uris_are_read_unresolved() -> None:
    before = fluent_uris()
    try:
        mlflow.set_tracking_uri("sqlite:///probe.db")
        assert fluent_uris()[0] == "sqlite:///probe.db"
    finally:
        mlflow.set_tracking_uri(before[0])  # type: ignore[arg-type]
    assert fluent_uris() == before

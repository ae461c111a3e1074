"""What the page reads from the registry: every model and every version (all pages), through the hook's
client only (never ``activated()``, which changes process-wide state under the API server's threads)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from mlflow.store.entities.paged_list import PagedList

from airflow_mlops.plugins import dashboard


def _version(number: int, dag_id: str | None) -> Any:
    tags = {"mlops.dag_id": dag_id, "mlops.ti_key": f"{dag_id}/train/r{number}"} if dag_id else {}
    return SimpleNamespace(version=str(number), run_id=None, status="READY", creation_timestamp=0, tags=tags)


class _PagingClient:
    """Two pages of models and two pages of versions per model, as a big registry answers."""

    def __init__(self, versions: dict[str, list[Any]]) -> None:
        self.versions = versions

    def search_registered_models(self, page_token: str | None = None) -> PagedList:
        names = sorted(self.versions)
        half = len(names) // 2
        chosen, token = (names[half:], None) if page_token else (names[:half], "models-2")
        return PagedList([SimpleNamespace(name=n, aliases={}) for n in chosen], token)

    def search_model_versions(self, filter_string: str, page_token: str | None = None) -> PagedList:
        name = filter_string.split("=", 1)[1].strip("'")
        found = self.versions[name]
        return PagedList(found[1:], None) if page_token else PagedList(found[:1], "versions-2")


class _Hook:
    def __init__(self, client: Any) -> None:
        self.client = client

    def activated(self) -> Any:
        raise AssertionError("the plugin must not call MlflowHook.activated()")

    def model_version_url(self, name: str, version: str) -> str:
        return f"https://mlflow/{name}/{version}"


def test_every_model_and_every_version_are_read_so_the_provenance_is_complete() -> None:
    client = _PagingClient({
        "a": [_version(1, "team_a"), _version(2, "team_a")],
        "b": [_version(1, "team_b"), _version(2, "team_a")],  # the second page names another DAG
        "c": [_version(1, "team_c"), _version(2, None)],  # the second page has no provenance
        "d": [_version(1, "team_d"), _version(2, "team_d")],
    })  # fmt: skip

    found = dashboard.registered_models(_Hook(client))

    assert [(m.name, len(m.versions)) for m in found] == [("a", 2), ("b", 2), ("c", 2), ("d", 2)]
    assert [m.dags for m in found] == [{"team_a"}, {"team_a", "team_b"}, None, {"team_d"}]


def test_a_summary_is_built_from_the_versions_already_read() -> None:
    client = _PagingClient({"a": [_version(1, "team_a"), _version(2, "team_a")]})
    model = dashboard.RegisteredModel("a", {"champion": "2"}, tuple(client.versions["a"]))

    summary = dashboard.model_summary(_Hook(client), model)

    assert summary["champion"]["version"] == "2" and summary["champion"]["url"] == "https://mlflow/a/2"
    assert summary["previous_champion"] is None and summary["versions"] == 2

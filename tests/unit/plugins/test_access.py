"""The plugin's authorization rule without a server: which models and report paths a set of readable DAGs admits."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_mlops.operators.base import run_tags
from airflow_mlops.plugins import access
from airflow_mlops.plugins.access import Owner, Readable
from tests.helpers import task_context


def trained(dag_id: str, run_id: str = "scheduled__2025-01-01", **decision: str) -> dict[str, str]:
    """The tags a version carries when ``MlflowTrainModelOperator`` registered it from ``dag_id``, plus
    ``mlops.decision.*`` tags as promotion records them."""
    return run_tags(task_context("train", run_id, dag_id)) | {f"mlops.decision.{k}": v for k, v in decision.items()}


def test_a_version_belongs_to_the_dag_its_training_tags_name() -> None:
    tags = trained("team_a")

    assert tags["mlops.ti_key"] == "team_a/train/scheduled__2025-01-01"  # what the rule parses: the operators' own format
    assert access.version_dags(tags) == {"team_a"}
    assert access.version_dags({"mlops.ti_key": "team_a/train/r1[3]"}) == {"team_a"}  # a mapped task, ti_key alone
    assert access.version_dags({"mlops.dag_id": "team_a"}) == {"team_a"}


def test_the_dag_that_decided_on_a_version_and_disagreeing_tags_all_count() -> None:
    assert access.version_dags(trained("team_a", decision="promoted", dag_run="team_b/manual__1")) == {"team_a", "team_b"}
    assert access.version_dags({"mlops.dag_id": "team_a", "mlops.ti_key": "team_b/train/r"}) == {"team_a", "team_b"}


@pytest.mark.parametrize(
    "tags",
    [None, {}, {"mlops.dag_id": ""}, {"mlops.ti_key": "/train/r"}, {"mlops.decision.dag_run": "team_a/r1"}, {"mlflow.user": "alice"}],
)
def test_a_version_without_a_training_dag_has_unknown_provenance(tags: Any) -> None:
    # A decision alone does not say who trained the version: still unknown.
    assert access.version_dags(tags) is None


def test_a_models_dags_are_those_of_all_its_versions_and_one_unknown_version_makes_it_unknown() -> None:
    assert access.model_dags([trained("team_a"), trained("team_a", "r2", dag_run="team_a/r2")]) == {"team_a"}
    assert access.model_dags([trained("team_a"), trained("team_b")]) == {"team_a", "team_b"}
    assert access.model_dags([trained("team_a"), {}]) is None
    assert access.model_dags([]) is None  # no version: nothing says who made it


@pytest.mark.parametrize(
    ("readable", "dags", "admitted"),
    [
        (Readable(frozenset({"team_a"})), frozenset({"team_a"}), True),
        (Readable(frozenset({"team_a", "other"})), frozenset({"team_a"}), True),
        (Readable(frozenset({"team_a"})), frozenset({"team_a", "team_b"}), False),  # every DAG, not at least one
        (Readable(frozenset({"team_a", "team_b"})), frozenset({"team_a", "team_b"}), True),
        (Readable(frozenset({"team_b"})), frozenset({"team_a"}), False),
        (Readable(frozenset({"team_a"})), None, False),  # unknown provenance: readers of every DAG only
        (Readable(frozenset({"team_a"})), frozenset(), False),
        (Readable(), frozenset({"team_a"}), False),
        (Readable(all_dags=True), None, True),
        (Readable(all_dags=True), frozenset({"team_a", "team_b"}), True),
    ],
)
def test_readable_dags_admit_data_only_when_they_cover_every_dag_it_came_from(readable: Readable, dags: Any, admitted: bool) -> None:
    assert readable.admits(dags) is admitted


@pytest.mark.parametrize(
    ("path", "owner"),
    [
        ("validation/team_a/scheduled__2025-01-01/validate/data_docs.html", Owner("dag", "team_a")),
        ("validation/team_a/run/validate_3/result.json", Owner("dag", "team_a")),
        ("drift/churn/period=2025-01/report.html", Owner("model", "churn")),
        ("quality/churn/period=2025-01/summary.json", Owner("model", "churn")),
        ("signals/churn/pending/2025-01.json", Owner("unknown")),  # no such report folder (signals are asset events)
        ("validation/team_a", Owner("unknown")),  # a folder, not a report inside one
        ("drift/churn", Owner("unknown")),
        ("notes.html", Owner("unknown")),
        ("custom/churn/period=2025-01/report.html", Owner("unknown")),  # a custom reports_uri: outside the layout
        ("Drift/churn/period=2025-01/report.html", Owner("unknown")),
    ],
)
def test_report_paths_belong_to_the_dag_or_model_their_layout_names(path: str, owner: Owner) -> None:
    assert access.report_owner(path.split("/")) == owner


def test_which_models_and_reports_one_teams_rights_admit() -> None:
    registry = {
        "team_a_churn": [trained("team_a"), trained("team_a", "r2", dag_run="team_a/r2")],
        "team_b_churn": [trained("team_b")],
        "collided": [trained("team_a"), trained("team_b")],
        "handmade": [{}],
    }
    dags = {name: access.model_dags(versions) for name, versions in registry.items()}

    def admitted(readable: Readable) -> tuple[list[str], list[str]]:
        def report_ok(path: str) -> bool:
            owner = access.report_owner(path.split("/"))
            owned = frozenset({owner.name}) if owner.kind == "dag" else dags.get(owner.name) if owner.kind == "model" else None
            return readable.admits(owned)

        paths = ["validation/team_a/r/validate/x.html", "validation/team_b/r/validate/x.html", "drift/team_a_churn/period=2025-01/report.html",
                 "drift/team_b_churn/period=2025-01/report.html", "drift/collided/period=2025-01/report.html",
                 "drift/handmade/period=2025-01/report.html", "drift/unregistered/period=2025-01/report.html", "notes.html"]  # fmt: skip
        return sorted(m for m in registry if readable.admits(dags[m])), [p for p in paths if report_ok(p)]

    assert admitted(Readable(frozenset({"team_a"}))) == (
        ["team_a_churn"], ["validation/team_a/r/validate/x.html", "drift/team_a_churn/period=2025-01/report.html"]
    )  # fmt: skip
    assert admitted(Readable(frozenset({"team_a", "team_b"})))[0] == ["collided", "team_a_churn", "team_b_churn"]
    assert admitted(Readable()) == ([], [])
    models, reports = admitted(Readable(all_dags=True))
    assert models == sorted(registry) and len(reports) == 8


class _TeamManager:
    """An auth manager stand-in with per-DAG rights, recording what it is asked."""

    def __init__(self, dags: set[str], *, all_dags: bool = False, extra: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.dags, self.all_dags, self.extra, self.asked = dags, all_dags, extra, []

    def is_authorized_dag(self, *, method: str, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        self.asked.append(("dag", method, getattr(details, "id", None)))
        return self.all_dags if details is None else details.id in self.dags

    def filter_authorized_dag_ids(self, *, dag_ids: set[str], user: Any, method: str = "GET", team_name: str | None = None) -> set[str]:
        self.asked.append(("filter", method, tuple(sorted(dag_ids))))
        return (dag_ids & self.dags) | self.extra


def test_permissions_ask_the_auth_manager_for_read_access_and_keep_only_what_was_asked(monkeypatch) -> None:
    import airflow.api_fastapi.app as api_app

    from airflow_mlops.plugins import permissions

    manager = _TeamManager({"team_a"}, extra={"team_z"})  # an over-generous answer must not widen the rule's input
    monkeypatch.setattr(api_app, "get_auth_manager", lambda: manager)

    found = permissions.readable(object(), {"team_a", "team_b"})

    assert found == Readable(frozenset({"team_a"}))
    assert manager.asked == [("dag", "GET", None), ("filter", "GET", ("team_a", "team_b"))]
    assert permissions.readable(object(), []) == Readable()

    admin = _TeamManager(set(), all_dags=True)
    monkeypatch.setattr(api_app, "get_auth_manager", lambda: admin)
    assert permissions.readable(object(), {"team_a"}) == Readable(all_dags=True)
    assert admin.asked == [("dag", "GET", None)]  # every DAG readable: no per-DAG question


def test_in_a_multi_team_deployment_each_dag_is_asked_about_with_its_team(monkeypatch) -> None:
    import airflow.api_fastapi.app as api_app
    from airflow.models.dag import DagModel

    from airflow_mlops.plugins import permissions

    manager = _TeamManager({"team_a", "shared"})
    monkeypatch.setattr(api_app, "get_auth_manager", lambda: manager)
    monkeypatch.setenv("AIRFLOW__CORE__MULTI_TEAM", "True")
    teams = {"team_a": "alpha", "team_b": "beta"}  # "shared" belongs to no team
    monkeypatch.setattr(DagModel, "get_dag_id_to_team_name_mapping", staticmethod(lambda dag_ids: {d: teams[d] for d in dag_ids if d in teams}))
    asked_teams: list[tuple[str | None, tuple[str, ...]]] = []
    filter_dags = manager.filter_authorized_dag_ids

    def by_team(*, dag_ids: set[str], user: Any, method: str = "GET", team_name: str | None = None) -> set[str]:
        asked_teams.append((team_name, tuple(sorted(dag_ids))))
        return filter_dags(dag_ids=dag_ids, user=user, method=method, team_name=team_name)

    manager.filter_authorized_dag_ids = by_team  # type: ignore[method-assign]

    found = permissions.readable(object(), {"team_a", "team_b", "shared"})

    assert found == Readable(frozenset({"team_a", "shared"}))
    assert sorted(asked_teams, key=str) == sorted([("alpha", ("team_a",)), ("beta", ("team_b",)), (None, ("shared",))], key=str)

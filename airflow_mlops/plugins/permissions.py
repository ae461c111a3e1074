"""Ask the deployment's Airflow auth manager what the current user may read, for the MLOps app.

Whatever auth manager the API server runs (simple, FAB, Keycloak, a company's own) answers; the
plugin has no roles or rights of its own. The questions are the ones core routes ask:

- the page and the API as a whole: ``is_authorized_view(AccessView.PLUGINS)``, through Airflow's own
  ``requires_access_view`` dependency (no credentials -> 401, no plugin access -> 403);
- per-DAG data: ``is_authorized_dag(GET)`` without a DAG id ("may read every DAG") and
  ``filter_authorized_dag_ids(GET)`` for the DAGs a model or report belongs to, grouped by the DAGs'
  teams in a multi-team deployment as ``requires_access_dag`` does.

The rule built on these answers is :mod:`airflow_mlops.plugins.access`. Airflow's API-server modules
are imported inside the functions: only the API server, which has them loaded already, calls them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from airflow_mlops.plugins.access import Readable


def plugin_access() -> Callable[..., None]:
    """The FastAPI dependency every route of the app carries: an authenticated user with plugin access."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view

    return requires_access_view(AccessView.PLUGINS)


def current_user() -> Callable[..., Any]:
    """The FastAPI dependency that resolves the request's user (Bearer JWT or the UI's cookie)."""
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


def reads_all_dags(user: Any) -> bool:
    """Whether ``user`` may read every DAG: ``is_authorized_dag(GET)`` asked without a DAG id."""
    from airflow.api_fastapi.app import get_auth_manager

    return bool(get_auth_manager().is_authorized_dag(method="GET", user=user))


def readable(user: Any, dag_ids: Iterable[str]) -> Readable:
    """Which of ``dag_ids`` ``user`` may read (``GET``), or that they may read every DAG."""
    from airflow.api_fastapi.app import get_auth_manager

    if reads_all_dags(user):
        return Readable(all_dags=True)
    auth_manager = get_auth_manager()
    wanted = {d for d in dag_ids if d}
    if not wanted:
        return Readable()
    allowed: set[str] = set()
    for team, team_dags in _by_team(wanted).items():
        allowed |= auth_manager.filter_authorized_dag_ids(dag_ids=team_dags, user=user, method="GET", team_name=team)
    # Only what was asked: an auth manager answering with more must not widen the rule's input.
    return Readable(dag_ids=frozenset(allowed & wanted))


def _by_team(dag_ids: set[str]) -> dict[str | None, set[str]]:
    """``dag_ids`` grouped by the team owning each DAG's bundle (``None``: no team, or not multi-team)."""
    from airflow.sdk import conf

    grouped: dict[str | None, set[str]] = defaultdict(set)
    if not conf.getboolean("core", "multi_team", fallback=False):
        grouped[None] = set(dag_ids)
        return grouped
    from airflow.models.dag import DagModel

    teams = DagModel.get_dag_id_to_team_name_mapping(sorted(dag_ids))
    for dag_id in dag_ids:
        grouped[teams.get(dag_id)].add(dag_id)
    return grouped

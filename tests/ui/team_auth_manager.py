"""A test-only Airflow auth manager with per-DAG rights: the simple auth manager, plus an allow-list.

The simple auth manager has roles but no per-DAG rights, and FAB is not installed here; deployments
with per-team DAG access run FAB, Keycloak or their own manager. This one stands in for them, so the UI
tests can prove that the MLOps plugin asks whichever auth manager runs, and nothing else.

Configured by the environment variable ``MLOPS_TEST_TEAM_ACCESS``, JSON::

    {"viewer_a": {"dags": ["team_a_retraining"], "plugins": true},
     "outsider": {"dags": ["team_a_retraining"], "plugins": false}}

A listed user may read and edit exactly the listed DAGs (never "every DAG": that question, asked
without a DAG id, is refused), and sees the plugins view only with ``"plugins": true``; everything
else is the simple auth manager's role-based answer. Users not listed (the admin) are the simple
auth manager's users unchanged. Select it with
``AIRFLOW__CORE__AUTH_MANAGER=tests.ui.team_auth_manager.TeamAuthManager`` (the repository on
``PYTHONPATH``).
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

ENV = "MLOPS_TEST_TEAM_ACCESS"


def team_access() -> dict[str, dict[str, Any]]:
    """The configured allow-lists by user name (read on each question: tests may change the variable
    only before the API server starts, but reading it again costs nothing)."""
    return json.loads(os.environ.get(ENV) or "{}")


class TeamAuthManager(SimpleAuthManager):
    """The simple auth manager with a per-user allow-list of DAG ids and of plugin access."""

    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        """Listed users: only their DAGs, never all DAGs; others: the simple auth manager's answer."""
        allowed = team_access().get(user.get_name())
        if allowed is None:
            return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
        dag_id = getattr(details, "id", None)
        return dag_id is not None and dag_id in set(allowed.get("dags", ()))

    def filter_authorized_dag_ids(self, *, dag_ids: set[str], user: Any, method: Any = "GET", team_name: str | None = None) -> set[str]:
        """The listed users' intersection; others: every DAG asked about, as the simple auth manager allows."""
        allowed = team_access().get(user.get_name())
        if allowed is None:
            return super().filter_authorized_dag_ids(dag_ids=dag_ids, user=user, method=method, team_name=team_name)
        return set(dag_ids) & set(allowed.get("dags", ()))

    def is_authorized_view(self, *, access_view: AccessView, user: Any) -> bool:
        """Listed users see the plugins view only when their entry says so."""
        allowed = team_access().get(user.get_name())
        if allowed is not None and access_view == AccessView.PLUGINS and not allowed.get("plugins", False):
            return False
        return super().is_authorized_view(access_view=access_view, user=user)

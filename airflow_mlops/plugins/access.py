"""Who may see which model and which report on the MLOps page: the rule, free of any web framework.

The plugin shows per-DAG data (models, their metrics and decisions, reports holding data samples), so
it asks the question Airflow's own DAG pages ask: may this user read (``GET``) these DAGs? The auth
manager answers (:mod:`airflow_mlops.plugins.permissions`); this module only decides which DAGs a
model or a report path belongs to and what a set of readable DAGs admits.

**Provenance of a model.** Every model version the provider registers names the DAG run that made it:
``MlflowTrainModelOperator`` tags the version with ``mlops.dag_id`` and ``mlops.ti_key``
(``<dag>/<task>/<run>``), and every promotion, rejection or rollback records
``mlops.decision.dag_run`` (``<dag>/<run>``). A model's DAGs are all the DAGs named that way on any of
its versions. A version naming no training DAG (registered by hand, by another tool) has an
**unknown provenance**, and so has a model with no version at all (or no such model).

**The rule (fail closed).**

- A model is visible iff the user may read *every* DAG that trained or decided on one of its versions.
  Not "at least one": whoever can run a DAG that registers a version under another team's model name
  would otherwise gain that team's history and reports. A collision instead hides the model from both
  teams until an administrator sorts it out.
- A model of unknown provenance is visible only to users who may read every DAG (the auth manager's
  answer to ``is_authorized_dag(GET)`` without a DAG id: the admin; with FAB, roles holding the global
  "DAGs" read permission; with the simple auth manager, every role, as it has no per-DAG rights).
  A user who may read every DAG sees every model.
- A report path below the reports root (layout in :mod:`airflow_mlops.reports`) belongs to
  ``validation/<dag>/...``: DAG ``<dag>``; ``drift|quality/<model>/...``: model ``<model>``
  (then the model rule); anything else (a custom folder, a file at the top): nobody but readers of
  every DAG.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from airflow_mlops.reports import DRIFT, QUALITY

#: Version tags naming the training task instance (written by ``run_tags`` in the operators' base).
DAG_TAG = "mlops.dag_id"
TI_KEY_TAG = "mlops.ti_key"
#: Decision tag naming the DAG run that promoted, rejected or rolled back the version.
DECISION_RUN_TAG = "mlops.decision.dag_run"
#: Report folders below the reports root and what their second segment names.
VALIDATION = "validation"
MODEL_FOLDERS = frozenset({DRIFT, QUALITY})


@dataclass(frozen=True)
class Readable:
    """What one user may read, as the auth manager answered: every DAG, or only ``dag_ids``."""

    dag_ids: frozenset[str] = frozenset()
    all_dags: bool = False

    def admits(self, dags: frozenset[str] | None) -> bool:
        """Whether data made by exactly ``dags`` may be shown; ``None`` is an unknown provenance."""
        if self.all_dags:
            return True
        return dags is not None and bool(dags) and dags <= self.dag_ids


@dataclass(frozen=True)
class Owner:
    """Who a report path belongs to: a DAG (``kind="dag"``), a model (``"model"``) or nobody known (``"unknown"``)."""

    kind: str
    name: str = ""


def _dag_of(key: str | None) -> str | None:
    """The DAG id that starts a ``<dag>/...`` key; DAG ids never contain ``/``."""
    if not key:
        return None
    dag = key.split("/", 1)[0].strip()
    return dag or None


def version_dags(tags: Mapping[str, str] | None) -> frozenset[str] | None:
    """The DAGs that trained and decided on one version, or ``None`` when no training DAG is named."""
    tags = tags or {}
    trained = {d for d in ((tags.get(DAG_TAG) or "").strip() or None, _dag_of(tags.get(TI_KEY_TAG))) if d}
    if not trained:
        return None
    decided = _dag_of(tags.get(DECISION_RUN_TAG))
    return frozenset(trained | ({decided} if decided else set()))


def model_dags(version_tags: Iterable[Mapping[str, str] | None]) -> frozenset[str] | None:
    """The DAGs of a model from the tags of all its versions; ``None`` (unknown provenance) when it
    has no version or any version names no training DAG."""
    found: set[str] = set()
    seen = False
    for tags in version_tags:
        dags = version_dags(tags)
        if dags is None:
            return None
        found |= dags
        seen = True
    return frozenset(found) if seen else None


def report_owner(segments: Sequence[str]) -> Owner:
    """Who the report at ``segments`` (a path below the reports root, split) belongs to."""
    if len(segments) >= 3 and segments[0] == VALIDATION and segments[1]:
        return Owner("dag", segments[1])
    if len(segments) >= 3 and segments[0] in MODEL_FOLDERS and segments[1]:
        return Owner("model", segments[1])
    return Owner("unknown")

"""How-to: promote the ``challenger`` to ``champion`` only when it is good enough, with
``MlflowPromoteModelOperator``; and put an earlier version back with ``MlflowRollbackModelOperator``.

``howto_promote`` judges the challenger (the train how-to registers one) and the current champion on
the challenger's logged holdout, by accuracy: it must beat the champion (a tie keeps the champion); with no champion yet, reaching
``min_value`` suffices.
``howto_rollback`` moves ``champion`` back to ``previous_champion``, or to the version the form names.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG, Param

from airflow_mlops.assets import promoted_asset
from airflow_mlops.operators.registry import MlflowPromoteModelOperator, MlflowRollbackModelOperator

MODEL = "howto_penguins"
SPEC = str(Path(__file__).parents[1] / "penguins_spec.yaml")

with DAG(
    dag_id="howto_promote",
    schedule=None,
    params={"dry_run": Param(False, type="boolean", description="Evaluate and decide, but move no alias.")},
    tags=["howto"],
):
    MlflowPromoteModelOperator(
        task_id="promote",
        model_name=MODEL,
        spec_uri=SPEC,
        model_ref="challenger",
        metric="accuracy",
        min_value=0.9,
        evaluate_only="{{ params.dry_run }}",
        on_reject="continue",  # a rejection is a normal outcome: the decision says why
        outlets=[promoted_asset(MODEL)],  # downstream DAGs can run on a new champion
    )

with DAG(
    dag_id="howto_rollback",
    schedule=None,
    params={
        "version": Param(
            None,
            type=["null", "string"],
            pattern="^[0-9]+$",
            description="Version to restore (empty: previous_champion).",
        ),
        "reason": Param("manual rollback", type="string", minLength=1, description="Recorded on the restored version."),
    },
    tags=["howto"],
):
    MlflowRollbackModelOperator(
        task_id="rollback",
        model_name=MODEL,
        model_ref="{{ params.version or '' }}",  # empty: the previous_champion alias
        reason="{{ params.reason }}",
    )

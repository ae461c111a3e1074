"""How-to: compare a month of features with what the champion learnt from, with
``EvidentlyDriftCheckOperator``.

The reference is the sample the champion's training run logged, so no reference table is named. March
2009 of the penguins layout holds only Gentoo penguins: it drifts; January does not. With
``on_drift="continue"`` the task succeeds either way and its summary says which.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG

from airflow_mlops import periods
from airflow_mlops.operators.drift import EvidentlyDriftCheckOperator

SPEC = str(Path(__file__).parents[1] / "penguins_spec.yaml")

with DAG(
    dag_id="howto_drift",
    schedule=None,
    params={"month": periods.month_param()},
    user_defined_macros=periods.macros(),
    tags=["howto"],
):
    EvidentlyDriftCheckOperator(
        task_id="drift",
        current_uri="{{ data_root() }}/penguins/monthly/month=" + periods.MONTH,
        spec_uri=SPEC,
        model_name="howto_penguins",
        model_ref="champion",
        period=periods.MONTH,  # names the report folder and the hysteresis' periods
        drift_share=0.2,
        consecutive=1,
        on_drift="continue",  # drift is a finding, not a failure: trigger_retraining says it
        require_marker=False,
    )

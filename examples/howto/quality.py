"""How-to: judge a scored month on its labels with ``ModelQualityCheckOperator``.

Joins the month's published predictions (the batch-scoring how-to publishes them) to the labels feed
by ``penguin_id`` and compares accuracy with the scoring version's holdout accuracy: more than a 5 %
relative drop is decay. With ``on_decay="continue"`` the task succeeds and its summary says whether
the month decayed.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG

from airflow_mlops import periods
from airflow_mlops.operators.quality import ModelQualityCheckOperator

SPEC = str(Path(__file__).parents[1] / "penguins_spec.yaml")

with DAG(
    dag_id="howto_quality",
    schedule=None,
    params={"month": periods.month_param()},
    user_defined_macros=periods.macros(),
    tags=["howto"],
):
    ModelQualityCheckOperator(
        task_id="quality",
        predictions_uri="{{ data_root() }}/howto/predictions/month=" + periods.MONTH,
        labels_uri="{{ data_root() }}/penguins/labels/month=" + periods.MONTH,
        spec_uri=SPEC,
        model_name="howto_penguins",
        period=periods.MONTH,
        metric="accuracy",
        max_relative_drop=0.05,
        min_coverage=0.5,
        on_decay="continue",
        require_marker=False,  # the labels' policy; the predictions always need their manifest
    )

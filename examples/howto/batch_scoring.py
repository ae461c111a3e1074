"""How-to: score a whole partition as one unit with ``BatchScoringPlanOperator`` ->
``MlflowBatchPredictOperator`` mapped over the files -> ``PublishPartitionOperator``.

The plan pins the champion to one version for every file and opens the output partition in staging;
predict runs once per input file; publish makes the files the month in one step and announces it on
the model's predictions Asset. ``batch_scoring_group`` builds exactly these three tasks; they are
spelled out here to show what each one hands to the next.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG

from airflow_mlops import periods
from airflow_mlops.assets import predictions_asset
from airflow_mlops.operators.inference import MlflowBatchPredictOperator
from airflow_mlops.operators.scoring import BatchScoringPlanOperator, PublishPartitionOperator

MODEL = "howto_penguins"
SPEC = str(Path(__file__).parents[1] / "penguins_spec.yaml")

with DAG(
    dag_id="howto_batch_scoring",
    schedule=None,
    params={"month": periods.month_param()},
    user_defined_macros=periods.macros(),
    tags=["howto"],
):
    plan = BatchScoringPlanOperator(
        task_id="plan",
        input_uri="{{ data_root() }}/penguins/monthly/month=" + periods.MONTH,
        output_uri="{{ data_root() }}/howto/predictions/month=" + periods.MONTH,
        model_name=MODEL,
        model_ref="champion",
        require_marker=False,  # handed on to each predict task through the plan
    )
    # partial() would not receive the DAG's default_args: each file's reading options come in the plan.
    predict = MlflowBatchPredictOperator.partial(
        task_id="predict", spec_uri=SPEC, model_name=MODEL, scored_at=periods.MONTH_CLOSED_AT
    ).expand_kwargs(plan.output)
    PublishPartitionOperator(
        task_id="publish",
        partition=plan.output["partition"],
        results=predict.output,
        outlets=[predictions_asset(MODEL)],
    )

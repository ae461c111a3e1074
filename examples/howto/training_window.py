"""How-to: assemble a retrain's data from the newest labelled months with ``TrainingWindowOperator``,
then train on it.

The window joins each month's features to its labels feed by ``penguin_id``. With ``end_month`` 2009-02
and ``window_months`` 1, February is the holdout (both models are judged on the newest month) and
January plus the snapshot are the training data. Its ``train_uri``, ``holdout_uri`` and ``tags`` are
separate XComs, so training takes them one by one.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG, Param

from airflow_mlops import periods
from airflow_mlops.operators.training import MlflowTrainModelOperator
from airflow_mlops.operators.window import TrainingWindowOperator

SPEC = str(Path(__file__).parents[1] / "penguins_spec.yaml")
DATA = "{{ data_root() }}/penguins"

with DAG(
    dag_id="howto_training_window",
    schedule=None,
    params={
        "end_month": Param(
            "2009-02", type="string", pattern=periods.MONTH_PATTERN, description="The newest month considered."
        ),
        "window_months": Param(
            1, type="integer", minimum=0, maximum=120, description="Labelled months before the holdout month."
        ),
    },
    user_defined_macros=periods.macros(),
    default_args={"require_marker": False},  # pandas wrote every folder: no _SUCCESS markers
    tags=["howto"],
):
    window = TrainingWindowOperator(
        task_id="window",
        features_uri=DATA + "/monthly/month={month}",  # {month} is the window's placeholder, not Jinja
        labels_uri=DATA + "/labels/month={month}",
        snapshot_uri=DATA + "/training",
        include_snapshot=True,
        spec_uri=SPEC,
        output_uri="{{ data_root() }}/howto/windows/{{ run_id | replace(':', '_') | replace('+', '_') }}",
        end_month="{{ params.end_month }}",
        window_months="{{ params.window_months }}",
    )
    MlflowTrainModelOperator(
        task_id="train",
        train_uri=window.output["train_uri"],
        holdout_uri=window.output["holdout_uri"],
        data_tags=window.output["tags"],  # the version records which months it learnt from
        spec_uri=SPEC,
        model_name="howto_penguins_window",
        estimator_params={"max_iter": 100},
    )

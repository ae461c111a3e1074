"""How-to: score one file with the ``champion`` and write its predictions as one parquet file, with
``MlflowBatchPredictOperator``.

Scores ``part-0.parquet`` of a penguins month (``examples/penguins_data.py``) with the champion of
``howto_penguins`` (the train and promote how-tos make one). The alias is pinned to a version once;
every output row names it. To score a whole partition, see the batch-scoring how-to.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG

from airflow_mlops import periods
from airflow_mlops.operators.inference import MlflowBatchPredictOperator

SPEC = str(Path(__file__).parents[1] / "penguins_spec.yaml")

with DAG(
    dag_id="howto_batch_predict",
    schedule=None,
    params={"month": periods.month_param()},
    user_defined_macros=periods.macros(),
    tags=["howto"],
):
    MlflowBatchPredictOperator(
        task_id="predict",
        input_uri="{{ data_root() }}/penguins/monthly/month=" + periods.MONTH + "/part-0.parquet",
        output_uri="{{ data_root() }}/howto/scored/month=" + periods.MONTH + "/part-0.parquet",
        spec_uri=SPEC,
        model_name="howto_penguins",
        model_ref="champion",
        scored_at=periods.MONTH_CLOSED_AT,  # the same stamp for every rerun of the month
        on_invalid_rows="fail",
    )

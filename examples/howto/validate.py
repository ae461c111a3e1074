"""How-to: validate one month of features against the FeatureSpec with ``GxValidateTableOperator``.

Trigger it with ``{"month": "2009-01"}`` on the penguins layout (``examples/penguins_data.py``). The
month is scoring data, so ``labelled=False``: the ``species`` target is not expected. A failed
expectation fails the task; the summary (rows, counts, the failed expectations) is its XCom either way.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG

from airflow_mlops import periods
from airflow_mlops.operators.validation import GxValidateTableOperator

SPEC = str(Path(__file__).parents[1] / "penguins_spec.yaml")

with DAG(
    dag_id="howto_validate",
    schedule=None,
    params={"month": periods.month_param()},
    user_defined_macros=periods.macros(),
    tags=["howto"],
):
    GxValidateTableOperator(
        task_id="validate",
        table_uri="{{ data_root() }}/penguins/monthly/month=" + periods.MONTH,
        spec_uri=SPEC,
        labelled=False,
        on_failure="fail",
        require_marker=False,  # pandas wrote the month: no _SUCCESS marker to wait for
        retries=0,  # a table that fails its expectations fails again on a retry
    )

"""What every operator of the provider does the same way."""

from __future__ import annotations

import jinja2
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.operators.inference import MlflowBatchPredictOperator
from airflow_mlops.periods import month_closed_at, previous_month


def test_a_template_error_fails_the_task_at_once_without_retry() -> None:
    op = MlflowBatchPredictOperator(
        task_id="predict", input_uri="in.parquet", output_uri="out.parquet", spec_uri="spec.yaml", model_name="m",
        scored_at="{{ logical_date.isoformat() }}", retries=3,
    )  # fmt: skip

    # A run without a logical date (Airflow 3's default for the CLI and REST API) and a template that needs one.
    with pytest.raises(AirflowFailException, match=r"predict: cannot render a template: UndefinedError: .*isoformat.*\(no retry\)"):
        op.render_template_fields({"logical_date": None}, jinja_env=jinja2.Environment(undefined=jinja2.StrictUndefined))


def test_the_month_of_a_run_and_its_scoring_time() -> None:
    import datetime as dt

    assert previous_month(dt.datetime(2025, 1, 1, tzinfo=dt.UTC)) == "2024-12"
    assert month_closed_at("2024-12") == "2025-01-01T00:00:00+00:00"
    assert month_closed_at("2025-01") == "2025-02-01T00:00:00+00:00"
    with pytest.raises(ValueError, match="neither a logical date nor run_after; pass the month explicitly"):
        previous_month(None)

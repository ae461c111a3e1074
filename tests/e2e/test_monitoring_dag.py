"""mlops_model_monitoring end to end: the concept-drifted month decays, its decay event queues retraining."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.e2e.conftest import error_lines, task_states, xcom
from tests.e2e.test_batch_prediction_dag import MONTHS, champion, predictions_dir, queued_retraining, unpause_retraining  # noqa: F401 - fixture

pytestmark = pytest.mark.e2e


def test_monitoring_catches_the_month_whose_inputs_did_not_drift_and_schedules_retraining(run_dag, champion, demo_data, capfd) -> None:  # noqa: F811
    for month, when in MONTHS.items():  # scored months with published predictions
        if not (predictions_dir(month) / "_SUCCESS").exists():
            assert str(run_dag("mlops_batch_prediction", logical_date=when).state) == "success"
    unpause_retraining()
    queued_before = queued_retraining()
    capfd.readouterr()

    # The run of 2025-04-01 judges 2025-02 (label lag 1): scored on 2025-03-01, its outcomes known by April.
    runs = {
        "2025-01": run_dag("mlops_model_monitoring", logical_date=dt.datetime(2025, 3, 1, tzinfo=dt.UTC)),
        "2025-02": run_dag("mlops_model_monitoring", logical_date=dt.datetime(2025, 4, 1, tzinfo=dt.UTC)),
    }

    logged = capfd.readouterr()
    assert error_lines(logged.out + logged.err) == []
    for month, run in runs.items():
        assert str(run.state) == "success", (month, task_states(run))
        assert xcom(run, "quality_check")["period"] == month
    held, decayed = xcom(runs["2025-01"], "quality_check"), xcom(runs["2025-02"], "quality_check")
    assert held["decayed"] is False and task_states(runs["2025-01"])["signal_decay"] == "skipped"
    assert decayed["decayed"] is True and task_states(runs["2025-02"])["signal_decay"] == "success"
    assert decayed["model_version"] == champion and decayed["coverage"] == 1.0
    assert queued_retraining() == queued_before + 1  # the decay event schedules mlops_retraining

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


def test_the_mlops_page_charts_the_monitored_months(run_dag, champion) -> None:  # noqa: F811
    """After the monitoring runs above: the page's quality chart carries each judged month's value,
    baseline and decay limit as recorded in the summaries, the decayed month flagged; the drift chart
    each scored month's drifted share and threshold; the segment table the latest month's segments."""
    from airflow_mlops.plugins import dashboard
    from airflow_mlops.plugins.app import render_page
    from tests.ui.page import chart_values, segment_rows

    quality = dashboard.quality_checks("churn")
    drift = dashboard.drift_checks("churn")
    assert [q["period"] for q in quality][:2] == ["2025-02", "2025-01"] and set(MONTHS) <= {d["period"] for d in drift}

    page = render_page([{"name": "churn", "champion": None, "previous_champion": None, "history": [], "quality": quality, "drift": drift}])

    charted = chart_values(page)
    for q in quality:
        assert charted["quality"]["value"][q["period"]] == (pytest.approx(q["value"], abs=1e-9), q["decayed"])
        assert charted["quality"]["baseline"][q["period"]][0] == pytest.approx(q["baseline"], abs=1e-9)
        assert charted["quality"]["limit"][q["period"]][0] == pytest.approx(q["limit"], abs=1e-9)
    assert charted["quality"]["value"]["2025-02"][1] is True  # the concept-drifted month, flagged red
    for d in drift:
        assert charted["drift"]["share"][d["period"]] == (pytest.approx(d["share"], abs=1e-9), d["drift_detected"])
        assert charted["drift"]["threshold"][d["period"]][0] == pytest.approx(d["drift_share"], abs=1e-9)
    latest = quality[0]
    assert segment_rows(page) == {f"{s['segment']}={s['value']}" for s in latest["segments"]} and len(latest["segments"]) > 2

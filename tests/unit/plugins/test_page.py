"""The MLOps page's template and charts, rendered without a server."""

from __future__ import annotations

import pytest

from airflow_mlops.plugins import charts
from airflow_mlops.plugins.app import render_page
from tests.ui.page import chart_values, segment_rows


def quality(period: str, value: float, decayed: bool, **extra) -> dict:
    return {"period": period, "metric": "roc_auc", "value": value, "baseline": 0.84, "limit": 0.798, "decayed": decayed, "model_version": "3",
            "coverage": 1.0, "report_url": f"/mlops/reports/quality/churn/period%3D{period}/report.html", "segments": [], **extra}  # fmt: skip


def model(**parts) -> dict:
    return {"name": "churn", "champion": None, "previous_champion": None, "history": [], "quality": [], "drift": []} | parts


def test_quality_chart_draws_every_month_in_order_with_baseline_limit_and_flags() -> None:
    checks = [quality("2025-03", 0.83, False), quality("2025-01", 0.84, False), quality("2025-02", 0.66, True)]

    chart = charts.quality_chart(checks)

    assert chart is not None
    assert [label for _, label in chart.x_labels] == ["2025-01", "2025-02", "2025-03"]
    values = [m for m in chart.marks if m.series == "value"]
    assert [(m.period, m.value, m.flagged) for m in values] == [("2025-01", 0.84, False), ("2025-02", 0.66, True), ("2025-03", 0.83, False)]
    assert values[1].y > values[0].y  # a lower score is drawn lower (SVG y grows downwards)
    assert {line.series for line in chart.lines} == {"value", "baseline", "limit"}
    assert all(0 <= m.y <= charts.HEIGHT and 0 <= m.x <= charts.WIDTH for m in chart.marks)


def test_drift_chart_bars_reach_their_share_and_the_threshold_is_a_line() -> None:
    checks = [{"period": "2025-01", "share": 0.1, "drift_share": 0.5, "drift_detected": False},
              {"period": "2025-02", "share": 0.75, "drift_share": 0.5, "drift_detected": True}]  # fmt: skip

    chart = charts.drift_chart(checks)

    assert chart is not None
    low, high = chart.bars
    assert (low.flagged, high.flagged) == (False, True) and high.height == pytest.approx(low.height * 7.5, rel=0.02)
    assert [(m.period, m.value) for m in chart.marks if m.series == "threshold"] == [("2025-01", 0.5), ("2025-02", 0.5)]


def test_no_checks_means_no_chart_and_a_plain_note() -> None:
    assert charts.quality_chart([]) is None and charts.drift_chart([]) is None

    page = render_page([model()])

    assert chart_values(page) == {} and "nothing to chart yet" in page and "no quality checks yet" in page


def test_page_carries_the_chart_values_and_the_latest_segments() -> None:
    segments = [{"segment": "contract", "value": "month-to-month", "rows": 400, "roc_auc": 0.61, "baseline": 0.8, "judged": True, "decayed": True}]
    page = render_page([model(quality=[quality("2025-02", 0.66, True, segments=segments), quality("2025-01", 0.84, False)])])

    charted = chart_values(page)
    assert charted["quality"]["value"] == {"2025-01": (0.84, False), "2025-02": (0.66, True)}
    assert charted["quality"]["limit"]["2025-02"] == (0.798, False)
    assert segment_rows(page) == {"contract=month-to-month"}
    assert 'href="/mlops/reports/quality/churn/period%3D2025-02/report.html"' in page


def test_page_escapes_what_it_shows() -> None:
    hostile = "<script>alert(1)</script>"
    page = render_page([model(name=hostile, quality=[quality("2025-01", 0.8, False, metric=hostile)])])

    assert hostile not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_an_error_is_shown_without_models() -> None:
    page = render_page([], error="MLflow is not reachable")

    assert '<p class="error">MLflow is not reachable</p>' in page and "No registered models yet" not in page

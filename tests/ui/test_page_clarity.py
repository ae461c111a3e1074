"""What the MLOps page says about a model, rendered without a server: the header names the model and its
champion, every version's metrics say which holdout they were measured on, scores read with four
decimals (MLflow's tags hold them as 16-digit text), a month that was the scoring version's own holdout
is marked, and a multi-line decision reason keeps its lines. tests/ui/test_browser.py checks the same in
Chromium against the real API server.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops.plugins import app, charts, dashboard

#: MLflow joins the failed checks of one validation with a line break (mlflow.models.evaluation.validation).
MULTI_LINE_REASON = (
    "Metric roc_auc value threshold check failed: candidate model roc_auc = 0.5512345678901234, roc_auc threshold = 0.6.\n"
    "Metric roc_auc minimum absolute change check failed: candidate model roc_auc = 0.5512345678901234, "
    "baseline model roc_auc = 0.6731961651815659, roc_auc minimum absolute change threshold = 0.005."
)


def _version(number: int, tags: dict[str, str]) -> Any:
    return SimpleNamespace(version=str(number), run_id=f"run-{number}", status="READY", creation_timestamp=0, tags=tags)


class _Client:
    """Three versions as the reference DAGs leave them: v1 from the snapshot (a 20% split), v2 from the
    labelled months (holdout 2025-03), v3 a rejected challenger (holdout 2025-04)."""

    runs = {
        "run-1": ({"roc_auc": 0.7840031930954274, "system/cpu_utilization_percentage": 9.0}, {"test_size": "0.2"}),
        "run-2": ({"roc_auc": 0.6731961651815659, "f1": 0.613370236321056}, {"test_size": ""}),
        "run-3": ({"roc_auc": 0.5512345678901234}, {"test_size": ""}),
    }

    def get_run(self, run_id: str) -> Any:
        metrics, params = self.runs[run_id]
        return SimpleNamespace(data=SimpleNamespace(metrics=metrics, params=params))


class _Hook:
    client = _Client()

    def model_version_url(self, name: str, version: str) -> str:
        return f"http://127.0.0.1:5000/#/models/{name}/versions/{version}"


def _window(holdout: str, train: str, snapshot: bool) -> dict[str, str]:
    return {
        "mlops.window.holdout_month": holdout,
        "mlops.window.train_months": train,
        "mlops.window.snapshot": str(snapshot).lower(),
    }


def _decision(decision: str, reason: str, challenger: str, champion: str, at: str) -> dict[str, str]:
    fields = {
        "decision": decision,
        "reason": reason,
        "metric": "roc_auc",
        "challenger_score": challenger,
        "champion_score": champion,
        "decided_at": at,
    }
    return {f"mlops.decision.{k}": v for k, v in fields.items()}


VERSIONS = (
    _version(1, _window("none (a split of the training data)", "none", True)
             | _decision("promoted", "roc_auc passed (threshold=0.6) against no champion yet", "0.7840031930954274", "", "2025-02-01")),
    _version(2, _window("2025-03", "2025-01,2025-02", False)
             | _decision("promoted", "roc_auc passed against champion v1", "0.6731961651815659", "0.5070159403621707", "2025-04-01")),
    _version(3, _window("2025-04", "2025-02,2025-03", False)
             | _decision("rejected", MULTI_LINE_REASON, "0.5512345678901234", "0.6731961651815659", "2025-05-01")),
)  # fmt: skip


def _quality(period: str, version: str, value: float) -> dict[str, Any]:
    return {"period": period, "model_version": version, "metric": "roc_auc", "value": value, "baseline": 0.6731961651815659,
            "limit": 0.6395363569224876, "decayed": value < 0.6395, "coverage": 1.0, "segments": [], "report_url": None}  # fmt: skip


@pytest.fixture
def summary(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    checks = [
        _quality("2025-04", "2", 0.6612345678901234),
        _quality("2025-03", "2", 0.6731961651815659),
        _quality("2025-02", "1", 0.4522),
    ]
    monkeypatch.setattr(dashboard, "quality_checks", lambda name: checks)
    monkeypatch.setattr(dashboard, "drift_checks", lambda name: [])
    model = dashboard.RegisteredModel("churn", {"champion": "2", "previous_champion": "1", "challenger": "3"}, VERSIONS)
    return dashboard.model_summary(_Hook(), model)


class _Text(HTMLParser):
    """The page's visible text per element id / class, as a reader sees it."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[dict[str, str | None]] = []
        self.by_id: dict[str, str] = {}
        self.by_class: dict[str, list[str]] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack.append(dict(attrs) | {"_tag": tag, "_start": str(len(self.text))})

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            node = self.stack.pop()
            content = "".join(self.text[int(str(node["_start"])) :])
            if node.get("id"):
                self.by_id[str(node["id"])] = content
            for cls in (node.get("class") or "").split():
                self.by_class.setdefault(cls, []).append(content)
            if node["_tag"] == tag:
                return

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _read(page: str) -> _Text:
    reader = _Text()
    reader.feed(page)
    return reader


def test_the_header_names_the_model_and_its_champion_and_a_distinct_challenger_is_its_own_role(
    summary: dict[str, Any],
) -> None:
    page = _read(app.render_page([summary]))

    assert page.by_id["header-churn"] == "champion v2"
    assert (
        page.by_id["champion-churn"] == "v2"
        and page.by_id["challenger-churn"] == "v3"
        and page.by_id["previous-champion-churn"] == "v1"
    )


def test_a_challenger_that_became_the_champion_is_not_shown_as_a_challenger(
    summary: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = dashboard.RegisteredModel("churn", {"champion": "2", "previous_champion": "1", "challenger": "2"}, VERSIONS)

    promoted = dashboard.model_summary(_Hook(), model)
    page = _read(app.render_page([promoted]))

    assert promoted["challenger_version"] is None and "challenger-churn" not in page.by_id
    assert "challenger" not in page.by_id["header-churn"]


def test_each_versions_metrics_say_which_holdout_they_were_measured_on(summary: dict[str, Any]) -> None:
    page = _read(app.render_page([summary]))

    assert summary["champion"]["measured_on"] == {
        "holdout_month": "2025-03",
        "train_months": ["2025-01", "2025-02"],
        "label": "holdout month 2025-03; trained on 2025-01, 2025-02",
    }
    measured = [" ".join(t.split()) for t in page.by_class["measured"]]
    assert measured == [
        "Metrics measured on holdout month 2025-03; trained on 2025-01, 2025-02:",  # champion v2
        "Metrics measured on holdout month 2025-04; trained on 2025-02, 2025-03:",  # challenger v3
        "Metrics measured on a 20% split of the training data:",  # previous champion v1
    ]


def test_scores_read_with_four_decimals_wherever_they_come_from(summary: dict[str, Any]) -> None:
    page = app.render_page([summary])
    text = " ".join(_read(page).text)  # one piece per cell: numbers of neighbouring cells do not run together

    # Tags (history scores), run metrics (role tables), summaries (quality table) and reasons alike.
    assert not re.findall(r"\d\.\d{5,}", text), re.findall(r"\d\.\d{5,}", text)
    assert "0.6732" in text and "0.5070" in text and "0.7840" in text and "0.5512" in text
    # The charts keep the exact values in their data- attributes (the browser test reads them back).
    assert 'data-value="0.6612345678901234"' in page


def test_a_month_that_was_the_scoring_versions_own_holdout_is_marked_in_the_table_and_the_chart(
    summary: dict[str, Any],
) -> None:
    page = app.render_page([summary])

    assert [(q["period"], q["holdout_of_version"]) for q in summary["quality"]] == [
        ("2025-04", False),
        ("2025-03", True),
        ("2025-02", False),
    ]
    rows = dict(re.findall(r'<tr data-period="(2025-0\d)" data-holdout="(true|false)"', page))
    assert rows == {"2025-04": "false", "2025-03": "true", "2025-02": "false"}
    assert "v2's own holdout month" in page
    marks = {m.period: m.holdout for m in charts.quality_chart(summary["quality"]).marks if m.series == "value"}  # type: ignore[union-attr]
    assert marks == {"2025-02": False, "2025-03": True, "2025-04": False}
    assert re.search(r'class="mark value holdout"[^>]*data-period="2025-03"[^>]*data-holdout="true"', page)


def test_a_multi_line_decision_reason_keeps_its_lines_with_short_numbers(summary: dict[str, Any]) -> None:
    page = app.render_page([summary])

    reasons = _read(page).by_class["reason"]
    rejected = [r for r in reasons if r.startswith("Metric roc_auc value threshold")]
    assert len(rejected) == 2  # the challenger's role and its history row
    assert rejected[0].split("\n") == [
        "Metric roc_auc value threshold check failed: candidate model roc_auc = 0.5512, roc_auc threshold = 0.6.",
        "Metric roc_auc minimum absolute change check failed: candidate model roc_auc = 0.5512, baseline model roc_auc = 0.6732, "
        "roc_auc minimum absolute change threshold = 0.005.",
    ]
    assert ".reason{white-space:pre-line}" in page  # the browser shows the line break


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.6731961651815659, "0.6732"),
        ("0.6731961651815659", "0.6732"),
        ("", ""),
        (None, ""),
        ("none", "none"),
        (3, "3.0000"),
        ("nan", "nan"),
    ],
)
def test_four_digits(value: Any, shown: str) -> None:
    assert app.four_digits(value) == shown

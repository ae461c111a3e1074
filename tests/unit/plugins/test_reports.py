"""Report links and report lookup: URLs below the reports root, path checks that keep reads inside it."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest

from airflow_mlops.links.reports import DriftReportLink, ValidationReportLink
from airflow_mlops.plugins import dashboard
from airflow_mlops.reports import url as report_url


@pytest.fixture
def root(tmp_path: Path) -> Path:
    reports = tmp_path / "data" / "reports"
    (reports / "drift" / "churn" / "period=2025-01").mkdir(parents=True)
    (reports / "drift" / "churn" / "period=2025-01" / "report.html").write_text("<html>ok</html>")
    (tmp_path / "data" / "secret.txt").write_text("secret")
    return reports


@pytest.mark.parametrize(
    ("uri", "url"),
    [
        ("{root}/validation/d/run_1/validate/data_docs.html", "/mlops/reports/validation/d/run_1/validate/data_docs.html"),
        ("{root}/drift/churn/period=2025-01/report.html", "/mlops/reports/drift/churn/period%3D2025-01/report.html"),
        ("{root}/a b/r.html", "/mlops/reports/a%20b/r.html"),
        ("https://reports.example/r.html", "https://reports.example/r.html"),
        ("file:///elsewhere/r.html", ""),
        ("{root}", ""),
        ("", ""),
    ],
)
def test_report_url_points_at_the_plugin_route_for_reports_under_the_root(root: Path, uri: str, url: str) -> None:
    assert report_url(uri.format(root=root.as_uri()), reports_root=root.as_uri()) == url


def test_report_url_follows_the_api_base_path_and_s3_roots(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example/team-a/")

    assert report_url("s3://mlops/reports/drift/x/report.html", reports_root="s3://mlops/reports") == "/team-a/mlops/reports/drift/x/report.html"


def test_report_links_turn_the_pushed_uri_into_a_url_and_never_raise(root: Path, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW__MLOPS__REPORTS_ROOT", root.as_uri())
    uri = f"{root.as_uri()}/drift/churn/period=2025-01/report.html"
    link = DriftReportLink()

    with mock.patch("airflow.sdk.execution_time.xcom.XCom.get_value", return_value=uri):
        assert link.get_link(mock.Mock(), ti_key=mock.Mock()) == "/mlops/reports/drift/churn/period%3D2025-01/report.html"
    with mock.patch("airflow.sdk.execution_time.xcom.XCom.get_value", side_effect=RuntimeError("no API")):
        assert link.get_link(mock.Mock(), ti_key=mock.Mock()) == ""
    with mock.patch("airflow.sdk.execution_time.xcom.XCom.get_value", return_value=None):
        assert ValidationReportLink().get_link(mock.Mock(), ti_key=mock.Mock()) == ""


def test_validation_and_drift_operators_carry_their_report_links() -> None:
    from airflow_mlops.get_provider_info import get_provider_info
    from airflow_mlops.operators.drift import EvidentlyDriftCheckOperator
    from airflow_mlops.operators.validation import GxValidateTableOperator

    assert [link.name for link in GxValidateTableOperator.operator_extra_links] == ["Validation report"]
    assert [link.name for link in EvidentlyDriftCheckOperator.operator_extra_links] == ["Drift report"]
    assert {"airflow_mlops.links.reports.ValidationReportLink", "airflow_mlops.links.reports.DriftReportLink"} <= set(
        get_provider_info()["extra-links"]
    )


@pytest.mark.parametrize(
    "path",
    ["", "/etc/passwd", "../secret.txt", "drift/../../secret.txt", "./x", "a//b", "%2e%2e/secret.txt", "%2E%2E", "a\\..\\b",
     "..%5csecret.txt", "a%2f..%2fb", "x\x00.html", "%00"],
)  # fmt: skip
def test_paths_that_could_leave_the_root_are_refused(root: Path, path: str) -> None:
    with pytest.raises(dashboard.ReportPathError):
        dashboard.find_report(path, root=root.as_uri())


def test_symlinks_out_of_the_root_dirs_and_missing_files_are_not_found(root: Path) -> None:
    (root / "escape").symlink_to(root.parent, target_is_directory=True)
    (root / "link.txt").symlink_to(root.parent / "secret.txt")
    (root / "inside.html").symlink_to(root / "drift" / "churn" / "period=2025-01" / "report.html")

    for path in ("escape/secret.txt", "link.txt", "drift/churn", "drift/churn/period=2025-02/report.html"):
        with pytest.raises(dashboard.ReportNotFoundError):
            dashboard.find_report(path, root=root.as_uri())
    linked = dashboard.find_report("inside.html", root=root.as_uri())
    assert linked.read_bytes() == b"<html>ok</html>"
    # Where the link really leads, which the app authorizes as well as the requested path.
    assert linked.segments == ("drift", "churn", "period=2025-01", "report.html")
    found = dashboard.find_report("drift/churn/period=2025-01/report.html", root=root.as_uri())
    assert found.name == "report.html" and found.read_bytes() == b"<html>ok</html>"
    assert found.segments == ("drift", "churn", "period=2025-01", "report.html")


def test_drift_checks_are_read_newest_first_and_broken_summaries_are_skipped(root: Path) -> None:
    base = root / "drift" / "churn"
    for period, share in (("2025-01", 0.1), ("2025-02", 0.7)):
        folder = base / f"period={period}"
        folder.mkdir(exist_ok=True)
        summary = {"period": period, "share": share, "drift_detected": share > 0.5, "drift_share": 0.5,
                   "drifted_columns": ["a"], "report_uri": f"{root.as_uri()}/drift/churn/period={period}/report.html",
                   "evidently": {"big": "x" * 1000}}  # fmt: skip
        (folder / "summary.json").write_text(json.dumps(summary))
    (base / "period=2025-03").mkdir()
    (base / "period=2025-03" / "summary.json").write_text("{not json")  # still being written

    checks = dashboard.drift_checks("churn", root=root.as_uri())

    assert [(c["period"], c["share"], c["drift_detected"]) for c in checks] == [("2025-02", 0.7, True), ("2025-01", 0.1, False)]
    assert checks[0]["report_url"] == "/mlops/reports/drift/churn/period%3D2025-02/report.html"
    assert "evidently" not in checks[0]
    assert dashboard.drift_checks("no-such-model", root=root.as_uri()) == []

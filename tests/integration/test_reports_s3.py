"""The MLOps page's report lookup and drift listing on a real S3 endpoint (moto server)."""

from __future__ import annotations

import json

import pytest

from airflow_mlops import tables
from airflow_mlops.plugins import dashboard
from airflow_mlops.reports import url as report_url

CONN = "aws_moto"


def test_reports_on_s3_are_found_listed_and_kept_below_the_root(aws_conn: str, monkeypatch) -> None:
    monkeypatch.setenv("MLOPS_DATA_CONN_ID", CONN)
    root = f"{aws_conn}/reports"
    folder = f"{root}/drift/churn/period=2025-04"
    tables.write_text("<html>drift</html>", f"{folder}/report.html", conn_id=CONN)
    tables.write_text(json.dumps({"period": "2025-04", "share": 0.4, "drift_detected": False, "report_uri": f"{folder}/report.html"}),
                      f"{folder}/summary.json", conn_id=CONN)  # fmt: skip
    tables.write_text("secret", f"{aws_conn}/secret.txt", conn_id=CONN)

    found = dashboard.find_report("drift/churn/period=2025-04/report.html", root=root)
    checks = dashboard.drift_checks("churn", root=root)

    assert found.read_bytes() == b"<html>drift</html>"
    assert [(c["period"], c["share"]) for c in checks] == [("2025-04", 0.4)]
    assert checks[0]["report_url"] == report_url(f"{folder}/report.html", root) == "/mlops/reports/drift/churn/period%3D2025-04/report.html"
    with pytest.raises(dashboard.ReportPathError):
        dashboard.find_report("../secret.txt", root=root)
    with pytest.raises(dashboard.ReportNotFoundError):
        dashboard.find_report("drift/churn/period=2025-04/missing.html", root=root)

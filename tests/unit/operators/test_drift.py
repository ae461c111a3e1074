"""Drift check with real Evidently on the churn demo data (drifted and undrifted months)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlops import tables
from airflow_mlops.example_data import SPEC_PATH, churn
from airflow_mlops.exceptions import DriftDetectedError
from airflow_mlops.operators.drift import EvidentlyDriftCheckOperator, sample_table
from airflow_mlops.tables import TableReader
from tests.helpers import task_context


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("drift")
    summary = churn.generate_dataset(
        str(root), rows=3000, months=["2025-01", "2025-02", "2025-03"], training_rows=3000, drift_from="2025-02", rows_per_file=1500
    )
    reference = churn.generate_frame(3000, seed=42, month=churn.TRAINING_MONTH, labels=False)
    summary["reference"] = tables.write_table(reference, str(root / "reference.parquet"))
    return summary


def check(tmp_path: Path, data: dict, month: str, **kwargs) -> EvidentlyDriftCheckOperator:
    kwargs.setdefault("reports_uri", str(tmp_path / month))
    return EvidentlyDriftCheckOperator(
        task_id="drift", current_uri=data["months"][month], spec_uri=str(SPEC_PATH), model_name="churn",
        reference_uri=data["reference"], period=month, **kwargs,
    )  # fmt: skip


def test_undrifted_month_is_clean_and_drifted_month_names_the_columns(tmp_path, data) -> None:
    clean = check(tmp_path, data, "2025-01", drift_share=0.2).execute(task_context())
    ctx = task_context()
    drifted = check(tmp_path, data, "2025-02", drift_share=0.2).execute(ctx)

    assert clean["drift_detected"] is False and clean["share"] < 0.2
    assert drifted["drift_detected"] is True and drifted["trigger_retraining"] is True
    assert {"monthly_charges", "support_calls", "contract"} <= set(drifted["drifted_columns"])
    assert "age" not in drifted["drifted_columns"]
    assert drifted["columns"] == 13 and drifted["rows"] == {"current": 3000, "reference": 3000}
    saved = json.loads(Path(drifted["summary_uri"]).read_text())
    assert saved["drifted_columns"] == drifted["drifted_columns"]
    html = Path(drifted["report_uri"]).read_text(errors="ignore")
    assert "<html" in html.lower() and "monthly_charges" in html
    assert ctx["pushed"]["drift_report_uri"] == drifted["report_uri"]


def test_share_at_the_threshold_counts_as_drift(tmp_path, data) -> None:
    probe = check(tmp_path, data, "2025-02", drift_share=1.0).execute(task_context())
    share = probe["share"]
    assert 0 < share < 1 and probe["drift_detected"] is False

    at = check(tmp_path, data, "2025-02", drift_share=share).execute(task_context())
    above = check(tmp_path, data, "2025-02", drift_share=share + 1e-9).execute(task_context())

    assert at["drift_detected"] is True
    assert above["drift_detected"] is False


def test_on_drift_policies(tmp_path, data) -> None:
    with pytest.raises(DriftDetectedError, match="monthly_charges"):
        check(tmp_path, data, "2025-02", drift_share=0.2, on_drift="fail").execute(task_context())
    with pytest.raises(AirflowSkipException):
        check(tmp_path, data, "2025-02", drift_share=0.2, on_drift="skip").execute(task_context())
    with pytest.raises(ValueError, match="on_drift"):
        check(tmp_path, data, "2025-02", on_drift="panic").execute(task_context())


def test_hysteresis_needs_consecutive_drifted_months_in_a_custom_reports_folder(tmp_path, data) -> None:
    reports = tmp_path / "team-reports"  # not the default location: the earlier months are read where they were written
    base = {"drift_share": 0.2, "consecutive": 2}

    def at(month: str) -> dict:
        result = check(tmp_path, data, month, reports_uri=str(reports), **base).execute(task_context())
        assert result["summary_uri"] == str(reports / f"period={month}" / "summary.json")
        return result

    assert at("2025-01")["trigger_retraining"] is False
    feb = at("2025-02")
    assert feb["drift_detected"] is True and feb["trigger_retraining"] is False  # first drifted month
    mar = at("2025-03")
    assert mar["drift_detected"] is True and mar["trigger_retraining"] is True


def test_per_column_method_is_used(tmp_path, data) -> None:
    result = check(tmp_path, data, "2025-02", drift_share=0.2, column_methods={"monthly_charges": "psi"}).execute(task_context())

    saved = json.loads(Path(result["summary_uri"]).read_text())
    methods = {m["config"].get("column"): m["config"].get("method") for m in saved["evidently"]["metrics"]}
    assert methods["monthly_charges"].lower() == "psi" and methods["age"] != methods["monthly_charges"]


def test_sampling_is_seeded_and_bounded(tmp_path) -> None:
    frame = pd.DataFrame({"x": np.arange(10_000, dtype="float64")})
    for i in range(4):
        tables.write_table(frame.iloc[i * 2500 : (i + 1) * 2500], str(tmp_path / f"part-{i:05d}.parquet"))
    tables.finish_partition(str(tmp_path), keep=[f"part-{i:05d}.parquet" for i in range(4)])

    a = sample_table(str(tmp_path), ["x"], 1000, seed=7, reader=TableReader())
    b = sample_table(str(tmp_path), ["x"], 1000, seed=7, reader=TableReader())

    assert 850 < len(a) < 1150
    pd.testing.assert_frame_equal(a, b)
    assert a["x"].min() < 2500 and a["x"].max() > 7500  # drawn from every file

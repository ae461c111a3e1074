from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from airflow_mlops import tables
from airflow_mlops.cli import main
from airflow_mlops.example_data import churn
from airflow_mlops.spec import FeatureSpec


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("churn")
    return churn.generate_dataset(
        str(root), rows=6000, months=["2025-01", "2025-02", "2025-03"], training_rows=20000,
        drift_from="2025-03", rows_per_file=2500,
    )  # fmt: skip


def test_layout_and_spec(dataset: dict) -> None:
    root = Path(dataset["root"])
    spec = FeatureSpec.load(dataset["spec"])

    assert (root / "training" / "_SUCCESS").is_file()
    assert len(tables.list_data_files(dataset["training"])) == 8
    assert dataset["drifted_months"] == ["2025-03"]
    month = tables.read_table(dataset["months"]["2025-01"])
    assert list(month.columns) == spec.scoring_columns()
    training = tables.read_table(dataset["training"])
    assert list(training.columns) == spec.training_columns()
    assert training["customer_id"].is_unique
    assert len(training) == 20000 and len(month) == 6000


def test_same_seed_gives_identical_files(dataset: dict, tmp_path) -> None:
    again = churn.generate_dataset(str(tmp_path), rows=6000, months=["2025-01"], training_rows=0, rows_per_file=2500)

    assert digest(Path(again["months"]["2025-01"])) == digest(Path(dataset["months"]["2025-01"]))


def test_values_respect_the_spec_and_have_some_nulls(dataset: dict) -> None:
    spec = FeatureSpec.load(dataset["spec"])
    df = tables.read_table(dataset["training"])

    for feature in spec.numeric_features:
        col = df[feature.name]
        assert col.min() >= feature.min and (feature.max is None or col.max() <= feature.max), feature.name
        assert col.isna().any() == feature.nullable or feature.name == "total_charges", feature.name
    for feature in spec.categorical_features:
        assert set(df[feature.name].dropna()) <= set(feature.values), feature.name
    assert df["satisfaction_score"].isna().mean() == pytest.approx(0.04, abs=0.01)
    assert df["region"].isna().any()


def test_signal_is_realistic(dataset: dict) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    df = tables.read_table(dataset["training"])
    x = df[["tenure_months", "monthly_charges", "support_calls", "late_payments"]].to_numpy()
    y = df["churned"].to_numpy()
    model = LogisticRegression(max_iter=500).fit(x[:15000], y[:15000])

    auc = roc_auc_score(y[15000:], model.predict_proba(x[15000:])[:, 1])
    assert 0.65 < auc < 0.95
    assert 0.15 < y.mean() < 0.5


def test_drift_knob_shifts_only_chosen_features_from_chosen_month(dataset: dict) -> None:
    jan, feb, mar = (tables.read_table(dataset["months"][m]) for m in ("2025-01", "2025-02", "2025-03"))

    assert abs(feb["monthly_charges"].mean() - jan["monthly_charges"].mean()) < 2
    assert mar["monthly_charges"].mean() > 1.3 * jan["monthly_charges"].mean()
    assert mar["support_calls"].mean() > jan["support_calls"].mean() + 1.5
    assert (mar["contract"] == "month-to-month").mean() > (jan["contract"] == "month-to-month").mean() + 0.15
    assert abs(mar["age"].mean() - jan["age"].mean()) < 1.5  # untouched feature
    assert abs(mar["data_usage_gb"].mean() - jan["data_usage_gb"].mean()) < 2


def test_generation_streams_in_bounded_files(monkeypatch, tmp_path) -> None:
    """10M rows are produced file by file; no call ever materialises more than rows_per_file rows."""
    requested: list[int] = []
    real = churn.generate_frame

    def spy(rows: int, **kwargs):
        requested.append(rows)
        return real(min(rows, 10), **kwargs)  # keep the test fast: the shape of the calls is what matters

    monkeypatch.setattr(churn, "generate_frame", spy)

    churn.generate_dataset(str(tmp_path), rows=10_000_000, months=["2025-01"], training_rows=0, rows_per_file=250_000)

    assert max(requested) == 250_000
    assert sum(requested) == 10_000_000
    assert len(list((tmp_path / "monthly" / "month=2025-01").glob("part-*.parquet"))) == 40


def test_unknown_drift_feature_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown drift feature"):
        churn.generate_frame(10, seed=1, month="2025-01", drift_features=["shoe_size"])


def test_cli_help_and_run(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["generate-data", "--help"])
    assert exit_info.value.code == 0
    assert "--drift-from" in capsys.readouterr().out

    code = main(["generate-data", "--rows", "100", "--months", "2025-01:2025-02", "--to", str(tmp_path), "--drift-from", "2025-02"])

    assert code == 0
    assert (tmp_path / "monthly" / "month=2025-02" / "_SUCCESS").exists()
    assert np.isclose(len(tables.read_table(str(tmp_path / "training"))), 100)


def test_cli_rejects_bad_month(tmp_path, capsys) -> None:
    assert main(["generate-data", "--rows", "10", "--months", "2025-13", "--to", str(tmp_path)]) == 2
    assert "YYYY-MM" in capsys.readouterr().err

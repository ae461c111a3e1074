"""Drift defaults that hold on small months: no false alarm on stable months of 40-1,000 rows against
a reference of thousands, while a real sub-population shift of the same size is caught."""

from __future__ import annotations

import json

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops import tables
from airflow_mlops.example_data import SPEC_PATH, churn
from airflow_mlops.operators.drift import EvidentlyDriftCheckOperator
from tests.byod.conftest import PENGUINS_SPEC
from tests.helpers import task_context

CHURN_SPEC = str(SPEC_PATH)


def check(current: str, reference: str, spec: str, tmp_path, **kwargs) -> dict:
    op = EvidentlyDriftCheckOperator(
        task_id="drift", current_uri=current, reference_uri=reference, spec_uri=spec, model_name="m", period="2009-01",
        drift_share=0.2, reports_uri=str(tmp_path / f"report-{abs(hash(current))}"), require_marker=False, **kwargs,
    )  # fmt: skip
    return op.execute(task_context("drift"))


def test_penguin_months_stable_halves_pass_and_the_gentoo_month_drifts(penguins, tmp_path) -> None:
    reference, spec = str(penguins / "training"), str(PENGUINS_SPEC)

    stable = [check(str(penguins / f"monthly/month=2009-0{m}"), reference, spec, tmp_path) for m in (1, 2)]
    gentoo = check(str(penguins / "monthly/month=2009-03"), reference, spec, tmp_path)

    for summary in stable:
        assert summary["drift_detected"] is False, summary["drifted_columns"]
        assert summary["methods"] == {
            "bill_length_mm": "ks", "bill_depth_mm": "ks", "flipper_length_mm": "ks", "body_mass_g": "ks",
            "island": "chisquare", "sex": "z",
        }  # fmt: skip
    assert gentoo["drift_detected"] is True and gentoo["share"] >= 0.5, gentoo


@pytest.fixture(scope="module")
def churn_months(tmp_path_factory) -> dict[str, str]:
    """A 5,000-row churn reference and stable / sub-population months of 120, 500 and 1,000 rows."""
    root = tmp_path_factory.mktemp("churn-small")
    churn.generate_dataset(str(root), rows=6000, months=["2025-01"], training_rows=5000, rows_per_file=6000, seed=3)
    month = tables.read_table(str(root / "monthly/month=2025-01"))
    # A real sub-population: a campaign that brought only new month-to-month customers.
    newcomers = month[(month["contract"] == "month-to-month") & (month["tenure_months"] < 12)]
    out = {"reference": str(root / "training")}
    for rows in (120, 500, 1000):
        for name, frame in (("stable", month), ("newcomers", newcomers)):
            path = root / f"{name}-{rows}.parquet"
            frame.sample(n=min(rows, len(frame)), random_state=rows).to_parquet(path, index=False)
            out[f"{name}-{rows}"] = str(path)
    return out


@pytest.mark.parametrize("rows", [120, 500, 1000])
def test_churn_small_stable_months_raise_no_alarm_and_a_subpopulation_is_caught(churn_months, tmp_path, rows) -> None:
    stable = check(churn_months[f"stable-{rows}"], churn_months["reference"], CHURN_SPEC, tmp_path)
    shifted = check(churn_months[f"newcomers-{rows}"], churn_months["reference"], CHURN_SPEC, tmp_path)

    assert stable["drift_detected"] is False, (stable["share"], stable["drifted_columns"])
    assert set(stable["methods"].values()) == {"ks", "chisquare"}
    assert shifted["drift_detected"] is True and {"tenure_months", "contract"} <= set(shifted["drifted_columns"]), shifted


def test_distances_on_a_small_month_are_what_raised_false_alarms(churn_months, tmp_path) -> None:
    """Evidently's own default for a reference above 1,000 rows, forced on the 120-row stable month."""
    forced = check(
        churn_months["stable-120"], churn_months["reference"], CHURN_SPEC, tmp_path,
        numeric_method="wasserstein", categorical_method="jensenshannon",
    )  # fmt: skip
    default = check(churn_months["stable-120"], churn_months["reference"], CHURN_SPEC, tmp_path)

    assert forced["share"] > default["share"]
    assert forced["drift_detected"] is True and default["drift_detected"] is False


def test_a_method_that_does_not_fit_the_kind_fails_before_evidently_runs(churn_months, tmp_path) -> None:
    with pytest.raises(AirflowFailException, match=r"drift method 'ks' does not apply to categorical columns; valid: \[.*'chisquare'"):
        check(churn_months["stable-120"], churn_months["reference"], CHURN_SPEC, tmp_path, method="ks")
    with pytest.raises(AirflowFailException, match=r"column_methods\['contract'\]: drift method 'wasserstein'"):
        check(churn_months["stable-120"], churn_months["reference"], CHURN_SPEC, tmp_path, column_methods={"contract": "wasserstein"})
    with pytest.raises(AirflowFailException, match="threshold needs the methods it applies to"):
        check(churn_months["stable-120"], churn_months["reference"], CHURN_SPEC, tmp_path, threshold=0.01)
    assert not any(tmp_path.iterdir())  # no report: it failed before Evidently ran

    psi = check(churn_months["stable-120"], churn_months["reference"], CHURN_SPEC, tmp_path, method="psi")
    assert set(psi["methods"].values()) == {"psi"}
    assert json.loads(tables.read_text(psi["summary_uri"]))["methods"]["contract"] == "psi"

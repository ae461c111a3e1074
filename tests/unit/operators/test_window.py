"""The training window: the newest labelled months, features joined with the late labels feed."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops import tables
from airflow_mlops.example_data import SPEC_PATH, churn
from airflow_mlops.operators.window import HOLDOUT_MONTH_TAG, TRAIN_MONTHS_TAG, TrainingWindowOperator
from tests.helpers import task_context
from tests.unit.operators import pandas_labels

MONTHS = ["2025-01", "2025-02", "2025-03", "2025-04"]


@pytest.fixture(scope="module")
def feeds(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("window")
    churn.generate_dataset(str(root), rows=1500, months=MONTHS, training_rows=3000, rows_per_file=1500, concept_drift_from="2025-03", seed=5)
    return root


def copy_of(feeds: Path, tmp_path: Path) -> Path:
    shutil.copytree(feeds, tmp_path / "feeds")
    return tmp_path / "feeds"


def window(root: Path, out: Path, **kwargs) -> TrainingWindowOperator:
    kwargs.setdefault("end_month", "2025-04")
    return TrainingWindowOperator(
        task_id="assemble_window", features_uri=f"{root}/monthly/month={{month}}", labels_uri=f"{root}/labels/month={{month}}",
        snapshot_uri=str(root / "training"), spec_uri=str(SPEC_PATH), output_uri=str(out), **kwargs,
    )  # fmt: skip


def test_newest_labelled_month_judges_and_the_months_before_it_train(feeds: Path, tmp_path: Path) -> None:
    result = window(feeds, tmp_path / "w", window_months=2).execute(task_context())

    assert (result["holdout_month"], result["train_months"], result["snapshot"]) == ("2025-04", ["2025-02", "2025-03"], False)
    train = tables.read_table(result["train_uri"])
    holdout = tables.read_table(result["holdout_uri"])
    features = {m: tables.read_table(str(feeds / "monthly" / f"month={m}")) for m in MONTHS}
    labels = {m: tables.read_table(str(feeds / "labels" / f"month={m}")) for m in MONTHS}
    assert len(train) == len(features["2025-02"]) + len(features["2025-03"]) and len(holdout) == len(features["2025-04"])
    # each row carries its own month's outcome, joined by id
    expected = labels["2025-04"].set_index("customer_id")["churned"]
    assert (holdout.set_index("customer_id")["churned"] == expected.loc[holdout["customer_id"]].to_numpy()).all()
    assert result["tags"] == {TRAIN_MONTHS_TAG: "2025-02,2025-03", HOLDOUT_MONTH_TAG: "2025-04", "mlops.window.snapshot": "false"}
    assert json.loads(Path(result["window_uri"]).read_text())["train_months"] == ["2025-02", "2025-03"]
    assert json.loads((tmp_path / "w" / "train" / "_SUCCESS").read_text())["sources"] == ["2025-02", "2025-03"]


def test_the_window_writes_the_rows_the_pandas_merge_gave(feeds: Path, tmp_path: Path) -> None:
    """Labels shuffled, some not arrived (a tenth of the ids), some without an outcome (a null), some for
    ids never featured: the training and holdout rows are the old path's, same ids, values and order."""
    from airflow_mlops.spec import FeatureSpec

    root = copy_of(feeds, tmp_path)
    for month in ("2025-02", "2025-03", "2025-04"):
        part = next((root / "labels" / f"month={month}").glob("*.parquet"))
        frame = pd.read_parquet(part).sample(frac=1.0, random_state=7).iloc[150:]
        frame = frame.assign(churned=frame["churned"].astype("float64"))
        frame.loc[frame.index[:10], "churned"] = np.nan
        pd.concat([frame, pd.DataFrame({"customer_id": [-5, -6], "churned": [0.0, 1.0]})]).to_parquet(part, index=False)

    result = window(root, tmp_path / "w", window_months=2).execute(task_context())

    spec, reader = FeatureSpec.load(str(SPEC_PATH)), tables.TableReader()

    def before(month: str) -> pd.DataFrame:
        features_uri, labels_uri = f"{root}/monthly/month={month}", f"{root}/labels/month={month}"
        features = reader.read(features_uri, columns=spec.scoring_columns())
        labelled = pandas_labels.read_labels(reader, spec, labels_uri)
        return pandas_labels.join_labels(spec, features, labelled, rows_uri=features_uri, labels_uri=labels_uri, what="features")[spec.training_columns()]

    train = pd.concat([before("2025-02"), before("2025-03")], ignore_index=True)
    pd.testing.assert_frame_equal(tables.read_table(result["train_uri"]), train)
    pd.testing.assert_frame_equal(tables.read_table(result["holdout_uri"]), before("2025-04").reset_index(drop=True))
    assert result["rows"] == {"train": len(train), "holdout": 1500 - 150 - 10} and len(train) == 2 * (1500 - 150 - 10)
    assert json.loads((tmp_path / "w" / "train" / "_SUCCESS").read_text())["rows"] == len(train)


def test_a_month_whose_labels_have_not_arrived_is_skipped_and_reported(feeds: Path, tmp_path: Path) -> None:
    root = copy_of(feeds, tmp_path)
    shutil.rmtree(root / "labels" / "month=2025-04")

    result = window(root, tmp_path / "w", window_months=1, include_snapshot=True).execute(task_context())

    assert (result["holdout_month"], result["train_months"], result["snapshot"]) == ("2025-03", ["2025-02"], True)
    assert list(result["skipped_months"]) == ["2025-04"] and result["skipped_months"]["2025-04"].startswith("labels: ")
    assert result["rows"]["train"] == 1500 + 3000  # the month and the snapshot


def test_window_zero_trains_on_the_snapshot_with_a_split_holdout(feeds: Path, tmp_path: Path) -> None:
    result = window(feeds, tmp_path / "w", window_months=0).execute(task_context())

    assert (result["holdout_uri"], result["holdout_month"], result["train_months"], result["snapshot"]) == (None, None, [], True)
    assert result["train_uri"] == str(feeds / "training") and result["rows"]["train"] == 0  # used where it is, not copied
    assert not (tmp_path / "w" / "train").exists()


def test_end_month_defaults_to_the_month_of_the_run(feeds: Path, tmp_path: Path) -> None:
    context = task_context() | {"dag_run": mock.MagicMock(run_after=dt.datetime(2025, 3, 9, tzinfo=dt.UTC))}

    result = window(feeds, tmp_path / "w", window_months=1, end_month=None).execute(context)

    assert (result["holdout_month"], result["train_months"]) == ("2025-03", ["2025-02"])


def test_no_labelled_month_and_no_snapshot_is_a_clear_error(feeds: Path, tmp_path: Path) -> None:
    op = window(feeds, tmp_path / "w", window_months=2, end_month="2024-06")
    op.snapshot_uri = None

    with pytest.raises(AirflowFailException, match=r"no labelled month before 2024-06 within 24 months and no snapshot_uri"):
        op.execute(task_context())
    assert not (tmp_path / "w").exists()  # nothing written


def test_duplicate_label_ids_fail_without_retry_naming_the_labels_and_write_nothing(feeds: Path, tmp_path: Path) -> None:
    root = copy_of(feeds, tmp_path)
    labels_dir = root / "labels" / "month=2025-03"
    part = next(labels_dir.glob("*.parquet"))
    frame = pd.read_parquet(part)
    pd.concat([frame, frame.head(2)]).to_parquet(part, index=False)

    with pytest.raises(AirflowFailException, match=r"month=2025-03.*4 label rows share their id \['customer_id'\]"):
        window(root, tmp_path / "w", window_months=2).execute(task_context())
    assert not (tmp_path / "w" / "train").exists()


def test_a_pattern_without_the_month_placeholder_is_refused(feeds: Path, tmp_path: Path) -> None:
    op = window(feeds, tmp_path / "w", window_months=1)
    op.features_uri = str(feeds / "monthly")

    with pytest.raises(ValueError, match=r"has no \{month\} placeholder"):
        op.execute(task_context())


def test_confined_to_the_data_root_a_snapshot_elsewhere_or_escaping_it_is_refused(feeds: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW__MLOPS__DATA_ROOT", feeds.as_uri())
    inside = window(feeds, tmp_path / "w", window_months=0, confine_to_data=True).execute(task_context())
    assert inside["train_uri"] == str(feeds / "training")

    for snapshot in (str(tmp_path / "elsewhere"), f"{feeds}/../elsewhere/training"):
        op = window(feeds, tmp_path / "w", window_months=0, confine_to_data=True)
        op.snapshot_uri = snapshot
        with pytest.raises(AirflowFailException, match=r"snapshot_uri .* is outside the allowed data locations"):
            op.execute(task_context())

    monkeypatch.setenv("AIRFLOW__MLOPS__ALLOWED_DATA_PREFIXES", str(tmp_path / "elsewhere"))
    op = window(feeds, tmp_path / "w", window_months=0, confine_to_data=True)
    op.snapshot_uri = str(tmp_path / "elsewhere" / "training")
    assert op.execute(task_context())["train_uri"] == op.snapshot_uri  # listed: allowed (not read here: nothing is copied)

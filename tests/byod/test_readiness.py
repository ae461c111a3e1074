"""One readiness policy for every reader of a folder: the ``_SUCCESS`` marker by default, an explicit
opt-out (operator argument or ``[mlops] require_marker``) for producers that write none, and a
marker-free sensor mode that waits for the files to stop changing."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_mlops.exceptions import PartitionNotReadyError, TableError
from airflow_mlops.operators.base import MlopsTableOperator
from airflow_mlops.operators.drift import EvidentlyDriftCheckOperator
from airflow_mlops.operators.inference import MlflowBatchPredictOperator
from airflow_mlops.operators.quality import ModelQualityCheckOperator
from airflow_mlops.operators.registry import MlflowPromoteModelOperator
from airflow_mlops.operators.scoring import BatchScoringPlanOperator
from airflow_mlops.operators.training import MlflowTrainModelOperator
from airflow_mlops.operators.validation import GxValidateTableOperator
from airflow_mlops.operators.window import TrainingWindowOperator
from airflow_mlops.sensors.partition import DataPartitionSensor
from airflow_mlops.triggers.partition import DataPartitionTrigger
from tests.byod.conftest import PENGUINS_SPEC
from tests.helpers import task_context
from tests.unit.provider_classes import provider_classes

SPEC = str(PENGUINS_SPEC)
OPT_OUT = r"partition has no _SUCCESS marker .* pass require_marker=False to the operator or sensor that reads it .*, or set \[mlops\] require_marker = False"
MONTHS = ("2009-01", "2009-02", "2009-03")


def readers(penguins, **kwargs) -> dict:
    month, training = str(penguins / "monthly/month=2009-01"), str(penguins / "training")
    return {
        "validation": GxValidateTableOperator(task_id="v", table_uri=month, spec_uri=SPEC, labelled=False, **kwargs),
        "drift": EvidentlyDriftCheckOperator(
            task_id="d", current_uri=month, reference_uri=training, spec_uri=SPEC, model_name="m", period="2009-01", **kwargs
        ),
        "training": MlflowTrainModelOperator(
            task_id="t", train_uri=training, spec_uri=SPEC, model_name="penguins_ready", estimator_params={"max_iter": 20}, **kwargs
        ),
    }


# -- every folder reader refuses a marker-free folder by default -------------------------------------
#
# One case per class that reads partition folders, with what refusing means for it; the last test of
# the three checks that these are all the package's table readers. The penguins layout has no marker.


@pytest.fixture(scope="module")
def penguins_model(penguins) -> dict[str, str]:
    """A registered penguins model (trained after opting out), for the readers that resolve one first."""
    name = f"penguins_refusal_{uuid.uuid4().hex[:6]}"
    trained = MlflowTrainModelOperator(
        task_id="t", train_uri=str(penguins / "training"), spec_uri=SPEC, model_name=name, estimator_params={"max_iter": 20}, require_marker=False
    ).execute(task_context("t"))
    return {"name": name, "version": str(trained["version"])}


def refuses(operator: Any, folder: Path) -> None:
    """``execute`` raises PartitionNotReadyError naming ``folder`` and saying how to opt out."""
    with pytest.raises(PartitionNotReadyError, match=OPT_OUT) as refused:
        operator.execute(task_context(operator.task_id))
    assert refused.value.uri == str(folder)


def _validation(penguins: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    month = penguins / "monthly/month=2009-01"
    refuses(GxValidateTableOperator(task_id="v", table_uri=str(month), spec_uri=SPEC, labelled=False), month)


def _drift(penguins: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    month = penguins / "monthly/month=2009-01"
    drift = EvidentlyDriftCheckOperator(
        task_id="d", current_uri=str(month), reference_uri=str(penguins / "training"), spec_uri=SPEC, model_name="m", period="2009-01"
    )
    refuses(drift, month)  # the current month is read first


def _training(penguins: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    training = penguins / "training"
    refuses(MlflowTrainModelOperator(task_id="t", train_uri=str(training), spec_uri=SPEC, model_name="penguins_never"), training)


def _promotion_holdout(penguins: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue("penguins_model")
    holdout = penguins / "training"
    promote = MlflowPromoteModelOperator(
        task_id="p", model_name=model["name"], model_ref=model["version"], spec_uri=SPEC, holdout_uri=str(holdout), min_value=None
    )
    refuses(promote, holdout)


def _scoring_plan(penguins: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue("penguins_model")
    month = penguins / "monthly/month=2009-01"
    plan = BatchScoringPlanOperator(
        task_id="plan", input_uri=str(month), output_uri=str(tmp_path / "predictions"), model_name=model["name"], model_ref=model["version"]
    )
    refuses(plan, month)
    assert not (tmp_path / "predictions").exists()  # no output partition opened


def _quality_labels(penguins: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    # The predictions are published (an empty _SUCCESS, as Spark writes it): only the labels lack a marker.
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    pd.DataFrame({"penguin_id": [1, 2], "prediction": ["Adelie", "Gentoo"], "model_version": ["1", "1"]}).to_parquet(predictions / "part-0.parquet")
    (predictions / "_SUCCESS").touch()
    labels = penguins / "labels/month=2009-01"
    quality = ModelQualityCheckOperator(
        task_id="q", predictions_uri=str(predictions), labels_uri=str(labels), spec_uri=SPEC, model_name="m", period="2009-01",
        reports_uri=str(tmp_path / "reports"),
    )  # fmt: skip
    refuses(quality, labels)
    assert not (tmp_path / "reports").exists()


def _training_window(penguins: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    # A month counts as labelled once its features and labels are ready: marker-free months are skipped,
    # each with its reason and the opt-out, and none is read (the snapshot alone is handed on, unread).
    window = TrainingWindowOperator(
        task_id="w", features_uri=str(penguins / "monthly/month={month}"), labels_uri=str(penguins / "labels/month={month}"),
        spec_uri=SPEC, output_uri=str(tmp_path / "window"), snapshot_uri=str(penguins / "training"), window_months=1,
        end_month="2009-03", lookback_months=3,
    )  # fmt: skip
    result = window.execute(task_context("w"))

    assert sorted(result["skipped_months"]) == list(MONTHS)
    for month, reason in result["skipped_months"].items():
        assert reason.startswith(f"features: {penguins / f'monthly/month={month}'}: "), (month, reason)
        assert re.search(OPT_OUT, reason), (month, reason)
    assert (result["holdout_month"], result["train_months"], result["holdout_uri"]) == (None, [], None)
    assert result["train_uri"] == str(penguins / "training")
    assert os.listdir(tmp_path / "window") == ["window.json"]  # the record of the skips; no train/ or holdout/


def _partition_sensor(penguins: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    # A sensor does not fail: it keeps waiting, and its task log (structlog, on stdout here) says why.
    month = penguins / "monthly/month=2009-01"
    capfd = request.getfixturevalue("capfd")
    poked = DataPartitionSensor(task_id="wait", uri=str(month)).poke(task_context("wait"))

    assert poked.is_done is False and poked.xcom_value is None
    waiting = [line for line in capfd.readouterr().out.splitlines() if f"Waiting for {month}: " in line]
    assert len(waiting) == 1 and re.search(OPT_OUT, waiting[0]), waiting


FOLDER_READERS: dict[type, Callable[[Path, Path, pytest.FixtureRequest], None]] = {
    GxValidateTableOperator: _validation,
    EvidentlyDriftCheckOperator: _drift,
    MlflowTrainModelOperator: _training,
    MlflowPromoteModelOperator: _promotion_holdout,
    BatchScoringPlanOperator: _scoring_plan,
    ModelQualityCheckOperator: _quality_labels,
    TrainingWindowOperator: _training_window,
    DataPartitionSensor: _partition_sensor,
}


@pytest.mark.parametrize("reader", list(FOLDER_READERS), ids=lambda cls: cls.__name__)
def test_every_reader_refuses_a_marker_free_folder_by_default_and_says_how_to_opt_out(reader, penguins, tmp_path, request) -> None:
    FOLDER_READERS[reader](penguins, tmp_path, request)


def test_batch_prediction_reads_one_file_a_folder_reaches_it_only_through_the_scoring_plan(penguins, tmp_path) -> None:
    """The one table reader that takes files, not folders: the plan lists a partition's files by the
    policy (refusing above) and hands each file, with the plan's require_marker, to a predict task."""
    month = penguins / "monthly/month=2009-01"
    predict = MlflowBatchPredictOperator(
        task_id="p", input_uri=str(month), output_uri=str(tmp_path / "p.parquet"), spec_uri=SPEC, model_name="m",
        scored_at="2009-02-01T00:00:00+00:00",
    )  # fmt: skip

    with pytest.raises(TableError, match=r"unsupported table format '\(no suffix\)'") as refused:
        predict.execute(task_context("p"))
    assert refused.value.uri == str(month) and not isinstance(refused.value, PartitionNotReadyError)
    assert list(tmp_path.iterdir()) == []


def test_the_cases_above_are_every_table_reader_of_the_package() -> None:
    """A new operator that reads tables (a MlopsTableOperator) or a new partition sensor needs a case above."""
    found = {
        c.cls for c in provider_classes()
        if not c.abstract and (issubclass(c.cls, MlopsTableOperator) or issubclass(c.cls, DataPartitionSensor))
    }  # fmt: skip
    assert found == {*FOLDER_READERS, MlflowBatchPredictOperator}


def test_every_reader_reads_it_after_opting_out_by_argument_or_by_config(penguins, monkeypatch) -> None:
    by_argument = {name: op.execute(task_context(name)) for name, op in readers(penguins, require_marker=False).items()}
    assert by_argument["validation"]["rows"] == 60 and by_argument["drift"]["rows"]["current"] == 60
    assert by_argument["training"]["train_rows"] + by_argument["training"]["holdout_rows"] == 224

    monkeypatch.setenv("AIRFLOW__MLOPS__REQUIRE_MARKER", "False")
    assert readers(penguins)["validation"].execute(task_context("v"))["success"] is True


def test_sensor_without_marker_waits_until_the_files_stop_changing(penguins) -> None:
    month = penguins / "monthly/month=2009-02"
    data = month / "part-0.parquet"
    sensor = DataPartitionSensor(task_id="wait", uri=str(month), require_marker=False, stable_seconds=30)

    os.utime(data)  # just written
    assert sensor.poke(task_context("wait")).is_done is False
    past = time.time() - 60
    os.utime(data, (past, past))  # untouched for a minute
    result = sensor.poke(task_context("wait"))
    assert result.is_done is True and result.xcom_value["files"] == [f"{month}/part-0.parquet"]
    assert DataPartitionSensor(task_id="wait", uri=str(month)).poke(task_context("wait")).is_done is False  # marker required


def test_deferred_sensor_hands_the_marker_free_policy_to_the_trigger(penguins) -> None:
    import asyncio

    month = penguins / "monthly/month=2009-01"
    os.utime(month / "part-0.parquet")
    sensor = DataPartitionSensor(task_id="wait", uri=str(month), require_marker=False, stable_seconds=1, poke_interval=0.2, deferrable=True)

    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(task_context("wait"))

    trigger = deferred.value.trigger
    assert isinstance(trigger, DataPartitionTrigger) and trigger.serialize()[1]["require_marker"] is False
    started = time.monotonic()
    event = asyncio.run(asyncio.wait_for(trigger.run().__anext__(), 10))
    assert event.payload["files"] == [f"{month}/part-0.parquet"] and time.monotonic() - started >= 0.5

"""Nothing outside the configured stores: every MLflow artifact (evaluation runs included) lands under
the configured artifact root, and no operator writes to the working directory."""

from __future__ import annotations

import os

from airflow_mlops import settings
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.operators.drift import EvidentlyDriftCheckOperator
from airflow_mlops.operators.inference import MlflowBatchPredictOperator
from airflow_mlops.operators.registry import MlflowPromoteModelOperator
from airflow_mlops.operators.training import MlflowTrainModelOperator
from airflow_mlops.operators.validation import GxValidateTableOperator
from tests.byod.conftest import PENGUINS_SPEC
from tests.helpers import task_context

SPEC = str(PENGUINS_SPEC)


def test_a_whole_lifecycle_writes_nothing_to_the_working_directory(penguins, tmp_path, model_name, monkeypatch) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    month, training = str(penguins / "monthly/month=2009-01"), str(penguins / "training")

    GxValidateTableOperator(task_id="v", table_uri=training, spec_uri=SPEC, require_marker=False).execute(task_context("v"))
    trained = MlflowTrainModelOperator(
        task_id="t", train_uri=training, spec_uri=SPEC, model_name=model_name, estimator_params={"max_iter": 20}, require_marker=False
    ).execute(task_context("t"))
    decision = MlflowPromoteModelOperator(task_id="p", model_name=model_name, spec_uri=SPEC).execute(task_context("p"))
    EvidentlyDriftCheckOperator(
        task_id="d", current_uri=month, spec_uri=SPEC, model_name=model_name, period="2009-01", require_marker=False
    ).execute(task_context("d"))
    MlflowBatchPredictOperator(
        task_id="s", input_uri=f"{month}/part-0.parquet", output_uri=str(tmp_path / "out.parquet"), spec_uri=SPEC,
        model_name=model_name, scored_at="2009-02-01",
    ).execute(task_context("s"))  # fmt: skip

    assert os.listdir(cwd) == []
    client = MlflowHook().client
    root = settings.embedded_artifact_root()
    evaluation = client.get_run(decision["evaluation_run_id"])
    children = client.search_runs([evaluation.info.experiment_id], f"tags.`mlflow.parentRunId` = '{evaluation.info.run_id}'")
    assert len(children) == 1  # the challenger's evaluation (no champion yet)
    for run in [client.get_run(trained["run_id"]), evaluation, *children]:
        assert run.info.artifact_uri.startswith(root), run.info.artifact_uri

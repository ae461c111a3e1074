"""How-to: train a model on a labelled table and register it as the ``challenger`` with
``MlflowTrainModelOperator``.

Trains on the penguins snapshot (``examples/penguins_data.py``, ``training/``); the FeatureSpec picks the
estimator (classification: ``HistGradientBoostingClassifier``) and the holdout is a seeded 20 % split.
Each run registers a new version of ``howto_penguins``; the promotion how-to decides whether it serves.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG

from airflow_mlops import periods
from airflow_mlops.operators.training import MlflowTrainModelOperator

SPEC = str(Path(__file__).parents[1] / "penguins_spec.yaml")

with DAG(dag_id="howto_train", schedule=None, user_defined_macros=periods.macros(), tags=["howto"]):
    MlflowTrainModelOperator(
        task_id="train",
        train_uri="{{ data_root() }}/penguins/training",
        spec_uri=SPEC,
        model_name="howto_penguins",
        estimator_params={"max_iter": 100},
        test_size=0.2,
        require_marker=False,  # pandas wrote the snapshot: no _SUCCESS marker
    )

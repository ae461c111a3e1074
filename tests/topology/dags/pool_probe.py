"""Two promotion-shaped tasks of one model, started by one run: each reads a registered-model tag, waits,
and writes it back plus one, with no lock. Both run in the model's one-slot promotion pool
(:func:`~airflow_mlops.operators.registry.promotion_pool`), so the scheduler must run them one after the
other and the tag ends at 2; two concurrent read-wait-write sequences would leave it at 1."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task

from airflow_mlops.operators.registry import promotion_pool

MODEL = "pool_probe"
COUNT_TAG = "probe.count"

with DAG("mlops_pool_probe", schedule=None, start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC), catchup=False):
    for contender in ("a", "b"):

        @task(task_id=f"contender_{contender}", pool=promotion_pool(MODEL))
        def read_wait_write() -> dict[str, float]:
            import time

            from airflow_mlops.hooks.mlflow import MlflowHook

            registry = MlflowHook().registry
            started = time.time()
            seen = int(registry.model_tag(MODEL, COUNT_TAG) or 0)
            time.sleep(4)  # longer than the scheduler needs to start the other task, were it free to
            registry.set_model_tag(MODEL, COUNT_TAG, str(seen + 1))
            return {"started": started, "ended": time.time()}

        read_wait_write()

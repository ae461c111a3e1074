"""Library noise that never reaches a team's task log: MLflow's schema migrations of a new embedded
store, and the GenAI auto-tracing notices mlflow.models.evaluate prints; warnings still get through.

Each case runs in its own Python process, as a task does: the mutes are process-wide logging filters
and MLflow patches boto3 for tracing, neither of which may leak into the rest of the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each probes MLflow in a fresh process

PROBE = """
import json, logging, sys
import airflow_mlops.hooks.mlflow  # Airflow sets up its logging on import: the probe's handler comes after
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append([record.name, record.levelname, record.getMessage()])
logging.basicConfig(level=logging.INFO, handlers=[Keep()], force=True)
{body}
print(json.dumps(records))
"""


def probe(body: str, tmp_path: Path) -> list[tuple[str, str, str]]:
    """Run ``body`` in a fresh process with INFO logging; every record it logged."""
    env = os.environ | {"AIRFLOW_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", PROBE.format(body=body)], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return [tuple(r) for r in json.loads(done.stdout.strip().splitlines()[-1])]


def test_a_new_embedded_store_logs_no_schema_migration_but_warnings_still_pass(tmp_path: Path) -> None:
    records = probe(
        f"""
from airflow_mlops.hooks.mlflow import MlflowConfig, MlflowHook
hook = MlflowHook(config=MlflowConfig(tracking_uri="sqlite:///{tmp_path}/mlflow.db"))
hook.client.search_experiments()  # creates the store: MLflow runs its ~70 migrations
MlflowHook(config=MlflowConfig(tracking_uri="sqlite:///{tmp_path}/mlflow.db")).client.search_experiments()  # opens it again
logging.getLogger("alembic.runtime.migration").warning("a migration failed")
""",
        tmp_path,
    )

    assert (tmp_path / "mlflow.db").exists()  # the store was created, so its migrations did run
    schema = [r for r in records if r[0] in ("alembic.runtime.migration", "mlflow.store.db.utils") and r[1] == "INFO"]
    assert schema == [], schema[:5]
    assert ("alembic.runtime.migration", "WARNING", "a migration failed") in records


def test_the_auto_tracing_notices_of_an_evaluation_are_muted_and_only_those(tmp_path: Path) -> None:
    records = probe(
        """
from airflow_mlops.hooks.mlflow import MlflowHook
MlflowHook()  # as every operator does before it imports MLflow: MLflow's log lines go through logging
import mlflow.bedrock
from airflow_mlops.utils.noise import mlflow_quiet
with mlflow_quiet():
    mlflow.bedrock.autolog()  # what mlflow.models.evaluate does for Bedrock when boto3 is imported
    logging.getLogger("mlflow.bedrock").info("another Bedrock message")
mlflow.bedrock.autolog(disable=True)
mlflow.bedrock.autolog()  # outside the mute, MLflow's notice is logged as usual
""",
        tmp_path,
    )

    bedrock = [r[2] for r in records if r[0] == "mlflow.bedrock"]
    assert bedrock[0] == "another Bedrock message"
    assert len(bedrock) == 2 and bedrock[1].startswith("Enabled auto-tracing for Bedrock"), bedrock

"""One promotion in its own process, for the race test of ``test_concurrency.py``.

Run as ``python -m tests.reliability.racer '<json>'`` with ``conn`` (the connection's JSON), ``conn_id``,
``model``, ``challenger``, ``run_id``, ``spec`` and ``evaluation`` (the dry run's verdict). It prepares
the operator, prints ``racer: ready``, waits for a line on stdin (the start signal, so that both racers
move at the same moment), promotes, and prints ``racer: <the decision as JSON>`` (other lines on stdout
are the task's log). Nothing is shared with the other racer but
the MLflow server: its own environment, its own MLflow client state.
"""

from __future__ import annotations

import json
import os
import sys


def main(arguments: dict) -> None:
    os.environ[f"AIRFLOW_CONN_{arguments['conn_id'].upper()}"] = arguments["conn"]
    from airflow_mlops.operators.registry import MlflowPromoteModelOperator
    from tests.helpers import task_context

    operator = MlflowPromoteModelOperator(
        task_id="promote", model_name=arguments["model"], spec_uri=arguments["spec"], mlflow_conn_id=arguments["conn_id"],
        model_ref=arguments["challenger"], evaluation=arguments["evaluation"],
    )  # fmt: skip
    context = task_context("promote", arguments["run_id"])
    print("racer: ready", flush=True)
    sys.stdin.readline()
    decision = operator.execute(context)
    print("racer: " + json.dumps(decision, default=str), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))

"""Racing promotions against the real tracking server: exactly one champion, consistent decision tags.

MLflow has no compare-and-set on aliases; promotions serialise on the model's advisory lock
(:meth:`airflow_mlops.hooks.mlflow.MlflowHook.promotion_lock`) and re-read the champion inside it.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.operators.registry import MlflowPromoteModelOperator
from airflow_mlops.utils import registry
from tests.helpers import crown, task_context
from tests.reliability.conftest import SPEC, aliases, train


def in_threads(*targets: Any) -> list[Any]:
    """Run the callables at the same moment (a barrier), each in its own thread; return results or errors."""
    barrier = threading.Barrier(len(targets))
    results: list[Any] = [None] * len(targets)

    def go(i: int) -> None:
        barrier.wait()
        try:
            results[i] = targets[i]()
        except Exception as exc:  # reported by the test, not lost in the thread
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(targets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def test_the_lock_admits_one_holder_at_a_time(server_conn) -> None:
    hook = MlflowHook(mlflow_conn_id=server_conn)
    client = hook.client
    name = f"lock_{uuid.uuid4().hex[:6]}"
    client.create_registered_model(name)
    inside, peak, entered = [0], [0], []
    guard = threading.Lock()

    def contender(who: str) -> Any:
        def run() -> str:
            with hook.promotion_lock(name, holder=who, settle=0.3):
                with guard:
                    inside[0] += 1
                    peak[0] = max(peak[0], inside[0])
                entered.append(who)
                time.sleep(0.2)
                with guard:
                    inside[0] -= 1
            return who

        return run

    results = in_threads(*(contender(f"task-{i}") for i in range(4)))

    assert sorted(map(str, results)) == [f"task-{i}" for i in range(4)], results  # everyone got in, in the end
    assert peak[0] == 1  # never two at once
    assert registry.LOCK_TAG not in client.get_registered_model(name).tags


@pytest.fixture(scope="module")
def contenders(small_data, server_conn) -> dict[str, Any]:
    """A weak champion and two better challengers (versions 2 and 3) of one model on the server."""
    name = f"race_{uuid.uuid4().hex[:6]}"
    champion = train(small_data, name, "champion", mlflow_conn_id=server_conn, estimator_params={"max_iter": 1, "max_depth": 1})
    crown(name, SPEC, mlflow_conn_id=server_conn)
    first = train(small_data, name, "a", mlflow_conn_id=server_conn, estimator_params={"max_iter": 10})
    second = train(small_data, name, "b", mlflow_conn_id=server_conn, estimator_params={"max_iter": 15})
    return {"name": name, "champion": champion["version"], "a": first["version"], "b": second["version"]}


def test_two_promotions_race_exactly_one_wins_and_the_loser_records_why(contenders, server_conn) -> None:
    name = contenders["name"]

    def promoter(who: str) -> Any:
        common = {"model_name": name, "spec_uri": SPEC, "mlflow_conn_id": server_conn, "challenger": contenders[who]}
        # Both judge against the same champion first (a dry run, as the reference DAG's evaluate task does) ...
        verdict = MlflowPromoteModelOperator(task_id="evaluate", evaluate_only=True, **common).execute(task_context("evaluate", who))
        assert verdict["decision"] == "would_promote" and verdict["champion_version"] == contenders["champion"]
        # ... then both promote at the same moment, reusing that verdict: the switch is the race.
        return lambda: MlflowPromoteModelOperator(task_id="promote", evaluation=verdict, **common).execute(task_context("promote", who))

    # MlflowHook.activated() swaps process-wide state (env, MLflow's URIs); racing threads restore each
    # other's snapshots. An outer block with the same connection makes every snapshot the same, and puts
    # the process back as it was for the tests after this one. (Airflow runs one task per process.)
    with MlflowHook(mlflow_conn_id=server_conn).activated():
        racers = {who: promoter(who) for who in ("a", "b")}
        results = dict(zip(racers, in_threads(*racers.values()), strict=True))

    assert not any(isinstance(r, Exception) for r in results.values()), results
    decisions = sorted(r["decision"] for r in results.values())
    assert decisions == ["promoted", "rejected"]
    winner = next(who for who, r in results.items() if r["decision"] == "promoted")
    loser = next(who for who, r in results.items() if r["decision"] == "rejected")
    assert aliases(name, server_conn)["champion"] == contenders[winner]
    assert aliases(name, server_conn)["previous_champion"] == contenders["champion"]
    client = MlflowHook(mlflow_conn_id=server_conn).client
    won = client.get_model_version(name, contenders[winner]).tags
    lost = client.get_model_version(name, contenders[loser]).tags
    assert won["mlops.decision.decision"] == "promoted" and won["mlops.decision.compared_against"] == contenders["champion"]
    assert lost["mlops.decision.decision"] == "rejected"
    assert lost["mlops.decision.reason"] == (
        f"lost a race: the champion moved from v{contenders['champion']} to v{contenders[winner]} during evaluation "
        f"(promoted by test_dag/{winner})"
    )
    assert registry.LOCK_TAG not in client.get_registered_model(name).tags

"""Racing promotions against the real tracking server: exactly one champion, consistent decision tags.

MLflow has no compare-and-set on aliases; promotions serialise on the model's advisory lock
(:meth:`airflow_mlops.hooks.registry.ModelRegistry.promotion_lock`) and re-read the champion inside it. (In
an Airflow deployment the reference DAG's promotions also share a pool with one slot per model.) The
races run in separate processes over links with injected latency.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import pytest

from airflow_mlops.hooks import registry
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.operators.registry import MlflowPromoteModelOperator
from tests.conftest import REPO
from tests.helpers import crown, task_context
from tests.reliability.conftest import SPEC, aliases, train
from tests.reliability.proxy import CuttableProxy


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
            with hook.registry.promotion_lock(name, holder=who, settle=0.3):
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
    """A weak champion and two better challengers (versions 2 and 3) of one model on the server, and each
    challenger's dry-run verdict against that champion (as the reference DAG's evaluate task gives it)."""
    name = f"race_{uuid.uuid4().hex[:6]}"
    champion = train(small_data, name, "champion", mlflow_conn_id=server_conn, estimator_params={"max_iter": 1, "max_depth": 1})
    crown(name, SPEC, mlflow_conn_id=server_conn)
    found = {"name": name, "champion": champion["version"], "verdicts": {}}
    for who, rounds in (("a", 10), ("b", 15)):
        found[who] = train(small_data, name, who, mlflow_conn_id=server_conn, estimator_params={"max_iter": rounds})["version"]
        verdict = MlflowPromoteModelOperator(
            task_id="evaluate", evaluate_only=True, model_name=name, spec_uri=SPEC, mlflow_conn_id=server_conn, model_ref=found[who]
        ).execute(task_context("evaluate", who))
        assert verdict["decision"] == "would_promote" and verdict["champion_version"] == champion["version"]
        found["verdicts"][who] = verdict
    return found


def reset(hook: MlflowHook, contenders: dict[str, Any]) -> None:
    """Back to the start of a race: the weak champion, no previous champion, no decision on the challengers."""
    name = contenders["name"]
    hook.registry.set_alias(name, registry.CHAMPION, contenders["champion"])
    if hook.registry.alias_version(name, registry.PREVIOUS_CHAMPION) is not None:
        hook.client.delete_registered_model_alias(name, registry.PREVIOUS_CHAMPION)
    for who in ("a", "b"):
        for key in [k for k in hook.registry.get_version(name, contenders[who]).tags if k.startswith("mlops.decision.")]:
            hook.client.delete_model_version_tag(name, contenders[who], key)


def racer_says(racer: subprocess.Popen[str]) -> str:
    """The racer's next own line (``racer: ...``), past the task log lines it prints on stdout."""
    assert racer.stdout is not None
    for line in racer.stdout:
        if line.startswith("racer: "):
            return line.removeprefix("racer: ").strip()
    raise AssertionError(f"the racer exited ({racer.wait()}) without a word")


#: Injected latency: seconds each chunk waits in the proxy, both ways, on each racer's own link (a round
#: trip of a request then takes about a second, as long as the lock's default settle time).
LATENCY = 0.25


def test_two_promotions_in_separate_processes_leave_one_champion_and_record_both_decisions(contenders, server_conn, mlflow_server) -> None:
    """Each racer is its own process (its own environment and MLflow client state) with its own slow link
    to the real server; both reuse their dry run's verdict, so the switch itself is the race: both read
    the same champion (a couple of round trips), and the first switch comes only after the lock's settle."""
    name = contenders["name"]
    hook = MlflowHook(mlflow_conn_id=server_conn)
    reset(hook, contenders)
    race = uuid.uuid4().hex[:4]
    proxies = {who: CuttableProxy(int(mlflow_server.url.rsplit(":", 1)[1])) for who in ("a", "b")}
    racers: dict[str, subprocess.Popen[str]] = {}
    try:
        for who, proxy in proxies.items():
            proxy.delay(LATENCY)
            arguments = {
                "conn": json.dumps({"conn_type": "mlflow", "host": proxy.url, "extra": {"mlflow_http_request_timeout": 30}}),
                "conn_id": f"mlflow_racer_{who}", "model": name, "challenger": contenders[who], "run_id": f"race-{race}-{who}",
                "spec": SPEC, "evaluation": contenders["verdicts"][who],
            }  # fmt: skip
            racers[who] = subprocess.Popen(
                [sys.executable, "-m", "tests.reliability.racer", json.dumps(arguments)],
                cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )  # fmt: skip
        for who, racer in racers.items():
            assert racer_says(racer) == "ready", who
        for racer in racers.values():  # the start signal, to both at once
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        results = {who: json.loads(racer_says(racer)) for who, racer in racers.items()}
    finally:
        for racer in racers.values():
            racer.kill()
        for proxy in proxies.values():
            proxy.close()

    assert sorted(r["decision"] for r in results.values()) == ["promoted", "rejected"], results
    winner = next(who for who, r in results.items() if r["decision"] == "promoted")
    loser = next(who for who, r in results.items() if r["decision"] == "rejected")
    assert aliases(name, server_conn)["champion"] == contenders[winner]
    assert aliases(name, server_conn)["previous_champion"] == contenders["champion"]
    won = hook.registry.get_version(name, contenders[winner]).tags
    lost = hook.registry.get_version(name, contenders[loser]).tags
    assert won["mlops.decision.decision"] == "promoted" and won["mlops.decision.compared_against"] == contenders["champion"]
    assert lost["mlops.decision.decision"] == "rejected"
    assert lost["mlops.decision.reason"] == (
        f"lost a race: the champion moved from v{contenders['champion']} to v{contenders[winner]} during evaluation "
        f"(promoted by test_dag/race-{race}-{winner})"
    )
    assert registry.LOCK_TAG not in hook.client.get_registered_model(name).tags

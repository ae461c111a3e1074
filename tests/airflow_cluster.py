"""Real Airflow processes for tests that need the whole system (topology, UI): a process group per
component with its log under the home folder, and a small REST client with a JWT from ``POST /auth/token``."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import VENV_BIN


class Airflow:
    """The Airflow processes of one topology, and a small REST client for them."""

    def __init__(self, env: dict[str, str], home: Path, port: int) -> None:
        self.env, self.home, self.url = env, home, f"http://127.0.0.1:{port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.token = ""

    def start(self, name: str, *args: str) -> None:
        log = (self.home / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [str(VENV_BIN / "airflow"), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def create_promotion_pool(self, model_name: str = "churn") -> None:
        """Create the pool of the model's promotions (one slot), as a deployment's init does: without it
        the scheduler never runs the reference DAG's ``promote`` task."""
        from airflow_mlops.operators.registry import promotion_pool

        self.request("POST", "/api/v2/pools", {"name": promotion_pool(model_name), "slots": 1, "description": "promotions, one at a time"})

    def wait_until(self, what: str, check, timeout: float, every: float = 3) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    pytest.fail(f"airflow {name} exited ({proc.returncode}) while waiting for {what}:\n{self.log(name)[-3000:]}")
            try:
                result = check()
            except OSError as exc:  # not up yet (refused, 404 while parsing...)
                last, result = exc, None
            else:
                last = result
            if result:
                return result
            time.sleep(every)
        pytest.fail(f"timed out waiting for {what} (last: {last})\nscheduler:\n{self.log('scheduler')[-2000:]}")

    def run_dag(self, dag_id: str, body: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
        run = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)
        run_id = run["dag_run_id"]

        def finished() -> dict[str, Any] | None:
            state = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            return state if state["state"] in ("success", "failed") else None

        result = self.wait_until(f"{dag_id} {run_id}", finished, timeout)
        tis = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        assert tis, f"{dag_id} {run_id} ran no task (a logical date before the DAG's start_date creates none)"
        assert result["state"] == "success", {t["task_id"]: t["state"] for t in tis}
        return {"run": result, "task_instances": tis}

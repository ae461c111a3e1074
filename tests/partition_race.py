"""Two publishers of one partition in two processes, released at the same instant, round after round.

:func:`race` drives the rounds for the race tests (``tests/unit/test_partition_publish.py`` on
``file://``, ``tests/integration/test_tables_s3.py`` on the moto S3 server). Each racer is its own
Python process (``python -m tests.partition_race <name> <conn_id>``) that imports ``airflow_mlops``
and talks JSON lines over its stdin/stdout (lines it answers start with ``racer: ``; other output is
log). In each round both racers open the partition on the same published version and stage two
files of their own, then wait; the driver sends both one instant on the wall clock, a quarter second
ahead, which each racer waits for (spinning the last 20 ms), and they publish right away: both enter
``publish_partition`` at the same moment.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

FILES = ["part-00000.parquet", "part-00001.parquet"]
PREFIX = "racer: "


def main(name: str, conn_id: str | None) -> None:
    import pyarrow as pa

    from airflow_mlops import tables
    from airflow_mlops.exceptions import PartitionConflictError

    def answer(message: dict[str, Any]) -> None:
        print(PREFIX + json.dumps(message, default=str), flush=True)

    handle: dict[str, Any] = {}
    answer({"ready": name})
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if "stage" in command:
                handle = tables.open_partition(command["stage"], run_key=command["run_key"], conn_id=conn_id)
                for part, file in enumerate(FILES):
                    rows = pa.table({"who": [name] * 3, "round": [command["round"]] * 3, "part": [part] * 3})
                    tables.write_table(rows, f"{handle['staging']}/{file}", conn_id=conn_id)
                answer({"staged": handle})
            elif "go" in command:
                time.sleep(max(0.0, command["go"] - time.time() - 0.02))
                while time.time() < command["go"]:  # spin the last moment: both racers leave at the same instant
                    pass
                released = time.monotonic()
                try:
                    tables.publish_partition(handle, files=FILES, extra={"who": name}, conn_id=conn_id)
                    answer({"won": handle["run_key"], "seconds": time.monotonic() - released})
                except PartitionConflictError as exc:
                    answer({"lost": handle["run_key"], "winner": getattr(exc, "winner", None), "message": str(exc)})
            else:
                return
        except Exception as exc:  # reported to the driver, which fails the round with it
            import traceback

            answer({"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})


class Racer:
    """One racer process."""

    def __init__(self, name: str, conn_id: str | None) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.partition_race", name, conn_id or ""],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.read()  # ready: airflow_mlops imported

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(PREFIX):
                return json.loads(line[len(PREFIX) :])
        raise AssertionError(f"racer {self.name} exited with {self.proc.wait()}")

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def partition_files(uri: str, conn_id: str | None) -> list[str]:
    """Every file under the partition (hidden, staging and claim files too), relative to it, fresh from the store."""
    from airflow_mlops import tables

    folder = tables.storage_path(uri, conn_id=conn_id)
    folder.fs.invalidate_cache()
    root = folder.path.rstrip("/") + "/"
    return sorted(str(found).removeprefix(root) for found in folder.fs.find(folder.path))


def check_round(uri: str, conn_id: str | None, answers: dict[str, dict[str, Any]]) -> list[str]:
    """What is wrong after a round (empty when it went right): exactly one winner, the loser refused
    naming it, the manifest and the files the winner's only, nothing of the loser left."""
    from airflow_mlops import tables
    from airflow_mlops.tables import partitions

    problems = [f"{name}: {a['error']}\n{a['traceback']}" for name, a in answers.items() if "error" in a]
    won = {name: a["won"] for name, a in answers.items() if "won" in a}
    lost = {name: a for name, a in answers.items() if "lost" in a}
    if len(won) != 1 or len(lost) != 1:
        return [*problems, f"{len(won)} winner(s): {sorted(won.values())}"]
    (winner_name, winner), loser = next(iter(won.items())), next(iter(lost.values()))
    if loser["winner"] != winner:
        problems.append(f"the loser's error names {loser['winner']!r} as the winner, not {winner!r}")
    if f"({winner})" not in loser["message"] or "nothing of this run was published" not in loser["message"]:
        problems.append(f"the loser's message: {loser['message']}")
    folder = tables.storage_path(uri, conn_id=conn_id)
    folder.fs.invalidate_cache()
    manifest = tables.read_manifest(uri, conn_id=conn_id) or {}
    generation, loser_generation = partitions._generation(winner), partitions._generation(loser["lost"])
    expected = sorted(f"{file.removesuffix('.parquet')}.{generation}.parquet" for file in FILES)
    if manifest.get("run_key") != winner or manifest.get("files") != expected:
        problems.append(f"manifest {manifest}, expected {winner}'s files {expected}")
    present = partition_files(uri, conn_id)
    if present != sorted(["_SUCCESS", *expected]):
        problems.append(f"the partition holds {present}, expected _SUCCESS and {expected}")
    if any(loser_generation in name for name in present):
        problems.append(f"files of the loser ({loser_generation}) remain: {present}")
    table = tables.read_table(uri, conn_id=conn_id)
    if set(table["who"]) != {winner_name}:
        problems.append(f"readers see rows of {sorted(set(table['who']))}, not only {winner_name}'s")
    return problems


def race(uri: str, rounds: int, conn_id: str | None = None) -> list[dict[str, Any]]:
    """Run ``rounds`` rounds of two racers publishing ``uri``; return each round's outcome:
    ``{"round", "winners", "errors", "problems"}`` (errors: racers that failed otherwise than refused)."""
    racers: list[Racer] = []
    outcomes = []
    try:
        racers.extend(Racer(name, conn_id) for name in ("a", "b"))
        for round_ in range(rounds):
            for racer in racers:
                racer.send({"stage": uri, "run_key": f"race/{racer.name}/{round_}", "round": round_})
            staged = {racer.name: racer.read() for racer in racers}
            if any("error" in s for s in staged.values()):
                raise AssertionError(f"round {round_}: staging failed: {staged}")
            assert len({s["staged"]["replaces"] for s in staged.values()}) == 1  # both opened on the same version
            release = time.time() + 0.25  # one instant on the shared clock, for both
            for racer in racers:
                racer.send({"go": release})
            answers = {racer.name: racer.read() for racer in racers}
            winners = sorted(a["won"] for a in answers.values() if "won" in a)
            errors = sorted(a["error"] for a in answers.values() if "error" in a)
            outcomes.append({"round": round_, "winners": winners, "errors": errors, "problems": check_round(uri, conn_id, answers)})
    finally:
        for racer in racers:
            racer.close()
    return outcomes


def summary(outcomes: list[dict[str, Any]]) -> str:
    """One line: rounds by outcome (winners and racers that failed otherwise), and rounds with problems."""
    kinds: dict[str, int] = {}
    for outcome in outcomes:
        kind = f"{len(outcome['winners'])} winner(s)" + (f" + {len(outcome['errors'])} crashed" if outcome["errors"] else "")
        kinds[kind] = kinds.get(kind, 0) + 1
    bad = [o["round"] for o in outcomes if o["problems"]]
    counts = ", ".join(f"{kind}: {n}" for kind, n in sorted(kinds.items()))
    return f"{len(outcomes)} rounds; {counts}; rounds with problems: {len(bad)} {bad}"


def report(outcomes: list[dict[str, Any]]) -> str:
    """The summary and every problem, round by round (the message of a failed race test)."""
    return "\n".join([summary(outcomes), *(f"round {o['round']}: {p}" for o in outcomes for p in o["problems"])])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] or None)

"""Publishing a partition is a compare-and-swap: of runs that opened it on the same version, exactly one
publishes; the others publish nothing and are told who won (``tables.publish_partition``).

The races here are made deterministic by running the second publisher from inside the first one's
manifest write (after the first has claimed the version and moved its files in, before readers
switch); the race of two real processes released at the same instant is the last test.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops import tables
from airflow_mlops.exceptions import PartitionConflictError, TableError
from airflow_mlops.tables import partitions
from tests.partition_race import race, report, summary


def frame(rows: int, offset: int) -> pd.DataFrame:
    return pd.DataFrame({"id": range(offset, offset + rows)})


def opened(part: str, run_key: str, rows: int, offset: int) -> dict:
    """A run that opened ``part`` and staged one file."""
    handle = tables.open_partition(part, run_key=run_key)
    tables.write_table(frame(rows, offset), f"{handle['staging']}/part-00000.parquet")
    return handle


def published(tmp_path) -> str:
    """A month published by a first run."""
    part = str(tmp_path / "month=2025-01")
    tables.publish_partition(opened(part, "dag/first", 10, 0), files=["part-00000.parquet"])
    return part


def everything(part: str) -> list[str]:
    """Every file under the partition, staging and claims included."""
    return sorted(os.path.relpath(os.path.join(root, name), part) for root, _, names in os.walk(part) for name in names)


def during_manifest_write(monkeypatch, part: str, action) -> list:
    """Run ``action()`` once, when the next publisher of ``part`` writes its manifest (it holds its claim
    and has moved its files in; readers still see the old version). Returns what it raised or returned."""
    write_text, seen, started = tables.write_text, [], []

    def intercepted(text: str, uri, **kwargs):
        if str(uri) == f"{part}/_SUCCESS" and not started:
            started.append(True)
            try:
                seen.append(action())
            except Exception as exc:
                seen.append(exc)
        return write_text(text, uri, **kwargs)

    monkeypatch.setattr(partitions, "write_text", intercepted)
    return seen


def test_a_run_that_publishes_while_another_holds_the_claim_is_refused_naming_it(tmp_path, monkeypatch) -> None:
    part = published(tmp_path)
    a = opened(part, "dag/scheduled", 4, 200)
    b = opened(part, "dag/manual", 6, 300)
    inside = during_manifest_write(monkeypatch, part, lambda: tables.publish_partition(b, files=["part-00000.parquet"]))

    tables.publish_partition(a, files=["part-00000.parquet"])

    (refusal,) = inside
    assert isinstance(refusal, PartitionConflictError), refusal  # read-then-write let both through here
    assert refusal.winner == "dag/scheduled"
    assert "another run (dag/scheduled) claimed this partition after dag/manual started" in str(refusal)
    assert "nothing of this run was published" in str(refusal) and "Rerun to replace" in str(refusal)
    assert not os.path.exists(b["staging"])
    assert everything(part) == ["_SUCCESS", f"part-00000.{a['generation']}.parquet"]  # no claim left, nothing of b
    assert tables.read_table(part)["id"].tolist() == [200, 201, 202, 203]
    assert tables.read_manifest(part)["run_key"] == "dag/scheduled"


def test_a_retry_of_the_winner_finishes_a_publish_that_crashed_holding_the_claim(tmp_path, monkeypatch) -> None:
    part = published(tmp_path)
    a = opened(part, "dag/scheduled", 4, 200)
    b = opened(part, "dag/manual", 6, 300)

    def crash(text, uri, **kwargs):
        raise OSError("worker killed")

    monkeypatch.setattr(partitions, "write_text", crash)  # a crashes after claiming and moving its file in
    with pytest.raises(OSError, match="worker killed"):
        tables.publish_partition(a, files=["part-00000.parquet"])
    monkeypatch.undo()
    assert tables.read_table(part)["id"].tolist() == list(range(10))  # readers still see the first run's month

    with pytest.raises(PartitionConflictError) as refused:  # a's claim stands while a is down
        tables.publish_partition(b, files=["part-00000.parquet"])
    assert refused.value.winner == "dag/scheduled"
    assert "if dag/scheduled crashed and will not be retried, rerun it to finish its publish, or delete" in str(refused.value)

    tables.publish_partition(a, files=["part-00000.parquet"])  # a's retry finds its own claim and finishes

    assert tables.read_table(part)["id"].tolist() == [200, 201, 202, 203]
    assert everything(part) == ["_SUCCESS", f"part-00000.{a['generation']}.parquet"]


def test_a_retry_after_a_crash_past_the_manifest_finishes_the_clean_up_and_releases_the_claim(tmp_path, monkeypatch) -> None:
    part = published(tmp_path)
    a = opened(part, "dag/scheduled", 4, 200)
    b = opened(part, "dag/manual", 6, 300)
    write_text = tables.write_text

    def write_then_crash(text, uri, **kwargs):
        write_text(text, uri, **kwargs)
        raise OSError("worker killed")

    monkeypatch.setattr(partitions, "write_text", write_then_crash)  # a crashes right after its manifest
    with pytest.raises(OSError, match="worker killed"):
        tables.publish_partition(a, files=["part-00000.parquet"])
    monkeypatch.undo()
    assert tables.read_table(part)["id"].tolist() == [200, 201, 202, 203]  # published, not cleaned up

    with pytest.raises(PartitionConflictError, match=r"another run \(dag/scheduled\) published this partition after dag/manual started") as refused:
        tables.publish_partition(b, files=["part-00000.parquet"])
    assert refused.value.winner == "dag/scheduled"
    tables.publish_partition(a, files=["part-00000.parquet"])  # the retry finishes the clean-up and releases the claim

    assert everything(part) == ["_SUCCESS", f"part-00000.{a['generation']}.parquet"]


def test_a_version_rewritten_byte_for_byte_is_still_a_new_version(tmp_path) -> None:
    """A rerun of the run that published (same run key, same files: an identical manifest) replaces the
    version a concurrent run started from: that run is refused, and later runs are not blocked."""
    part = published(tmp_path)
    marker = Path(part) / "_SUCCESS"
    before = marker.read_bytes()
    manual = opened(part, "dag/manual", 6, 300)
    again = opened(part, "dag/first", 10, 0)

    tables.publish_partition(again, files=["part-00000.parquet"])
    assert marker.read_bytes() == before

    with pytest.raises(PartitionConflictError, match=r"another run \(dag/first\) published this partition after dag/manual started"):
        tables.publish_partition(manual, files=["part-00000.parquet"])
    later = opened(part, "dag/later", 3, 500)
    tables.publish_partition(later, files=["part-00000.parquet"])

    assert tables.read_table(part)["id"].tolist() == [500, 501, 502]
    assert everything(part) == ["_SUCCESS", f"part-00000.{later['generation']}.parquet"]


def test_handles_opened_before_claims_publish_through_the_claim_too(tmp_path, monkeypatch) -> None:
    """A handle in XCom from before claims (no ``claim`` key) is claimed by the version of its generation."""
    part = published(tmp_path)
    a, b = opened(part, "dag/scheduled", 4, 200), opened(part, "dag/manual", 6, 300)
    for handle in (a, b):
        handle.pop("claim", None)
    inside = during_manifest_write(monkeypatch, part, lambda: tables.publish_partition(b, files=["part-00000.parquet"]))

    tables.publish_partition(a, files=["part-00000.parquet"])

    assert isinstance(inside[0], PartitionConflictError) and inside[0].winner == "dag/scheduled"
    assert tables.read_table(part)["id"].tolist() == [200, 201, 202, 203]


def test_the_refusal_fails_the_task_at_once_and_pickles_with_the_winner() -> None:
    error = PartitionConflictError("another run (dag/a) published ...", uri="file:///m", winner="dag/a")

    assert isinstance(error, AirflowFailException) and isinstance(error, TableError)  # no retries: they would be refused too
    clone = pickle.loads(pickle.dumps(error))
    assert (type(clone), clone.winner, clone.uri, str(clone)) == (PartitionConflictError, "dag/a", "file:///m", str(error))


def test_a_store_without_an_atomic_exclusive_create_is_refused(tmp_path) -> None:
    import fsspec
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach

    attach(protocol="memory", fs=fsspec.filesystem("memory"))

    with pytest.raises(TableError, match=r"needs an atomic exclusive create, known here for file:// and s3:// only, not memory://"):
        tables.open_partition(ObjectStoragePath("memory://bucket/month=2025-01"), run_key="dag/a")


@pytest.mark.slow  # spawns a process
def test_two_processes_racing_to_publish_one_partition_leave_exactly_one_winner(tmp_path) -> None:
    """Two racers (own processes) open each round on the same version, stage, and publish at one instant."""
    outcomes = race(str(tmp_path / "month=2025-01"), rounds=20)

    print(summary(outcomes))
    assert not any(o["problems"] for o in outcomes), report(outcomes)

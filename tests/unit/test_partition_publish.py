"""Publishing a partition is a compare-and-swap: of runs that opened it on the same version, exactly one
publishes; the others publish nothing and are told who won (``tables.publish_partition``)."""

from __future__ import annotations

import pickle

from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.exceptions import PartitionConflictError, TableError


def test_the_refusal_fails_the_task_at_once_and_pickles_with_the_winner() -> None:
    error = PartitionConflictError("another run (dag/a) published ...", uri="file:///m", winner="dag/a")

    assert isinstance(error, AirflowFailException) and isinstance(error, TableError)  # no retries: they would be refused too
    clone = pickle.loads(pickle.dumps(error))
    assert (type(clone), clone.winner, clone.uri, str(clone)) == (PartitionConflictError, "dag/a", "file:///m", str(error))

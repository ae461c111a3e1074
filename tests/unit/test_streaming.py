"""Read-ahead and write-behind helpers used by batch inference."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops.streaming import ParquetWriteBehind, read_ahead


def test_read_ahead_yields_every_item_in_order_producing_them_on_the_pool() -> None:
    producers: set[str] = set()

    def numbers() -> Iterator[int]:
        for i in range(5):
            producers.add(threading.current_thread().name)
            yield i

    with ThreadPoolExecutor(1, "io") as pool:
        assert list(read_ahead(numbers(), pool)) == [0, 1, 2, 3, 4]
    assert producers == {"io_0"}


def test_read_ahead_raises_a_producer_error_at_the_item_that_failed() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("corrupt row group 2")

    seen = []
    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match="corrupt row group 2"):
        for item in read_ahead(broken(), pool):
            seen.append(item)
    assert seen == [1]


def test_write_behind_writes_every_table_in_order(tmp_path) -> None:
    path = str(tmp_path / "out.parquet")
    with ThreadPoolExecutor(1) as pool:
        sink = ParquetWriteBehind(path, pool, row_group_size=10)
        assert not sink.started
        for start in range(0, 50, 10):
            sink.write(pa.table({"id": list(range(start, start + 10))}))
        sink.close()
    assert sink.rows == 50
    assert pq.read_table(path)["id"].to_pylist() == list(range(50))
    assert pq.ParquetFile(path).num_row_groups == 5


def test_write_behind_raises_a_failed_write_and_abort_swallows_it(tmp_path) -> None:
    path = str(tmp_path / "out.parquet")
    with ThreadPoolExecutor(1) as pool:
        sink = ParquetWriteBehind(path, pool, row_group_size=10)
        sink.write(pa.table({"id": [1, 2]}))
        sink.write(pa.table({"other": ["a"]}))  # another schema: the background write fails
        with pytest.raises(ValueError, match="schema"):
            sink.close()

        aborted = ParquetWriteBehind(str(tmp_path / "aborted.parquet"), pool, row_group_size=10)
        aborted.write(pa.table({"id": [1]}))
        aborted.write(pa.table({"other": ["a"]}))
        aborted.abort()  # called while another error propagates: must not raise and replace it
    # The writer was closed, not left open: the file (the caller's staging file) is whole up to the failed write.
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "aborted.parquet").to_pydict() == {"id": [1]}

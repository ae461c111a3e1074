from __future__ import annotations

import hashlib
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from airflow_mlops import tables
from airflow_mlops.exceptions import PartitionNotReadyError, TableError


def frame(rows: int = 10, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"id": np.arange(offset, offset + rows), "x": np.linspace(0, 1, rows), "c": ["a", "b"] * (rows // 2)})


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.parametrize("name", ["t.parquet", "t.csv"])
def test_write_then_read_round_trip(tmp_path, name: str) -> None:
    uri = (tmp_path / "out" / name).as_uri()

    tables.write_table(frame(), uri)

    back = tables.read_table(uri)
    pd.testing.assert_frame_equal(back, frame(), check_dtype=False)
    assert os.listdir(tmp_path / "out") == [name]  # no staging leftovers


def test_same_data_gives_byte_identical_parquet(tmp_path) -> None:
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"

    tables.write_table(frame(1000), str(a))
    tables.write_table(frame(1000), str(b))

    assert sha(a) == sha(b)


def test_stream_is_bounded_by_batch_rows_and_selects_columns(tmp_path) -> None:
    tables.write_table(frame(1000), str(tmp_path / "t.parquet"))

    batches = list(tables.iter_batches(str(tmp_path / "t.parquet"), columns=["x"], batch_rows=128))

    assert max(b.num_rows for b in batches) <= 128
    assert sum(b.num_rows for b in batches) == 1000
    assert all(b.schema.names == ["x"] for b in batches)


def test_text_columns_can_be_streamed_dictionary_encoded(tmp_path) -> None:
    import pyarrow as pa

    uri = str(tmp_path / "t.parquet")
    tables.write_table(pd.DataFrame({"plan": ["basic", None, "pro"] * 4, "n": range(12)}), uri)

    batches = list(tables.iter_file_batches(uri, batch_rows=5, dictionary_columns=["plan", "n", "absent"]))

    assert [b.schema.field("plan").type for b in batches] == [pa.dictionary(pa.int32(), pa.string())] * 3
    assert batches[0].schema.field("n").type == pa.int64()  # not text: read as it is
    frame = pa.Table.from_batches(batches).to_pandas()
    assert frame["plan"].dtype == "category" and frame["plan"].tolist()[:3] == ["basic", np.nan, "pro"]


def test_missing_column_names_file_and_column(tmp_path) -> None:
    path = tmp_path / "t.parquet"
    tables.write_table(frame(), str(path))

    with pytest.raises(TableError) as err:
        tables.read_table(str(path), columns=["id", "income"])

    assert "income" in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize(
    ("name", "content"),
    [("empty.parquet", b""), ("corrupt.parquet", b"PAR1 this is not parquet"), ("empty.csv", b""), ("broken.csv", b"a,b\n1,2\n3,4,5\n")],
)
def test_unreadable_files_fail_naming_the_file(tmp_path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(TableError) as err:
        tables.read_table(str(path))

    assert name in str(err.value)


def test_unsupported_suffix_is_refused(tmp_path) -> None:
    with pytest.raises(TableError, match="unsupported table format '.xlsx'"):
        tables.write_table(frame(), str(tmp_path / "t.xlsx"))


def test_partition_needs_files_and_marker(tmp_path) -> None:
    part = tmp_path / "month=2025-01"
    with pytest.raises(PartitionNotReadyError, match="no such file or partition"):
        tables.list_data_files(str(part))
    part.mkdir()
    with pytest.raises(PartitionNotReadyError, match="no data files"):
        tables.list_data_files(str(part))
    tables.write_table(frame(), str(part / "part-00000.parquet"))
    with pytest.raises(PartitionNotReadyError, match="_SUCCESS"):
        tables.read_table(str(part))

    tables.finish_partition(str(part), keep=["part-00000.parquet"])

    assert tables.ready_files(str(part), require_marker=True) == [f"{part}/part-00000.parquet"]
    assert len(tables.read_table(str(part))) == 10


def test_rewrite_of_partition_drops_stale_parts(tmp_path) -> None:
    part = str(tmp_path / "p")
    for i in range(3):
        tables.write_table(frame(offset=10 * i), f"{part}/part-{i:05d}.parquet")
    tables.finish_partition(part, keep=[f"part-{i:05d}.parquet" for i in range(3)])

    tables.write_table(frame(), f"{part}/part-00000.parquet")
    tables.finish_partition(part, keep=["part-00000.parquet"])

    assert sorted(os.listdir(part)) == ["_SUCCESS", "part-00000.parquet"]
    assert len(tables.read_table(part)) == 10


def test_failed_write_leaves_earlier_output_intact_and_nothing_staged(tmp_path) -> None:
    target = tmp_path / "preds.parquet"
    tables.write_table(frame(), str(target))
    before = sha(target)

    with pytest.raises(RuntimeError, match="disk on fire"), tables.staged_output(str(target)) as local:
        with open(local, "wb") as handle:
            handle.write(b"half a parquet file")
        raise RuntimeError("disk on fire")

    assert sha(target) == before
    assert os.listdir(tmp_path) == ["preds.parquet"]


def test_failed_first_write_leaves_no_file(tmp_path) -> None:
    bad = pd.DataFrame({"x": [object()]})  # arrow cannot encode it

    with pytest.raises(pa.ArrowInvalid, match="Could not convert"):
        tables.write_table(bad, str(tmp_path / "t.parquet"))

    assert os.listdir(tmp_path) == []


# -- the publish protocol: a rerun stages per run and publishes in one step ----------------------------


def published(tmp_path, rows: int = 10) -> str:
    """A month published by a first run, as the batch DAG publishes one."""
    part = str(tmp_path / "month=2025-01")
    first = tables.open_partition(part, run_key="dag/first")
    tables.write_table(frame(rows), f"{first['staging']}/part-00000.parquet")
    tables.publish_partition(first, files=["part-00000.parquet"], extra={"rows": rows})
    return part


def test_a_running_or_failed_rerun_leaves_the_published_month_readable(tmp_path) -> None:
    part = published(tmp_path)
    before = {name: sha(os.path.join(part, name)) for name in os.listdir(part) if not name.startswith("_s")}

    rerun = tables.open_partition(part, run_key="dag/rerun")
    tables.write_table(frame(4, offset=100), f"{rerun['staging']}/part-00000.parquet")  # then the run fails: no publish

    assert tables.read_table(part)["id"].tolist() == list(range(10))
    assert {name: sha(os.path.join(part, name)) for name in os.listdir(part) if not name.startswith("_s")} == before
    assert tables.read_manifest(part)["rows"] == 10


def test_publishing_switches_to_the_new_files_and_drops_the_replaced_ones(tmp_path) -> None:
    part = published(tmp_path)
    rerun = tables.open_partition(part, run_key="dag/rerun")
    tables.write_table(frame(4, offset=100), f"{rerun['staging']}/part-00000.parquet")

    tables.publish_partition(rerun, files=["part-00000.parquet"], extra={"rows": 4})

    assert tables.read_table(part)["id"].tolist() == [100, 101, 102, 103]
    assert sorted(os.listdir(part)) == ["_SUCCESS", f"part-00000.{rerun['generation']}.parquet"]  # no staging, no old file
    assert tables.read_manifest(part)["run_key"] == "dag/rerun"


def test_of_two_concurrent_runs_of_a_month_the_second_to_publish_is_refused(tmp_path) -> None:
    part = published(tmp_path)
    a = tables.open_partition(part, run_key="dag/scheduled")
    b = tables.open_partition(part, run_key="dag/manual")
    tables.write_table(frame(4, offset=200), f"{a['staging']}/part-00000.parquet")
    tables.write_table(frame(6, offset=300), f"{b['staging']}/part-00000.parquet")

    tables.publish_partition(a, files=["part-00000.parquet"])
    with pytest.raises(tables.PartitionConflictError, match=r"another run \(dag/scheduled\) published this partition after dag/manual started"):
        tables.publish_partition(b, files=["part-00000.parquet"])

    assert tables.read_table(part)["id"].tolist() == [200, 201, 202, 203]  # one run's files, not a mix
    assert sorted(os.listdir(part)) == ["_SUCCESS", f"part-00000.{a['generation']}.parquet"]


def test_a_retried_publish_finishes_what_a_crashed_one_started(tmp_path) -> None:
    part = published(tmp_path)
    rerun = tables.open_partition(part, run_key="dag/rerun")
    tables.write_table(frame(4, offset=100), f"{rerun['staging']}/part-00000.parquet")
    tables.write_table(frame(4, offset=104), f"{rerun['staging']}/part-00001.parquet")
    os.rename(f"{rerun['staging']}/part-00000.parquet", f"{part}/part-00000.{rerun['generation']}.parquet")  # crashed after one move

    assert tables.read_table(part)["id"].tolist() == list(range(10))  # the old manifest still rules
    tables.publish_partition(rerun, files=["part-00000.parquet", "part-00001.parquet"])
    tables.publish_partition(rerun, files=["part-00000.parquet", "part-00001.parquet"])  # and a retry of a finished publish is harmless

    assert tables.read_table(part)["id"].tolist() == list(range(100, 108))


def test_readers_take_the_files_the_manifest_names_not_strays(tmp_path) -> None:
    part = published(tmp_path)
    tables.write_table(frame(2, offset=900), f"{part}/part-99999.parquet")  # e.g. a copy dropped in by hand

    assert tables.read_table(part)["id"].tolist() == list(range(10))
    assert len(tables.list_data_files(part)) == 1


def test_streams_and_reads_skip_strays_and_staging_not_in_the_manifest(tmp_path) -> None:
    part = published(tmp_path)
    tables.write_table(frame(2, offset=900), f"{part}/part-99999.parquet")
    os.makedirs(f"{part}/_staging/abc", exist_ok=True)
    tables.write_table(frame(2, offset=800), f"{part}/_staging/abc/part-00000.parquet")

    streamed = pa.Table.from_batches(list(tables.iter_batches(part, columns=["id"])))

    assert streamed.column("id").to_pylist() == list(range(10))
    assert tables.TableReader().read(part, columns=["id"])["id"].tolist() == list(range(10))


def partition_of(tmp_path, *parts: pd.DataFrame, suffix: str = ".parquet") -> str:
    """A sealed partition with one file per frame, written as ``suffix``."""
    folder = tmp_path / "month=2025-01"
    names = [f"part-{i:05d}{suffix}" for i in range(len(parts))]
    for name, part in zip(names, parts, strict=True):
        tables.write_table(part, str(folder / name))
    tables.finish_partition(str(folder), keep=names)
    return str(folder)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_column_int_in_one_file_and_float_in_another_reads_as_float(tmp_path, suffix: str) -> None:
    part = partition_of(tmp_path, pd.DataFrame({"id": [1, 2], "x": [1, 2]}), pd.DataFrame({"id": [3], "x": [2.5]}), suffix=suffix)

    read = tables.read_table(part)
    batches = list(tables.iter_batches(part))

    assert read["x"].dtype == "float64" and read["x"].tolist() == [1.0, 2.0, 2.5]
    assert read["id"].tolist() == [1, 2, 3]
    assert {b.schema.field("x").type for b in batches} == {pa.float64()}  # every batch in the unified schema


def test_a_column_null_throughout_one_file_takes_the_type_of_the_others(tmp_path) -> None:
    empty = pa.table({"id": pa.array([1], pa.int64()), "x": pa.array([None], pa.null())})
    part = partition_of(tmp_path, pd.DataFrame({"id": [0], "x": [0.5]}), empty.to_pandas())
    tables.write_table(empty, f"{part}/part-00001.parquet")  # null-typed column, as a writer of an all-missing chunk leaves it

    read = tables.read_table(part)

    assert read["x"].dtype == "float64" and read["x"].isna().tolist() == [False, True]


def test_columns_that_do_not_unify_are_refused_naming_the_partition(tmp_path) -> None:
    part = partition_of(tmp_path, pd.DataFrame({"x": [1.5]}), pd.DataFrame({"x": ["text"]}))

    with pytest.raises(TableError) as err:
        tables.read_table(part)

    assert err.value.uri == part and "x" in str(err.value)


def test_a_corrupt_file_in_a_partition_is_named(tmp_path) -> None:
    part = partition_of(tmp_path, frame(), frame(offset=10))
    with open(f"{part}/part-00001.parquet", "wb") as handle:
        handle.write(b"PAR1 this is not parquet")

    with pytest.raises(TableError) as streamed:
        list(tables.iter_batches(part))
    with pytest.raises(TableError) as read:
        tables.read_table(part)

    assert streamed.value.uri == read.value.uri == f"{part}/part-00001.parquet"


def test_a_file_missing_a_column_in_a_partition_is_named_with_the_column(tmp_path) -> None:
    part = partition_of(tmp_path, frame(), frame(offset=10).drop(columns=["x"]))

    with pytest.raises(TableError) as err:
        tables.read_table(part, columns=["id", "x"])

    assert err.value.uri == f"{part}/part-00001.parquet" and "missing column(s) ['x']" in str(err.value)


def test_a_bad_value_deep_in_a_csv_file_names_that_file(tmp_path) -> None:
    part = partition_of(tmp_path, pd.DataFrame({"x": [1.0, 2.0]}), pd.DataFrame({"x": [1.0, 2.0]}), suffix=".csv")
    with open(f"{part}/part-00001.csv", "a") as handle:
        handle.write("".join(f"{i}.5\n" for i in range(200_000)) + "oops\n")  # past the first block: a read error, not an inspection one
    reader = tables.TableReader(csv=tables.CsvOptions(column_types=(("x", "double"),)))

    with pytest.raises(TableError) as err:
        list(reader.batches(part, batch_rows=1024))

    assert err.value.uri == f"{part}/part-00001.csv" and "oops" in str(err.value)


def test_batches_span_parquet_row_groups_up_to_batch_rows(tmp_path) -> None:
    import pyarrow.parquet as pq

    part = tmp_path / "month=2025-01"
    table = pa.table({"id": np.arange(1000), "plan": (["basic"] * 500) + (["pro"] * 500)})
    os.makedirs(part)
    pq.write_table(table, part / "part-00000.parquet", row_group_size=100)
    tables.finish_partition(str(part), keep=["part-00000.parquet"])

    batches = list(tables.iter_batches(str(part), batch_rows=300))

    assert [b.num_rows for b in batches] == [300, 300, 300, 100]  # not one batch per 100-row group, as arrow's dataset scanner gives
    assert pa.Table.from_batches(batches).equals(table)

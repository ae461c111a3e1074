"""Tables on a real S3 endpoint over HTTP (moto server), reached through an Airflow ``aws`` connection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlops import tables
from airflow_mlops.example_data import churn
from airflow_mlops.exceptions import TableError

CONN = "aws_moto"


def keys(bucket_uri: str) -> list[str]:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return sorted(S3Hook(aws_conn_id=CONN).list_keys(bucket_name=bucket_uri.removeprefix("s3://")) or [])


def test_parquet_and_csv_round_trip_on_s3(aws_conn: str) -> None:
    df = pd.DataFrame({"id": np.arange(100), "x": np.random.default_rng(0).normal(size=100)})

    tables.write_table(df, f"{aws_conn}/t/a.parquet", conn_id=CONN)
    tables.write_table(df, f"{aws_conn}/t/b.csv", conn_id=CONN)

    assert keys(aws_conn) == ["t/a.parquet", "t/b.csv"]
    pd.testing.assert_frame_equal(tables.read_table(f"{aws_conn}/t/a.parquet", conn_id=CONN), df)
    assert len(tables.read_table(f"{aws_conn}/t/b.csv", conn_id=CONN)) == 100
    batches = list(tables.iter_batches(f"{aws_conn}/t/a.parquet", conn_id=CONN, batch_rows=30))
    assert [b.num_rows for b in batches] == [30, 30, 30, 10]


# A failed or cut S3 write leaving the earlier object intact: tests/reliability/test_faults.py.


def test_generated_partitions_on_s3_need_their_marker(aws_conn: str) -> None:
    summary = churn.generate_dataset(
        aws_conn + "/demo", rows=3000, months=["2025-01"], training_rows=0, rows_per_file=1000, conn_id=CONN
    )
    month = summary["months"]["2025-01"]

    assert len(tables.list_data_files(month, conn_id=CONN)) == 3
    assert len(tables.read_table(month, conn_id=CONN)) == 3000

    rerun = tables.open_partition(month, run_key="rerun", conn_id=CONN)  # a rerun starts: the month stays readable
    tables.write_table(tables.read_table(month, conn_id=CONN).head(10), f"{rerun['staging']}/part-00000.parquet", conn_id=CONN)
    assert len(tables.read_table(month, conn_id=CONN)) == 3000

    tables.publish_partition(rerun, files=["part-00000.parquet"], conn_id=CONN)

    assert len(tables.read_table(month, conn_id=CONN)) == 10
    listed = sorted(p.name for p in tables.storage_path(month, conn_id=CONN).iterdir())
    assert listed == ["_SUCCESS", f"part-00000.{rerun['generation']}.parquet"]  # the replaced files and the staging are gone


def test_corrupt_object_names_the_key(aws_conn: str) -> None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    S3Hook(aws_conn_id=CONN).load_bytes(b"not parquet", key="bad/x.parquet", bucket_name=aws_conn[5:])

    with pytest.raises(TableError, match="bad/x.parquet"):
        tables.read_table(f"{aws_conn}/bad/x.parquet", conn_id=CONN)


def test_one_sensor_polling_s3_sees_files_and_markers_that_arrive_between_pokes(aws_conn: str) -> None:
    """One sensor instance keeps one s3fs filesystem: each poke must list the folder afresh. The files
    arrive through another client (boto3), as from another process: s3fs's listing cache cannot know."""
    import io
    import time

    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from airflow_mlops.sensors.partition import DataPartitionSensor
    from tests.helpers import task_context

    month = f"{aws_conn}/feed/month=2025-01"
    df = pd.DataFrame({"id": np.arange(10), "x": np.arange(10.0)})
    parquet = io.BytesIO()
    df.to_parquet(parquet, index=False)
    s3, bucket = S3Hook(aws_conn_id=CONN), aws_conn.removeprefix("s3://")

    def put(name: str, body: bytes) -> None:
        s3.load_bytes(body, key=f"feed/month=2025-01/{name}", bucket_name=bucket, replace=True)

    put("part-0.parquet", parquet.getvalue())
    marked = DataPartitionSensor(task_id="wait", uri=month, data_conn_id=CONN, require_marker=True)
    quiet = DataPartitionSensor(task_id="wait", uri=month, data_conn_id=CONN, require_marker=False, stable_seconds=2)

    assert marked.poke(task_context("wait")).is_done is False
    assert quiet.poke(task_context("wait")).is_done is False  # written just now
    time.sleep(2.5)
    assert quiet.poke(task_context("wait")).xcom_value["files"] == [f"{month}/part-0.parquet"]

    put("part-1.parquet", parquet.getvalue())  # a late file: the folder changed again
    assert quiet.poke(task_context("wait")).is_done is False
    put("_SUCCESS", b"{}")
    assert marked.poke(task_context("wait")).xcom_value["files"] == [f"{month}/part-0.parquet", f"{month}/part-1.parquet"]


def test_two_processes_racing_to_publish_one_partition_on_s3_leave_exactly_one_winner(aws_conn: str) -> None:
    """The claim is a conditional PUT (If-None-Match: *) on the S3 server: exactly one racer publishes."""
    from tests.partition_race import race, report, summary

    outcomes = race(f"{aws_conn}/race/month=2025-01", rounds=10, conn_id=CONN)

    print(summary(outcomes))
    assert not any(o["problems"] for o in outcomes), report(outcomes)


def test_labels_join_out_of_core_on_s3_through_the_connection(aws_conn: str) -> None:
    """The label join reads both feeds on S3 through the Airflow connection (the readers' Arrow batches,
    no DuckDB S3 extension) and gives the rows of the pandas merge, in the features' order."""
    from airflow_mlops.example_data import SPEC_PATH
    from airflow_mlops.labels import LabelJoin
    from airflow_mlops.spec import FeatureSpec
    from tests.unit.operators import pandas_labels

    summary = churn.generate_dataset(aws_conn + "/join", rows=3000, months=["2025-01"], training_rows=0, rows_per_file=1000, conn_id=CONN)
    spec, reader = FeatureSpec.load(str(SPEC_PATH)), tables.TableReader(conn_id=CONN)
    features_uri, labels_uri = summary["months"]["2025-01"], summary["labels"]["2025-01"]

    with LabelJoin(spec, what="features", batch_rows=700) as join:
        join.load_rows(reader, features_uri, spec.scoring_columns())
        join.load_labels(reader, labels_uri)
        join.check()
        joined = join.fetch(spec.training_columns())

    features = reader.read(features_uri, columns=spec.scoring_columns())
    labelled = pandas_labels.read_labels(reader, spec, labels_uri)
    expected = pandas_labels.join_labels(spec, features, labelled, rows_uri=features_uri, labels_uri=labels_uri, what="features")
    pd.testing.assert_frame_equal(joined, expected[spec.training_columns()].reset_index(drop=True))
    assert join.counts == {"rows": 3000, "labels": 3000, "labelled": 3000}

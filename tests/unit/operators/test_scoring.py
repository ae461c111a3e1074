"""Publishing a scored partition: the staged files become the month in one manifest write, with rows and
model versions; a second publisher of the same month publishes nothing and names the winner."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from airflow_mlops import tables
from airflow_mlops.exceptions import PartitionConflictError
from airflow_mlops.operators.scoring import PublishPartitionOperator, output_name
from tests.helpers import task_context


def staged(partition: dict, names: list[str], version: str) -> list[dict]:
    results = []
    for index, name in enumerate(names):
        tables.write_table(pd.DataFrame({"id": range(index + 2), "prediction": 1}), f"{partition['staging']}/{name}")
        results.append({"output_uri": f"{partition['staging']}/{name}", "rows": index + 2, "model_version": version})
    return results


def test_publish_makes_the_staged_files_the_month_and_announces_it(tmp_path: Path) -> None:
    month = str(tmp_path / "predictions" / "month=2025-03")
    partition = tables.open_partition(month, run_key="scoring/run1")
    results = staged(partition, ["part-0.parquet", "part-1.parquet"], "3")
    op = PublishPartitionOperator(task_id="publish", partition=partition, results=results, outlets=[])
    ctx = task_context()

    summary = op.execute(ctx)

    manifest = json.loads((Path(month) / "_SUCCESS").read_text())
    assert (summary["rows"], summary["files"], summary["model_versions"]) == (5, 2, ["3"])
    assert (manifest["rows"], manifest["model_versions"], len(manifest["files"])) == (5, ["3"], 2)
    assert len(tables.read_table(month)) == 5
    assert not (Path(month) / "_staging").exists()


def test_a_second_publisher_of_the_month_publishes_nothing_and_names_the_winner(tmp_path: Path) -> None:
    month = str(tmp_path / "month=2025-03")
    first, second = tables.open_partition(month, run_key="scoring/a"), tables.open_partition(month, run_key="scoring/b")
    PublishPartitionOperator(task_id="publish", partition=first, results=staged(first, ["part-0.parquet"], "1")).execute(task_context())
    before = sorted(p.name for p in Path(month).iterdir())

    with pytest.raises(PartitionConflictError, match=r"scoring/a"):
        PublishPartitionOperator(task_id="publish", partition=second, results=staged(second, ["part-0.parquet"], "2")).execute(task_context())
    assert sorted(p.name for p in Path(month).iterdir() if p.name != "_claims") == [n for n in before if n != "_claims"]
    assert json.loads((Path(month) / "_SUCCESS").read_text())["model_versions"] == ["1"]


def test_scored_files_keep_their_input_names_as_parquet() -> None:
    assert output_name("s3://b/month=2025-03/part-00001.csv") == "part-00001.parquet"
    assert output_name("/data/month=2025-03/a.b.parquet") == "a.b.parquet"

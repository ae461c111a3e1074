"""The out-of-core label join (airflow_mlops.labels.LabelJoin, DuckDB on local disk) against the pandas
merge it replaced (tests/unit/operators/pandas_labels.py): the same rows in the same order, the same
refusals with the same messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops import tables
from airflow_mlops.exceptions import TableError
from airflow_mlops.labels import LabelJoin
from airflow_mlops.spec import FeatureSpec
from tests.unit.operators import pandas_labels

READER = tables.TableReader(require_marker=False)


def spec(**changes) -> FeatureSpec:
    doc = {
        "name": "t", "task": "classification", "target": "y", "id_columns": ["shop", "id"], "classes": [0, 1],
        "numeric_features": {"x": {}}, "categorical_features": {"tier": {"values": ["a", "b", "c"]}},
    }  # fmt: skip
    return FeatureSpec.from_dict(doc | changes)


def write(frame: pd.DataFrame, folder: Path, parts: int = 3) -> str:
    """``frame`` as a published partition of ``parts`` files."""
    names = []
    for index, chunk in enumerate(np.array_split(np.arange(len(frame)), parts)):
        names.append(f"part-{index}.parquet")
        tables.write_table(frame.iloc[chunk], f"{folder}/{names[-1]}")
    tables.finish_partition(str(folder), keep=names)
    return str(folder)


def feeds(tmp_path: Path, rows: int = 5000, seed: int = 0) -> tuple[str, str]:
    """Features with a two-column id (text and int), and labels for most of them, shuffled, some
    without an outcome yet (a null), some for ids never featured."""
    rng = np.random.default_rng(seed)
    features = pd.DataFrame({
        "shop": rng.choice(["north", "south", "east"], rows), "id": rng.permutation(rows) * 7,
        "x": rng.normal(size=rows), "tier": rng.choice(["a", "b", "c"], rows),
    })  # fmt: skip
    labels = features[["shop", "id"]].assign(y=rng.integers(0, 2, rows).astype("float64")).sample(frac=1.0, random_state=seed).iloc[rows // 10 :]
    labels.loc[labels.index[:25], "y"] = np.nan
    unknown = pd.DataFrame({"shop": ["west"] * 5, "id": range(5), "y": [1.0] * 5})
    return write(features, tmp_path / "features"), write(pd.concat([labels, unknown]), tmp_path / "labels")


def before(s: FeatureSpec, features: str, labels: str, columns: list[str]) -> pd.DataFrame:
    """The pandas path: both sides read, merged."""
    rows = READER.read(features, columns=s.scoring_columns())
    joined = pandas_labels.join_labels(s, rows, pandas_labels.read_labels(READER, s, labels), rows_uri=features, labels_uri=labels, what="features")
    return joined[columns]


def now(s: FeatureSpec, features: str, labels: str, columns: list[str], **kwargs) -> tuple[pd.DataFrame, dict[str, int]]:
    with LabelJoin(s, what="features", **kwargs) as join:
        join.load_rows(READER, features, s.scoring_columns())
        join.load_labels(READER, labels)
        join.check()
        return join.fetch(columns), join.counts


def test_the_same_rows_in_the_same_order_as_the_pandas_merge_across_many_batches(tmp_path) -> None:
    s = spec()
    features, labels = feeds(tmp_path)
    columns = s.training_columns()

    joined, counts = now(s, features, labels, columns, batch_rows=333)  # 16 batches a side, three files each

    expected = before(s, features, labels, columns)
    pd.testing.assert_frame_equal(joined, expected.reset_index(drop=True))
    assert joined["y"].dtype == "float64"  # as pandas read it: the label column holds nulls
    assert counts == {"rows": 5000, "labels": 5000 - 500 + 5 - 25, "labelled": len(expected)}
    assert len(expected) == 5000 - 500 - 25


def test_a_small_memory_limit_gives_the_same_rows(tmp_path) -> None:
    """300k rows a side (about 25 MB of them) joined in 32 MB of DuckDB memory: the loaded sides live in
    the database file on disk, the join works in what is left."""
    s = spec()
    features, labels = feeds(tmp_path, rows=300_000, seed=1)
    columns = s.training_columns()

    joined, _ = now(s, features, labels, columns, memory_limit="32MB")

    pd.testing.assert_frame_equal(joined, before(s, features, labels, columns).reset_index(drop=True))


def test_null_ids_match_each_other_as_in_a_pandas_merge(tmp_path) -> None:
    s = spec(id_columns=["id"])
    features = write(pd.DataFrame({"id": ["a", None, "b", "c"], "x": [1.0, 2.0, 3.0, 4.0], "tier": ["a"] * 4}), tmp_path / "f", parts=2)
    labels = write(pd.DataFrame({"id": ["c", None, "a"], "y": [1, 0, 1]}), tmp_path / "l", parts=1)

    joined, _ = now(s, features, labels, ["id", "x", "y"])

    expected = before(s, features, labels, ["id", "x", "y"])
    assert expected["id"].tolist() == ["a", None, "c"]
    pd.testing.assert_frame_equal(joined, expected.reset_index(drop=True))


def refusal(s: FeatureSpec, features: str, labels: str) -> tuple[str, str]:
    """The messages of the pandas path and of the out-of-core join on the same bad feeds."""
    with pytest.raises(TableError) as old:
        before(s, features, labels, s.training_columns())
    with pytest.raises(TableError) as new:
        now(s, features, labels, s.training_columns())
    return str(old.value), str(new.value)


def test_duplicate_label_ids_are_refused_with_the_same_message(tmp_path) -> None:
    s = spec()
    features, labels = feeds(tmp_path)
    frame = READER.read(labels)
    repeated = frame.iloc[[40, 7, 300, 7, 12, 13, 14, 15, 16]]  # seven ids, one of them three times
    doubled = write(pd.concat([frame.iloc[:100], repeated, frame.iloc[100:]]), tmp_path / "doubled")

    old, new = refusal(s, features, doubled)

    assert new == old
    first = frame.iloc[[7, 12, 13, 14, 15]][["shop", "id"]].to_dict("records")  # in the order they first occur
    assert new == f"{doubled}: 17 label rows share their id ['shop', 'id'], e.g. {first}; keep one label per id"


def test_repeated_feature_ids_and_ids_of_another_type_are_refused_with_the_same_messages(tmp_path) -> None:
    s = spec(id_columns=["id"])
    rows = pd.DataFrame({"id": [1, 2, 2, 3, 3, 3], "x": [0.0] * 6, "tier": ["a"] * 6})
    labels = write(pd.DataFrame({"id": [1, 2, 3], "y": [0, 1, 1]}), tmp_path / "labels", parts=1)
    text_labels = write(pd.DataFrame({"id": ["1", "2"], "y": [0, 1]}), tmp_path / "text", parts=1)
    unique = write(rows.drop_duplicates("id"), tmp_path / "unique", parts=1)

    old, new = refusal(s, write(rows, tmp_path / "repeated", parts=2), labels)
    assert new == old and new.endswith(": 3 features rows repeat an id ['id']: each id must occur once")
    old, new = refusal(s, unique, text_labels)
    assert new == old and new.endswith(": id column 'id' is object in the labels but int64 in the features")


def test_a_spec_without_id_columns_and_a_label_feed_without_the_target_are_refused(tmp_path) -> None:
    features, labels = feeds(tmp_path)

    with pytest.raises(TableError, match=r"labels: the FeatureSpec has no id_columns: labels that arrive apart can only be joined by id$"):
        now(spec(id_columns=[]), features, labels, ["x"])
    old, new = refusal(spec(target="outcome"), features, labels)
    assert new == old and new.startswith(f"{labels}/part-0.parquet: missing column(s) ['outcome']; the file has ")

"""The label join as it was before it ran out of core: both sides in pandas, one merge. Kept here,
verbatim from ``airflow_mlops/labels.py`` (commit 0338fe5), as the reference the out-of-core join
(:class:`airflow_mlops.labels.LabelJoin`) must agree with: same rows, same order, same refusals."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.exceptions import TableError

if TYPE_CHECKING:
    import pandas as pd

    from airflow_mlops.spec import FeatureSpec
    from airflow_mlops.tables import TableReader


def read_labels(reader: TableReader, spec: FeatureSpec, uri: str) -> pd.DataFrame:
    """The labels at ``uri``: the id columns and the target, one row per id, rows without a label dropped.

    :raises TableError: an id has several label rows (which one would count?), or a column is missing.
    """
    frame = reader.read(uri, columns=[*spec.id_columns, spec.target])
    dupes = frame[frame.duplicated(list(spec.id_columns), keep=False)]
    if not dupes.empty:
        sample = dupes[list(spec.id_columns)].drop_duplicates().head(5).to_dict("records")
        raise TableError(f"{len(dupes)} label rows share their id {list(spec.id_columns)}, e.g. {sample}; keep one label per id", uri=uri)
    return frame.dropna(subset=[spec.target])


def join_labels(spec: FeatureSpec, rows: pd.DataFrame, labels: pd.DataFrame, *, rows_uri: str, labels_uri: str, what: str) -> pd.DataFrame:
    """``rows`` (predictions or features) with their labels, by the spec's id columns; unlabelled rows dropped.

    :param what: what ``rows`` are, for messages ("predictions", "features").
    :raises TableError: ``rows`` repeat an id, or an id column has another type on each side.
    """
    import pandas as pd

    ids = list(spec.id_columns)
    if not ids:
        raise TableError("the FeatureSpec has no id_columns: labels that arrive apart can only be joined by id", uri=labels_uri)
    repeated = int(rows.duplicated(ids).sum())
    if repeated:
        raise TableError(f"{repeated} {what} rows repeat an id {ids}: each id must occur once", uri=rows_uri)
    for column in ids:
        if rows[column].dtype.kind != labels[column].dtype.kind:
            raise TableError(f"id column {column!r} is {labels[column].dtype} in the labels but {rows[column].dtype} in the {what}", uri=labels_uri)
    try:
        return rows.merge(labels, on=ids, how="inner", validate="one_to_one")
    except (pd.errors.MergeError, ValueError) as exc:
        raise TableError(f"cannot join the labels to {rows_uri}: {exc}", uri=labels_uri) from exc

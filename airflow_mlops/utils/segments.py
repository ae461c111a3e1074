"""Quality per segment: every value of each of the spec's ``segments`` columns, measured with the
metric definitions of :mod:`airflow_mlops.metrics`.

The rows are grouped with pandas: fairlearn's ``MetricFrame`` was measured at 3.8 s per column and
metric on 1M rows (its own grouping), against about 1 s here for every metric of a column, which
kept a monthly quality check of 1M rows out of its 10 s budget (bench/RESULTS.md, "Model quality").

Training records the holdout's segment metrics on the model version (tag :data:`SEGMENTS_TAG`), so a
later period's segment is compared with the same segment at training, not with the whole holdout:
a segment's metric differs from the overall one by nature (within one contract type, contract no
longer separates churners).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.metrics import LabelSpace
    from airflow_mlops.spec import FeatureSpec

#: Model-version tag holding ``{column: {value: {"rows": n, <metric>: value, ...}}}`` of the holdout.
SEGMENTS_TAG = "mlops.segments"
MISSING = "(missing)"


def measure(
    spec: FeatureSpec, frame: pd.DataFrame, y_pred: np.ndarray, proba: np.ndarray | None, labels: LabelSpace | None
) -> dict[str, dict[str, dict[str, float]]]:
    """``{column: {value: {"rows": n, metric: value, ...}}}`` for the segments of ``spec`` in ``frame``.

    :param frame: the rows, with the target and the segment columns.
    :param y_pred: the predictions of those rows; ``proba`` their probabilities in ``labels.classes`` order.
    A metric undefined on a segment (ROC AUC on one class) is left out of that segment.
    """
    from airflow_mlops import metrics

    y_true = frame[spec.target].to_numpy()
    out: dict[str, dict[str, dict[str, float]]] = {}
    for column in spec.segments:
        groups = frame[column].astype("object").where(frame[column].notna(), MISSING)
        out[column] = {}
        for value, rows in groups.groupby(groups, sort=True).indices.items():
            try:
                scores = metrics.compute(spec.task, y_true[rows], y_pred[rows], None if proba is None else proba[rows], labels)
            except ValueError:  # e.g. one class only: the metrics without probabilities
                scores = metrics.compute(spec.task, y_true[rows], y_pred[rows], None, labels)
            out[column][str(value)] = {"rows": float(len(rows)), **scores}
    return out


def to_tag(measured: dict[str, dict[str, dict[str, float]]]) -> str:
    """The segment metrics as the :data:`SEGMENTS_TAG` value (rounded: a tag holds at most a few kB)."""
    return json.dumps({c: {v: {k: round(x, 6) for k, x in m.items()} for v, m in vals.items()} for c, vals in measured.items()})


def from_tags(tags: dict[str, str] | None) -> dict[str, dict[str, dict[str, float]]]:
    """The holdout segment metrics a version recorded (empty when it recorded none)."""
    text = (tags or {}).get(SEGMENTS_TAG)
    return json.loads(text) if text else {}

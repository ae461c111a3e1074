"""Model-quality metrics, defined once for training and promotion.

A metric has one name here, one direction (greater is better or not) and one averaging rule, and the
same numbers come out whether the training operator computes it on its holdout or promotion has
``mlflow.models.evaluate`` compute it (:func:`evaluator_config` passes the same positive label and
averaging to MLflow's evaluator).

* **binary**: precision, recall and F1 of the positive class; ROC AUC of P(positive class);
* **multiclass**: precision, recall and F1 macro-averaged (every class weighs the same, so a rare
  class that the model misses shows); ROC AUC one-vs-rest, macro-averaged;
* log loss over all classes; regression: RMSE, MAE, R².

Labels may be strings, booleans or integers: :class:`LabelSpace` holds a classifier's classes in the
order the model gives its probabilities, and which one is positive.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.spec import plain_label, same_label

if TYPE_CHECKING:
    import numpy as np

    from airflow_mlops.spec import FeatureSpec

#: Averaging of precision, recall, F1 and ROC AUC over the classes of a multiclass target.
MULTICLASS_AVERAGE = "macro"
#: Tag on a model version (and param of its training run) holding its label space as JSON.
LABELS_TAG = "mlops.labels"


@dataclass(frozen=True)
class Metric:
    """One metric: its name here, its task, its direction and its name in ``mlflow.models.evaluate``."""

    name: str
    task: str
    greater_is_better: bool
    mlflow_name: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("roc_auc", "classification", True, "roc_auc"),
        Metric("f1", "classification", True, "f1_score"),
        Metric("precision", "classification", True, "precision_score"),
        Metric("recall", "classification", True, "recall_score"),
        Metric("accuracy", "classification", True, "accuracy_score"),
        Metric("log_loss", "classification", False, "log_loss"),
        Metric("rmse", "regression", False, "root_mean_squared_error"),
        Metric("mae", "regression", False, "mean_absolute_error"),
        Metric("r2", "regression", True, "r2_score"),
    )
}


def default_metric(task: str) -> str:
    """The metric promotion compares by default: ROC AUC for classification, RMSE for regression."""
    return "roc_auc" if task == "classification" else "rmse"


def metric(name: str, task: str) -> Metric:
    """Return the metric ``name``; raise ``ValueError`` naming the valid ones when it is unknown or of another task."""
    valid = sorted(n for n, m in METRICS.items() if m.task == task)
    if name not in valid:
        raise ValueError(f"metric must be one of {valid} for {task}, got {name!r}")
    return METRICS[name]


def missing_classes(observed: Iterable[Any], classes: Iterable[Any]) -> list[Any]:
    """The ``classes`` no value of ``observed`` (a target column) equals, as labels compare
    (:func:`plain_label`, :func:`same_label`)."""
    seen = {(type(v), v) for v in map(plain_label, observed)}
    return [c for c in classes if (type(c), c) not in seen]


@dataclass(frozen=True)
class LabelSpace:
    """The classes of a classifier, sorted as scikit-learn orders its probabilities, and the positive one.

    :param classes: every class, sorted.
    :param positive: the positive class of a binary target; ``None`` for multiclass.
    """

    classes: tuple[Any, ...]
    positive: Any = None

    @property
    def binary(self) -> bool:
        """Whether the target has exactly two classes."""
        return len(self.classes) == 2

    @property
    def positive_index(self) -> int:
        """Column of P(positive class) in ``predict_proba`` output."""
        return next(i for i, c in enumerate(self.classes) if same_label(c, self.positive))

    @classmethod
    def resolve(cls, spec: FeatureSpec, observed: Iterable[Any], *, where: str) -> LabelSpace:
        """Check the labels ``observed`` in a table (or a model's ``classes_``) against the spec.

        :param where: the table or model the labels come from, named in errors.
        :raises ValueError: a label the spec does not list, a spec class missing from the data, or a
            binary target with labels other than 0/1 or false/true and no ``positive_label``.
        """
        seen = sorted({plain_label(v) for v in observed}, key=lambda v: (type(v).__name__, v))
        if spec.classes is not None:
            unknown = [v for v in seen if not any(same_label(v, c) for c in spec.classes)]
            if unknown:
                hint = ""
                if any(isinstance(c, bool) for c in spec.classes) and any(isinstance(v, str) for v in unknown):
                    hint = " (YAML reads unquoted yes/no/on/off as booleans: quote the classes in the spec)"
                raise ValueError(
                    f"{where}: target {spec.target!r} holds {unknown}, which the spec's classes {list(spec.classes)} do not list{hint}"
                )
            absent = [c for c in spec.classes if not any(same_label(c, v) for v in seen)]
            if absent:
                raise ValueError(f"{where}: class(es) {absent} of the spec never occur in target {spec.target!r}; a model cannot learn them")
        if len(seen) < 2:
            raise ValueError(f"{where}: target {spec.target!r} has {len(seen)} class(es) {seen}; classification needs at least two")
        if len(seen) != 2:
            return cls(tuple(seen))
        positive = spec.positive_label
        if positive is None:
            defaults = [v for v in seen if same_label(v, 1) or same_label(v, True)]
            if sorted(map(str, seen)) not in (["0", "1"], ["False", "True"]) or not defaults:
                raise ValueError(
                    f"{where}: target {spec.target!r} is binary with labels {seen}; name the positive one in the spec, "
                    f"e.g. positive_label: {seen[-1]!r}"
                )
            positive = defaults[0]
        if not any(same_label(positive, v) for v in seen):
            raise ValueError(f"{where}: positive_label {positive!r} is not one of the target's labels {seen}")
        return cls(tuple(seen), positive)

    def to_json(self) -> str:
        """The label space as JSON (a model-version tag)."""
        return json.dumps({"classes": list(self.classes), "positive": self.positive})

    @classmethod
    def from_json(cls, text: str) -> LabelSpace:
        """Read back :meth:`to_json`."""
        doc = json.loads(text)
        return cls(tuple(doc["classes"]), doc.get("positive"))

    @classmethod
    def from_tags(cls, tags: Mapping[str, str] | None) -> LabelSpace | None:
        """The label space recorded on a model version, if any."""
        text = (tags or {}).get(LABELS_TAG)
        return cls.from_json(text) if text else None


def compute(task: str, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None, labels: LabelSpace | None) -> dict[str, float]:
    """Every metric of ``task`` for one model on one dataset.

    :param proba: ``predict_proba`` output, columns in ``labels.classes`` order (classification).
    :param labels: the classifier's label space (``None`` for regression).
    :return: metric name -> value; ``roc_auc`` only when ``y_true`` holds every class.
    """
    import numpy as np
    import pandas as pd
    from sklearn import metrics as m

    if task == "regression":
        return {
            "rmse": float(m.root_mean_squared_error(y_true, y_pred)),
            "mae": float(m.mean_absolute_error(y_true, y_pred)),
            "r2": float(m.r2_score(y_true, y_pred)),
        }
    if labels is None:
        raise ValueError("classification metrics need the label space (LabelSpace.resolve)")
    classes = list(labels.classes)
    if labels.binary:
        average: dict[str, Any] = {"average": "binary", "pos_label": labels.positive}
    else:
        average = {"average": MULTICLASS_AVERAGE, "labels": classes}
    precision, recall, f1, _ = m.precision_recall_fscore_support(y_true, y_pred, zero_division=0, **average)
    out = {"f1": float(f1), "precision": float(precision), "recall": float(recall), "accuracy": float(m.accuracy_score(y_true, y_pred))}
    if proba is not None:
        out["log_loss"] = float(m.log_loss(y_true, proba, labels=classes))
        # ROC AUC compares classes: on data that lacks one (a month of one sub-population) it is
        # undefined and left out, never NaN (which no JSON, XCom or MLflow tag carries).
        # pandas' hash-based unique: np.unique sorts, and sorting 10M Python objects took seconds
        if not missing_classes(pd.unique(pd.Series(np.asarray(y_true, dtype=object))), classes):
            if labels.binary:
                out["roc_auc"] = float(m.roc_auc_score(np.asarray(y_true) == labels.positive, proba[:, labels.positive_index]))
            else:
                out["roc_auc"] = float(m.roc_auc_score(y_true, proba, multi_class="ovr", average=MULTICLASS_AVERAGE, labels=classes))
    return out


def evaluator_config(labels: LabelSpace | None) -> dict[str, Any]:
    """``evaluator_config`` for ``mlflow.models.evaluate`` that yields the metrics of :func:`compute`."""
    config: dict[str, Any] = {"log_model_explainability": False}
    if labels is None:
        return config
    config["label_list"] = list(labels.classes)
    if labels.binary:
        config["pos_label"] = labels.positive
    else:
        config["average"] = MULTICLASS_AVERAGE
    return config

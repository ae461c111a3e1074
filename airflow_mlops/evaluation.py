"""Judging a challenger against the champion on one holdout: MLflow's ``evaluate`` for the scores,
``MetricThreshold`` rules (``mlflow.validate_evaluation_results``) for the verdict, and the segment
where the challenger trails most. No Airflow here: the promotion operator
(:class:`~airflow_mlops.operators.registry.MlflowPromoteModelOperator`) reads the holdout, opens the
MLflow run these scores are logged under, and records the decision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.models import EvaluationResult

    from airflow_mlops.metrics import LabelSpace
    from airflow_mlops.spec import FeatureSpec

#: The column of predicted labels when a holdout is judged by labels alone (named to clash with no feature).
PREDICTED = "mlops_predicted_label"
#: Metrics that need every class in the holdout (they compare the probabilities of classes).
CLASS_METRICS = ("roc_auc", "log_loss")


def thresholds(
    metric: str, greater: bool, has_champion: bool, *, min_value: Any, min_absolute_change: Any, min_relative_change: Any
) -> dict[str, Any] | None:
    """The ``MetricThreshold`` rules (built before any evaluation, so a bad setting fails fast).

    ``None`` means there is nothing to check (no champion and no minimum value). A change of 0 means
    "strictly better than the champion": MLflow only accepts positive changes.

    :raises ValueError: a threshold is not a number, or MLflow refuses the combination.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.models import MetricThreshold

    from airflow_mlops.metrics import METRICS
    from airflow_mlops.values import optional_float

    threshold = optional_float(min_value, "min_value")
    absolute = optional_float(min_absolute_change, "min_absolute_change") if has_champion else None
    relative = optional_float(min_relative_change, "min_relative_change") if has_champion else None
    if has_champion and not absolute and not relative:
        absolute = 1e-12
    if threshold is None and absolute is None and relative is None:
        return None
    try:
        rule = MetricThreshold(threshold=threshold, min_absolute_change=absolute, min_relative_change=relative or None, greater_is_better=greater)
    except MlflowException as exc:
        raise ValueError(f"invalid promotion thresholds: {exc.message}") from exc
    return {METRICS[metric].mlflow_name: rule}


def judge(rules: dict[str, Any] | None, results: dict[str, EvaluationResult], challenger: str, champion: str | None) -> tuple[bool, str]:
    """``(promote, reason)`` for the challenger's and the champion's evaluation ``results`` (by version)."""
    import mlflow
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    if rules is None:
        return True, "no champion yet and no minimum value set"
    try:
        mlflow.validate_evaluation_results(rules, results[challenger], results[champion] if champion else None)
    except ModelValidationFailedException as exc:
        return False, str(exc.message).strip()
    rule = next(iter(rules.values()))
    against = f"champion v{champion}" if champion else "no champion yet"
    return True, (
        f"{next(iter(rules))} passed (threshold={rule.threshold}, min_absolute_change={rule.min_absolute_change}, "
        f"min_relative_change={rule.min_relative_change}) against {against}"
    )


def rejudge(rules: dict[str, Any] | None, metric: str, earlier: dict[str, Any], challenger: str, champion: str | None) -> dict[str, Any]:
    """Judge an earlier evaluation's scores (e.g. the dry run before an approval) with ``rules``."""
    from mlflow.models import EvaluationResult

    from airflow_mlops.metrics import METRICS

    name = METRICS[metric].mlflow_name
    results = {challenger: EvaluationResult(metrics={name: earlier["challenger_score"]}, artifacts={})}
    if champion:
        results[champion] = EvaluationResult(metrics={name: earlier["champion_score"]}, artifacts={})
    promote, reason = judge(rules, results, challenger, champion)
    keep = ("challenger_score", "champion_score", "evaluation_run_id")
    return {k: earlier[k] for k in keep} | {"promote": promote, "reason": reason}


def lacks_classes(spec: FeatureSpec, data: pd.DataFrame, labels: LabelSpace | None, metric: str, *, holdout: str) -> bool:
    """Whether the holdout lacks a class of the label space (a month of one sub-population): then it is
    judged on predicted labels alone.

    :param holdout: how to name the holdout in the error.
    :raises ValueError: ``metric`` needs every class (:data:`CLASS_METRICS`) and one is missing.
    """
    from airflow_mlops.metrics import missing_classes

    if labels is None:
        return False
    missing = missing_classes(data[spec.target].unique(), labels.classes)
    if missing and metric in CLASS_METRICS:
        raise ValueError(
            f"{metric} is undefined on the holdout ({holdout}): it has no row of class {missing}; judge on a label metric "
            "(accuracy, f1, precision, recall) or use a holdout with every class"
        )
    return bool(missing)


def score(
    model_name: str, version: str, spec: FeatureSpec, data: pd.DataFrame, labels: LabelSpace | None, experiment_id: str,
    *, mlflow_metric: str, by_labels: bool = False,
) -> tuple[float, EvaluationResult]:  # fmt: skip
    """``version``'s ``mlflow_metric`` on ``data`` by ``mlflow.models.evaluate``, in a nested MLflow run of
    ``experiment_id``, and the whole result. With ``by_labels`` MLflow judges the predicted labels alone
    (no probabilities: a holdout that lacks a class has no ROC AUC, and MLflow's classifier evaluator
    refuses it).

    :raises ValueError: MLflow computed no ``mlflow_metric``.
    """
    import mlflow

    from airflow_mlops import metrics
    from airflow_mlops.utils.noise import mlflow_quiet

    model = f"models:/{model_name}/{version}"
    source: dict[str, Any] = {"model": model, "data": data}
    if by_labels:
        scored = data.assign(**{PREDICTED: mlflow.pyfunc.load_model(model).predict(data.drop(columns=[spec.target]))})
        source = {"model": None, "data": scored, "predictions": PREDICTED}
    # The experiment is named: a nested run otherwise lands in the Default experiment, whose
    # artifacts an embedded store keeps in ./mlruns of the working directory.
    with (
        mlflow.start_run(run_name=f"evaluate v{version}", nested=True, experiment_id=experiment_id, tags={"mlops.model_version": version}),
        mlflow_quiet(),
    ):
        result = mlflow.models.evaluate(
            **source, targets=spec.target, model_type="classifier" if spec.task == "classification" else "regressor",
            evaluator_config=metrics.evaluator_config(labels),
        )  # fmt: skip
    if mlflow_metric not in result.metrics:
        raise ValueError(f"metric {mlflow_metric!r} was not computed for {model_name} v{version}; got {sorted(result.metrics)}")
    return float(result.metrics[mlflow_metric]), result


def worst_segment(
    model_name: str, spec: FeatureSpec, data: pd.DataFrame, labels: LabelSpace | None, challenger: str, champion: str, metric: str,
    *, min_segment_rows: int,
) -> dict[str, Any] | None:  # fmt: skip
    """The segment (with ``min_segment_rows`` holdout rows) where the challenger falls furthest behind
    the champion on ``metric``, both scored on the same holdout; ``None`` when no segment qualifies."""
    import mlflow

    from airflow_mlops.metrics import METRICS
    from airflow_mlops.utils import modeling, segments

    x = modeling.feature_frame(data, spec)
    measured = {}
    for version in (challenger, champion):
        model = mlflow.sklearn.load_model(f"models:/{model_name}/{version}")
        proba = model.predict_proba(x) if labels is not None and hasattr(model, "predict_proba") else None
        measured[version] = segments.measure(spec, data, model.predict(x), proba, labels)
    sign = 1.0 if METRICS[metric].greater_is_better else -1.0
    worst: dict[str, Any] | None = None
    for column, values in measured[champion].items():
        for value, theirs in values.items():
            ours = measured[challenger].get(column, {}).get(value, {})
            if theirs["rows"] < min_segment_rows or metric not in theirs or metric not in ours:
                continue
            regression = sign * (theirs[metric] - ours[metric])
            if worst is None or regression > float(worst["regression"]):
                worst = {
                    "segment": column, "value": value, "rows": int(theirs["rows"]), "challenger_score": ours[metric],
                    "champion_score": theirs[metric], "regression": regression,
                }  # fmt: skip
    return worst


def recorded_rejection(version: Any, dag_run: str, metric: str, champion: str | None) -> dict[str, Any] | None:
    """Return the rejection recorded on ``version`` by ``dag_run`` against the same champion and metric.

    A rerun of a promotion task then repeats that decision instead of evaluating again and rewriting
    the audit tags (a promotion rerun is a no-op; a promoted challenger is caught by "already champion").
    """
    tags = {k.removeprefix("mlops.decision."): v for k, v in (version.tags or {}).items() if k.startswith("mlops.decision.")}
    same = tags.get("dag_run") == dag_run and tags.get("metric") == metric and tags.get("compared_against") == (champion or "none")
    if not same or tags.get("decision") != "rejected":
        return None
    scores = {k: float(tags[k]) if tags.get(k) else None for k in ("challenger_score", "champion_score")}
    return scores | {
        "decision": "rejected",
        "reason": tags.get("reason", ""),
        "evaluation_run_id": tags.get("evaluation_run_id"),
        "approver": tags.get("approver") or None,
    }

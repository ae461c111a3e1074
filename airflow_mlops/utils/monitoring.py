"""Where model-quality records live and how they are kept: report and summary per period in the
reports store, metrics per period in one MLflow monitoring run per model version.

A period's record is replaced, never duplicated, when the check runs again (more labels arrived):
the reports are rewritten in place, and the version's monitoring run is rebuilt without the period's
old values (MLflow keeps every logged value of a metric, so a run cannot drop one in place).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from airflow_mlops import tables
from airflow_mlops.periods import month_ordinal

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from airflow_mlops.hooks.mlflow import MlflowHook
    from airflow_mlops.metrics import LabelSpace
    from airflow_mlops.spec import FeatureSpec

MONITORING_TAG = "mlops.monitoring"
#: Tag on a model version naming its monitoring run, so the registry leads to its history.
VERSION_RUN_TAG = "mlops.monitoring_run_id"


#: Rows of a period drawn (seeded) for its Evidently report; the verdict's metrics use every row.
REPORT_ROWS = 50_000


def write_quality_report(spec: FeatureSpec, frame: pd.DataFrame, labels: LabelSpace | None, uri: str, *, conn_id: str | None) -> str:
    """Render Evidently's classification (or regression) preset on the labelled predictions to ``uri``.

    The report shows what Evidently shows (confusion matrix, curves, per-class quality), drawn from a
    seeded sample of :data:`REPORT_ROWS` rows when the period has more (Evidently's cost grows
    faster than the rows); the numbers the verdict uses come from :mod:`airflow_mlops.metrics` on
    every row, with the definitions of training.
    """
    import os
    import tempfile

    if len(frame) > REPORT_ROWS:
        frame = frame.sample(n=REPORT_ROWS, random_state=0)

    os.environ.setdefault("DO_NOT_TRACK", "1")
    from evidently import BinaryClassification, DataDefinition, Dataset, MulticlassClassification, Regression, Report
    from evidently.presets import ClassificationPreset, RegressionPreset

    if labels is None:
        data = frame[[spec.target, "prediction"]]
        definition = DataDefinition(regression=[Regression(target=spec.target, prediction="prediction")])
        preset: Any = RegressionPreset()
    else:
        # Evidently matches probability columns to labels by name: the report works on labels as text.
        names = {f"probability_{c}": str(c) for c in labels.classes}
        data = frame[[spec.target, "prediction"]].astype(str)
        if labels.binary and "probability" in frame.columns:
            data = data.assign(probability=frame["probability"].to_numpy())
            task: Any = BinaryClassification(
                target=spec.target, prediction_labels="prediction", prediction_probas="probability", pos_label=str(labels.positive)
            )
        else:
            present = [c for c in names if c in frame.columns]
            seen = [str(c) for c in labels.classes if str(c) in set(data[spec.target]) | set(data["prediction"])]
            # A period of one sub-population lacks classes. Evidently 0.7 then fails (a KeyError on the class)
            # on the probability of an absent class, and on a multiclass task with exactly two classes
            # present; the report shows the labels alone, as a two-class report when two are present.
            if len(seen) < len(labels.classes):
                present = []
            data = data.assign(**{names[c]: frame[c].to_numpy() for c in present})
            if len(seen) == 2:
                task = BinaryClassification(target=spec.target, prediction_labels="prediction", pos_label=seen[0])
            else:
                task = MulticlassClassification(
                    target=spec.target, prediction_labels="prediction", prediction_probas=[names[c] for c in present] or None
                )
        definition = DataDefinition(classification=[task])
        preset = ClassificationPreset()
    from airflow_mlops.utils.noise import report_quiet

    with report_quiet():
        snapshot = Report([preset]).run(Dataset.from_pandas(data, data_definition=definition), None)
    with tempfile.TemporaryDirectory() as tmp:
        snapshot.save_html(f"{tmp}/report.html")
        with open(f"{tmp}/report.html", encoding="utf-8") as handle:
            return tables.write_text(handle.read(), uri, conn_id=conn_id)


def _key(text: str) -> str:
    """An MLflow metric key: letters, digits and ``_-./ `` only."""
    return re.sub(r"[^\w\-./ ]", "_", text)


def period_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The numbers of one period's summary as MLflow metric keys: every metric, coverage, the verdict,
    and each judged segment's metric (``segment.<column>.<value>.<metric>``)."""
    out = {f"quality.{k}": float(v) for k, v in summary["metrics"].items()}
    out |= {"quality.coverage": float(summary["coverage"]), "quality.labelled_rows": float(summary["rows"]["labelled"])}
    out["quality.decayed"] = 1.0 if summary["decayed"] else 0.0
    out[f"baseline.{summary['metric']}"] = float(summary["baseline"])
    for segment in summary["segments"]:
        if segment["judged"]:
            out[_key(f"segment.{segment['segment']}.{segment['value']}.{summary['metric']}")] = float(segment[summary["metric"]])
    return out


def record_period(hook: MlflowHook, model_name: str, version: str, period: str, summary: dict[str, Any], context: Context) -> str:
    """Log one period's quality to the version's monitoring run (step = the period's month ordinal, so
    the MLflow UI charts quality over months); replace the period's earlier values, if any.

    :return: the id of the version's monitoring run.
    """
    import datetime as dt

    from mlflow.entities import Metric, RunTag, ViewType

    from airflow_mlops.utils.audit import run_tags

    client = hook.client
    step = month_ordinal(period)
    stamp = int(dt.datetime.strptime(period, "%Y-%m").replace(tzinfo=dt.UTC).timestamp() * 1000)  # the period, not the clock
    experiment_id = hook.get_or_create_experiment(f"mlops/{model_name}")
    found = client.search_runs(
        [experiment_id], f"tags.`{MONITORING_TAG}` = 'quality' and tags.`mlops.model_version` = '{version}'", run_view_type=ViewType.ACTIVE_ONLY
    )
    old = found[0] if found else None
    history: dict[str, dict[int, tuple[float, int]]] = {}
    if old is not None:
        for key in old.data.metrics:
            for point in client.get_metric_history(old.info.run_id, key):
                history.setdefault(key, {})[point.step] = (point.value, point.timestamp)
    new = period_metrics(summary)
    tags = [RunTag(f"mlops.report.{period}", summary.get("report_uri", "")), RunTag("mlops.last_period", period)]
    tags += [RunTag(k, v) for k, v in run_tags(context).items()]
    if old is not None and not any(step in steps for steps in history.values()):
        client.log_batch(old.info.run_id, metrics=[Metric(k, v, stamp, step) for k, v in new.items()], tags=tags)
        return str(old.info.run_id)
    # First record, or a period checked again: a fresh run with every other period's values, then this one's.
    run = client.create_run(
        experiment_id,
        run_name=f"monitor {model_name} v{version}",
        tags={MONITORING_TAG: "quality", "mlops.model_name": model_name, "mlops.model_version": str(version)}
        | ({k: v for k, v in old.data.tags.items() if k.startswith("mlops.report.")} if old is not None else {}),
    )
    kept = [Metric(k, value, ts, s) for k, points in history.items() for s, (value, ts) in points.items() if s != step]
    kept += [Metric(k, v, stamp, step) for k, v in new.items()]
    for start in range(0, len(kept), 900):  # MLflow takes at most 1,000 metrics per batch
        client.log_batch(run.info.run_id, metrics=kept[start : start + 900], tags=tags if start == 0 else [])
    client.set_terminated(run.info.run_id)
    if old is not None:
        client.delete_run(old.info.run_id)
    client.set_model_version_tag(model_name, str(version), VERSION_RUN_TAG, run.info.run_id)
    return str(run.info.run_id)

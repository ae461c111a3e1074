"""Monthly model-quality monitoring: once a scored month's labels have arrived, measure how good its
predictions were, per segment too, against the scoring version's holdout baseline.

Labels arrive after the outcome is known: with ``label_lag_months`` = 1 (default), the run on
2025-04-01 judges 2025-02 (scored on 2025-03-01; its churn known a month later). Confirmed decay
(``consecutive_decayed_months`` in a row) raises the decay signal, an event on the decay Asset, which
schedules ``mlops_retraining`` like drift does: drift watches the inputs, this watches the outcomes.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param

from airflow_mlops import periods, settings
from airflow_mlops.defaults import task_defaults
from airflow_mlops.operators.quality import ModelQualityCheckOperator
from airflow_mlops.operators.signals import RaiseSignalOperator
from airflow_mlops.sensors.partition import DataPartitionSensor

MODEL_NAME = "churn"
DATA = "{{ data_root() }}/" + MODEL_NAME
SPEC = DATA + "/churn_spec.yaml"
MONTH = periods.labelled_month_template()

with DAG(
    dag_id="mlops_model_monitoring",
    description="Measure the churn model's quality on each month once its labels have arrived",
    schedule="@monthly",
    start_date=dt.datetime(2025, 3, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=3,
    tags=["mlops", "monitoring"],
    user_defined_macros=periods.macros(),
    default_args=task_defaults(),
    params={
        "month": periods.month_param("Judge this scored month instead of the one whose labels closed at the logical date."),
        "label_lag_months": Param(
            1, type="integer", minimum=0, maximum=24, title="Label lag (months)",
            description="How long after a scored month its labels are complete.",
        ),
        "metric": Param(
            "roc_auc", type="string", enum=["roc_auc", "f1", "precision", "recall", "accuracy", "log_loss"], title="Metric",
            description="The metric compared with the scoring version's holdout value.",
        ),
        "max_relative_drop": Param(
            0.05, type="number", exclusiveMinimum=0, maximum=1, title="Largest relative drop",
            description="Decay: the metric fell below the holdout value by more than this share of it.",
        ),
        "min_coverage": Param(
            0.5, type="number", exclusiveMinimum=0, maximum=1, title="Minimum label coverage",
            description="Share of the month's predictions that must have a label before it is judged.",
        ),
        "consecutive_decayed_months": Param(
            1, type="integer", minimum=1, maximum=12, title="Decayed months before retraining",
            description="Hysteresis: retraining is triggered only after this many decayed months in a row.",
        ),
    },
) as dag:  # fmt: skip
    wait = DataPartitionSensor(
        task_id="wait_for_labels", uri=DATA + "/labels/month=" + MONTH, poke_interval=settings.partition_poke_interval(),
        timeout=14 * 24 * 3600, deferrable=True,
    )  # fmt: skip
    quality = ModelQualityCheckOperator(
        task_id="quality_check", predictions_uri=DATA + "/predictions/month=" + MONTH, labels_uri=DATA + "/labels/month=" + MONTH,
        spec_uri=SPEC, model_name=MODEL_NAME, period=MONTH, metric="{{ params.metric }}", max_relative_drop="{{ params.max_relative_drop }}",
        min_coverage="{{ params.min_coverage }}", consecutive="{{ params.consecutive_decayed_months }}", on_decay="continue",
    )  # fmt: skip
    wait >> quality >> RaiseSignalOperator(task_id="signal_decay", model_name=MODEL_NAME, kind="decay", check=quality.output)

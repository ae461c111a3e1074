"""Task-group factories: the reference DAGs' sequences as blocks a team drops into its own DAG.

Each returns an Airflow ``TaskGroup`` built from the provider's public operators, in the spirit of
cosmos' ``DbtTaskGroup``: the graph is the library's, the names, URIs and thresholds are the team's,
and ``operator_args`` reaches every task inside (``retries``, ``pool``, connection ids, and for the
tasks that read tables ``require_marker`` / ``csv_options``)::

    from airflow_mlops import periods
    from airflow_mlops.task_groups import batch_scoring_group

    with DAG("my_scoring", schedule="@monthly", params={"month": periods.month_param()}, user_defined_macros=periods.macros(), ...):
        month = "{{ data_root() }}/my_model/monthly/month=" + periods.MONTH
        wait >> validate >> batch_scoring_group(
            model_name="my_model", spec_uri=SPEC, input_uri=month,
            output_uri="{{ data_root() }}/my_model/predictions/month=" + periods.MONTH,
        )

Task ids are prefixed with the group id (``score.plan``) unless ``prefix_group_id=False``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import TaskGroup, TriggerRule, chain

from airflow_mlops.assets import predictions_asset, promoted_asset
from airflow_mlops.operators.inference import MlflowBatchPredictOperator
from airflow_mlops.operators.registry import MlflowPromoteModelOperator
from airflow_mlops.operators.scoring import PARTITION_KEY, BatchScoringPlanOperator, PublishPartitionOperator
from airflow_mlops.operators.signals import (
    AnswerSignalsOperator,
    PendingSignalsOperator,
    RetrainingGateOperator,
    RetrainOnNewSignalsOperator,
)
from airflow_mlops.operators.training import MlflowTrainModelOperator
from airflow_mlops.operators.validation import GxValidateTableOperator
from airflow_mlops.operators.window import TrainingWindowOperator
from airflow_mlops.periods import MONTH_CLOSED_AT

if TYPE_CHECKING:
    from airflow.sdk import Asset

#: ``operator_args`` keys only the tasks that read tables take.
TABLE_ARGS = ("require_marker", "csv_options", "confine_to_data")


def _output(operator: Any) -> Any:
    """``operator.output``, typed loosely: XCom arguments are resolved by Airflow when the task runs."""
    return operator.output


def _split(operator_args: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(for every task, for the table-reading tasks too)``."""
    args = dict(operator_args or {})
    common = {k: v for k, v in args.items() if k not in TABLE_ARGS}
    return common, args


def batch_scoring_group(
    *,
    model_name: str,
    spec_uri: str,
    input_uri: str,
    output_uri: str,
    model_ref: str = "champion",
    shadow_ref: str | None = None,
    scored_at: str | None = MONTH_CLOSED_AT,
    outlets: list[Asset] | None = None,
    group_id: str = "score",
    operator_args: dict[str, Any] | None = None,
    **task_group_kwargs: Any,
) -> TaskGroup:
    """Score one partition and publish it: ``plan`` (pin one model version, list the files, open the
    output partition) -> ``predict`` (:class:`~airflow_mlops.operators.inference.MlflowBatchPredictOperator`
    mapped over the files) -> ``publish`` (one compare-and-swap of the partition's manifest, the
    predictions Asset event). The published partition is what
    :class:`~airflow_mlops.operators.quality.ModelQualityCheckOperator`, lineage and the MLOps page read.

    :param model_name: registered model.
    :param spec_uri: FeatureSpec YAML (templated in the tasks).
    :param input_uri: the partition to score (templated).
    :param output_uri: the partition to publish the predictions as (templated).
    :param model_ref: alias or version that scores, pinned once for every file (templated).
    :param shadow_ref: alias or version scored beside it (templated; empty = none).
    :param scored_at: the instant written in every row's ``scored_at`` (templated; default the month's
        close, :data:`airflow_mlops.periods.MONTH_CLOSED_AT`, which needs :func:`airflow_mlops.periods.macros`).
    :param outlets: the publish task's outlets (default the model's predictions Asset).
    :param group_id: the task group's id.
    :param operator_args: keyword arguments for every task of the group.
    :param task_group_kwargs: passed to ``TaskGroup`` (``prefix_group_id``, ``tooltip``...).
    :return: the ``TaskGroup`` (``plan``, ``predict``, ``publish``).
    """
    common, reading = _split(operator_args)
    with TaskGroup(group_id=group_id, **task_group_kwargs) as group:
        plan = BatchScoringPlanOperator(
            task_id="plan", input_uri=input_uri, output_uri=output_uri, model_name=model_name, model_ref=model_ref, shadow_ref=shadow_ref, **reading
        )
        # The reading options reach predict through the plan's output: partial() drops default_args
        # that are not BaseOperator's, so a DAG's default_args={"csv_options": ...} would miss it.
        predict = MlflowBatchPredictOperator.partial(
            task_id="predict", spec_uri=spec_uri, model_name=model_name, scored_at=scored_at, **common
        ).expand_kwargs(plan.output)
        PublishPartitionOperator(
            task_id="publish", partition=_output(plan)[PARTITION_KEY], results=predict.output,
            outlets=predictions_asset(model_name) if outlets is None else outlets, **common,
        )  # fmt: skip
    return group


def _route(decision: dict[str, Any], dry_run: Any, require_approval: Any, approve: str, promote: str) -> list[str]:
    """Dry run or already champion: stop. Otherwise promote, via a person when approval is required."""
    truthy = ("true", "1", "yes")
    if str(dry_run).strip().lower() in truthy or decision["decision"] == "already_champion":
        return []
    if str(require_approval).strip().lower() in truthy and decision["decision"] == "would_promote":
        return [approve]
    return [promote]  # records a rejection too


def retraining_group(
    *,
    model_name: str,
    spec_uri: str,
    features_uri: str,
    labels_uri: str | None,
    snapshot_uri: str | None,
    windows_uri: str,
    window_months: int | str = 3,
    include_snapshot: bool | str = False,
    end_month: str | None = None,
    estimator: str | None = None,
    estimator_params: dict[str, Any] | str | None = None,
    test_size: float | str = 0.2,
    metric: str | None = None,
    min_value: float | str | None = None,
    min_absolute_change: float | str | None = None,
    min_relative_change: float | str | None = None,
    dry_run: bool | str = False,
    require_approval: bool | str = False,
    force: bool | str = False,
    promotion_pool: str | None = None,
    group_id: str = "retrain",
    operator_args: dict[str, Any] | None = None,
    **task_group_kwargs: Any,
) -> TaskGroup:
    """The retraining sequence: ``pending_signals`` -> ``assemble_window`` -> ``nothing_new`` -> ``validate``
    -> ``train`` -> ``evaluate`` -> [``approve``] -> ``promote`` -> ``answer_signals`` -> ``retrain_again``.

    It trains only when there is something new to learn
    (:class:`~airflow_mlops.operators.signals.RetrainingGateOperator`), records which signals each
    decision answered, and queues one more run for signals raised meanwhile. Put it in a DAG scheduled
    on the model's drift and decay Assets (``drift_asset(m) | decay_asset(m)``, alone or with a time
    schedule) with ``max_active_runs=1``.

    :param model_name: registered model; its signal Assets are named by it.
    :param spec_uri: FeatureSpec YAML.
    :param features_uri: a month's features partition, with ``{month}`` (``.../monthly/month={month}``).
    :param labels_uri: a month's labels partition, with ``{month}``; ``None`` when the features hold the target.
    :param snapshot_uri: the labelled snapshot trained on before any month is labelled (or with ``include_snapshot``).
    :param windows_uri: where each run writes its window (a per-run folder is added).
    :param window_months: labelled months to learn from before the newest one, the holdout (0 = the snapshot, split).
    :param include_snapshot: add the snapshot to the window's months.
    :param end_month: the newest month considered; default the newest period a pending signal names
        (the month that drifted or decayed), else the month of the run.
    :param estimator: scikit-learn estimator class (default from the spec's task).
    :param estimator_params: its hyperparameters (dict or JSON).
    :param test_size: holdout share when the window is the snapshot alone.
    :param metric: promotion metric (default the spec task's).
    :param min_value: the challenger must reach it.
    :param min_absolute_change: required improvement over the champion.
    :param min_relative_change: required relative improvement, 0..1.
    :param dry_run: evaluate, change no alias, answer no signal.
    :param require_approval: a person approves a winning challenger before promotion (Airflow's ``ApprovalOperator``).
    :param force: train even when nothing is new.
    :param promotion_pool: the pool of the promote task (e.g. :func:`~airflow_mlops.operators.registry.promotion_pool`);
        default the task's default pool.
    :param group_id: the task group's id.
    :param operator_args: keyword arguments for every task of the group.
    :param task_group_kwargs: passed to ``TaskGroup``.
    :return: the ``TaskGroup``.

    Every parameter but ``model_name`` and ``group_id`` may be a template (``"{{ params.window_months }}"``).
    """
    from airflow.providers.standard.operators.hitl import ApprovalOperator
    from airflow.sdk import task

    common, reading = _split(operator_args)
    thresholds = {"metric": metric, "min_value": min_value, "min_absolute_change": min_absolute_change, "min_relative_change": min_relative_change}
    with TaskGroup(group_id=group_id, **task_group_kwargs) as group:
        evaluate_id, approve_id, promote_id, pending_id = (group.child_id(t) for t in ("evaluate", "approve", "promote", "pending_signals"))
        if end_month is None:
            end_month = f"{{{{ ti.xcom_pull(task_ids='{pending_id}')['newest_period'] or '' }}}}"
        pending = PendingSignalsOperator(task_id="pending_signals", model_name=model_name, **common)
        window = TrainingWindowOperator(
            task_id="assemble_window", features_uri=features_uri, labels_uri=labels_uri, snapshot_uri=snapshot_uri, spec_uri=spec_uri,
            output_uri=windows_uri.rstrip("/") + "/{{ run_id | replace(':', '_') | replace('+', '_') }}",
            window_months=window_months, include_snapshot=include_snapshot, end_month=end_month, **reading,
        )  # fmt: skip
        windowed = _output(window)  # one XCom per key: windowed["train_uri"]
        gate = RetrainingGateOperator(
            task_id="nothing_new", model_name=model_name, window=window.output, pending=pending.output, estimator=estimator,
            estimator_params=estimator_params, force=force, **common,
        )
        validate = GxValidateTableOperator(
            task_id="validate", table_uri=windowed["train_uri"], spec_uri=spec_uri, labelled=True, **({"retries": 0} | reading)
        )
        train = MlflowTrainModelOperator(
            task_id="train", train_uri=windowed["train_uri"], holdout_uri=windowed["holdout_uri"], data_tags=_output(gate)["tags"],
            spec_uri=spec_uri, model_name=model_name, estimator=estimator,
            estimator_params=estimator_params, test_size=test_size, **reading,
        )  # fmt: skip
        evaluate = MlflowPromoteModelOperator(
            task_id="evaluate", model_name=model_name, spec_uri=spec_uri, evaluate_only=True, on_reject="continue", **(reading | thresholds)
        )
        routed = task.branch(task_id="route")(_route)(_output(evaluate), dry_run, require_approval, approve_id, promote_id)
        approve = ApprovalOperator(
            task_id="approve",
            subject=f"Promote {model_name} v{{{{ ti.xcom_pull(task_ids='{evaluate_id}')['challenger_version'] }}}} to champion?",
            body=f"{{{{ ti.xcom_pull(task_ids='{evaluate_id}')['reason'] }}}}",
            **({"retries": 0} | common),
        )
        promote = MlflowPromoteModelOperator(
            task_id="promote", model_name=model_name, spec_uri=spec_uri, evaluation=_output(evaluate),
            approver=f"{{{{ ((ti.xcom_pull(task_ids='{approve_id}') or {{}}).get('responded_by_user') or {{}}).get('name', '') }}}}",
            on_reject="skip", outlets=[promoted_asset(model_name)], trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
            **(reading | thresholds | ({"pool": promotion_pool} if promotion_pool else {})),
        )  # fmt: skip
        answered = AnswerSignalsOperator(task_id="answer_signals", model_name=model_name, pending=pending.output, decision_task_id=promote_id, **common)
        again = RetrainOnNewSignalsOperator(task_id="retrain_again", model_name=model_name, pending=pending.output, disabled=dry_run, **common)
        chain(pending, window, gate, validate, train, evaluate, routed, [approve, promote])
        approve >> promote >> answered >> again
    return group

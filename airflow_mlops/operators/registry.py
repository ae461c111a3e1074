"""Promote a challenger over the champion (MLflow evaluation + thresholds), or roll the champion back.

The two operators that move the champion alias share their audit and lineage steps, so they stay in one
module (about 400 lines); the judging itself is :mod:`airflow_mlops.evaluation`, the registry calls
:mod:`airflow_mlops.hooks.registry`."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from airflow_mlops import tables
from airflow_mlops.exceptions import ModelRejectedError
from airflow_mlops.hooks import registry
from airflow_mlops.links.mlflow import MlflowModelVersionLink, MlflowRunLink
from airflow_mlops.operators.base import (
    READ_TEMPLATE_FIELDS,
    MlopsBaseOperator,
    MlopsTableOperator,
    check_outcome,
    mlops_template_fields,
    run_tags,
)
from airflow_mlops.values import as_mapping, optional_float, optional_text

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from airflow_mlops.spec import FeatureSpec

def promotion_pool(model_name: str) -> str:
    """The Airflow pool (one slot) that serialises the promotions of ``model_name``: ``mlops_promote_<model>``.

    Give a promotion task ``pool=promotion_pool(name)`` and create the pool once per deployment
    (``airflow pools set mlops_promote_churn 1 "promotions of churn, one at a time"``; docker-compose's
    ``airflow-init`` does it for the reference DAG): the scheduler then runs one promotion of a model at
    a time, whatever the DAG runs that ask. The scheduler does not run a task whose pool is missing (the
    UI flags the DAG with a "non-existent pool" warning). The model's promotion lock
    (:meth:`~airflow_mlops.hooks.registry.ModelRegistry.promotion_lock`) stays as the second line, for
    promotions outside the pool.
    """
    return f"mlops_promote_{model_name}"


class MlflowPromoteModelOperator(MlopsTableOperator):
    """Evaluate the challenger and the current champion on the same holdout with
    ``mlflow.models.evaluate``, judge with ``mlflow.validate_evaluation_results`` / ``MetricThreshold``,
    and move the ``champion`` alias only when the challenger wins.

    No champion yet: the challenger is promoted if the minimum value holds. On promotion the old
    champion gets ``previous_champion``. The champion alias is re-read just before switching; if it
    moved during evaluation, this run lost a race and records so (with the run that won). The re-read
    and the switch happen under the model's promotion lock (:meth:`~airflow_mlops.hooks.registry.ModelRegistry.promotion_lock`),
    because MLflow has no compare-and-set on aliases. Every decision is written as
    ``mlops.decision.*`` tags on the challenger version (decision, reason, metric, both scores,
    compared-against version, DAG run, approver).

    :param model_name: registered model (templated).
    :param spec_uri: FeatureSpec YAML: target and task (templated).
    :param model_ref: the alias or version to judge, the challenger (templated; default ``challenger``).
    :param holdout_uri: labelled table both models are scored on (templated); default: the holdout
        the challenger's training run logged.
    :param metric: metric to compare (default ``roc_auc`` / ``rmse``) (templated).
    :param min_value: the challenger's metric must reach this (templated).
    :param min_absolute_change: required improvement over the champion (templated).
    :param min_relative_change: required relative improvement, 0..1 (templated).
    :param greater_is_better: default from the metric (templated).
    :param evaluate_only: a dry run: evaluate and decide, change nothing in the registry (templated).
    :param on_reject: what to do when the challenger loses (one of :data:`~airflow_mlops.operators.base.OUTCOMES`):
        ``fail`` (raise :class:`~airflow_mlops.exceptions.ModelRejectedError`), ``skip``, or ``continue``
        (default: log a warning, succeed; the decision says ``rejected``) (templated).
    :param approver: who approved (recorded) (templated).
    :param bool|None require_marker: ``holdout_uri``'s readiness policy (default ``[mlops] require_marker``).
    :param dict|str|None csv_options: CSV dialect of ``holdout_uri`` (see :class:`~airflow_mlops.operators.base.MlopsTableOperator`).
    :param max_segment_regression: a challenger that wins overall is still rejected when, on a value of
        one of the spec's ``segments`` with at least ``min_segment_rows`` holdout rows, it trails the
        champion by more than this (metric units); the decision names the segment and both scores (templated).
    :param min_segment_rows: holdout rows a segment needs to be judged.
    :param evaluation: the result of an earlier dry run of this operator (e.g. before a human
        approval); reused when it judged the same challenger against the same champion.
    :return: (XCom) the decision: ``{"model_name", "decision" (promoted | rejected | already_champion
        | would_promote | would_reject), "reason", "metric", "challenger_version", "challenger_score",
        "champion_version", "champion_score", "dry_run", "evaluation_run_id"}``.
    """

    template_fields: Sequence[str] = mlops_template_fields(
        "model_name", "spec_uri", "model_ref", "holdout_uri", "metric", "min_value", "min_absolute_change",
        "min_relative_change", "greater_is_better", "evaluate_only", "on_reject", "approver", "evaluation",
        "max_segment_regression", *READ_TEMPLATE_FIELDS,
    )  # fmt: skip
    operator_extra_links = (MlflowRunLink(), MlflowModelVersionLink())
    ui_color = "#fff3c4"
    #: MLflow evaluation results of the models being compared, by version (set by each evaluation).
    _results: dict[str, Any]

    def __init__(
        self,
        *,
        model_name: str,
        spec_uri: str,
        model_ref: str = registry.CHALLENGER,
        holdout_uri: str | None = None,
        metric: str | None = None,
        min_value: float | str | None = None,
        min_absolute_change: float | str | None = None,
        min_relative_change: float | str | None = None,
        greater_is_better: bool | str | None = None,
        evaluate_only: bool | str = False,
        on_reject: str = "continue",
        approver: str | None = None,
        evaluation: dict[str, Any] | str | None = None,
        max_segment_regression: float | str | None = None,
        min_segment_rows: int = 50,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_segment_regression = max_segment_regression
        self.min_segment_rows = min_segment_rows
        self.model_name = model_name
        self.spec_uri = spec_uri
        self.model_ref = model_ref
        self.holdout_uri = holdout_uri
        self.metric = metric
        self.min_value = min_value
        self.min_absolute_change = min_absolute_change
        self.min_relative_change = min_relative_change
        self.greater_is_better = greater_is_better
        self.evaluate_only = evaluate_only
        self.on_reject = on_reject
        self.approver = approver
        self.evaluation = evaluation

    # -- evaluation --------------------------------------------------------------------------------

    def _holdout(self, spec: FeatureSpec, challenger_run_id: str) -> pd.DataFrame:
        columns = spec.feature_columns + [spec.target]
        if self.holdout_uri:
            return self.reader.read(self.holdout_uri, columns=columns)
        import mlflow

        from airflow_mlops.hooks.mlflow import HOLDOUT_ARTIFACT

        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(f"runs:/{challenger_run_id}/{HOLDOUT_ARTIFACT}", dst_path=tmp)
            return tables.read_table(local, columns=columns)

    def _evaluate(self, spec: FeatureSpec, metric: str, rules: dict[str, Any] | None, challenger: Any, champion: str | None, context: Context) -> dict[str, Any]:
        import mlflow

        from airflow_mlops import evaluation
        from airflow_mlops.metrics import METRICS, LabelSpace
        from airflow_mlops.utils import modeling

        data = self._holdout(spec, challenger.run_id)
        data = modeling.feature_frame(data, spec).assign(**{spec.target: data[spec.target].to_numpy()})
        labels = None
        if spec.task == "classification":
            try:
                labels = LabelSpace.from_tags(challenger.tags) or LabelSpace.resolve(
                    spec, data[spec.target].unique(), where=f"the holdout of v{challenger.version}"
                )
            except ValueError as exc:
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(f"{exc} (no retry: the data or the spec must change)") from exc
        experiment_id = self.mlflow_hook.get_or_create_experiment(f"mlops/{self.model_name}")
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"promote {self.model_name} v{challenger.version}", tags=run_tags(context)
        ) as run:
            name = METRICS[metric].mlflow_name
            try:
                by_labels = evaluation.lacks_classes(spec, data, labels, metric, holdout=self.holdout_uri or "the training split")
            except ValueError as exc:
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(f"{exc} (no retry)") from exc
            results = {}
            challenger_score, results[challenger.version] = evaluation.score(
                self.model_name, challenger.version, spec, data, labels, experiment_id, mlflow_metric=name, by_labels=by_labels
            )
            champion_score = None
            if champion:
                champion_score, results[champion] = evaluation.score(
                    self.model_name, champion, spec, data, labels, experiment_id, mlflow_metric=name, by_labels=by_labels
                )
            promote, reason = evaluation.judge(rules, results, challenger.version, champion)
            segment = None
            limit = optional_float(self.max_segment_regression, "max_segment_regression")
            if promote and champion and limit is not None and spec.segments:
                segment = evaluation.worst_segment(
                    self.model_name, spec, data, labels, challenger.version, champion, metric, min_segment_rows=self.min_segment_rows
                )
                if segment is not None and segment["regression"] > limit:
                    promote = False
                    reason = (
                        f"{metric} on segment {segment['segment']}={segment['value']} ({segment['rows']} holdout rows): challenger "
                        f"{segment['challenger_score']:.4f} vs champion {segment['champion_score']:.4f}, a regression of "
                        f"{segment['regression']:.4f} > max_segment_regression {limit} (overall: {reason})"
                    )
            mlflow.set_tags({"mlops.decision": "promote" if promote else "reject", "mlops.reason": reason[:5000]})
        MlflowRunLink.persist(context, self.mlflow_hook.run_url(experiment_id, run.info.run_id))
        return {
            "promote": promote,
            "reason": reason,
            "challenger_score": challenger_score,
            "champion_score": champion_score,
            "evaluation_run_id": run.info.run_id,
            "holdout_rows": len(data),
            "segment": segment,
        }

    # -- execute -----------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops import evaluation, metrics

        check_outcome("on_reject", self.on_reject)
        self.reset_links(context)
        dry_run = str(self.evaluate_only).lower() in ("true", "1", "yes")
        spec = self.load_spec(self.spec_uri)
        try:
            chosen = metrics.metric(self.metric or metrics.default_metric(spec.task), spec.task)
        except ValueError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{exc} (no retry: a configuration error does not heal)") from exc
        metric = chosen.name
        greater = chosen.greater_is_better if optional_text(self.greater_is_better) is None else str(self.greater_is_better).lower() in ("true", "1")

        with self.mlflow_hook.activated():
            hook = self.mlflow_hook
            challenger = hook.registry.resolve_version(self.model_name, self.model_ref)
            champion = hook.registry.alias_version(self.model_name, registry.CHAMPION)
            MlflowModelVersionLink.persist(context, self.mlflow_hook.model_version_url(self.model_name, challenger.version))
            base = {
                "model_name": self.model_name, "metric": metric, "challenger_version": str(challenger.version),
                "champion_version": champion, "dry_run": dry_run,
            }  # fmt: skip
            if champion == str(challenger.version):
                self.log.info("%s v%s is already the champion; nothing to do", self.model_name, champion)
                return base | {"decision": "already_champion", "reason": "the challenger is already the champion"}

            dag_run = f"{context['ti'].dag_id}/{context['ti'].run_id}"
            recorded = None if dry_run else evaluation.recorded_rejection(challenger, dag_run, metric, champion)
            if recorded is not None:  # a rerun of this decision: same challenger, champion and DAG run
                self.log.info("%s v%s was already rejected by this DAG run; nothing to do", self.model_name, challenger.version)
                return self._reject(context, base | recorded)

            try:
                rules = evaluation.thresholds(
                    metric, greater, champion is not None, min_value=self.min_value, min_absolute_change=self.min_absolute_change,
                    min_relative_change=self.min_relative_change,
                )
            except ValueError as exc:
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(f"{exc} (no retry: a configuration error does not heal)") from exc
            earlier = as_mapping(self.evaluation, "evaluation")
            if earlier and earlier.get("challenger_version") == str(challenger.version) and earlier.get("champion_version") == champion:
                # The scores are reused; the verdict is this task's own, from its own thresholds.
                verdict = evaluation.rejudge(rules, metric, earlier, str(challenger.version), champion)
                run = hook.client.get_run(verdict["evaluation_run_id"])
                MlflowRunLink.persist(context, self.mlflow_hook.run_url(run.info.experiment_id, run.info.run_id))
                self.log.info("Reusing the scores of evaluation run %s", verdict["evaluation_run_id"])
            else:
                verdict = self._evaluate(spec, metric, rules, challenger, champion, context)
            self.log.info(
                "%s: challenger v%s %s=%s vs champion %s %s=%s -> %s (%s)", self.model_name, challenger.version, metric,
                verdict["challenger_score"], champion, metric, verdict["champion_score"], "promote" if verdict["promote"] else "reject", verdict["reason"],
            )  # fmt: skip
            decision = base | {k: v for k, v in verdict.items() if k != "promote"} | {"approver": self.approver or None}
            if dry_run:
                return decision | {"decision": "would_promote" if verdict["promote"] else "would_reject"}

            # Only a promotion moves aliases; it does so under the model's promotion lock, so of two
            # racing promotions exactly one switches and the other sees the moved champion.
            lock = hook.registry.promotion_lock(self.model_name, holder=dag_run) if verdict["promote"] else nullcontext()
            with lock:
                if verdict["promote"]:
                    current = hook.registry.alias_version(self.model_name, registry.CHAMPION)
                    if current == str(challenger.version):  # promoted meanwhile by another try of this decision
                        self.log.info("%s v%s became the champion meanwhile; nothing to do", self.model_name, current)
                        return base | {"decision": "already_champion", "reason": "the challenger became the champion meanwhile"}
                    if current != champion:
                        verdict["promote"] = False
                        winner = hook.registry.get_version(self.model_name, current).tags.get("mlops.decision.dag_run") if current else None
                        decision["reason"] = (
                            f"lost a race: the champion moved from v{champion} to v{current} during evaluation"
                            + (f" (promoted by {winner})" if winner else "")
                        )
                    else:
                        hook.registry.crown(self.model_name, challenger.version, replaced=champion)
                decision["decision"] = "promoted" if verdict["promote"] else "rejected"
                audit = {k: decision[k] for k in ("decision", "reason", "metric", "challenger_score", "champion_score", "approver", "evaluation_run_id")}
                audit |= {"compared_against": champion or "none", "dag_run": dag_run}
                if decision.get("segment"):
                    worst = decision["segment"]
                    audit |= {
                        "segment": f"{worst['segment']}={worst['value']}", "segment_challenger_score": worst["challenger_score"],
                        "segment_champion_score": worst["champion_score"],
                    }  # fmt: skip
                hook.registry.record_decision(self.model_name, challenger.version, audit)

        if verdict["promote"]:
            self.log.info("Promoted %s v%s to champion (previous: %s)", self.model_name, challenger.version, champion)
            for outlet in self.outlets:  # the asset event says which model, version and score
                context["outlet_events"][outlet].extra = {
                    k: decision[k] for k in ("model_name", "challenger_version", "metric", "challenger_score", "champion_version")
                }
            return decision
        return self._reject(context, decision)

    def _reject(self, context: Context, decision: dict[str, Any]) -> dict[str, Any]:
        message = f"challenger v{decision['challenger_version']} rejected: {decision['reason']}"
        return self.settle(context, decision, self.on_reject, ModelRejectedError(message, model_name=self.model_name, decision=decision))

    # -- lineage -----------------------------------------------------------------------------------

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the challenger and champion versions and the holdout (when given as a table) as
        inputs, the challenger version as output when a decision was recorded on it, and the decision
        (promoted/rejected, reason, scores, champion before and after) as the ``mlops_promotion`` run facet."""
        from airflow_mlops import lineage

        if not lineage.available():
            return None
        decision, tracking_uri = self.lineage_summary, lineage.resolved_tracking_uri(self)
        spec = self.lineage_spec
        holdout_uri = optional_text(self.holdout_uri)
        holdout = [lineage.input_dataset(holdout_uri, {"schema": lineage.schema_facet(spec)} if spec else {})] if holdout_uri else []
        if not decision or not tracking_uri:
            return lineage.operator_lineage(inputs=holdout)
        challenger, before = decision["challenger_version"], decision.get("champion_version")
        inputs = [lineage.model_version_dataset(tracking_uri, self.model_name, v) for v in (challenger, before) if v]
        kind = decision["decision"]
        lost_race = kind == "rejected" and str(decision.get("reason", "")).startswith("lost a race")
        after = challenger if kind in ("promoted", "already_champion") else None if lost_race else before  # a race's winner is not known here
        recorded = kind in ("promoted", "rejected")  # the audit tags were written on the challenger version
        outputs = [lineage.model_version_dataset(tracking_uri, self.model_name, challenger, output=True)] if recorded else []
        facet = lineage.custom_facet(
            "mlops_promotion", modelName=self.model_name, decision=kind, reason=decision.get("reason"), metric=decision.get("metric"),
            challengerVersion=challenger, challengerScore=decision.get("challenger_score"), championScore=decision.get("champion_score"),
            championBefore=before, championAfter=after, dryRun=bool(decision.get("dry_run")), approver=decision.get("approver"),
            evaluationRunId=decision.get("evaluation_run_id"),
        )  # fmt: skip
        return lineage.operator_lineage(inputs=[*inputs, *holdout], outputs=outputs, run_facets={"mlops_promotion": facet})


class MlflowRollbackModelOperator(MlopsBaseOperator):
    """Put the ``champion`` alias back on ``previous_champion`` (or on the version ``model_ref`` names).

    The replaced champion becomes ``previous_champion`` (so a rollback can itself be undone) and the
    restored version gets ``mlops.decision.*`` tags (decision ``rollback``, reason, replaced version,
    DAG run), like a promotion.

    :param model_name: registered model (templated).
    :param model_ref: the version or alias to restore; default the ``previous_champion`` alias (templated).
    :param reason: why, recorded in the tags (templated).
    :return: (XCom) ``{"model_name", "champion_version", "replaced_version", "reason"}``.
    """

    template_fields: Sequence[str] = mlops_template_fields("model_name", "model_ref", "reason")
    operator_extra_links = (MlflowModelVersionLink(),)

    def __init__(self, *, model_name: str, model_ref: str | int | None = None, reason: str = "manual rollback", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.model_ref = model_ref
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        self.reset_links(context)
        with self.mlflow_hook.activated():
            hook = self.mlflow_hook
            target = hook.registry.resolve_version(self.model_name, self.model_ref or registry.PREVIOUS_CHAMPION)
            dag_run = f"{context['ti'].dag_id}/{context['ti'].run_id}"
            with hook.registry.promotion_lock(self.model_name, holder=dag_run):  # no promotion in between
                current = hook.registry.alias_version(self.model_name, registry.CHAMPION)
                if current == str(target.version):
                    return {"model_name": self.model_name, "champion_version": current, "replaced_version": None, "reason": "already the champion"}
                hook.registry.crown(self.model_name, target.version, replaced=current)
                hook.registry.record_decision(
                    self.model_name, target.version,
                    {"decision": "rollback", "reason": self.reason, "compared_against": current or "none", "dag_run": dag_run},
                )  # fmt: skip
        MlflowModelVersionLink.persist(context, self.mlflow_hook.model_version_url(self.model_name, target.version))
        self.log.info("Rolled %s champion back from v%s to v%s: %s", self.model_name, current, target.version, self.reason)
        return {"model_name": self.model_name, "champion_version": str(target.version), "replaced_version": current, "reason": self.reason}

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the restored version as output, and the rollback (reason, champion before and
        after) as the ``mlops_promotion`` run facet."""
        from airflow_mlops import lineage

        if not lineage.available():
            return None
        summary, tracking_uri = self.lineage_summary, lineage.resolved_tracking_uri(self)
        if not summary or not tracking_uri:
            return None
        restored = summary["champion_version"]
        unchanged = summary["replaced_version"] is None and summary["reason"] == "already the champion"
        before = restored if unchanged else summary["replaced_version"]
        facet = lineage.custom_facet(
            "mlops_promotion", modelName=self.model_name, decision="rollback", reason=summary["reason"], championBefore=before, championAfter=restored
        )
        output = lineage.model_version_dataset(tracking_uri, self.model_name, restored, output=True)
        return lineage.operator_lineage(outputs=[output], run_facets={"mlops_promotion": facet})

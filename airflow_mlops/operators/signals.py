"""Retraining signals as tasks: raise one from a check, list the pending ones, decide whether there is
anything new to learn, record that a decision answered them, and queue the next run for signals
raised meanwhile. How signals are kept: :mod:`airflow_mlops.signals`.

The Assets are named by the model, so ``model_name`` is a plain string here (not templated): Airflow
must know a task's inlets and outlets when it parses the DAG.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import TriggerRule

from airflow_mlops import signals
from airflow_mlops.assets import decay_asset, drift_asset
from airflow_mlops.operators.base import MlopsBaseOperator, check_choice, mlops_template_fields
from airflow_mlops.values import optional_text

if TYPE_CHECKING:
    from airflow.sdk import Asset, Context

#: What each kind of signal carries from its check's summary.
FACTS = {
    "drift": ("period", "model_version", "share", "drifted_columns", "report_uri"),
    "decay": ("period", "model_version", "metric", "value", "baseline", "report_uri"),
}
#: The check summary's verdict, named when no signal is raised.
VERDICT = {"drift": "drift_detected", "decay": "decayed"}


def signal_assets(model_name: str) -> list[Asset]:
    """The Assets whose events are ``model_name``'s retraining signals: drift, then decay."""
    return [drift_asset(model_name), decay_asset(model_name)]


def _skip(reason: str) -> Any:
    from airflow.sdk.exceptions import AirflowSkipException

    raise AirflowSkipException(reason)


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


class RaiseSignalOperator(MlopsBaseOperator):
    """Raise a retraining signal when a check says so: an event on the model's drift or decay Asset
    (its ``extra`` carries the period, the model version and what the check found), which schedules
    every DAG that waits on that Asset (the retraining DAG). Skipped when the check does not ask for
    retraining, and when the same signal (kind, period, model version and its MLflow run) was raised
    before: scoring or judging a month again does not raise it twice.

    :param model_name: the model (a plain string: the Asset is known at parse time).
    :param kind: ``drift`` (the check is :class:`~airflow_mlops.operators.drift.EvidentlyDriftCheckOperator`)
        or ``decay`` (:class:`~airflow_mlops.operators.quality.ModelQualityCheckOperator`).
    :param check: the check's summary (``check_task.output``; templated).
    :return: (XCom) the signal raised: ``{"kind", "model_name", "period", "model_version", "model_run_id"}``
        and the check's facts (drift: share, drifted columns; decay: metric, value, baseline; the report).
    """

    template_fields: Sequence[str] = mlops_template_fields("check")
    ui_color = "#fde2e4"

    def __init__(self, *, model_name: str, kind: str, check: Any, **kwargs: Any) -> None:
        check_choice("kind", kind, signals.KINDS)  # a parse-time literal: it picks the Asset
        asset = drift_asset(model_name) if kind == "drift" else decay_asset(model_name)
        kwargs.setdefault("outlets", [asset])
        kwargs.setdefault("inlets", [asset])
        super().__init__(**kwargs)
        self.model_name = model_name
        self.kind = kind
        self.check = check
        self.asset = asset

    def execute(self, context: Context) -> dict[str, Any]:
        summary = dict(self.check or {})
        if not summary.get("trigger_retraining"):
            verdict = VERDICT[self.kind]
            return _skip(f"no retraining signal for {summary.get('period')} ({verdict}: {summary.get(verdict)})")
        signal = {"kind": self.kind, "model_name": self.model_name} | {k: summary.get(k) for k in FACTS[self.kind]}
        if signal["model_version"] is not None:  # the run names the version for good: a registry rebuilt from scratch reuses numbers
            signal["model_run_id"] = self.mlflow_hook.registry.get_version(self.model_name, str(signal["model_version"])).run_id
        same = ("kind", "period", "model_version", "model_run_id")
        for earlier in signals.history(context["inlet_events"][self.asset]):
            if all(str(earlier.get(k)) == str(signal[k]) for k in same):
                return _skip(f"{signals.key(signal)} (v{signal['model_version']}) was raised already: event {earlier['event_id']} by {earlier['source']}")
        context["outlet_events"][self.asset].extra = signal
        self.log.info("Raised the retraining signal %s of %s v%s", signals.key(signal), self.model_name, signal["model_version"])
        return signal


class PendingSignalsOperator(MlopsBaseOperator):
    """List the model's retraining signals no decision has answered yet: the events on its drift and decay
    Assets newer than its watermark (:mod:`airflow_mlops.signals`), whether or not Airflow delivered
    them to this run.

    :param model_name: the model (a plain string: the Assets are known at parse time).
    :return: (XCom) ``{"signals" (pending, oldest first), "answered" (the answered signals' names),
        "watermark", "newest_event" (the id of the newest event seen, answered or not), "newest_period"
        (the newest period a pending signal names, ``None`` without one)}``.
    """

    template_fields: Sequence[str] = mlops_template_fields()
    ui_color = "#fde2e4"

    def __init__(self, *, model_name: str, **kwargs: Any) -> None:
        kwargs.setdefault("inlets", signal_assets(model_name))
        super().__init__(**kwargs)
        self.model_name = model_name

    def execute(self, context: Context) -> dict[str, Any]:
        found = sorted(
            (s for asset in signal_assets(self.model_name) for s in signals.history(context["inlet_events"][asset])),
            key=lambda s: s["event_id"],
        )
        # With no signal there is nothing to compare with the watermark. Reading it anyway would fail on a
        # first run under MLflow's basic-auth: a model that does not exist yet reads as "permission denied".
        watermark = signals.parse_watermark(self.mlflow_hook.registry.model_tag(self.model_name, signals.WATERMARK_TAG)) if found else 0
        answered, pending = signals.split(found, watermark)
        self.log.info("Pending signals of %s: %s (answered through event %d)", self.model_name, ", ".join(signals.distinct(pending)) or "none", watermark)
        newest = max([watermark, *(s["event_id"] for s in found)])
        return {
            "signals": pending, "answered": signals.distinct(answered), "watermark": watermark, "newest_event": newest,
            "newest_period": max((str(s["period"]) for s in pending), default=None),
        }  # fmt: skip


def answer(hook: Any, model_name: str, pending: dict[str, Any], version: str | None) -> list[str]:
    """Move ``model_name``'s watermark past the ``pending`` signals (a :class:`PendingSignalsOperator`
    result) and add their names to ``version``'s ``mlops.signals`` tag (the decided version whose
    decision answers them). Returns the names.

    The watermark only moves forward: a run that answers older events than another already did changes nothing.
    """
    if not pending["signals"]:
        return []
    names = signals.distinct(pending["signals"])
    through = max([0, *(s["event_id"] for s in pending["signals"])])
    current = signals.parse_watermark(hook.registry.model_tag(model_name, signals.WATERMARK_TAG))
    if through > current:
        hook.registry.set_model_tag(model_name, signals.WATERMARK_TAG, str(through))
    if version and names:
        earlier = (hook.registry.get_version(model_name, version).tags or {}).get(signals.ANSWERED_TAG) or ""
        merged = signals.distinct({"kind": n.split(" ", 1)[0], "period": n.split(" ", 1)[1]} for n in [*filter(None, earlier.split(", ")), *names])
        hook.registry.set_version_tag(model_name, version, signals.ANSWERED_TAG, ", ".join(merged))
    return names


#: Version tags that say what a version learnt from and how: the window's (months, holdout, snapshot) plus these.
SNAPSHOT_URI_TAG = "mlops.window.snapshot_uri"
TRAINING_CONFIG_TAG = "mlops.training.config"


def training_config(estimator: Any, estimator_params: Any) -> str:
    """A short digest of the estimator and its hyperparameters (``"default"`` for the spec task's estimator)."""
    import hashlib
    import json

    from airflow_mlops.values import as_mapping

    params = as_mapping(estimator_params or {}, "estimator_params")
    text = json.dumps({"estimator": optional_text(estimator) or "default", "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class RetrainingGateOperator(MlopsBaseOperator):
    """Train only when there is something new to learn. Nothing is new when every pending signal names a
    (kind, period) a decision already answered, or when a decided version learnt from the same
    data the same way: the same window (months, holdout month, snapshot and its URI) and the same
    estimator and hyperparameters. Then that decision stands (for answered signals, the newest one): the pending
    signals are recorded as answered by it (the watermark moves, their names join that version's
    ``mlops.signals`` tag, no version is trained) and the task is skipped, which skips training,
    evaluation and promotion.

    :param model_name: registered model (templated).
    :param window: the :class:`~airflow_mlops.operators.window.TrainingWindowOperator` result (templated).
    :param pending: the :class:`PendingSignalsOperator` result (templated).
    :param estimator: the estimator training will use (templated; empty = the spec task's default).
    :param estimator_params: its hyperparameters (templated; dict or JSON).
    :param force: train even when nothing is new (templated).
    :return: (XCom; also one XCom per key) ``{"train": True, "reason", "tags"}``: ``tags`` (the window's
        plus the snapshot URI and the training configuration's digest) go to training's ``data_tags``, so the
        next run can tell what this version learnt from. When skipped, the reason is in the log.
    """

    template_fields: Sequence[str] = mlops_template_fields("model_name", "window", "pending", "estimator", "estimator_params", "force")
    ui_color = "#fde2e4"

    def __init__(
        self, *, model_name: str, window: Any, pending: Any, estimator: str | None = None, estimator_params: Any = None,
        force: bool | str = False, **kwargs: Any,
    ) -> None:  # fmt: skip
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.model_name = model_name
        self.window = window
        self.pending = pending
        self.estimator = estimator
        self.estimator_params = estimator_params
        self.force = force

    def learnt_from(self) -> dict[str, str]:
        """What a version trained now would learn from, as version tags."""
        tags = {str(k): str(v) for k, v in (self.window.get("tags") or {}).items()}
        return tags | {
            SNAPSHOT_URI_TAG: str(self.window.get("snapshot_uri") or "none"),
            TRAINING_CONFIG_TAG: training_config(self.estimator, self.estimator_params),
        }

    def nothing_new(self) -> tuple[str, str | None] | None:
        """Why there is nothing new to learn and the decided version whose decision stands, or ``None``
        when there is something new."""
        decided = self.mlflow_hook.registry.decided_versions(self.model_name)
        pending = self.pending["signals"]
        repeated = [signals.key(s) for s in pending if signals.key(s) in set(self.pending["answered"])]
        if pending and len(repeated) == len(pending):
            stands = str(decided[0].version) if decided else None
            return f"every pending signal was answered before ({', '.join(sorted(set(repeated)))})", stands
        tags = self.learnt_from()
        # Any decided version, not only the newest: a run on another window in between (the snapshot, a
        # form's other months) does not make this window's data new again.
        same = next((v for v in decided if all((v.tags or {}).get(k) == value for k, value in tags.items())), None)
        if same is not None:
            where = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in sorted(tags.items()))
            return f"v{same.version} learnt from the same data the same way ({where}; {same.tags.get('mlops.decision.decision')})", str(same.version)
        return None

    def execute(self, context: Context) -> dict[str, Any]:
        found = None if _truthy(self.force) else self.nothing_new()
        if found is None:
            return {"train": True, "reason": "forced" if _truthy(self.force) else "something new to learn", "tags": self.learnt_from()}
        reason, stands = found
        names = answer(self.mlflow_hook, self.model_name, self.pending, stands)
        answered = f"the decision on v{stands} answers {', '.join(names)}" if stands and names else "no signal to answer"
        return _skip(f"nothing new to learn: {reason}; {answered}, without training")


class AnswerSignalsOperator(MlopsBaseOperator):
    """Record that a retraining decision (promoted or rejected) answered the pending signals: the model's
    watermark moves past them and the decided version is tagged ``mlops.signals`` with their names. A run
    without a decision (a dry run, a refused approval, a failure before deciding) answers nothing: its
    signals stay pending for the next run. Runs when its upstream tasks did not fail (``none_failed``).

    :param model_name: registered model (templated).
    :param pending: the :class:`PendingSignalsOperator` result (templated).
    :param decision_task_id: the promotion task whose decision answers them; its result is read from
        XCom, and is absent when it was skipped before deciding.
    :return: (XCom) ``{"answered" (names), "decision", "version"}``.
    """

    template_fields: Sequence[str] = mlops_template_fields("model_name", "pending")
    ui_color = "#fde2e4"

    def __init__(self, *, model_name: str, pending: Any, decision_task_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", TriggerRule.NONE_FAILED)
        super().__init__(**kwargs)
        self.model_name = model_name
        self.pending = pending
        self.decision_task_id = decision_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        decision = context["ti"].xcom_pull(task_ids=self.decision_task_id)
        if not isinstance(decision, dict) or decision.get("decision") not in ("promoted", "rejected"):
            return _skip("no decision recorded: the signals stay pending" if self.pending["signals"] else "no decision and no pending signal")
        version = str(decision["challenger_version"])
        names = answer(self.mlflow_hook, self.model_name, self.pending, version)
        self.log.info("%s v%s (%s) answered: %s", self.model_name, version, decision["decision"], ", ".join(names) or "no signal")
        return {"answered": names, "decision": decision["decision"], "version": version}


class RetrainOnNewSignalsOperator(MlopsBaseOperator):
    """Queue another run of the retraining DAG when signals were raised after this run listed its pending
    ones: Airflow may hand their Asset events to no run while the DAG is at ``max_active_runs``
    (apache/airflow#56050). Skipped otherwise, and in a dry run. Runs when its upstream tasks did not
    fail (``none_failed``); the queued run starts once this one ends.

    :param model_name: the model (a plain string: the Assets are known at parse time).
    :param pending: the :class:`PendingSignalsOperator` result of this run (templated).
    :param trigger_dag_id: the DAG to run (templated; default this task's own DAG).
    :param disabled: queue nothing (templated), e.g. in a dry run.
    :return: nothing; triggers the run as Airflow's ``TriggerDagRunOperator`` does.
    """

    template_fields: Sequence[str] = mlops_template_fields("pending", "trigger_dag_id", "disabled")
    ui_color = "#fde2e4"

    def __init__(self, *, model_name: str, pending: Any, trigger_dag_id: str | None = None, disabled: bool | str = False, **kwargs: Any) -> None:
        kwargs.setdefault("inlets", signal_assets(model_name))
        kwargs.setdefault("trigger_rule", TriggerRule.NONE_FAILED)
        kwargs.setdefault("retries", 0)  # a second trigger of the same run id would fail, not heal
        super().__init__(**kwargs)
        self.model_name = model_name
        self.pending = pending
        self.trigger_dag_id = trigger_dag_id
        self.disabled = disabled

    def execute(self, context: Context) -> None:
        from airflow.sdk.exceptions import DagRunTriggerException

        if _truthy(self.disabled):
            return _skip("disabled (a dry run)")
        seen = int(self.pending["newest_event"])
        newer = [s for a in signal_assets(self.model_name) for s in signals.history(context["inlet_events"][a]) if s["event_id"] > seen]
        if not newer:
            return _skip("no signal raised while this run worked")
        dag_id = optional_text(self.trigger_dag_id) or context["ti"].dag_id
        run_id = f"signals__{context['ti'].run_id}"[:250]
        self.log.info("Signals raised meanwhile (%s): queueing %s run %s", ", ".join(signals.distinct(newer)), dag_id, run_id)
        raise DagRunTriggerException(
            trigger_dag_id=dag_id, dag_run_id=run_id, conf=None, reset_dag_run=False, skip_when_already_exists=True,
            wait_for_completion=False, allowed_states=["success"], failed_states=["failed"], poke_interval=60, deferrable=False,
            note=f"signals raised while {context['ti'].run_id} ran: {', '.join(signals.distinct(newer))}",
        )  # fmt: skip

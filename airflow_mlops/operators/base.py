"""Shared plumbing of the provider's operators: connection ids, the MLflow hook, the FeatureSpec."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseOperator

from airflow_mlops import settings
from airflow_mlops.utils.audit import run_tags, ti_key  # noqa: F401  (where the operators import them from)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlops.hooks.mlflow import MlflowHook
    from airflow_mlops.spec import FeatureSpec
    from airflow_mlops.tables import TableReader

CONN_TEMPLATE_FIELDS = ("mlflow_conn_id", "data_conn_id")
#: What every ``on_*`` policy (``on_failure``, ``on_reject``, ``on_drift``, ``on_decay``) may do when its
#: check says no: ``fail`` the task, ``skip`` it (and so its downstream), or ``continue`` (log a
#: warning and succeed). The summary is the task's XCom value in all three cases.
OUTCOMES = ("fail", "skip", "continue")
#: Outcome values renamed before 1.0 (Alpha: no aliases); an old value fails naming the new one.
RENAMED_OUTCOMES = {"warn": "continue", "succeed": "continue"}
#: Template fields of every operator that reads tables (:class:`MlopsTableOperator`).
READ_TEMPLATE_FIELDS = ("csv_options",)


def mlops_template_fields(*fields: str) -> tuple[str, ...]:
    """Return ``fields`` plus the connection-id fields every operator templates, sorted and unique."""
    return tuple(sorted({*fields, *CONN_TEMPLATE_FIELDS}))


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices`` (called in ``execute``, after rendering)."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def check_outcome(name: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is one of :data:`OUTCOMES`; a renamed value names its new name."""
    if isinstance(value, str) and value in RENAMED_OUTCOMES:
        raise ValueError(f"{name}={value!r} was renamed {RENAMED_OUTCOMES[value]!r} (one of {list(OUTCOMES)})")
    check_choice(name, value, OUTCOMES)


class MlopsBaseOperator(BaseOperator):
    """Base of the provider's operators: holds the connection ids and builds the MLflow hook lazily.

    :param mlflow_conn_id: Airflow connection of type ``mlflow`` (templated). When it does not exist,
        ``MLFLOW_TRACKING_URI`` or the embedded store is used.
    :param data_conn_id: Airflow connection for ``s3://`` URIs (templated); default ``[mlops] data_conn_id``.
    """

    #: What OpenLineage reports after the task (:mod:`airflow_mlops.lineage`): the summary the task
    #: returned or pushed before failing, and the FeatureSpec it loaded.
    lineage_summary: dict[str, Any] | None = None
    lineage_spec: FeatureSpec | None = None

    def __init__(
        self,
        *,
        mlflow_conn_id: str = settings.DEFAULT_MLFLOW_CONN_ID,
        data_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id
        self.data_conn_id = data_conn_id

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Keep the summary each operator's ``execute`` returns on the operator, for OpenLineage.

        The listener calls ``get_openlineage_facets_on_complete`` after ``execute`` and sees the
        operator, not the return value; wrapping here spares every ``execute`` body a line.
        """
        super().__init_subclass__(**kwargs)
        if "execute" in cls.__dict__:
            from airflow_mlops.lineage import records_summary

            cls.execute = records_summary(cls.__dict__["execute"])  # type: ignore[method-assign]

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Render as Airflow does; a template error (an undefined name, bad syntax) fails the task at
        once: rendering the same template again on a retry gives the same error."""
        import jinja2

        try:
            super().render_template_fields(context, jinja_env)
        except jinja2.TemplateError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{self.task_id}: cannot render a template: {type(exc).__name__}: {exc} (no retry)") from exc

    @cached_property
    def mlflow_hook(self) -> MlflowHook:
        """The :class:`~airflow_mlops.hooks.mlflow.MlflowHook` of ``mlflow_conn_id``, built on first use."""
        from airflow_mlops.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def reset_links(self, context: Context) -> None:
        """Push an empty value for each XCom-backed extra link, so a task that ends early shows no stale link."""
        from airflow_mlops.links.mlflow import XComUrlLink

        for link in self.operator_extra_links:
            if isinstance(link, XComUrlLink):
                link.persist(context, "")

    def stop_with(self, context: Context, summary: dict[str, Any], *, skip: bool, error: Exception) -> NoReturn:
        """Push ``summary`` as the task's result (it survives the failure), then skip the task or raise ``error``."""
        context["ti"].xcom_push(key="return_value", value=summary)
        self.lineage_summary = summary  # lineage on failure reports it (e.g. the failed expectations)
        if skip:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(str(error))
        raise error

    def settle(self, context: Context, summary: dict[str, Any], outcome: str, error: Exception) -> dict[str, Any]:
        """Act on a check that said no, by its ``on_*`` policy (one of :data:`OUTCOMES`): ``continue`` logs
        ``error`` as a warning and returns ``summary``; ``skip`` and ``fail`` go through :meth:`stop_with`."""
        if outcome == "continue":
            self.log.warning("%s", error)
            return summary
        self.stop_with(context, summary, skip=outcome == "skip", error=error)

    def load_spec(self, spec_uri: str) -> FeatureSpec:
        """Load the FeatureSpec at ``spec_uri`` (any object storage)."""
        from airflow_mlops.spec import FeatureSpec

        self.lineage_spec = FeatureSpec.load(spec_uri, conn_id=self.data_conn_id)  # schema facets of lineage
        return self.lineage_spec


class MlopsTableOperator(MlopsBaseOperator):
    """Base of the operators that read tables: one readiness policy and one CSV dialect for all their reads.

    :param require_marker: a partition folder must have its ``_SUCCESS`` marker; ``None`` (default)
        = ``[mlops] require_marker`` (true). Pass ``False`` for producers that write no marker.
    :param csv_options: how CSV input is read: ``{"delimiter": ";", "encoding": "utf-16",
        "null_values": ["", "NA"]}``, a dict or JSON text (templated). Parquet ignores it.
    :param confine_to_data: read only below the data root and ``[mlops] allowed_data_prefixes``
        (:func:`airflow_mlops.settings.allowed_data_prefixes`): set it where a URI comes from a trigger
        form or ``dag_run.conf``, so a run cannot read anything the worker's credentials reach.
    """

    def __init__(
        self, *, require_marker: bool | None = None, csv_options: dict[str, Any] | str | None = None, confine_to_data: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.require_marker = require_marker
        self.csv_options = csv_options
        self.confine_to_data = confine_to_data

    def check_confined(self, uri: str | None, what: str) -> None:
        """With ``confine_to_data``, refuse ``uri`` outside the allowed prefixes (no retry).

        :raises AirflowFailException: naming the URI, the parameter and the allowed prefixes.
        """
        from airflow_mlops.tables import is_below

        if not self.confine_to_data or not uri:
            return
        allowed = settings.allowed_data_prefixes()
        if not any(is_below(str(uri), prefix) for prefix in allowed):
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{what} {uri} is outside the allowed data locations {allowed} ([mlops] allowed_data_prefixes adds more)")

    @cached_property
    def reader(self) -> TableReader:
        """The :class:`~airflow_mlops.tables.TableReader` of this task (built after rendering, on first use).

        :raises AirflowFailException: ``csv_options`` is malformed (a configuration error does not heal).
        """
        from airflow_mlops.tables import CsvOptions, TableReader

        try:
            csv = CsvOptions.parse(self.csv_options)
        except ValueError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(str(exc)) from exc
        return TableReader(conn_id=self.data_conn_id, require_marker=self.require_marker, csv=csv)

    def load_spec(self, spec_uri: str) -> FeatureSpec:
        """Load the FeatureSpec, and type this task's CSV reads by it (features as double or text)."""
        spec = super().load_spec(spec_uri)
        self.__dict__["reader"] = self.reader.for_spec(spec)  # replaces the cached_property's value
        return spec


class PeriodicCheckOperator(MlopsTableOperator):
    """Base of the checks that judge one period of a model and may ask for retraining (drift, quality):
    the period, the records of each period (report and summary under ``period=<period>/`` of the model's
    records folder), and the hysteresis: a flagged period asks for retraining only when the
    ``consecutive`` - 1 periods before it were flagged too, as their records say.

    :param model_name: registered model (templated).
    :param period: the period, e.g. ``YYYY-MM`` (templated).
    :param consecutive: flagged periods in a row needed before ``trigger_retraining`` (templated).
    :param reports_uri: the folder of this model's records of the check (templated); default
        ``<reports root>/<kind>/<model>``.
    """

    #: The records' kind (:data:`airflow_mlops.reports.DRIFT`, :data:`~airflow_mlops.reports.QUALITY`).
    records_kind: str = ""
    #: The summary key that says a period was flagged (``drift_detected``, ``decayed``).
    flag_key: str = ""

    def __init__(self, *, model_name: str, period: str, consecutive: int | str = 1, reports_uri: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.period = period
        self.consecutive = consecutive
        self.reports_uri = reports_uri

    def records_folder(self) -> str:
        """The folder of this model's records of the check (rendered values)."""
        from airflow_mlops import reports
        from airflow_mlops.values import optional_text

        return reports.model_folder(self.records_kind, self.model_name, optional_text(self.reports_uri))

    def period_records(self) -> str:
        """The folder of this period's report and summary."""
        from airflow_mlops import reports

        return reports.period_folder(self.records_folder(), self.period)

    def asks_for_retraining(self, flagged: bool) -> bool:
        """Whether this period, ``flagged`` or not, asks for retraining: flagged, and so were the
        ``consecutive`` - 1 periods before it."""
        from airflow_mlops import reports

        needed = int(self.consecutive) - 1
        return flagged and (needed <= 0 or reports.earlier_periods(self.records_folder(), self.period, needed, self.flag_key, conn_id=self.data_conn_id))

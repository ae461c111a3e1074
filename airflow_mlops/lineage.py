"""OpenLineage for the provider's operators: datasets, schema facets, data-quality facets, custom facets.

Every operator implements ``get_openlineage_facets_on_complete`` (the OpenLineage provider's listener
calls it after the task, on success and, unless the operator has an ``..._on_failure``, on failure too)
with the helpers of this module. The operator's ``execute`` only leaves on ``self`` what lineage needs
(the returned summary, kept by :func:`records_summary` which
:class:`~airflow_mlops.operators.base.MlopsBaseOperator` applies to every ``execute``, and the loaded
FeatureSpec), plus, where the summary lacks it, one line (the GX result, the Evidently report).

Lineage is optional: ``apache-airflow-providers-openlineage`` (extra ``lineage``) is imported only
inside these functions, never at module level, so parse time does not move, and
:func:`available` is false without it (the operators then return ``None``; nothing else changes).
Without a configured transport the provider disables its listener, so the methods are never called.

Naming follows the OpenLineage naming spec (https://openlineage.io/docs/spec/naming): a local file is
namespace ``file`` and its absolute path as name; an S3 object is ``s3://<bucket>`` and its key
(a partition folder is named without its trailing ``/``); a registered model version is
``models/<name>/<version>`` in the namespace of the MLflow tracking URI (credentials removed).

Facets (standard ones where one fits; custom ones, prefixed ``mlops_``, where none does):

=========================  ===========================================================================
``schema``                 every table: the FeatureSpec's columns (type ``double``/``string``, role)
``dataQualityAssertions``  validation: one assertion per expectation (type, column, success);
                           drift: one per feature and one on the share; quality: the period and
                           each judged segment (no decay)
``dataQualityMetrics``     validation, drift and quality: rows checked
``outputStatistics``       written tables: rows written
``version``                the registered model version (training)
``mlops_mlflowRun``        training (run facet): tracking URI, run id, experiment, metrics, parameters
``mlops_promotion``        promotion and rollback (run facet): decision, reason, scores, champion
                           before and after
``mlops_drift``            drift (on the checked table): share, threshold, each column's method,
                           score and verdict
``mlops_modelQuality``     quality (on the predictions): metric, value, baseline, limit, drop, coverage
=========================  ===========================================================================

The custom facets' JSON schema ships as ``airflow_mlops/lineage_facets.json``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from airflow_mlops import __version__

if TYPE_CHECKING:
    from airflow_mlops.spec import FeatureSpec

log = logging.getLogger(__name__)

#: ``_producer`` of the custom facets: the code that defines them.
PRODUCER = f"https://github.com/airflow-mlops/airflow-mlops/tree/v{__version__}/airflow_mlops"
#: JSON schema of the custom facets, shipped in the package; ``_schemaURL`` = this + ``#/$defs/<Facet>``.
SCHEMA_URL = f"https://raw.githubusercontent.com/airflow-mlops/airflow-mlops/v{__version__}/airflow_mlops/lineage_facets.json"
#: Schema types of the FeatureSpec's column kinds (OpenLineage takes the type name of the source system).
NUMERIC_TYPE = "double"
CATEGORICAL_TYPE = "string"
#: Local-storage schemes (ObjectStoragePath's ``local`` included).
_LOCAL_SCHEMES = ("file", "local")

Execute = TypeVar("Execute", bound=Callable[..., Any])


# -- availability and operator state -------------------------------------------------------------


def available() -> bool:
    """Whether the OpenLineage provider and client can be imported (the ``lineage`` extra is installed)."""
    try:
        import openlineage.client.event_v2  # noqa: F401
        from airflow.providers.openlineage.extractors import OperatorLineage  # noqa: F401
    except ImportError:
        return False
    return True


def records_summary(execute: Execute) -> Execute:
    """Wrap an operator's ``execute`` to keep its returned summary as ``self.lineage_summary``.

    The OpenLineage listener runs after ``execute`` and sees the operator, not its return value; the
    summary names what was read, written, registered or decided. A summary pushed before a failure
    (:meth:`~airflow_mlops.operators.base.MlopsBaseOperator.stop_with`) is kept there too.
    """

    @functools.wraps(execute)
    def run(self: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        self.lineage_summary = None  # a reused operator object never reports an earlier run's summary
        result = execute(self, context, *args, **kwargs)
        self.lineage_summary = result
        return result

    return run  # type: ignore[return-value]


# -- naming --------------------------------------------------------------------------------------


def without_credentials(uri: str) -> str:
    """``uri`` without a user/password part (``http://user:secret@host`` -> ``http://host``)."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def dataset_name(uri: str) -> tuple[str, str]:
    """The OpenLineage ``(namespace, name)`` of a table URI: a file, a partition folder, a plain path.

    ``file:///data/x.parquet`` and ``/data/x.parquet`` -> ``("file", "/data/x.parquet")``;
    ``file://host/data`` -> ``("file://host", "/data")``; ``s3://bucket/key/`` (also with the
    ``conn_id@`` form of ObjectStoragePath) -> ``("s3://bucket", "key")``; other schemes ->
    ``("<scheme>://<authority>", "<path>")``.
    """
    text = str(uri)
    if "://" not in text:
        return "file", os.path.normpath(os.path.abspath(text))
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    authority = parts.netloc.rpartition("@")[2]  # a conn_id or credentials never name the data
    path = unquote(parts.path)
    if scheme in _LOCAL_SCHEMES:
        local = os.path.normpath(path or "/")
        return ("file", local) if authority in ("", "localhost") else (f"file://{authority}", local)
    if scheme in ("s3", "s3a", "s3n", "gs", "gcs"):
        key = path.strip("/")
        return f"{'gs' if scheme == 'gcs' else 's3' if scheme.startswith('s3') else scheme}://{authority}", key or "/"
    return f"{scheme}://{authority}", path.rstrip("/") or "/"


def model_version_name(model_name: str, version: str | int) -> str:
    """The dataset name of a registered model version: ``models/<name>/<version>``."""
    return f"models/{model_name}/{version}"


def resolved_tracking_uri(operator: Any) -> str | None:
    """The MLflow tracking URI the operator used, without credentials; ``None`` when it used none.

    Only a hook configuration ``execute`` already resolved is read: lineage never opens a connection.
    """
    hook = operator.__dict__.get("mlflow_hook")
    config = hook.__dict__.get("config") if hook is not None else None
    return without_credentials(config.tracking_uri) if config is not None else None


# -- facets ----------------------------------------------------------------------------------------


def schema_facet(spec: FeatureSpec, columns: Sequence[str] | None = None) -> Any:
    """A ``SchemaDatasetFacet`` of ``columns`` (default: the spec's training columns), typed by the spec.

    Features are ``double`` or ``string``; ids, timestamp and target keep no type (the spec has
    none for them); each field's description names its role.
    """
    from openlineage.client.facet_v2 import schema_dataset

    roles = {c: "id" for c in spec.id_columns}
    if spec.timestamp_column:
        roles[spec.timestamp_column] = "timestamp"
    roles |= {c: "numeric feature" for c in spec.numeric_columns} | {c: "categorical feature" for c in spec.categorical_columns}
    roles[spec.target] = "target"
    types = {c: NUMERIC_TYPE for c in spec.numeric_columns} | {c: CATEGORICAL_TYPE for c in spec.categorical_columns}
    wanted = list(columns) if columns is not None else spec.training_columns()
    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(name=c, type=types.get(c), description=roles.get(c), ordinal_position=i)
            for i, c in enumerate(wanted, start=1)
        ]
    )


def assertions_facet(assertions: Iterable[Mapping[str, Any]]) -> Any:
    """A ``DataQualityAssertionsDatasetFacet`` from ``{"assertion", "success", "column", ...}`` mappings
    (optional keys: ``name``, ``expected``, ``actual``, ``severity``, ``description``, ``params``)."""
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dqa

    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return dqa.DataQualityAssertionsDatasetFacet(
        assertions=[
            dqa.Assertion(
                assertion=str(a["assertion"]), success=bool(a["success"]), column=a.get("column"), severity=a.get("severity"),
                name=a.get("name"), description=a.get("description"), expected=text(a.get("expected")), actual=text(a.get("actual")),
                params=dict(a.get("params") or {}),
            )  # fmt: skip
            for a in assertions
        ]
    )


def metrics_facet(row_count: int | None, column_metrics: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
    """A ``DataQualityMetricsInputDatasetFacet``: the rows checked, and per column ``nullCount``,
    ``distinctCount``, ``count``, ``min``, ``max`` where known."""
    from openlineage.client.facet_v2 import data_quality_metrics_input_dataset as dqm

    return dqm.DataQualityMetricsInputDatasetFacet(
        rowCount=row_count, columnMetrics={c: dqm.ColumnMetrics(**dict(m)) for c, m in (column_metrics or {}).items()}
    )


def output_statistics_facet(row_count: int | None) -> Any:
    """An ``OutputStatisticsOutputDatasetFacet`` with the rows written."""
    from openlineage.client.facet_v2 import output_statistics_output_dataset

    return output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=row_count)


@functools.cache
def custom_facets() -> dict[str, type]:
    """The provider's custom facet classes by facet key (built on first use: the OpenLineage client is
    imported here, not at module level)."""
    import attr
    from openlineage.client.facet_v2 import DatasetFacet, RunFacet

    def schema(name: str) -> Callable[[], str]:
        return staticmethod(lambda: f"{SCHEMA_URL}#/$defs/{name}")

    @attr.define
    class MlflowRunFacet(RunFacet):
        """The MLflow run that trained a model version: where, which, with what and how well."""

        trackingUri: str
        runId: str
        experimentId: str | None = None
        modelName: str | None = None
        modelVersion: str | None = None
        modelUri: str | None = None
        metrics: dict[str, float] = attr.field(factory=dict)
        params: dict[str, str] = attr.field(factory=dict)
        reused: bool = False
        _get_schema = schema("MlflowRunFacet")

    @attr.define
    class PromotionDecisionRunFacet(RunFacet):
        """A promotion's (or rollback's) decision, with the champion before and after it."""

        modelName: str
        decision: str
        reason: str | None = None
        metric: str | None = None
        challengerVersion: str | None = None
        challengerScore: float | None = None
        championScore: float | None = None
        championBefore: str | None = None
        championAfter: str | None = None
        dryRun: bool = False
        approver: str | None = None
        evaluationRunId: str | None = None
        _get_schema = schema("PromotionDecisionRunFacet")

    @attr.define
    class DriftDatasetFacet(DatasetFacet):
        """A drift check of this dataset against a reference: the share of drifted columns, and each column's test."""

        period: str | None
        share: float
        driftShare: float
        detected: bool
        reference: str | None = None
        rowCount: int | None = None
        referenceRowCount: int | None = None
        columns: dict[str, dict[str, Any]] = attr.field(factory=dict)
        _get_schema = schema("DriftDatasetFacet")

    @attr.define
    class ModelQualityDatasetFacet(DatasetFacet):
        """A model's quality measured on these predictions once their labels arrived, against its holdout."""

        period: str | None
        modelName: str
        modelVersion: str
        metric: str
        value: float
        baseline: float | None = None
        limit: float | None = None
        drop: float | None = None
        decayed: bool = False
        coverage: float | None = None
        labelledRows: int | None = None
        metrics: dict[str, float] = attr.field(factory=dict)
        _get_schema = schema("ModelQualityDatasetFacet")

    return {
        "mlops_mlflowRun": MlflowRunFacet,
        "mlops_promotion": PromotionDecisionRunFacet,
        "mlops_drift": DriftDatasetFacet,
        "mlops_modelQuality": ModelQualityDatasetFacet,
    }


def custom_facet(key: str, **fields: Any) -> Any:
    """An instance of the custom facet ``key`` (see :func:`custom_facets`), with our ``_producer``."""
    return custom_facets()[key](producer=PRODUCER, **fields)


# -- datasets -----------------------------------------------------------------------------------


def input_dataset(uri: str, facets: Mapping[str, Any] | None = None, input_facets: Mapping[str, Any] | None = None) -> Any:
    """An ``InputDataset`` named after ``uri`` (see :func:`dataset_name`), with dataset and input facets."""
    from openlineage.client.event_v2 import InputDataset

    namespace, name = dataset_name(uri)
    return InputDataset(namespace=namespace, name=name, facets=dict(facets or {}), inputFacets=dict(input_facets or {}))


def output_dataset(uri: str, facets: Mapping[str, Any] | None = None, output_facets: Mapping[str, Any] | None = None) -> Any:
    """An ``OutputDataset`` named after ``uri`` (see :func:`dataset_name`), with dataset and output facets."""
    from openlineage.client.event_v2 import OutputDataset

    namespace, name = dataset_name(uri)
    return OutputDataset(namespace=namespace, name=name, facets=dict(facets or {}), outputFacets=dict(output_facets or {}))


def model_version_dataset(tracking_uri: str, model_name: str, version: str | int, *, output: bool = False, facets: Mapping[str, Any] | None = None) -> Any:
    """A registered model version as an input (or output) dataset: ``models/<name>/<version>`` in the
    tracking URI's namespace."""
    from openlineage.client.event_v2 import InputDataset, OutputDataset

    kind = OutputDataset if output else InputDataset
    return kind(namespace=without_credentials(tracking_uri), name=model_version_name(model_name, version), facets=dict(facets or {}))


def operator_lineage(inputs: Sequence[Any] = (), outputs: Sequence[Any] = (), run_facets: Mapping[str, Any] | None = None) -> Any:
    """The provider's ``OperatorLineage`` of these datasets and run facets."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(inputs=list(inputs), outputs=list(outputs), run_facets=dict(run_facets or {}))


# -- results to facets ---------------------------------------------------------------------------


def gx_assertions(result: Any) -> list[dict[str, Any]]:
    """One assertion per expectation of a GX ``ExpectationSuiteValidationResult``: its type, column,
    success, bounds or value set (``expected``) and observed value or unexpected count (``actual``)."""
    out = []
    for evr in result.results:
        kwargs = dict(evr.expectation_config.kwargs)
        found = evr.result or {}
        expected = {k: kwargs[k] for k in ("min_value", "max_value", "value_set", "type_", "type_list") if kwargs.get(k) is not None}
        actual = found.get("observed_value", found.get("unexpected_count"))
        out.append(
            {"assertion": evr.expectation_config.type, "success": bool(evr.success), "column": kwargs.get("column"),
             "severity": "error", "expected": expected or None, "actual": actual}
        )  # fmt: skip
    return out


def drift_columns(evidently: Mapping[str, Any], drifted: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each column's drift test from an Evidently 0.7 report dict: ``{column: {"method", "score",
    "threshold", "drifted"}}`` (the score is the method's p-value or distance)."""
    flagged = set(drifted)
    out = {}
    for metric in evidently.get("metrics", []):
        config = metric.get("config", {})
        if str(config.get("type", "")).endswith("ValueDrift"):
            column = config["column"]
            out[column] = {"method": config.get("method"), "score": metric.get("value"), "threshold": config.get("threshold"), "drifted": column in flagged}
    return out


def parse_reference(label: str) -> tuple[str | None, str | None, str | None]:
    """Split the drift check's reference label ``runs:/<run>/<path> (<model> v<version>)`` into
    ``(table URI, model name, version)``: a table reference has no model, a model's has no table."""
    import re

    found = re.fullmatch(r"runs:/\S+ \((?P<model>.+) v(?P<version>[^ )]+)\)", label or "")
    if found:
        return None, found["model"], found["version"]
    return (label or None), None, None

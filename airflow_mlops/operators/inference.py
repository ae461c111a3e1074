"""Score a table with a registered model, streaming in bounded chunks, publishing atomically."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow_mlops import streaming, tables
from airflow_mlops.exceptions import ModelResolutionError, TableError
from airflow_mlops.links.mlflow import MlflowModelVersionLink
from airflow_mlops.operators.base import MlopsBaseOperator, mlops_template_fields
from airflow_mlops.utils import registry

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import Context

    from airflow_mlops.spec import FeatureSpec

DEFAULT_CHUNK_ROWS = 262_144
#: Where models may be loaded from by default: the tracked registry and tracked runs only.
ALLOWED_MODEL_URI_SCHEMES = ("models", "runs")
PROGRESS_EVERY_SECONDS = 30.0
_ARROW_KIND = {"double": "number", "float": "number", "long": "number", "integer": "number", "string": "string", "boolean": "bool"}


def _arrow_kind(dtype: pa.DataType) -> str:
    import pyarrow.types as t

    if t.is_integer(dtype) or t.is_floating(dtype) or t.is_decimal(dtype):
        return "number"
    if t.is_string(dtype) or t.is_large_string(dtype) or t.is_dictionary(dtype):
        return "string"
    if t.is_boolean(dtype):
        return "bool"
    if t.is_null(dtype):
        return "null"
    return str(dtype)


def check_input_schema(schema: pa.Schema, spec: FeatureSpec, signature: Any, uri: str) -> None:
    """Refuse input that the model cannot score: a missing column, or a type the signature does not take.

    :raises TableError: naming the file, the column, the expected and the found type.
    """
    missing = [c for c in spec.passthrough_columns + spec.feature_columns if c not in schema.names]
    if missing:
        raise TableError(f"missing column(s) {missing} needed to score", uri=uri)
    expected = {}
    if signature is not None and signature.inputs is not None:
        for col in signature.inputs.inputs:
            expected[col.name] = _ARROW_KIND.get(str(col.type).split(".")[-1].lower(), "other")
    for name in spec.feature_columns:
        want = expected.get(name) or ("number" if name in spec.numeric_columns else "string")
        found = _arrow_kind(schema.field(name).type)
        if found != "null" and found != want:
            raise TableError(f"column {name!r} has type {schema.field(name).type}, the model expects {want}", uri=uri)


def check_signature(signature: Any, spec: FeatureSpec, model: str) -> None:
    """Refuse a model whose signature asks for columns the FeatureSpec does not feed it (a model
    trained on another dataset): it would fail mid-file, or worse, score garbage.

    :raises ModelResolutionError: naming the model and the columns.
    """
    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        return
    unknown = [name for name in signature.inputs.input_names() if name not in spec.feature_columns]
    if unknown:
        raise ModelResolutionError(
            f"the model's signature needs column(s) {unknown} that the FeatureSpec {spec.source or spec.name!r} does not "
            f"provide (its features: {spec.feature_columns}); it was trained on other data",
            model_name=model,
        )


def split_model_uri(ref: str) -> tuple[str, str] | None:
    """Return ``(scheme, rest)`` when ``ref`` is a model URI (``models:/...``, ``runs:/...``, ``s3://...``),
    ``None`` for a plain alias or version."""
    scheme, sep, rest = ref.partition(":")
    if not sep or not rest.startswith("/") or not scheme.replace("-", "").replace("+", "").isalnum():
        return None
    return scheme.lower(), rest


class MlflowBatchPredictOperator(MlopsBaseOperator):
    """Score one input file with a registered model and write its predictions as one parquet file.

    The model reference (alias or version) is resolved once, at the start, to a pinned version that
    is recorded in every row and in the result; pass a version resolved upstream to pin a whole
    mapped fan-out. The input is checked against the model signature and the FeatureSpec before
    anything is predicted, then streamed in chunks of ``chunk_rows`` rows (memory bounded by the
    chunk, not the file), and the output is published atomically: a rerun replaces it, and with the
    same model version gives a byte-identical file.

    Output columns: the spec's id (and timestamp) columns, ``prediction``, ``probability`` (positive
    class, binary classifiers), ``model_name``, ``model_version``, ``scored_at`` (the run's logical
    date, not the wall clock); with ``shadow_ref`` also ``shadow_prediction``, ``shadow_probability``,
    ``shadow_model_version`` scored by e.g. the challenger for comparison before promotion.

    :param input_uri: file to score (templated; map over a partition's files with ``expand``).
    :param output_uri: parquet file to write (templated).
    :param spec_uri: FeatureSpec YAML (templated).
    :param model_name: registered model (templated).
    :param model_ref: alias (``champion``) or version (templated); or a model URI: ``models:/<name>/<version>``,
        ``models:/<name>@<alias>`` or ``runs:/<run_id>/<path>`` (an unregistered model, recorded by its URI).
    :param shadow_ref: optional alias/version/URI to score beside it (templated; empty = none).
    :param allow_model_uri_schemes: URI schemes a model may be loaded from. Default ``models`` and
        ``runs``: a model is code (it is unpickled), so it comes from the tracked registry, never from
        an arbitrary ``file://`` or ``s3://`` path unless the DAG author allows that scheme here.
    :param scored_at: ISO timestamp written in ``scored_at`` (templated; default the logical date).
    :param chunk_rows: rows per chunk.
    :return: (XCom) ``{"input_uri", "output_uri", "rows", "model_name", "model_version",
        "shadow_version", "seconds", "rows_per_second"}``.
    """

    template_fields: Sequence[str] = mlops_template_fields(
        "input_uri", "output_uri", "spec_uri", "model_name", "model_ref", "shadow_ref", "scored_at"
    )  # allow_model_uri_schemes is deliberately not templated: the UI form must not widen it
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#e3f2fd"

    def __init__(
        self,
        *,
        input_uri: str,
        output_uri: str,
        spec_uri: str,
        model_name: str,
        model_ref: str = registry.CHAMPION,
        shadow_ref: str | None = None,
        scored_at: str | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        allow_model_uri_schemes: Sequence[str] = ALLOWED_MODEL_URI_SCHEMES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_uri = input_uri
        self.output_uri = output_uri
        self.spec_uri = spec_uri
        self.model_name = model_name
        self.model_ref = model_ref
        self.shadow_ref = shadow_ref
        self.scored_at = scored_at
        self.chunk_rows = chunk_rows
        self.allow_model_uri_schemes = allow_model_uri_schemes

    def _model_uri(self, ref: str) -> tuple[str, str]:
        """Turn ``ref`` into ``(version label, URI to load)``; registry references are pinned to a version."""
        split = split_model_uri(ref)
        if split is None:
            version = registry.resolve_version(self.mlflow_hook.client, self.model_name, ref)
            return str(version.version), f"models:/{self.model_name}/{version.version}"
        scheme, rest = split
        allowed = [s.lower() for s in self.allow_model_uri_schemes]
        if scheme not in allowed:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(
                f"Model {self.model_name!r}: refusing to load {ref!r}: scheme {scheme!r} is not in allow_model_uri_schemes "
                f"{allowed} (models are unpickled code; load them from the registry, or allow the scheme explicitly)"
            )
        if scheme == "file":  # MLflow's Model.load tests os.path.exists() on the string: give it a path
            from urllib.parse import unquote, urlparse

            return ref, unquote(urlparse(ref).path)
        if scheme != "models":
            return ref, ref
        name, at, alias = rest.strip("/").partition("@")
        name, _, number = name.partition("/") if not at else (name, "", "")
        if name != self.model_name:
            raise ModelResolutionError(f"the model URI {ref!r} names another model", model_name=self.model_name)
        version = registry.resolve_version(self.mlflow_hook.client, name, alias or number or registry.CHAMPION)
        return str(version.version), f"models:/{name}/{version.version}"

    def _load(self, ref: str) -> tuple[str, Any, Any]:
        import mlflow

        label, uri = self._model_uri(str(ref))
        model = mlflow.sklearn.load_model(uri)
        signature = mlflow.models.get_model_info(uri).signature
        return label, model, signature

    def _scored_at(self, context: Context) -> Any:
        import pandas as pd

        stamp = self.scored_at or context.get("logical_date") or context.get("data_interval_end")
        if stamp in (None, "", "None"):
            raise ValueError("scored_at is needed when the run has no logical date (e.g. an asset-triggered run)")
        parsed = pd.Timestamp(stamp)
        return parsed.tz_localize("UTC") if parsed.tzinfo is None else parsed.tz_convert("UTC")

    def execute(self, context: Context) -> dict[str, Any]:
        self.reset_links(context)
        spec = self.load_spec(self.spec_uri)
        scored_at = self._scored_at(context)
        schema = tables.read_schema(self.input_uri, conn_id=self.data_conn_id)
        with self.mlflow_hook.activated():
            version, model, signature = self._load(self.model_ref)
            check_signature(signature, spec, f"{self.model_name} v{version}")
            check_input_schema(schema, spec, signature, self.input_uri)
            shadow = None
            if self.shadow_ref:
                shadow_version, shadow_model, shadow_signature = self._load(self.shadow_ref)
                check_signature(shadow_signature, spec, f"{self.model_name} v{shadow_version}")
                shadow = (shadow_version, shadow_model)
        MlflowModelVersionLink.persist(context, self.mlflow_hook.model_version_url(self.model_name, version) if version.isdigit() else "")
        self.log.info("Scoring %s with %s v%s%s", self.input_uri, self.model_name, version, f" (shadow v{shadow[0]})" if shadow else "")

        columns = spec.passthrough_columns + spec.feature_columns
        start = last_log = time.monotonic()
        # One I/O thread reads the next chunk and writes the previous one while this one is scored.
        with tables.staged_output(self.output_uri, conn_id=self.data_conn_id) as local, ThreadPoolExecutor(1, "scoring-io") as io:
            sink = streaming.ParquetWriteBehind(local, io, row_group_size=self.chunk_rows)
            try:
                batches = tables.iter_file_batches(
                    self.input_uri, columns=columns, batch_rows=self.chunk_rows, conn_id=self.data_conn_id,
                    dictionary_columns=spec.categorical_columns,
                )  # fmt: skip
                for batch in streaming.read_ahead(batches, io):
                    sink.write(self._score_chunk(spec, batch, model, version, scored_at, shadow))
                    if time.monotonic() - last_log >= PROGRESS_EVERY_SECONDS:
                        last_log = time.monotonic()
                        self.log.info("%d rows scored (%.0f rows/s)", sink.rows, sink.rows / (last_log - start))
                if not sink.started:  # empty input: still publish an empty, well-typed file
                    sink.write(self._score_chunk(spec, _empty_batch(schema, columns), model, version, scored_at, shadow))
            except BaseException:
                sink.abort()
                raise
            sink.close()
        rows = sink.rows
        seconds = time.monotonic() - start
        self.log.info("Scored %d rows in %.1f s (%.0f rows/s) -> %s", rows, seconds, rows / max(seconds, 1e-9), self.output_uri)
        return {
            "input_uri": self.input_uri,
            "output_uri": self.output_uri,
            "rows": rows,
            "model_name": self.model_name,
            "model_version": version,
            "shadow_version": shadow[0] if shadow else None,
            "seconds": round(seconds, 3),
            "rows_per_second": round(rows / max(seconds, 1e-9), 1),
        }

    def _score_chunk(
        self, spec: FeatureSpec, batch: pa.RecordBatch, model: Any, version: str, scored_at: Any, shadow: tuple[str, Any] | None
    ) -> pa.Table:
        """Score one input batch; return its output rows as an Arrow table.

        Only the model's features go through pandas (the pipeline wants a DataFrame); the id columns
        are carried over as Arrow columns and the constant columns are built as repeated scalars, so
        the output costs no per-row Python objects and keeps the input's exact types.
        """
        import pyarrow as pa

        from airflow_mlops.utils import modeling

        x = modeling.feature_frame(batch.select(spec.feature_columns).to_pandas(), spec)
        n = batch.num_rows
        out: dict[str, pa.Array] = {name: batch.column(name) for name in spec.passthrough_columns}
        for prefix, scorer in (("", model), ("shadow_", shadow[1] if shadow else None)):
            if scorer is None:
                continue
            binary = spec.task == "classification" and hasattr(scorer, "predict_proba") and len(getattr(scorer, "classes_", [])) == 2
            if n == 0:
                out[f"{prefix}prediction"] = pa.array([], pa.int64() if spec.task == "classification" else pa.float64())
                if binary:
                    out[f"{prefix}probability"] = pa.array([], pa.float64())
            elif binary:
                # One pass of the model: the label is the arg-max of the probabilities (what predict() does).
                proba = scorer.predict_proba(x)
                out[f"{prefix}prediction"] = pa.array(scorer.classes_[proba.argmax(axis=1)])
                out[f"{prefix}probability"] = pa.array(proba[:, 1])
            else:
                out[f"{prefix}prediction"] = pa.array(scorer.predict(x))
        out["model_name"] = pa.repeat(pa.scalar(self.model_name, pa.string()), n)
        out["model_version"] = pa.repeat(pa.scalar(version, pa.string()), n)
        if shadow:
            out["shadow_model_version"] = pa.repeat(pa.scalar(shadow[0], pa.string()), n)
        out["scored_at"] = pa.repeat(pa.scalar(scored_at.to_pydatetime(), pa.timestamp("us", tz="UTC")), n)
        return pa.Table.from_pydict(out)


def _empty_batch(schema: pa.Schema, columns: list[str]) -> pa.RecordBatch:
    """A zero-row batch with the input's column types (to publish an empty but typed output)."""
    import pyarrow as pa

    return pa.RecordBatch.from_pylist([], schema=pa.schema([schema.field(c) for c in columns]))

"""Train a scikit-learn model described by a FeatureSpec, track it in MLflow, register a challenger.

One operator and the steps of its one task (read and split, fit, evaluate, log model, samples and lineage,
register idempotently, set the alias), in the order they run: a little over 400 lines, kept whole so a
reader follows a training from start to end; what other code shares lives in ``utils.modeling``,
``metrics`` and ``hooks.registry``."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops import tables
from airflow_mlops.exceptions import TableError
from airflow_mlops.hooks.mlflow import HOLDOUT_ARTIFACT, REFERENCE_ARTIFACT
from airflow_mlops.hooks.registry import CHALLENGER, RESERVED_ALIASES, quote_filter
from airflow_mlops.links.mlflow import MlflowModelVersionLink, MlflowRunLink
from airflow_mlops.operators.base import (
    READ_TEMPLATE_FIELDS,
    MlopsTableOperator,
    mlops_template_fields,
    run_tags,
    ti_key,
)
from airflow_mlops.utils.modeling import check_class_counts, labelled
from airflow_mlops.values import as_mapping, as_uri_list, optional_text

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from airflow_mlops.metrics import LabelSpace
    from airflow_mlops.spec import FeatureSpec

LINEAGE_SCHEMA_ROWS = 1_000


def lineage_dataset(frame: pd.DataFrame, source: str, target: str, name: str) -> Any:
    """Return an MLflow ``PandasDataset`` for ``mlflow.log_input`` whose schema is inferred from a sample.

    MLflow infers a dataset schema value by value in Python (~5 s per 200k rows of this data, more than
    the logging budget). The sample is the first rows plus, for each column that has nulls, its first
    null row, so types and nullability come out as for the whole frame; digest and profile still
    describe the whole frame.
    """
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature

    dataset = from_pandas(frame, source=source, targets=target, name=name)
    nulls = frame.isna().to_numpy()
    first_nulls = nulls.argmax(axis=0)[nulls.any(axis=0)]
    rows = sorted(set(range(min(LINEAGE_SCHEMA_ROWS, len(frame)))) | {int(i) for i in first_nulls})
    # ``schema`` is a functools.cached_property: filling its cache slot replaces the full-frame inference.
    dataset.__dict__["schema"] = infer_signature(frame.iloc[rows]).inputs
    return dataset



class MlflowTrainModelOperator(MlopsTableOperator):
    """Fit ``Pipeline(preprocessing from the FeatureSpec, estimator)``, log it to MLflow and register
    a new version of ``model_name`` with the alias ``set_alias`` (``challenger``).

    Logged: params (estimator and its parameters, split), metrics on the holdout (classification:
    roc_auc, f1, precision, recall, accuracy, log_loss; regression: rmse, mae, r2), the model with
    signature, input example and pinned pip requirements, dataset lineage (``mlflow.log_input`` with
    URI and digest), a seeded reference sample of the training features (``reference/``, for drift
    checks), the holdout itself (``holdout/``, for promotion), and tags naming the DAG run.

    Idempotent per task instance: every version carries ``mlops.ti_key`` (dag/task/run); a retry that
    finds its version reuses it instead of registering a second one. The estimator and its parameters
    are checked before anything is written to MLflow.

    :param train_uri: labelled training table, file or partition, or a list of them (read one after
        the other), e.g. a :class:`~airflow_mlops.operators.window.TrainingWindowOperator`'s ``train_uri`` (templated).
    :param spec_uri: FeatureSpec YAML (templated).
    :param model_name: registered model name (templated).
    :param estimator: dotted path of a scikit-learn estimator class (templated); ``None`` (default)
        picks it from the FeatureSpec's ``task``: ``sklearn.ensemble.HistGradientBoostingClassifier``
        for ``classification``, ``sklearn.ensemble.HistGradientBoostingRegressor`` for ``regression``
        (resolved in ``execute``, once the spec is loaded).
    :param estimator_params: its parameters, a dict or JSON text (templated).
    :param holdout_uri: labelled holdout table, e.g. a :class:`~airflow_mlops.operators.window.TrainingWindowOperator`'s
        ``holdout_uri``; default: a seeded split of ``train_uri`` (templated).
    :param test_size: holdout share when splitting (templated). A classification split is stratified: each
        class needs ``ceil(1 / min(test_size, 1 - test_size))`` rows, at least 2 (5 for 0.2), so that the
        holdout and training both get one; fewer fail before fitting, naming the rarest classes
        (:func:`check_class_counts`).
    :param seed: random seed of split, search, and reference sample.
    :param search: optional bounded random search: ``{"param_distributions": {...}, "n_iter": 8,
        "cv": 3, "scoring": "roc_auc"}``; parameter names refer to the estimator (templated).
    :param experiment_name: MLflow experiment (default ``mlops/<model_name>``) (templated).
    :param reference_rows: rows in the reference sample logged for drift checks.
    :param set_alias: the alias this task sets on the new version (templated; default ``challenger``;
        never ``champion`` or ``previous_champion``, which only a promotion moves).
    :param data_tags: tags naming the data, set on the MLflow run and the version, e.g. the window's
        ``tags`` (which months trained, which judged) (templated; a dict or its JSON text).
    :param bool|None require_marker: a partition folder must have its ``_SUCCESS`` marker (default ``[mlops] require_marker``).
    :param dict|str|None csv_options: CSV dialect (see :class:`~airflow_mlops.operators.base.MlopsTableOperator`).
    :return: (XCom) ``{"model_name", "version", "model_uri", "run_id", "experiment_id", "metrics",
        "train_rows", "holdout_rows", "reference_uri", "holdout_uri", "alias", "reused", "run_url"}``.
    """

    template_fields: Sequence[str] = mlops_template_fields(
        "train_uri", "spec_uri", "model_name", "estimator", "estimator_params", "holdout_uri", "test_size",
        "search", "experiment_name", "set_alias", "data_tags", *READ_TEMPLATE_FIELDS,
    )  # fmt: skip
    template_fields_renderers = {"estimator_params": "json", "search": "json", "data_tags": "json"}
    operator_extra_links = (MlflowRunLink(), MlflowModelVersionLink())
    ui_color = "#e0f0ff"

    def __init__(
        self,
        *,
        train_uri: str,
        spec_uri: str,
        model_name: str,
        estimator: str | None = None,
        estimator_params: dict[str, Any] | str | None = None,
        holdout_uri: str | None = None,
        test_size: float | str = 0.2,
        seed: int = 42,
        search: dict[str, Any] | str | None = None,
        experiment_name: str | None = None,
        reference_rows: int = 50_000,
        set_alias: str = CHALLENGER,
        data_tags: dict[str, str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.train_uri = train_uri
        self.spec_uri = spec_uri
        self.model_name = model_name
        self.estimator = estimator
        self.estimator_params = estimator_params
        self.holdout_uri = holdout_uri
        self.test_size = test_size
        self.seed = seed
        self.search = search
        self.experiment_name = experiment_name
        self.reference_rows = reference_rows
        self.set_alias = set_alias
        self.data_tags = data_tags

    # -- steps -------------------------------------------------------------------------------------

    def _split(self, spec: FeatureSpec, data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        if self.holdout_uri:
            holdout = labelled(spec, self.reader.read(self.holdout_uri, columns=spec.training_columns()), self.holdout_uri)
            return data, holdout
        from sklearn.model_selection import train_test_split

        test_size = float(self.test_size)
        if not 0 < test_size < 1:
            raise ValueError(f"test_size must be between 0 and 1, got {test_size}")
        check_class_counts(spec, data, test_size, uri=",".join(as_uri_list(self.train_uri, "train_uri")))
        stratify = data[spec.target] if spec.task == "classification" else None
        train, holdout = train_test_split(data, test_size=test_size, random_state=self.seed, stratify=stratify)
        return train, holdout

    def _fit(self, spec: FeatureSpec, estimator: Any, train: pd.DataFrame) -> tuple[Any, dict[str, Any]]:
        from airflow_mlops.utils import modeling

        pipeline = modeling.build_pipeline(spec, estimator)
        x, y = modeling.feature_frame(train, spec), train[spec.target]
        search = as_mapping(self.search, "search")
        if not search:
            return pipeline.fit(x, y), {}
        from sklearn.model_selection import RandomizedSearchCV

        n_iter = int(search.get("n_iter", 8))
        if not 1 <= n_iter <= modeling.MAX_SEARCH_ITERATIONS:
            raise ValueError(f"search.n_iter must be within 1..{modeling.MAX_SEARCH_ITERATIONS}, got {n_iter}")
        grid = {f"model__{k}": v for k, v in as_mapping(search.get("param_distributions"), "search.param_distributions").items()}
        if not grid:
            raise ValueError("search.param_distributions must name at least one estimator parameter")
        finder = RandomizedSearchCV(
            pipeline, grid, n_iter=n_iter, cv=int(search.get("cv", 3)), scoring=search.get("scoring"), random_state=self.seed, n_jobs=1
        )
        finder.fit(x, y)
        best = {k.removeprefix("model__"): v for k, v in finder.best_params_.items()}
        self.log.info("Search picked %s (cv score %.4f)", best, finder.best_score_)
        return finder.best_estimator_, {"search_best_params": json.dumps(best, default=str), "search_n_iter": n_iter}

    def _evaluate(
        self, spec: FeatureSpec, model: Any, holdout: pd.DataFrame, labels: LabelSpace | None
    ) -> tuple[dict[str, float], dict[str, dict[str, dict[str, float]]]]:
        """The holdout metrics, overall and per segment of the spec (see :mod:`airflow_mlops.utils.segments`)."""
        from airflow_mlops import metrics
        from airflow_mlops.utils import modeling, segments

        x = modeling.feature_frame(holdout, spec)
        proba = model.predict_proba(x) if spec.task == "classification" and hasattr(model, "predict_proba") else None
        predicted = model.predict(x)
        overall = metrics.compute(spec.task, holdout[spec.target].to_numpy(), predicted, proba, labels)
        return overall, segments.measure(spec, holdout, predicted, proba, labels) if spec.segments else {}

    def _label_space(self, spec: FeatureSpec, train: pd.DataFrame, holdout: pd.DataFrame) -> LabelSpace | None:
        """The classes and positive label, checked against the spec before anything is fitted."""
        if spec.task != "classification":
            return None
        from airflow_mlops.metrics import LabelSpace, plain_label, same_label

        labels = LabelSpace.resolve(spec, train[spec.target].unique(), where=str(self.train_uri))
        stray = [v for v in map(plain_label, holdout[spec.target].unique()) if not any(same_label(v, c) for c in labels.classes)]
        if stray:
            raise ValueError(f"{self.holdout_uri or self.train_uri}: the holdout's target holds {stray}, never seen in training")
        return labels

    def _existing_version(self, key: str) -> Any | None:
        found = self.mlflow_hook.registry.versions_tagged(self.model_name, "mlops.ti_key", key)
        return max(found, key=lambda v: int(v.version)) if found else None

    def _summary(self, context: Context, version: Any, reused: bool) -> dict[str, Any]:
        client = self.mlflow_hook.client
        run = client.get_run(version.run_id)
        current = self.mlflow_hook.registry.alias_version(self.model_name, self.set_alias)
        if not reused or current is None:  # a retry sets an alias its crashed try never set, and moves none back
            self.mlflow_hook.registry.set_alias(self.model_name, self.set_alias, version.version)
        elif str(current) != str(version.version):
            self.log.info("Alias %s stays on v%s: it moved on since this task registered v%s", self.set_alias, current, version.version)
        run_url = self.mlflow_hook.run_url(run.info.experiment_id, run.info.run_id)
        MlflowRunLink.persist(context, run_url)
        MlflowModelVersionLink.persist(context, self.mlflow_hook.model_version_url(self.model_name, version.version))
        return {
            "model_name": self.model_name,
            "version": str(version.version),
            "model_uri": f"models:/{self.model_name}/{version.version}",
            "run_id": run.info.run_id,
            "experiment_id": run.info.experiment_id,
            "metrics": {k: v for k, v in sorted(run.data.metrics.items()) if not k.startswith("system/")},
            "train_rows": int(run.data.params.get("train_rows", 0)),
            "holdout_rows": int(run.data.params.get("holdout_rows", 0)),
            "reference_uri": f"runs:/{run.info.run_id}/{REFERENCE_ARTIFACT}",
            "holdout_uri": f"runs:/{run.info.run_id}/{HOLDOUT_ARTIFACT}",
            "alias": self.set_alias,
            "reused": reused,
            "run_url": run_url,
        }

    # -- execute -----------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.metrics import LABELS_TAG
        from airflow_mlops.utils import modeling

        self.reset_links(context)
        spec = self.load_spec(self.spec_uri)
        try:
            if self.set_alias in RESERVED_ALIASES:
                raise ValueError(
                    f"set_alias {self.set_alias!r} is moved only by promotion (MlflowPromoteModelOperator); train to 'challenger' or another alias"
                )
            self.estimator = optional_text(self.estimator) or modeling.default_estimator(spec.task)
            params = as_mapping(self.estimator_params, "estimator_params")
            data_tags = {str(k): str(v) for k, v in as_mapping(self.data_tags, "data_tags").items()}
            train_uris = as_uri_list(self.train_uri, "train_uri")
            for uri in train_uris:
                self.check_confined(uri, "train_uri")
            # Rendered values, read once: an unset XCom value (a window without holdout) renders as "None".
            self.holdout_uri = optional_text(self.holdout_uri)
            self.check_confined(self.holdout_uri, "holdout_uri")
            estimator = modeling.load_estimator(self.estimator, params, spec.task)  # before any MLflow write
        except ValueError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{exc} (no retry: a configuration error does not heal)") from exc
        key = ti_key(context)

        with self.mlflow_hook.activated():
            import mlflow

            client = self.mlflow_hook.client
            existing = self._existing_version(key)
            if existing is not None:
                self.log.info("Version %s of %s was registered by an earlier try of %s; reusing it", existing.version, self.model_name, key)
                return self._summary(context, existing, reused=True)

            data = self._read_training(spec, train_uris)
            try:
                train, holdout = self._split(spec, data)
                labels = self._label_space(spec, train, holdout)
            except ValueError as exc:
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(f"{exc} (no retry: the data or the spec must change)") from exc
            experiment_id = self.mlflow_hook.get_or_create_experiment(self.experiment_name or f"mlops/{self.model_name}")
            for stale in client.search_runs(
                [experiment_id], f"tags.`mlops.ti_key` = {quote_filter(key)} and attributes.status = 'RUNNING'"
            ):
                client.set_terminated(stale.info.run_id, status="FAILED")  # left by a killed earlier try

            tags = run_tags(context) | data_tags | {"mlops.model_name": self.model_name, "mlops.estimator": self.estimator}
            run_name = f"train {self.model_name} {context['ti'].run_id}"
            with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
                self.log.info("Training %s on %d rows (MLflow run %s)", self.estimator, len(train), run.info.run_id)
                model, search_params = self._fit(spec, estimator, train)
                try:
                    metrics, by_segment = self._evaluate(spec, model, holdout, labels)
                except ValueError as exc:  # e.g. a holdout without every class: ROC AUC is undefined
                    raise TableError(f"cannot score the holdout ({len(holdout)} rows): {exc}", uri=self.holdout_uri or str(self.train_uri)) from exc
                mlflow.log_params(
                    {"estimator": self.estimator, **{f"param_{k}": v for k, v in params.items()}, **search_params,
                     "train_rows": len(train), "holdout_rows": len(holdout), "seed": self.seed,
                     "test_size": "" if self.holdout_uri else float(self.test_size), "spec": spec.name}
                    | ({LABELS_TAG: labels.to_json()} if labels else {})
                )  # fmt: skip
                mlflow.log_metrics(metrics)
                self._log_lineage(spec, train, holdout)
                model_info = self._log_model(spec, model, train)
                self._log_samples(spec, train, holdout)
            version_tags = tags | {f"mlops.metric.{k}": f"{v:.6f}" for k, v in metrics.items()}
            if by_segment:
                from airflow_mlops.utils import segments

                version_tags[segments.SEGMENTS_TAG] = segments.to_tag(by_segment)
            version = self.mlflow_hook.registry.register_version(
                self.model_name, model_info.model_uri, run_id=run.info.run_id, model_id=model_info.model_id,
                tags=version_tags | ({LABELS_TAG: labels.to_json()} if labels else {}),
            )  # fmt: skip
            self.log.info("Registered %s version %s (%s)", self.model_name, version.version, json.dumps(metrics))
            return self._summary(context, self.mlflow_hook.registry.get_version(self.model_name, version.version), reused=False)

    def _read_training(self, spec: FeatureSpec, uris: list[str]) -> pd.DataFrame:
        """Every training table, labelled (see :func:`labelled`), one after the other."""
        import pandas as pd

        frames = []
        for uri in uris:
            frame = self.reader.read(uri, columns=spec.training_columns())
            if frame.empty:  # sklearn would fail later with a message that names no file
                raise TableError("the training table has no rows", uri=uri)
            try:
                frames.append(labelled(spec, frame, uri))
            except ValueError as exc:
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(f"{exc} (no retry: the data or the spec must change)") from exc
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def _log_lineage(self, spec: FeatureSpec, train: pd.DataFrame, holdout: pd.DataFrame) -> None:
        import mlflow

        from airflow_mlops.utils.noise import mlflow_quiet

        with mlflow_quiet():
            source = ",".join(as_uri_list(self.train_uri, "train_uri"))
            mlflow.log_input(lineage_dataset(train, source, spec.target, f"{spec.name}-train"), context="training")
            mlflow.log_input(
                lineage_dataset(holdout, self.holdout_uri or source, spec.target, f"{spec.name}-holdout"),
                context="validation",
            )

    def _log_model(self, spec: FeatureSpec, model: Any, train: pd.DataFrame) -> Any:
        import mlflow
        from mlflow.models import ModelSignature, infer_signature

        from airflow_mlops.utils import modeling

        example = modeling.feature_frame(train.head(5), spec)
        output = model.predict_proba(example) if hasattr(model, "predict_proba") else model.predict(example)
        # The inputs from the spec's kinds: five rows may hold no value of a mostly-null column (MLflow: Any).
        signature = ModelSignature(inputs=modeling.input_schema(spec, train), outputs=infer_signature(example, output).outputs)
        from airflow_mlops.utils.noise import mlflow_quiet

        # cloudpickle, deliberately: MLflow's default skops format refuses HistGradientBoosting's
        # TreePredictor as an untrusted type. Models are only loaded from our own registry.
        with mlflow_quiet():
            return mlflow.sklearn.log_model(
                model,
                name="model",
                signature=signature,
                input_example=example,
                pip_requirements=modeling.pip_requirements(),  # explicit: skips ~8 s of inference
                serialization_format="cloudpickle",
            )

    def _log_samples(self, spec: FeatureSpec, train: pd.DataFrame, holdout: pd.DataFrame) -> None:
        import mlflow

        from airflow_mlops.utils import modeling

        reference = train.sample(n=min(self.reference_rows, len(train)), random_state=self.seed)
        reference = modeling.feature_frame(reference, spec)
        with tempfile.TemporaryDirectory() as tmp:
            for frame, artifact in ((reference, REFERENCE_ARTIFACT), (holdout, HOLDOUT_ARTIFACT)):
                local = os.path.join(tmp, os.path.basename(artifact))
                tables.write_table(frame, local)
                mlflow.log_artifact(local, artifact_path=os.path.dirname(artifact))

    # -- lineage -----------------------------------------------------------------------------------

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the training tables and the holdout as inputs (with the spec's schema), the
        registered version as output (``models/<name>/<version>`` in the tracking URI's namespace), and
        the MLflow run (id, experiment, metrics, parameters) as the ``mlops_mlflowRun`` run facet."""
        from airflow_mlops import lineage

        if not lineage.available():
            return None
        spec, summary, tracking_uri = self.lineage_spec, self.lineage_summary, lineage.resolved_tracking_uri(self)
        schema = {"schema": lineage.schema_facet(spec)} if spec else {}
        holdout = optional_text(self.holdout_uri)
        tables_read = [*as_uri_list(self.train_uri, "train_uri"), *([holdout] if holdout else [])]
        inputs = [lineage.input_dataset(uri, schema) for uri in tables_read]
        if not summary or not tracking_uri:  # failed before registering: what it read is all there is
            return lineage.operator_lineage(inputs=inputs)
        from openlineage.client.facet_v2 import dataset_version_dataset

        version_facets = {"version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=summary["version"])}
        if spec:
            version_facets["schema"] = lineage.schema_facet(spec, spec.feature_columns)  # what the model takes
        params = {"estimator": self.estimator, **{f"param_{k}": v for k, v in as_mapping(self.estimator_params, "estimator_params").items()}}
        params |= {"seed": self.seed, "test_size": "" if self.holdout_uri else self.test_size, "spec": spec.name if spec else None}
        params |= {"train_rows": summary["train_rows"], "holdout_rows": summary["holdout_rows"]}
        run = lineage.custom_facet(
            "mlops_mlflowRun", trackingUri=tracking_uri, runId=summary["run_id"], experimentId=summary["experiment_id"],
            modelName=summary["model_name"], modelVersion=summary["version"], modelUri=summary["model_uri"],
            metrics=summary["metrics"], params={k: str(v) for k, v in params.items()}, reused=summary["reused"],
        )  # fmt: skip
        output = lineage.model_version_dataset(tracking_uri, summary["model_name"], summary["version"], output=True, facets=version_facets)
        return lineage.operator_lineage(inputs=inputs, outputs=[output], run_facets={"mlops_mlflowRun": run})

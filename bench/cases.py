"""Benchmark cases. Each case runs in a fresh process (see run.py), once per repeat, and prints one JSON
line per run with its wall time and the process's peak RSS, so memory figures are not polluted by
earlier cases. Imports and model loads are outside the timed regions."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

from airflow_mlops.example_data import SPEC_PATH


def peak_rss_mb() -> float:
    """This process's own peak RSS: ``VmHWM``, which exec resets. ``ru_maxrss`` is not: Linux carries it
    over fork and exec, so a case started by a parent that had generated the data reported the parent's peak."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(**fields: Any) -> None:
    print("RESULT " + json.dumps(fields | {"peak_rss_mb": round(peak_rss_mb(), 1)}), flush=True)


def _context(task_id: str = "bench") -> dict[str, Any]:
    from unittest import mock

    ti = mock.MagicMock(dag_id="bench", task_id=task_id, run_id="bench", map_index=-1, try_number=1)
    return {"ti": ti, "logical_date": None}


def _stopwatch(fn: Any) -> tuple[Any, list[float]]:
    """``fn`` wrapped to add its wall time to the returned one-item list at every call."""
    total = [0.0]

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            total[0] += time.perf_counter() - start

    return timed, total


# -- batch inference -------------------------------------------------------------------------------

def inference_unchecked(partition: str, out_dir: str, model: str, version: str) -> None:
    """(a) without the FeatureSpec row checks: what the spec enforcement costs, side by side with (a)."""
    from airflow_mlops import conformance

    conformance.check_batch = lambda spec, batch, want_reasons=False: conformance.BatchCheck([], 0, None)  # type: ignore[assignment]
    inference_ours(partition, out_dir, model, version)


def inference_ours(partition: str, out_dir: str, model: str, version: str) -> None:
    """(a) this project's code path: MlflowBatchPredictOperator over each file of the partition."""
    from airflow_mlops import conformance, tables
    from airflow_mlops.operators.inference import MlflowBatchPredictOperator

    real_check = conformance.check_batch
    conformance.check_batch, checking = _stopwatch(real_check)  # the spec enforcement's own time, inside (a)'s figure
    files = tables.list_data_files(partition)
    load_cpu = load_wall = 0.0
    real_load = MlflowBatchPredictOperator._load

    def timed_load(self: MlflowBatchPredictOperator, ref: str) -> Any:  # model loads are not scoring: keep their CPU apart
        nonlocal load_cpu, load_wall
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return real_load(self, ref)
        finally:
            load_cpu += time.process_time() - cpu
            load_wall += time.perf_counter() - wall

    MlflowBatchPredictOperator._load = timed_load  # type: ignore[method-assign]
    start, cpu = time.perf_counter(), time.process_time()
    rows, scoring = 0, 0.0
    for i, uri in enumerate(files):  # as the mapped tasks would, one after the other on one worker
        result = MlflowBatchPredictOperator(
            task_id="predict", input_uri=uri, output_uri=f"{out_dir}/part-{i:05d}.parquet", spec_uri=str(SPEC_PATH),
            model_name=model, model_ref=version, scored_at="2025-02-01T00:00:00+00:00",
        ).execute(_context())
        rows += result["rows"]
        scoring += result["seconds"]  # read + check + predict + write, without the model load
    total = time.perf_counter() - start
    conformance.check_batch = real_check  # type: ignore[assignment]
    emit(seconds=scoring, with_model_loads=total, model_loads=len(files), model_load_seconds=load_wall / len(files), rows=rows,
         cores_busy=(time.process_time() - cpu - load_cpu) / (total - load_wall), spec_check_seconds=checking[0])


def inference_naive(partition: str, out_dir: str, model: str, version: str) -> None:
    """(b) what a user would write: read everything, pyfunc.predict, to_parquet."""
    import mlflow
    import pandas as pd

    from airflow_mlops.hooks.mlflow import MlflowHook

    with MlflowHook().activated():
        start = time.perf_counter()
        model_obj = mlflow.pyfunc.load_model(f"models:/{model}/{version}")
        load = time.perf_counter() - start
        frame = pd.read_parquet(partition.removeprefix("file://"))
        frame["prediction"] = model_obj.predict(frame)
        os.makedirs(out_dir, exist_ok=True)
        frame[["customer_id", "prediction"]].to_parquet(f"{out_dir}/predictions.parquet")
    emit(seconds=time.perf_counter() - start - load, model_load_seconds=load, rows=len(frame))


def inference_floor(partition: str, out_dir: str, model: str, version: str) -> None:
    """(c) the floor: predict_proba alone on data already in memory; parquet read+write alone."""
    import mlflow
    import pandas as pd
    import pyarrow.parquet as pq

    from airflow_mlops.hooks.mlflow import MlflowHook
    from airflow_mlops.spec import FeatureSpec
    from airflow_mlops.utils import modeling

    spec = FeatureSpec.load(str(SPEC_PATH))
    with MlflowHook().activated():
        pipeline = mlflow.sklearn.load_model(f"models:/{model}/{version}")
    frame = pd.read_parquet(partition.removeprefix("file://"))
    x = modeling.feature_frame(frame, spec)
    start, cpu = time.perf_counter(), time.process_time()
    pipeline.predict_proba(x)
    predict = time.perf_counter() - start
    cores_busy = (time.process_time() - cpu) / predict
    start = time.perf_counter()
    table = pq.read_table(partition.removeprefix("file://"))
    os.makedirs(out_dir, exist_ok=True)
    pq.write_table(table, f"{out_dir}/copy.parquet")
    emit(seconds=predict, io_seconds=time.perf_counter() - start, rows=len(frame), cores_busy=cores_busy)


# -- model quality -------------------------------------------------------------------------------

EVIDENTLY_NAMES = {"Accuracy": "accuracy", "Precision": "precision", "Recall": "recall", "F1Score": "f1", "RocAuc": "roc_auc", "LogLoss": "log_loss"}


def _scored_period(month_uri: str, model: str, version: str) -> tuple[str, str]:
    """(Setup, outside the clock) the month's predictions as batch inference publishes them, and its
    labels feed, drawn by the generator from the same seed as the month's features."""
    from airflow_mlops import tables
    from airflow_mlops.example_data import churn
    from airflow_mlops.operators.inference import MlflowBatchPredictOperator

    out = f"{os.environ['BENCH_OUT']}/quality"
    month = month_uri.rstrip("/").rsplit("=", 1)[-1]
    predictions, labels = f"{out}/predictions/month={month}", f"{out}/labels/month={month}"
    if not tables.storage_path(f"{predictions}/_SUCCESS").exists():
        names = []
        for part, uri in enumerate(tables.list_data_files(month_uri)):
            names.append(f"part-{part:05d}.parquet")
            MlflowBatchPredictOperator(
                task_id="predict", input_uri=uri, output_uri=f"{predictions}/{names[-1]}", spec_uri=str(SPEC_PATH), model_name=model,
                model_ref=version, scored_at=f"{month}-28",
            ).execute(_context())  # fmt: skip
            rows = tables.parquet_row_count(uri)
            frame = churn.generate_frame(rows, seed=42, month=month, part=part)[["customer_id", "churned"]]
            tables.write_table(frame, f"{labels}/{names[-1]}")
        tables.finish_partition(predictions, keep=names)
        tables.finish_partition(labels, keep=names)
    return predictions, labels


def quality_ours(month_uri: str, model: str, version: str) -> None:
    """The operator's path: read predictions and labels, join, every metric overall and per segment,
    Evidently report (on a 50k sample), JSON summary, MLflow history."""
    from airflow_mlops.operators.quality import ModelQualityCheckOperator

    predictions, labels = _scored_period(month_uri, model, version)
    period = month_uri.rstrip("/").rsplit("=", 1)[-1]
    op = ModelQualityCheckOperator(
        task_id="quality", predictions_uri=predictions, labels_uri=labels, spec_uri=str(SPEC_PATH), model_name=model,
        period=period, reports_uri=f"{os.environ['BENCH_OUT']}/quality/reports",
    )  # fmt: skip
    start = time.perf_counter()
    result = op.execute(_context(f"quality-{time.time_ns()}"))
    emit(seconds=time.perf_counter() - start, rows=result["rows"]["labelled"], metrics=result["metrics"], segments=len(result["segments"]))


def quality_bare(month_uri: str, model: str, version: str) -> None:
    """Evidently's ClassificationPreset on the fully joined frame (read and join outside the clock), as a user would run it."""
    import pandas as pd

    from airflow_mlops import tables

    os.environ.setdefault("DO_NOT_TRACK", "1")
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    predictions, labels = _scored_period(month_uri, model, version)
    joined = tables.read_table(predictions).merge(tables.read_table(labels), on="customer_id")
    frame = pd.DataFrame({"target": joined["churned"], "prediction": joined["prediction"], "probability": joined["probability"]})
    definition = DataDefinition(
        classification=[BinaryClassification(target="target", prediction_labels="prediction", prediction_probas="probability", pos_label=1)]
    )
    start = time.perf_counter()
    snapshot = Report([ClassificationPreset()]).run(Dataset.from_pandas(frame, data_definition=definition), None)
    seconds = time.perf_counter() - start
    values = {EVIDENTLY_NAMES[m["config"]["type"].rsplit(":", 1)[-1]]: m["value"] for m in snapshot.dict()["metrics"]
              if m["config"]["type"].rsplit(":", 1)[-1] in EVIDENTLY_NAMES}  # fmt: skip
    emit(seconds=seconds, rows=len(frame), metrics=values)


# -- training window -------------------------------------------------------------------------------

def window_ours(root: str, end_month: str, window_months: str) -> None:
    """TrainingWindowOperator on ``window_months`` + 1 labelled months of features and their labels
    feed: each month joined by id, the training months and the holdout month written as partitions."""
    from airflow_mlops.operators.window import TrainingWindowOperator

    op = TrainingWindowOperator(
        task_id="window", features_uri=f"{root}/monthly/month={{month}}", labels_uri=f"{root}/labels/month={{month}}",
        spec_uri=str(SPEC_PATH), output_uri=f"{os.environ['BENCH_OUT']}/window", window_months=int(window_months), end_month=end_month,
    )  # fmt: skip
    start = time.perf_counter()
    result = op.execute(_context(f"window-{time.time_ns()}"))
    emit(seconds=time.perf_counter() - start, rows=result["rows"], months=len(result["train_months"]) + 1)


# -- drift -----------------------------------------------------------------------------------------

def drift_ours(current: str, reference: str, sample_rows: str) -> None:
    """The operator's path: seeded sample of each side, DataDriftPreset, verdict from the share."""
    import evidently.presets  # noqa: F401 - imported before timing, as in the bare case

    from airflow_mlops.operators import drift
    from airflow_mlops.operators.drift import EvidentlyDriftCheckOperator

    real_choose = drift.drift_methods.choose
    drift.drift_methods.choose, choosing = _stopwatch(real_choose)  # the per-column test choice, inside the figure
    op = EvidentlyDriftCheckOperator(
        task_id="drift", current_uri=current, reference_uri=reference, spec_uri=str(SPEC_PATH), model_name="bench",
        period="bench", drift_share=0.2, sample_rows=int(sample_rows), reports_uri=f"{os.environ['BENCH_OUT']}/drift",
    )
    start = time.perf_counter()
    result = op.execute(_context())
    drift.drift_methods.choose = real_choose  # type: ignore[assignment]
    emit(seconds=time.perf_counter() - start, drift=result["drift_detected"], share=result["share"], columns=result["drifted_columns"],
         method_choice_seconds=choosing[0])


def drift_bare(current: str, reference: str, sample_rows: str) -> None:
    """A bare Evidently run on all rows of both sides, as a user would call it."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from airflow_mlops import tables
    from airflow_mlops.spec import FeatureSpec

    spec = FeatureSpec.load(str(SPEC_PATH))
    cur = tables.read_table(current, columns=spec.feature_columns)
    ref = tables.read_table(reference, columns=spec.feature_columns)
    definition = DataDefinition(numerical_columns=spec.numeric_columns, categorical_columns=spec.categorical_columns)
    start = time.perf_counter()
    snapshot = Report([DataDriftPreset(drift_share=0.2)], include_tests=True).run(
        Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition)
    )
    seconds = time.perf_counter() - start
    result = snapshot.dict()
    share = next(m for m in result["metrics"] if m["config"]["type"].endswith("DriftedColumnsCount"))["value"]["share"]
    drifted = sorted(t["metric_config"]["params"]["column"] for t in result["tests"] if t["metric_config"]["params"].get("type", "").endswith("ValueDrift") and t["status"] == "FAIL")
    emit(seconds=seconds, drift=share >= 0.2, share=share, columns=drifted)


# -- validation ------------------------------------------------------------------------------------

def validation_ours(table: str, batch_rows: str, engine: str = "arrow") -> None:
    """The operator's path: the table streamed in batches of batch_rows rows; the spec's expectations in one
    Arrow pass (engine="arrow", the default) or through GX on pandas batches, results merged (engine="gx",
    the former path); result JSON and Data Docs written."""
    import great_expectations  # noqa: F401 - imported before timing, as in the bare case

    from airflow_mlops.operators.validation import GxValidateTableOperator

    op = GxValidateTableOperator(
        task_id="v", table_uri=table, spec_uri=str(SPEC_PATH), labelled=False, on_failure="continue",
        batch_rows=int(batch_rows), reports_uri=f"{os.environ['BENCH_OUT']}/validation-{engine}", engine=engine,
    )
    start = time.perf_counter()
    summary = op.execute(_context())
    counts = {f"{f['expectation']}({f['column']})": f.get("unexpected_count") for f in summary["failed"]}
    emit(seconds=time.perf_counter() - start, failed=sorted(counts), counts=counts, rows=summary["rows"], evaluated=summary["evaluated"])


def validation_gx(table: str, batch_rows: str) -> None:
    """The former path: every expectation through GX on pandas batches (the operator with engine="gx")."""
    validation_ours(table, batch_rows, engine="gx")


def validation_floor(table: str, batch_rows: str) -> None:
    """The floor: read the table's batches and count the spec's row rules by hand in one streaming
    pyarrow.compute pass (nulls, bounds, allowed values) and the ids' uniqueness over the table (the ids
    kept in memory, then counted distinct: the simplest fast way, not bounded); no reports."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from airflow_mlops import tables
    from airflow_mlops.spec import FeatureSpec

    spec = FeatureSpec.load(str(SPEC_PATH))
    start = time.perf_counter()
    bad: dict[str, int] = {}
    rows = 0
    ids: list[pa.Array] = []
    for batch in tables.TableReader().batches(table, batch_rows=int(batch_rows)):
        rows += batch.num_rows
        ids.append(batch.column(spec.id_columns[0]))
        for name in spec.passthrough_columns:
            bad[f"{name} null"] = bad.get(f"{name} null", 0) + pc.sum(pc.is_null(batch.column(name))).as_py()
        for num in spec.numeric_features:
            col = batch.column(num.name)
            if not num.nullable:
                bad[f"{num.name} null"] = bad.get(f"{num.name} null", 0) + (pc.sum(pc.is_null(col, nan_is_null=True)).as_py() or 0)
            out = pc.or_(pc.less(col, num.min if num.min is not None else float("-inf")), pc.greater(col, num.max if num.max is not None else float("inf")))
            bad[f"{num.name} range"] = bad.get(f"{num.name} range", 0) + (pc.sum(out).as_py() or 0)
        for cat in spec.categorical_features:
            col = batch.column(cat.name)
            if not cat.nullable:
                bad[f"{cat.name} null"] = bad.get(f"{cat.name} null", 0) + pc.sum(pc.is_null(col)).as_py()
            if cat.values is not None:
                outside = pc.and_(pc.invert(pc.is_in(col, value_set=pa.array(list(cat.values)))), pc.is_valid(col))
                bad[f"{cat.name} set"] = bad.get(f"{cat.name} set", 0) + (pc.sum(outside).as_py() or 0)
    rules_seconds = time.perf_counter() - start
    bad["id repeated"] = rows - pc.count_distinct(pa.chunked_array(ids), mode="all").as_py()
    emit(seconds=time.perf_counter() - start, rules_seconds=rules_seconds, rows=rows, broken={k: v for k, v in bad.items() if v})


def validation_bare(table: str, batch_rows: str) -> None:
    """A bare GX 1.x validation of the same suite on the whole table read into one DataFrame."""
    import great_expectations as gx

    from airflow_mlops import tables
    from airflow_mlops.spec import FeatureSpec
    from airflow_mlops.utils import expectations

    spec = FeatureSpec.load(str(SPEC_PATH))
    start = time.perf_counter()  # from the file, as the operator: a user's validation reads the table too
    frame = tables.read_table(table)
    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_pandas("bare").add_dataframe_asset("t").add_batch_definition_whole_dataframe("b")
    suite = expectations.build_suite(context, expectations.spec_expectations(spec, labelled=False), "bare")
    definition = context.validation_definitions.add(gx.ValidationDefinition(name="bare", data=batch, suite=suite))
    result = definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")
    seconds = time.perf_counter() - start
    failed = sorted(f"{r.expectation_config.type}({r.expectation_config.kwargs.get('column')})" for r in result.results if not r.success)
    emit(seconds=seconds, failed=failed, rows=len(frame))


# -- parse time ------------------------------------------------------------------------------------

def parse(path: str) -> None:
    """DagBag of one file, the way Airflow 3.3's DAG processor parses it: in a fresh process that has
    imported Airflow, pre-imported the ``airflow.*`` modules the file names (``parsing_pre_import_modules``,
    done in the processor before it forks the parsing child) and frozen the GC (``gc.freeze()``, also
    done before forking, so a collection in the child does not walk Airflow's own objects)."""
    import gc
    import importlib

    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.file import iter_airflow_imports

    for module in iter_airflow_imports(path):
        importlib.import_module(module)
    gc.freeze()
    start = time.perf_counter()
    bag = DagBag(dag_folder=path)
    seconds = time.perf_counter() - start
    assert not bag.import_errors, bag.import_errors
    start = time.perf_counter()
    DagBag(dag_folder=path)  # again: module imports are now cached, only the DAG is built
    emit(seconds=seconds, warm_seconds=time.perf_counter() - start, dags=len(bag.dags))


def import_provider() -> None:
    start = time.perf_counter()
    import airflow_mlops
    import airflow_mlops.operators.inference  # noqa: F401

    emit(seconds=time.perf_counter() - start)


# -- training overhead -----------------------------------------------------------------------------

_TRAINING_TIMINGS: dict[str, float] = {}


def training(train_uri: str, model: str) -> None:
    """MlflowTrainModelOperator on a training partition: fit, holdout metrics, data reading, and the
    MLflow work (run, params, lineage, model, samples, registration, alias) timed apart.

    Library imports and opening the MLflow store happen before the clock starts: every Python task
    pays them, with or without MLflow logging, so they are not logging overhead."""
    import mlflow
    import sklearn.ensemble  # noqa: F401

    from airflow_mlops.hooks.mlflow import MlflowHook
    from airflow_mlops.operators import training as training_module

    MlflowHook().client.search_registered_models(max_results=1)  # opens (and migrates) the store
    del mlflow
    cls = training_module.MlflowTrainModelOperator
    timings = _TRAINING_TIMINGS
    timings.clear()
    if not getattr(cls, "_bench_timed", False):  # patch once: the case may run again in this process

        def timed(name, fn):
            def wrapper(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
            return wrapper

        cls._fit = timed("fit", cls._fit)
        cls._evaluate = timed("evaluate", cls._evaluate)
        cls._split = timed("data", cls._split)
        training_module.tables.read_table = timed("data", training_module.tables.read_table)
        for step in ("_log_lineage", "_log_model", "_log_samples"):
            setattr(cls, step, timed(step.removeprefix("_"), getattr(cls, step)))
        cls._bench_timed = True
    op = cls(task_id="train", train_uri=train_uri, spec_uri=str(SPEC_PATH), model_name=model)
    start = time.perf_counter()
    op.execute(_context(f"train-{time.time_ns()}"))
    total = time.perf_counter() - start
    mlflow_work = total - timings["fit"] - timings["evaluate"] - timings["data"]
    emit(seconds=total, fit=timings["fit"], evaluate=timings["evaluate"], data=timings["data"], mlflow_logging=mlflow_work,
         lineage=timings["log_lineage"], log_model=timings["log_model"], samples=timings["log_samples"],
         run_and_registration=mlflow_work - timings["log_lineage"] - timings["log_model"] - timings["log_samples"])


# -- promotion: the registry lock's cost --------------------------------------------------------------

def promotion(tracking_uri: str, locked: str, rounds: str) -> None:
    """One promotion's registry work against an ``mlflow server``: re-read the champion, crown the other
    version, record the decision; ``rounds`` times, under the promotion lock (``locked=1``) or without it
    (``locked=0``: what a promotion serialised by the one-slot pool alone would do). Emits the median
    seconds per promotion and its min-max over the rounds."""
    import statistics
    import uuid

    from airflow_mlops.hooks.mlflow import MlflowConfig, MlflowHook
    from airflow_mlops.hooks.registry import CHAMPION

    hook = MlflowHook(config=MlflowConfig(tracking_uri=tracking_uri))
    registry = hook.registry
    name = f"bench_promotion_{uuid.uuid4().hex[:8]}"
    run_id = hook.client.create_run(hook.get_or_create_experiment("bench_promotion")).info.run_id
    versions = [str(registry.register_version(name, f"runs:/{run_id}/model", run_id=run_id, tags={}).version) for _ in (1, 2)]
    registry.crown(name, versions[0], replaced=None)
    took = []
    for i in range(int(rounds)):
        start = time.perf_counter()
        if locked == "1":
            with registry.promotion_lock(name, holder="bench"):
                current = registry.alias_version(name, CHAMPION)
                registry.crown(name, versions[(i + 1) % 2], replaced=current)
                registry.record_decision(name, versions[(i + 1) % 2], {"decision": "promoted"})
        else:
            current = registry.alias_version(name, CHAMPION)
            registry.crown(name, versions[(i + 1) % 2], replaced=current)
            registry.record_decision(name, versions[(i + 1) % 2], {"decision": "promoted"})
        took.append(time.perf_counter() - start)
    emit(seconds=statistics.median(took), fastest=min(took), slowest=max(took), rounds=len(took))


def main() -> None:
    case = sys.argv[1]
    # BENCH_REPEAT runs the case again in this process: one RESULT line per run, and the peak RSS
    # of each line is the process's peak so far, so the max over the lines is the max over the runs.
    for _ in range(int(os.environ.get("BENCH_REPEAT", "1"))):
        globals()[case](*sys.argv[2:])


if __name__ == "__main__":
    main()


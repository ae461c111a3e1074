"""Model-quality monitoring on late labels: real sklearn, MLflow and Evidently on the churn
generator's labels feed, with a month of concept drift that the drift check cannot see."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops import metrics, tables
from airflow_mlops.example_data import SPEC_PATH, churn
from airflow_mlops.exceptions import ModelDecayError, PartitionNotReadyError, TableError
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.operators.drift import EvidentlyDriftCheckOperator
from airflow_mlops.operators.inference import MlflowBatchPredictOperator
from airflow_mlops.operators.quality import ModelQualityCheckOperator
from airflow_mlops.operators.registry import MlflowPromoteModelOperator
from airflow_mlops.operators.training import MlflowTrainModelOperator
from airflow_mlops.periods import month_ordinal
from airflow_mlops.utils import monitoring
from tests.helpers import task_context
from tests.unit.operators import pandas_labels

SPEC = str(SPEC_PATH)
MONTHS = ["2025-01", "2025-02"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """A champion trained before any drift, and two scored months: stable, then concept drift."""
    root = tmp_path_factory.mktemp("quality")
    data = churn.generate_dataset(
        str(root), rows=4000, months=MONTHS, training_rows=8000, rows_per_file=4000, concept_drift_from="2025-02", seed=11
    )
    model = f"q_{uuid.uuid4().hex[:6]}"
    trained = MlflowTrainModelOperator(
        task_id="train", train_uri=data["training"], spec_uri=SPEC, model_name=model, estimator_params={"max_iter": 60}
    ).execute(task_context("train"))
    MlflowPromoteModelOperator(task_id="promote", model_name=model, spec_uri=SPEC).execute(task_context("promote"))
    for month in MONTHS:
        out = f"{root}/predictions/month={month}"
        MlflowBatchPredictOperator(
            task_id="predict", input_uri=tables.list_data_files(data["months"][month])[0], output_uri=f"{out}/part-00000.parquet",
            spec_uri=SPEC, model_name=model, scored_at=f"{month}-28",
        ).execute(task_context("predict"))  # fmt: skip
        tables.finish_partition(out, keep=["part-00000.parquet"])
    return data | {"root": root, "model": model, "version": trained["version"], "trained": trained}


def check(world: dict, month: str, reports: Path, **kwargs) -> dict:
    kwargs.setdefault("labels_uri", world["labels"].get(month))
    op = ModelQualityCheckOperator(
        task_id="quality", predictions_uri=f"{world['root']}/predictions/month={month}", spec_uri=SPEC,
        model_name=world["model"], period=month, reports_uri=str(reports), max_relative_drop=0.05, **kwargs,
    )  # fmt: skip
    return op.execute(task_context("quality"))


def test_a_stable_month_holds_and_a_concept_drifted_month_decays_while_its_inputs_do_not_drift(world, tmp_path) -> None:
    stable = check(world, "2025-01", tmp_path)
    decayed = check(world, "2025-02", tmp_path)

    assert stable["decayed"] is False and stable["coverage"] == 1.0 and stable["rows"]["labelled"] == 4000
    assert stable["baseline"] == pytest.approx(world["trained"]["metrics"]["roc_auc"], abs=1e-6)
    assert decayed["decayed"] is True and decayed["trigger_retraining"] is True
    assert decayed["value"] < stable["value"] - 0.05, (stable["value"], decayed["value"])
    # The inputs of the decayed month did not move: the drift check has nothing to say.
    drift = EvidentlyDriftCheckOperator(
        task_id="drift", current_uri=world["months"]["2025-02"], reference_uri=world["training"], spec_uri=SPEC, model_name=world["model"],
        period="2025-02", drift_share=0.2, reports_uri=str(tmp_path / "drift"),
    ).execute(task_context("drift"))  # fmt: skip
    assert drift["drift_detected"] is False

    # Same definitions as training: recompute from the joined rows.
    scored = pd.read_parquet(f"{world['root']}/predictions/month=2025-01").merge(pd.read_parquet(world["labels"]["2025-01"]), on="customer_id")
    labels = metrics.LabelSpace((0, 1), 1)
    proba = scored["probability"].to_numpy()
    expected = metrics.compute("classification", scored["churned"].to_numpy(), scored["prediction"].to_numpy(), np.column_stack([1 - proba, proba]), labels)
    assert stable["metrics"] == pytest.approx(expected, abs=1e-12)
    # Segments: every value of contract and internet_service, with its rows and metric.
    contract = {s["value"]: s for s in stable["segments"] if s["segment"] == "contract"}
    assert set(contract) == {"month-to-month", "one-year", "two-year"}
    assert sum(s["rows"] for s in contract.values()) == 4000
    assert all(0.4 < s["roc_auc"] <= 1.0 for s in contract.values())
    assert all(s["judged"] and s["baseline"] is not None for s in contract.values())  # each against itself at training
    assert stable["flagged_segments"] == []
    assert decayed["flagged_segments"], "the concept drift takes some segments below their holdout values"
    html = Path(stable["report_uri"].removeprefix("file://")).read_text()
    assert "<html" in html.lower() and len(html) > 50_000  # Evidently's classification report


def before(world: dict, labels_uri: str) -> tuple[dict, pd.DataFrame]:
    """The quality check's numbers as it computed them before its join ran out of core: both sides read
    into pandas and merged (tests/unit/operators/pandas_labels.py), the metrics of airflow_mlops.metrics
    overall and per segment (airflow_mlops.utils.segments) on the merged frame."""
    from airflow_mlops.metrics import LabelSpace, plain_label
    from airflow_mlops.spec import FeatureSpec
    from airflow_mlops.utils import segments

    spec = FeatureSpec.load(SPEC)
    predictions_uri = f"{world['root']}/predictions/month=2025-01"
    predictions = tables.read_table(predictions_uri)
    labelled = pandas_labels.read_labels(tables.TableReader(), spec, labels_uri)
    joined = pandas_labels.join_labels(spec, predictions, labelled, rows_uri=predictions_uri, labels_uri=labels_uri, what="predictions")
    joined[spec.target] = joined[spec.target].map(plain_label)
    labels = LabelSpace.from_tags(MlflowHook().client.get_model_version(world["model"], world["version"]).tags)
    positive = joined["probability"].to_numpy(dtype="float64")
    proba = np.column_stack([1 - positive, positive] if labels.positive_index == 1 else [positive, 1 - positive])
    y_true, y_pred = joined[spec.target].to_numpy(), joined["prediction"].to_numpy()
    numbers = {
        "metrics": metrics.compute(spec.task, y_true, y_pred, proba, labels),
        "segments": segments.measure(spec, joined, y_pred, proba, labels),
        "rows": {"predictions": len(predictions), "labels": len(labelled), "labelled": len(joined), "unscored_labels": len(labelled) - len(joined)},
    }  # fmt: skip
    return numbers, joined


def test_the_out_of_core_join_gives_the_metrics_of_the_pandas_merge(world, tmp_path, monkeypatch) -> None:
    """Labels that arrive shuffled, over two files, some not yet (a sixth of the ids), some without an
    outcome (a null: the label column then reads as float), some for ids never scored."""
    frame = pd.read_parquet(world["labels"]["2025-01"]).sample(frac=1.0, random_state=3).iloc[700:]
    frame = frame.assign(churned=frame["churned"].astype("float64"))
    frame.loc[frame.index[:40], "churned"] = np.nan
    frame = pd.concat([frame, pd.DataFrame({"customer_id": [-1, -2, -3], "churned": [1.0, 0.0, 1.0]})])
    folder = tmp_path / "labels"
    for part, rows in enumerate(np.array_split(np.arange(len(frame)), 2)):
        tables.write_table(frame.iloc[rows], str(folder / f"part-{part}.parquet"))
    tables.finish_partition(str(folder), keep=["part-0.parquet", "part-1.parquet"])
    seen = []
    real = monitoring.write_quality_report
    monkeypatch.setattr(monitoring, "write_quality_report", lambda spec, rows, *a, **k: seen.append(rows.copy()) or real(spec, rows, *a, **k))

    summary = check(world, "2025-01", tmp_path / "reports", labels_uri=str(folder))

    expected, joined = before(world, str(folder))
    assert summary["rows"] == expected["rows"] == {"predictions": 4000, "labels": 3300 - 40 + 3, "labelled": 3260, "unscored_labels": 3}
    assert summary["coverage"] == 3260 / 4000
    assert set(summary["metrics"]) == set(expected["metrics"]) == {"accuracy", "f1", "precision", "recall", "log_loss", "roc_auc"}
    for name, value in expected["metrics"].items():
        assert abs(summary["metrics"][name] - value) <= 1e-9, name
    by_segment = {(s["segment"], s["value"]): s for s in summary["segments"]}
    assert set(by_segment) == {(column, value) for column, values in expected["segments"].items() for value in values}
    for (column, value), measured in by_segment.items():
        assert measured["rows"] == expected["segments"][column][value]["rows"], (column, value)
        assert abs(measured["roc_auc"] - expected["segments"][column][value]["roc_auc"]) <= 1e-9, (column, value)
    # The report drew from the same rows in the same order (its seeded sample picks rows by position).
    [report_rows] = seen
    pd.testing.assert_frame_equal(report_rows, joined[list(report_rows.columns)].reset_index(drop=True))
    assert list(report_rows.columns) == ["churned", "prediction", "probability", "contract", "internet_service"]


def test_a_duplicate_label_id_is_refused_with_the_message_of_the_pandas_path(world, tmp_path) -> None:
    from airflow_mlops.spec import FeatureSpec

    labels = _bad_labels(world, tmp_path, lambda f: pd.concat([f.iloc[:50], f.iloc[[30, 9, 9]], f.iloc[50:]]))
    with pytest.raises(TableError) as old:
        pandas_labels.read_labels(tables.TableReader(), FeatureSpec.load(SPEC), labels)

    with pytest.raises(TableError) as new:
        check(world, "2025-01", tmp_path, labels_uri=labels)

    assert str(new.value) == str(old.value)
    first = pd.read_parquet(world["labels"]["2025-01"])["customer_id"].iloc[[9, 30]].tolist()  # in the order they first occur
    assert str(new.value) == (
        f"{labels}: 5 label rows share their id ['customer_id'], e.g. [{{'customer_id': {first[0]}}}, {{'customer_id': {first[1]}}}]; "
        "keep one label per id"
    )


def test_history_in_mlflow_one_value_per_period_and_a_rerun_replaces_its_period(world, tmp_path) -> None:
    partial = tmp_path / "partial.parquet"
    pd.read_parquet(world["labels"]["2025-01"]).head(2500).to_parquet(partial, index=False)

    first = check(world, "2025-01", tmp_path, labels_uri=str(partial))  # labels still arriving: 62.5 %
    again = check(world, "2025-01", tmp_path)  # all labels: the period's record is replaced
    later = check(world, "2025-02", tmp_path)

    assert first["rows"]["labelled"] == 2500 and again["rows"]["labelled"] == 4000
    client = MlflowHook().client
    live = client.search_runs(
        [client.get_run(later["mlflow_run_id"]).info.experiment_id],
        f"tags.`mlops.monitoring` = 'quality' and tags.`mlops.model_version` = '{world['version']}'",
    )
    assert [r.info.run_id for r in live] == [later["mlflow_run_id"]]  # one monitoring run per version
    assert client.get_run(first["mlflow_run_id"]).info.lifecycle_stage == "deleted"  # rebuilt without the old values
    history = client.get_metric_history(later["mlflow_run_id"], "quality.roc_auc")
    assert sorted((p.step, round(p.value, 9)) for p in history) == [
        (month_ordinal("2025-01"), round(again["value"], 9)), (month_ordinal("2025-02"), round(later["value"], 9)),
    ]  # fmt: skip
    version = client.get_model_version(world["model"], world["version"])
    assert version.tags[monitoring.VERSION_RUN_TAG] == later["mlflow_run_id"]  # the registry leads to the history
    summary = json.loads((tmp_path / "period=2025-01" / "summary.json").read_text())
    assert summary["rows"]["labelled"] == 4000


def test_hysteresis_needs_consecutive_decayed_periods_from_its_own_reports_folder(world, tmp_path) -> None:
    check(world, "2025-01", tmp_path)
    alone = check(world, "2025-02", tmp_path, consecutive=2)
    assert alone["decayed"] is True and alone["trigger_retraining"] is False  # 2025-01 held

    with pytest.raises(ModelDecayError, match=r"decayed on 2025-02: roc_auc"):
        check(world, "2025-02", tmp_path, on_decay="fail")


def _bad_labels(world: dict, tmp_path: Path, change) -> str:
    path = tmp_path / f"labels_{uuid.uuid4().hex[:6]}.parquet"
    change(pd.read_parquet(world["labels"]["2025-01"])).to_parquet(path, index=False)
    return str(path)


BAD = {
    "duplicate ids": (lambda f: pd.concat([f, f.head(3)]), TableError, r"6 label rows share their id \['customer_id'\]"),
    "missing label column": (lambda f: f.drop(columns=["churned"]), TableError, r"missing column\(s\) \['churned'\]"),
    "unknown class": (lambda f: f.assign(churned=f["churned"].where(f.index > 0, 7)), AirflowFailException, r"labels \['7'\] are not classes"),
    "zero coverage": (lambda f: f.assign(customer_id=f["customer_id"] + 10**8), ValueError, r"label coverage 0.0% .* below min_coverage 50%"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_labels_fail_clearly_and_leave_earlier_records_intact(case, world, tmp_path) -> None:
    good = check(world, "2025-01", tmp_path)
    kept = hashlib.sha256((tmp_path / "period=2025-01" / "summary.json").read_bytes()).hexdigest()
    change, error, message = BAD[case]

    with pytest.raises(error, match=message):
        check(world, "2025-01", tmp_path, labels_uri=_bad_labels(world, tmp_path, change))

    assert hashlib.sha256((tmp_path / "period=2025-01" / "summary.json").read_bytes()).hexdigest() == kept
    assert MlflowHook().client.get_run(good["mlflow_run_id"]).info.lifecycle_stage == "active"


def test_labels_of_ids_never_scored_are_counted_and_an_unpublished_period_is_refused(world, tmp_path) -> None:
    extra = _bad_labels(world, tmp_path, lambda f: pd.concat([f, f.head(5).assign(customer_id=f["customer_id"].head(5) + 10**8)]))
    summary = check(world, "2025-01", tmp_path, labels_uri=extra)
    assert summary["rows"]["unscored_labels"] == 5 and summary["coverage"] == 1.0

    unpublished = world["root"] / "predictions" / "month=2025-03"  # scored, but publish never wrote its marker
    unpublished.mkdir(parents=True)
    shutil.copy(world["root"] / "predictions" / "month=2025-01" / "part-00000.parquet", unpublished)
    with pytest.raises(PartitionNotReadyError) as refused:
        check(world, "2025-03", tmp_path, labels_uri=world["labels"]["2025-01"], require_marker=False)
    # It says what it needs and what writes it, and offers no option that would not help.
    message = str(refused.value)
    assert message.startswith(f"{unpublished}: not a published predictions partition (partition has no _SUCCESS marker")
    assert "published, with the _SUCCESS manifest naming their files" in message
    assert "batch-scoring block's publish step writes it (PublishPartitionOperator, or airflow_mlops.tables.publish_partition)" in message
    assert "require_marker governs the labels only" in message
    assert "pass require_marker=False" not in message


def test_multiclass_and_regression_periods_on_real_penguins(tmp_path) -> None:
    """String multiclass labels and a numeric target, on the penguins table (examples/penguins_data.py)."""
    import runpy

    import yaml

    from airflow_mlops.spec import FeatureSpec
    from tests.byod.conftest import PENGUINS_SPEC
    from tests.conftest import REPO

    root = tmp_path / "penguins"
    runpy.run_path(str(REPO / "examples" / "penguins_data.py"))["write_layout"](str(root))
    truth = pd.read_parquet(root / "training" / "part-0.parquet")  # the "later labels": the measured penguins
    doc = FeatureSpec.load(str(PENGUINS_SPEC)).to_dict()
    regression = dict(doc, task="regression", target="body_mass_g", numeric_features={k: v for k, v in doc["numeric_features"].items() if k != "body_mass_g"})
    regression.pop("classes")
    cases = {
        "species": (str(PENGUINS_SPEC), "sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 50}, "f1"),
        "body_mass_g": (str(tmp_path / "mass.yaml"), "sklearn.linear_model.Ridge", {"alpha": 1.0}, "rmse"),
    }
    (tmp_path / "mass.yaml").write_text(yaml.safe_dump(regression))
    truth.dropna(subset=["body_mass_g"]).to_parquet(tmp_path / "train.parquet", index=False)
    for target, (spec, estimator, params, metric) in cases.items():
        model = f"pq_{target}_{uuid.uuid4().hex[:6]}"
        MlflowTrainModelOperator(
            task_id="train", train_uri=str(tmp_path / "train.parquet"), spec_uri=spec, model_name=model, estimator=estimator,
            estimator_params=params,
        ).execute(task_context("train"))  # fmt: skip
        out = tmp_path / f"pred_{target}"
        MlflowBatchPredictOperator(
            task_id="predict", input_uri=str(tmp_path / "train.parquet"), output_uri=str(out / "part-0.parquet"), spec_uri=spec,
            model_name=model, model_ref="1", scored_at="2009-01-31",
        ).execute(task_context("predict"))  # fmt: skip
        tables.finish_partition(str(out), keep=["part-0.parquet"])
        labels = tmp_path / f"labels_{target}.parquet"
        truth.dropna(subset=["body_mass_g"])[["penguin_id", target]].to_parquet(labels, index=False)

        summary = ModelQualityCheckOperator(
            task_id="quality", predictions_uri=str(out), labels_uri=str(labels), spec_uri=spec, model_name=model, period="2009-01",
            metric=metric, max_relative_drop=0.5, reports_uri=str(tmp_path / f"q_{target}"),
        ).execute(task_context("quality"))  # fmt: skip

        assert summary["rows"]["labelled"] == 223 and summary["metric"] == metric  # 224 measured, one without a mass
        assert summary["decayed"] is False  # scored on the rows it learnt from: no worse than its holdout
        if target == "species":
            assert summary["metrics"]["f1"] > 0.95 and set(summary["metrics"]) >= {"roc_auc", "log_loss", "accuracy"}
            # A holdout of one sub-population (Gentoo only) is judged on labels; a metric that needs
            # every class fails at once, naming the missing classes.
            gentoo = tmp_path / "gentoo.parquet"
            truth[truth["species"] == "Gentoo"].to_parquet(gentoo, index=False)
            promote = {"task_id": "promote", "model_name": model, "spec_uri": spec, "holdout_uri": str(gentoo), "min_value": 0.5}
            with pytest.raises(AirflowFailException, match=r"roc_auc is undefined on the holdout .*gentoo.parquet.*\['Adelie', 'Chinstrap'\]"):
                MlflowPromoteModelOperator(metric="roc_auc", **promote).execute(task_context("promote"))
            by_labels = MlflowPromoteModelOperator(metric="accuracy", **promote).execute(task_context("promote"))
            assert by_labels["decision"] == "promoted" and by_labels["challenger_score"] > 0.95
        else:
            assert set(summary["metrics"]) == {"rmse", "mae", "r2"} and summary["metrics"]["r2"] > 0.5
        assert Path(summary["report_uri"].removeprefix("file://")).stat().st_size > 10_000


def test_promotion_rejects_a_challenger_that_wins_overall_but_loses_a_segment(world, tmp_path) -> None:
    """Champion: a model of noise. Challenger: learnt churn well, except for customers without internet,
    whose labels it saw inverted. Overall it wins; on that segment it is far worse than noise."""
    from airflow_mlops.hooks import registry

    training = tables.read_table(world["training"])
    noise = training.assign(churned=training["churned"].sample(frac=1.0, random_state=1).to_numpy())
    flipped = training.assign(churned=training["churned"].where(training["internet_service"] != "none", 1 - training["churned"]))
    for name, frame in (("noise", noise), ("flipped", flipped)):
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    holdout = churn.generate_dataset(str(tmp_path / "clean"), rows=1, months=[], training_rows=4000, seed=99)["training"]
    model = f"gate_{uuid.uuid4().hex[:6]}"

    def train(name: str, run_id: str) -> str:
        return MlflowTrainModelOperator(
            task_id="train", train_uri=str(tmp_path / f"{name}.parquet"), spec_uri=SPEC, model_name=model, estimator_params={"max_iter": 60}
        ).execute(task_context("train", run_id))["version"]

    def promote(run_id: str, **kwargs) -> dict:
        return MlflowPromoteModelOperator(
            task_id="promote", model_name=model, spec_uri=SPEC, holdout_uri=holdout, **kwargs
        ).execute(task_context("promote", run_id))

    champion = train("noise", "r1")
    assert promote("r1")["decision"] == "promoted"
    challenger = train("flipped", "r2")

    overall = promote("r2", evaluate_only=True)
    gated = promote("r2", max_segment_regression=0.05)

    assert overall["decision"] == "would_promote" and overall["challenger_score"] > overall["champion_score"]
    assert gated["decision"] == "rejected" and gated["segment"]["segment"] == "internet_service" and gated["segment"]["value"] == "none"
    assert gated["segment"]["champion_score"] - gated["segment"]["challenger_score"] > 0.05
    assert "on segment internet_service=none" in gated["reason"]
    tags = MlflowHook().client.get_model_version(model, challenger).tags
    assert tags["mlops.decision.segment"] == "internet_service=none"
    assert float(tags["mlops.decision.segment_champion_score"]) == pytest.approx(gated["segment"]["champion_score"])
    assert MlflowHook().registry.alias_version(model, registry.CHAMPION) == champion


def test_a_period_that_lacks_classes_has_no_roc_auc_and_still_gets_its_report(tmp_path) -> None:
    """A month of one sub-population: ROC AUC is undefined (left out, never NaN) and Evidently's report,
    which fails on such a period with probabilities or with two classes of three, shows the labels."""
    from airflow_mlops.spec import FeatureSpec
    from tests.byod.conftest import PENGUINS_SPEC

    spec = FeatureSpec.load(str(PENGUINS_SPEC))
    labels = metrics.LabelSpace(classes=("Adelie", "Chinstrap", "Gentoo"))
    proba = np.array([[0.1, 0.1, 0.8], [0.6, 0.1, 0.3], [0.05, 0.05, 0.9]])
    y_true, y_pred = np.array(["Gentoo", "Gentoo", "Gentoo"]), np.array(["Gentoo", "Adelie", "Gentoo"])

    some = metrics.compute("classification", y_true, y_pred, proba, labels)
    every = metrics.compute("classification", np.array(["Gentoo", "Adelie", "Chinstrap"]), y_pred, proba, labels)

    assert "roc_auc" not in some and all(np.isfinite(v) for v in some.values()) and some["accuracy"] == pytest.approx(2 / 3)
    assert "roc_auc" in every and np.isfinite(every["roc_auc"])
    # Labels compare as labels: 0/1 read back as floats (a column that once held a null) still hold
    # both classes; True is not 1.
    binary = metrics.LabelSpace(classes=(0, 1), positive=1)
    floats = metrics.compute("classification", np.array([0.0, 1.0, 1.0]), np.array([0, 1, 0]), np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), binary)
    assert np.isfinite(floats["roc_auc"])
    assert metrics.missing_classes(np.array([0.0, 1.0]), (0, 1)) == [] and metrics.missing_classes([True], (0, 1)) == [0, 1]
    for present, truth, predicted in (("one", ["Gentoo"] * 3, ["Gentoo"] * 3), ("two", y_true, y_pred)):
        frame = pd.DataFrame({"species": truth, "prediction": predicted}).assign(
            **{f"probability_{c}": proba[:, i] for i, c in enumerate(labels.classes)}
        )
        uri = monitoring.write_quality_report(spec, frame, labels, str(tmp_path / present / "report.html"), conn_id=None)
        assert Path(uri.removeprefix("file://")).stat().st_size > 10_000, present

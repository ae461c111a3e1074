"""Bad-input gallery: every case runs through a real operator (or the DAG's params schema) on small data.

Each case must fail loudly with an error naming the file / column / expectation / model / key (or,
for ``extra_column``, the policy acts: extra columns are ignored and the output is byte-identical to
the clean input's), and must leave the world as it was: a pre-existing predictions partition
(byte-compared, no stray staging files), the champion alias, the number of model versions, and no
drift report. Validation is the one task whose job on bad data is to write its (complete) report.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops import tables
from airflow_mlops.exceptions import DataValidationError, FeatureSpecError, ModelResolutionError, TableError
from airflow_mlops.operators.drift import EvidentlyDriftCheckOperator
from airflow_mlops.operators.inference import MlflowBatchPredictOperator
from airflow_mlops.operators.validation import GxValidateTableOperator
from tests.helpers import crown, task_context
from tests.reliability.conftest import SPEC, aliases, reference_dag, train, versions

SCORED_AT = "2025-02-01T00:00:00+00:00"


# -- the inputs ------------------------------------------------------------------------------------


def frame(world: dict[str, Any], labelled: bool) -> pd.DataFrame:
    """A clean table: the training partition (labelled) or the month's first file (scoring)."""
    return tables.read_table(world["training"]) if labelled else tables.read_table(world["files"][0])


def parquet(change: Callable[[pd.DataFrame], pd.DataFrame], labelled: bool = False) -> Callable[[Path, dict], str]:
    def make(tmp: Path, world: dict) -> str:
        return tables.write_table(change(frame(world, labelled)), str(tmp / "input.parquet"))

    return make


def raw(name: str, content: Callable[[dict], bytes]) -> Callable[[Path, dict], str]:
    def make(tmp: Path, world: dict) -> str:
        (tmp / name).write_bytes(content(world))
        return str(tmp / name)

    return make


def csv_text(world: dict, sep: str = ",") -> str:
    return frame(world, False).head(50).to_csv(index=False, sep=sep)


def broken_row(world: dict) -> bytes:
    lines = csv_text(world).splitlines()
    lines[20] += ",surplus"  # one row with a field too many
    return "\n".join(lines).encode()


def latin1(world: dict) -> bytes:
    df = frame(world, False).head(50).astype({"customer_id": str})
    df.loc[7, "customer_id"] = "Zürich-7"
    return df.to_csv(index=False).encode("latin-1")  # not UTF-8: 'ü' is one byte 0xFC


def truncated(world: dict) -> bytes:
    good = Path(world["files"][0]).read_bytes()
    return good[: len(good) // 2]


BAD_SPEC = "name: churn\ntask: classification\ntarget: churned\nnumeric_features:\n  tenure_months: {min: 72, max: 0}\n"


# -- the gallery -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad input: the task it goes through, how to make it, and the error that must name it."""

    stage: str  # validate | validate_labelled | train | predict | drift
    make: Callable[[Path, dict], str]
    error: type[BaseException] | None  # None: the policy acts and the task succeeds
    words: tuple[str, ...]
    options: tuple[tuple[str, Any], ...] = ()


CASES = {
    "missing_column": Case("validate_labelled", parquet(lambda d: d.drop(columns=["monthly_charges"]), True), DataValidationError,
                           ("expect_column_to_exist(monthly_charges)", "input.parquet")),
    "missing_column_at_scoring": Case("predict", parquet(lambda d: d.drop(columns=["tenure_months"])), TableError,
                                      ("missing column(s) ['tenure_months']", "input.parquet")),
    "extra_column_is_ignored": Case("predict", parquet(lambda d: d.assign(leak=1.0, prediction=-1)), None, ()),
    "wrong_dtype": Case("validate", parquet(lambda d: d.assign(monthly_charges=d["monthly_charges"].astype(str))), DataValidationError,
                        ("'monthly_charges'", "of the wrong type", "input.parquet")),
    "wrong_dtype_at_scoring": Case("predict", parquet(lambda d: d.assign(age=d["age"].astype(str))), TableError,
                                   ("column 'age' has type string, the model expects number", "input.parquet")),
    "all_null_column": Case("validate", parquet(lambda d: d.assign(tenure_months=float("nan"))), DataValidationError,
                            ("'tenure_months'", "null value(s)", "the column is not nullable")),
    "out_of_range": Case("validate", parquet(lambda d: d.assign(age=d["age"].where(d.index % 9 > 0, 250))), DataValidationError,
                         ("'age'", "outside [18, 100]", "found min", "max 250")),
    "unseen_category": Case("validate", parquet(lambda d: d.assign(contract=d["contract"].where(d.index > 3, "weekly"))),
                            DataValidationError, ("'contract'", "not in the allowed", "'weekly' x4")),
    "empty_file": Case("validate", raw("empty.parquet", lambda w: b""), TableError, ("empty.parquet", "cannot read table")),
    "empty_file_at_scoring": Case("predict", raw("empty.parquet", lambda w: b""), TableError, ("empty.parquet",)),
    "zero_row_parquet": Case("validate", parquet(lambda d: d.head(0)), DataValidationError,
                             ("the table has 0 row(s), expected at least 1", "input.parquet")),
    "zero_row_training_table": Case("train", parquet(lambda d: d.head(0), True), TableError, ("input.parquet", "no rows")),
    "corrupt_parquet": Case("predict", raw("corrupt.parquet", truncated), TableError, ("corrupt.parquet", "cannot read table")),
    "corrupt_parquet_at_drift": Case("drift", raw("corrupt.parquet", truncated), TableError, ("corrupt.parquet", "cannot read table")),
    "csv_with_a_broken_row": Case("validate", raw("broken.csv", broken_row), TableError, ("broken.csv", "CSV parse error")),
    "wrong_delimiter": Case("predict", raw("semicolon.csv", lambda w: csv_text(w, ";").encode()), TableError,
                            ("semicolon.csv", "looks ';'-delimited", "csv_options={'delimiter': ';'}")),
    "wrong_encoding": Case("validate", raw("latin1.csv", latin1), TableError, ("latin1.csv", "not valid utf-8 text", "csv_options")),
    "unknown_model_name": Case("predict", parquet(lambda d: d), ModelResolutionError, ("'no_such_model'", "does not exist"),
                               (("model_name", "no_such_model"),)),
    "unknown_alias": Case("drift", parquet(lambda d: d), ModelResolutionError, ("alias 'gold'",), (("model_ref", "gold"),)),
    "signature_does_not_match": Case("predict", parquet(lambda d: d), ModelResolutionError, ("signature needs column(s) ['age_years']",),
                                     (("model_name", "@other"),)),
    "malformed_feature_spec": Case("validate", parquet(lambda d: d), FeatureSpecError,
                                   ("bad_spec.yaml", "numeric_features.tenure_months", "min 72.0 is greater than max 0.0"),
                                   (("spec_uri", "@bad_spec"),)),
    "model_uri_outside_the_registry": Case("predict", parquet(lambda d: d), AirflowFailException, ("'file'", "allow_model_uri_schemes"),
                                           (("model_ref", "file:///tmp/model"),)),
}  # fmt: skip


# -- the world that must stay as it was ------------------------------------------------------------


@pytest.fixture(scope="module")
def world(small_data, embedded_model, tmp_path_factory) -> dict[str, Any]:
    """A model with a champion, a published predictions partition, and a model trained on other data."""
    root = tmp_path_factory.mktemp("gallery")
    out = root / "predictions" / "month=2025-01"
    names = []
    for i, uri in enumerate(small_data["files"]):
        names.append(f"part-{i:05d}.parquet")
        MlflowBatchPredictOperator(
            task_id="predict", input_uri=uri, output_uri=str(out / names[-1]), spec_uri=SPEC,
            model_name=embedded_model["name"], scored_at=SCORED_AT,
        ).execute(task_context("predict"))  # fmt: skip
    tables.finish_partition(str(out), keep=names)
    # The same data with one column renamed, and a spec to match: a model that does not fit churn data.
    other = root / "other"
    renamed = tables.read_table(small_data["training"]).rename(columns={"age": "age_years"})
    tables.write_table(renamed, str(other / "training.parquet"))
    spec = Path(SPEC).read_text().replace("  age: {", "  age_years: {")
    (other / "spec.yaml").write_text(spec)
    other_name = f"rel_other_{uuid.uuid4().hex[:6]}"
    train(small_data, other_name, "other", train_uri=str(other / "training.parquet"), spec_uri=str(other / "spec.yaml"))
    crown(other_name, str(other / "spec.yaml"))
    (root / "bad_spec.yaml").write_text(BAD_SPEC)
    return small_data | {"model": embedded_model["name"], "predictions": out, "other": other_name, "root": root}


def state(world: dict[str, Any]) -> dict[str, Any]:
    """What must not change: predictions (bytes, and no other file), champion, versions, drift reports."""
    folder: Path = world["predictions"]
    return {
        "predictions": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())},
        "aliases": aliases(world["model"]),
        "versions": versions(world["model"]),
        "other_aliases": aliases(world["other"]),
    }


def run(case: Case, world: dict[str, Any], tmp: Path, uri: str) -> Any:
    options = dict(case.options)
    for key, value in options.items():  # "@name" refers to something the world fixture made
        if isinstance(value, str) and value.startswith("@"):
            options[key] = world[value[1:]] if value[1:] in world else str(world["root"] / f"{value[1:]}.yaml")
    spec = options.pop("spec_uri", SPEC)
    model = options.pop("model_name", world["model"])
    if case.stage.startswith("validate"):
        op: Any = GxValidateTableOperator(
            task_id="validate", table_uri=uri, spec_uri=spec, labelled=case.stage == "validate_labelled",
            reports_uri=str(tmp / "reports"), **options,
        )  # fmt: skip
    elif case.stage == "train":
        return train(world, model, f"bad-{uuid.uuid4().hex[:6]}", train_uri=uri, spec_uri=spec, **options)
    elif case.stage == "predict":
        op = MlflowBatchPredictOperator(
            task_id="predict", input_uri=uri, output_uri=str(world["predictions"] / "part-00000.parquet"), spec_uri=spec,
            model_name=model, scored_at=SCORED_AT, **options,
        )  # fmt: skip
    else:
        op = EvidentlyDriftCheckOperator(
            task_id="drift", current_uri=uri, spec_uri=spec, model_name=model, period="2025-01",
            reports_uri=str(tmp / "drift"), **options,
        )  # fmt: skip
    return op.execute(task_context(op.task_id))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_fails_naming_it_and_changes_nothing(name: str, world: dict[str, Any], tmp_path: Path) -> None:
    case = CASES[name]
    uri = case.make(tmp_path, world)
    before = state(world)

    if case.error is None:
        result = run(case, world, tmp_path, uri)
        assert result["rows"] == 600
    else:
        with pytest.raises(case.error) as err:
            run(case, world, tmp_path, uri)
        for words in case.words:
            assert words in str(err.value), (words, str(err.value))

    assert state(world) == before  # byte-identical predictions, no staging leftovers, champion and versions as they were
    assert not (tmp_path / "drift").exists()
    report = tmp_path / "reports" / "result.json"
    if report.exists():  # a failed validation writes its whole report, never half of one
        assert json.loads(report.read_text())["success"] is False


@pytest.mark.parametrize(
    ("dag_id", "conf", "param"),
    [
        ("mlops_batch_prediction", {"month": "2025-13"}, "month"),
        ("mlops_batch_prediction", {"drift_share": 0}, "drift_share"),
        ("mlops_batch_prediction", {"model_alias": "gold"}, "model_alias"),
        ("mlops_retraining", {"estimator": "os.system"}, "estimator"),
        ("mlops_retraining", {"test_size": 0.9}, "test_size"),
        ("mlops_retraining", {"hyperparameters": "[1]"}, "hyperparameters"),
    ],
)
def test_invalid_ui_params_are_refused_before_a_run_starts(airflow_db, dag_id: str, conf: dict, param: str) -> None:
    """The trigger form's JSON schema refuses bad values (Airflow validates params when it creates the run)."""
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    defaults = reference_dag(dag_id).params
    params = ParamsDict({k: defaults.get_param(k) for k in defaults})

    with pytest.raises(ParamValidationError) as err:
        params.update(conf)  # what the run's conf does to the form's defaults
        params.validate()

    assert param in str(err.value)

"""What every operator of the provider does the same way."""

from __future__ import annotations

import inspect

import jinja2
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.operators.inference import MlflowBatchPredictOperator
from airflow_mlops.periods import month_closed_at, previous_month


def test_a_template_error_fails_the_task_at_once_without_retry() -> None:
    op = MlflowBatchPredictOperator(
        task_id="predict", input_uri="in.parquet", output_uri="out.parquet", spec_uri="spec.yaml", model_name="m",
        scored_at="{{ logical_date.isoformat() }}", retries=3,
    )  # fmt: skip

    # A run without a logical date (Airflow 3's default for the CLI and REST API) and a template that needs one.
    with pytest.raises(AirflowFailException, match=r"predict: cannot render a template: UndefinedError: .*isoformat.*\(no retry\)"):
        op.render_template_fields({"logical_date": None}, jinja_env=jinja2.Environment(undefined=jinja2.StrictUndefined))


def test_the_month_of_a_run_and_its_scoring_time() -> None:
    import datetime as dt

    assert previous_month(dt.datetime(2025, 1, 1, tzinfo=dt.UTC)) == "2024-12"
    assert month_closed_at("2024-12") == "2025-01-01T00:00:00+00:00"
    assert month_closed_at("2025-01") == "2025-02-01T00:00:00+00:00"
    with pytest.raises(ValueError, match="neither a logical date nor run_after; pass the month explicitly"):
        previous_month(None)


# -- one vocabulary: outcome policies, and default_args set once -------------------------------------

CSV = {"delimiter": ";", "encoding": "latin-1", "null_values": ["", "NA"]}


def _own_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword parameters of ``cls`` and its bases up to (not including) Airflow's BaseOperator."""
    from airflow.sdk import BaseOperator, BaseSensorOperator

    found: dict[str, inspect.Parameter] = {}
    for klass in reversed(cls.__mro__):
        if klass in (BaseOperator, BaseSensorOperator) or "__init__" not in vars(klass) or not issubclass(klass, BaseOperator):
            continue
        if klass.__module__.startswith("airflow_mlops"):
            found |= {n: p for n, p in inspect.signature(klass.__init__).parameters.items() if p.kind is p.KEYWORD_ONLY}
    return found


def _build(cls: type, **kwargs):
    """``cls`` with a dummy value for each required argument (constructors only assign)."""
    required = {n: "x" for n, p in _own_parameters(cls).items() if p.default is inspect.Parameter.empty}
    return cls(task_id=cls.__name__.lower(), **(required | kwargs))


def _operators_and_sensors():
    from tests.unit.provider_classes import provider_classes

    return [c for c in provider_classes() if c.section in ("operators", "sensors") and not c.abstract]


def test_every_on_policy_takes_the_same_three_outcomes() -> None:
    from airflow_mlops.operators.base import OUTCOMES

    policies = {
        (c.cls.__name__, name): p.default
        for c in _operators_and_sensors()
        for name, p in _own_parameters(c.cls).items()
        if name.startswith("on_") and name != "on_invalid_rows"  # what to do with rows: fail | flag | score
    }
    assert set(policies) == {
        ("GxValidateTableOperator", "on_failure"), ("MlflowPromoteModelOperator", "on_reject"),
        ("EvidentlyDriftCheckOperator", "on_drift"), ("ModelQualityCheckOperator", "on_decay"),
    }  # fmt: skip
    assert OUTCOMES == ("fail", "skip", "continue")
    assert {name: default in OUTCOMES for name, default in policies.items()} == dict.fromkeys(policies, True)
    assert policies[("MlflowPromoteModelOperator", "on_reject")] == "continue"


@pytest.mark.parametrize(
    ("name", "policy", "old"),
    [
        ("GxValidateTableOperator", "on_failure", "warn"),
        ("MlflowPromoteModelOperator", "on_reject", "succeed"),
        ("EvidentlyDriftCheckOperator", "on_drift", "warn"),
        ("ModelQualityCheckOperator", "on_decay", "succeed"),
    ],
)
def test_an_old_outcome_fails_naming_the_new_one(name: str, policy: str, old: str) -> None:
    from tests.helpers import task_context

    cls = next(c.cls for c in _operators_and_sensors() if c.cls.__name__ == name)
    op = _build(cls, **{policy: old})

    # Checked first in execute, after rendering: nothing is read before.
    with pytest.raises(ValueError, match=rf"^{policy}='{old}' was renamed 'continue'"):
        op.execute(task_context())
    with pytest.raises(ValueError, match=rf"{policy} must be one of \['fail', 'skip', 'continue'\], got 'ignore'"):
        _build(cls, **{policy: "ignore"}).execute(task_context())


def test_default_args_set_once_reach_every_table_reader_and_the_partition_sensor() -> None:
    from airflow.sdk import DAG

    from airflow_mlops.operators.base import MlopsTableOperator

    candidates = _operators_and_sensors()
    readers = [c for c in candidates if issubclass(c.cls, MlopsTableOperator) or {"require_marker", "csv_options"} & set(_own_parameters(c.cls))]
    # The walk must find every reader (and new ones by itself), or this test could pass vacuously.
    assert {
        "GxValidateTableOperator", "TrainingWindowOperator", "MlflowTrainModelOperator", "MlflowPromoteModelOperator",
        "MlflowBatchPredictOperator", "EvidentlyDriftCheckOperator", "ModelQualityCheckOperator", "DataPartitionSensor",
    } <= {c.cls.__name__ for c in readers}  # fmt: skip

    with DAG("set_once", schedule=None, default_args={"require_marker": False, "csv_options": CSV}):
        built = {c.cls.__name__: _build(c.cls) for c in readers}

    dropped = {
        name: {"require_marker": getattr(op, "require_marker", "missing"), "csv_options": getattr(op, "csv_options", "missing")}
        for name, op in built.items()
        if op.require_marker is not False or (isinstance(op, MlopsTableOperator) and op.csv_options != CSV)
    }
    assert not dropped, f"default_args did not arrive: {dropped}"
    # A sensor lists files and reads no rows: it takes require_marker and has no use for csv_options.
    assert not hasattr(built["DataPartitionSensor"], "csv_options")

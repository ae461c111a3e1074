"""The how-to pages' example DAGs (``examples/howto/``), run as shipped with ``dag.test()`` on the penguins
layout (``examples/penguins_data.py``): each page's DAG does what its page says, on real data.

One registry for the module: the train and promote how-tos make the ``howto_penguins`` champion the
scoring, drift, quality and sensor how-tos use (a module fixture); the rollback test runs last and
leaves that champion where it found it.
"""

from __future__ import annotations

import copy
import json
import os
import re
import runpy
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from airflow_mlops import settings, tables
from airflow_mlops.hooks.mlflow import MlflowHook
from tests.conftest import REPO
from tests.e2e.conftest import pending_signals, task_states, xcom
from tests.unit.test_import_contract import HEAVY

pytestmark = pytest.mark.e2e
HOWTO = REPO / "examples" / "howto"
PAGES = REPO / "docs" / "how-to"
MODEL = "howto_penguins"
#: What examples/penguins_data.py writes: 2007-2008 as the snapshot, 2009's 120 penguins as two random
#: halves (January, February) and March, the 44 Gentoo penguins of 2009.
SNAPSHOT_ROWS, JANUARY_ROWS, MARCH_ROWS = 224, 60, 44
SPECIES = {"Adelie", "Chinstrap", "Gentoo"}


def data_root() -> Path:
    return Path(settings.data_root().removeprefix("file://"))


@pytest.fixture(scope="module")
def penguins(airflow_db) -> Path:
    """The penguins layout under the session's data root; its files landed two minutes ago (the
    marker-free sensor's 60 s quiet time has passed)."""
    root = data_root() / "penguins"
    runpy.run_path(str(REPO / "examples" / "penguins_data.py"))["write_layout"](str(root))
    landed = time.time() - 120
    for part in root.rglob("*.*"):
        os.utime(part, (landed, landed))
    return root


@pytest.fixture(scope="module")
def bag(airflow_db) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    parsed = DagBag(dag_folder=str(HOWTO))
    assert parsed.import_errors == {}
    return parsed


def run(bag: Any, dag_id: str, **conf: Any) -> Any:
    """``dag.test()`` with ``conf``; the DAG's params are put back after (dag.test() keeps a run's conf in them)."""
    dag = bag.get_dag(dag_id)
    saved = [(owner, copy.deepcopy(owner.params)) for owner in (dag, *dag.tasks)]
    try:
        return dag.test(run_conf=conf or None)
    finally:
        for owner, params in saved:
            owner.params = params


def succeeded(dag_run: Any) -> Any:
    assert str(dag_run.state) == "success", (dag_run.dag_id, task_states(dag_run))
    return dag_run


@pytest.fixture(scope="module")
def champion(bag, penguins) -> dict[str, Any]:
    """The train how-to, then the promote how-to: v1 of ``howto_penguins`` becomes the champion."""
    trained = xcom(succeeded(run(bag, "howto_train")), "train")
    decided = xcom(succeeded(run(bag, "howto_promote")), "promote")
    return {"train": trained, "promote": decided}


@pytest.fixture(scope="module")
def january_published(bag, champion) -> Any:
    """The batch-scoring how-to on 2009-01: the published predictions the quality how-to judges."""
    return succeeded(run(bag, "howto_batch_scoring", month="2009-01"))


PARSE = r"""
import json, pathlib, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"dags": {d: pathlib.Path(bag.dags[d].fileloc).name for d in bag.dag_ids},
                  "errors": {k: str(v) for k, v in bag.import_errors.items()}, "loaded": sorted(sys.modules)}))
"""


def test_every_howto_dag_parses_without_loading_a_heavy_library_and_is_shown_on_its_page(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", PARSE, str(HOWTO)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)

    assert out.returncode == 0, out.stderr[-3000:]
    parsed = json.loads(out.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    files = sorted(p.name for p in HOWTO.glob("*.py"))
    assert sorted(set(parsed["dags"].values())) == files  # every file defines a DAG
    assert len(parsed["dags"]) == 12 and all(d.startswith("howto_") for d in parsed["dags"])
    assert sorted({m.split(".")[0] for m in parsed["loaded"]} & set(HEAVY)) == []
    included = {m for page in PAGES.glob("*.md") for m in re.findall(r'--8<-- "examples/howto/([\w.]+\.py)"', page.read_text())}
    assert included == set(files), "every example DAG is shown on a how-to page, and every page shows a shipped file"


def test_validate_passes_a_month_and_fails_a_bad_one_naming_the_column(bag, penguins) -> None:
    good = xcom(succeeded(run(bag, "howto_validate", month="2009-01")), "validate")
    assert (good["success"], good["rows"], good["failed"]) == (True, JANUARY_ROWS, [])
    assert good["evaluated"] == good["successful"] > 10
    assert Path(good["data_docs_uri"].removeprefix("file://")).is_file()

    # A month from an island the spec does not know: the task fails, its summary names the column.
    bad = pd.read_parquet(penguins / "monthly" / "month=2009-01").assign(island="Atlantis")
    (penguins / "monthly" / "month=2009-12").mkdir(parents=True, exist_ok=True)
    bad.to_parquet(penguins / "monthly" / "month=2009-12" / "part-0.parquet", index=False)
    failed = run(bag, "howto_validate", month="2009-12")
    assert task_states(failed) == {"validate": "failed"}
    summary = xcom(failed, "validate")
    assert summary["success"] is False and summary["rows"] == JANUARY_ROWS
    assert [(f["expectation"], f["column"]) for f in summary["failed"]] == [("expect_column_values_to_be_in_set", "island")]


def test_train_registers_a_challenger_and_promote_makes_it_champion(champion) -> None:
    trained, decided = champion["train"], champion["promote"]
    assert trained["train_rows"] + trained["holdout_rows"] == SNAPSHOT_ROWS and trained["alias"] == "challenger"
    assert trained["metrics"]["accuracy"] > 0.9
    assert (decided["decision"], decided["metric"], decided["challenger_version"]) == ("promoted", "accuracy", trained["version"])
    assert decided["champion_version"] is None  # the first champion: judged on min_value alone
    assert MlflowHook().registry.alias_version(MODEL, "champion") == trained["version"]


def test_the_window_trains_on_january_and_the_snapshot_and_holds_out_february(bag, penguins) -> None:
    done = succeeded(run(bag, "howto_training_window"))
    window, trained = xcom(done, "window"), xcom(done, "train")
    assert (window["train_months"], window["holdout_month"], window["snapshot"]) == (["2009-01"], "2009-02", True)
    assert window["rows"] == {"train": SNAPSHOT_ROWS + JANUARY_ROWS, "holdout": 120 - JANUARY_ROWS}
    assert (trained["train_rows"], trained["holdout_rows"]) == (SNAPSHOT_ROWS + JANUARY_ROWS, 120 - JANUARY_ROWS)
    tags = MlflowHook().registry.get_version("howto_penguins_window", trained["version"]).tags
    assert (tags["mlops.window.train_months"], tags["mlops.window.holdout_month"]) == ("2009-01", "2009-02")


def test_batch_predict_writes_one_file_scored_by_the_pinned_champion(bag, champion) -> None:
    version = champion["train"]["version"]
    scored = xcom(succeeded(run(bag, "howto_batch_predict", month="2009-01")), "predict")
    assert (scored["rows"], scored["model_version"], scored["invalid_rows"]) == (JANUARY_ROWS, version, 0)
    out = pd.read_parquet(data_root() / "howto" / "scored" / "month=2009-01" / "part-0.parquet")
    assert len(out) == JANUARY_ROWS and set(out["prediction"]) <= SPECIES and set(out["model_version"]) == {version}
    assert {f"probability_{s}" for s in SPECIES} <= set(out.columns)


def test_batch_scoring_publishes_the_month_as_one_partition(january_published, champion, penguins) -> None:
    version = champion["train"]["version"]
    plan = xcom(january_published, "plan")
    assert [p["model_ref"] for p in plan] == [version] and plan[0]["require_marker"] is False
    published = xcom(january_published, "publish")
    assert (published["files"], published["rows"], published["model_versions"]) == (1, JANUARY_ROWS, [version])
    month = data_root() / "howto" / "predictions" / "month=2009-01"
    assert tables.read_manifest(str(month))["rows"] == JANUARY_ROWS
    ids = pd.read_parquet(penguins / "monthly" / "month=2009-01")["penguin_id"]
    assert sorted(pd.read_parquet(month)["penguin_id"]) == sorted(ids)


def test_drift_is_found_in_the_gentoo_only_march_and_not_in_january(bag, champion) -> None:
    january = xcom(succeeded(run(bag, "howto_drift", month="2009-01")), "drift")
    march = xcom(succeeded(run(bag, "howto_drift", month="2009-03")), "drift")
    assert (january["drift_detected"], march["drift_detected"]) == (False, True)
    assert march["trigger_retraining"] is True and march["rows"]["current"] == MARCH_ROWS
    assert march["model_version"] == champion["train"]["version"]
    assert Path(march["report_uri"].removeprefix("file://")).is_file()


def test_quality_judges_the_published_january_on_its_labels(bag, january_published, champion) -> None:
    judged = xcom(succeeded(run(bag, "howto_quality", month="2009-01")), "quality")
    assert (judged["metric"], judged["model_version"], judged["decayed"]) == ("accuracy", champion["train"]["version"], False)
    assert judged["value"] > 0.9 and judged["coverage"] == 1.0 and judged["rows"]["labelled"] == JANUARY_ROWS
    assert Path(judged["report_uri"].removeprefix("file://")).is_file()


def test_the_sensors_hand_on_the_ready_files_and_the_champion_version(bag, champion) -> None:
    done = succeeded(run(bag, "howto_sensors", month="2009-01"))
    assert [f.rsplit("/", 1)[-1] for f in xcom(done, "wait_for_month")["files"]] == ["part-0.parquet"]
    assert xcom(done, "wait_for_champion")["version"] == champion["train"]["version"]


def test_a_drift_signal_is_raised_once_then_answered_by_the_retraining_decision(bag, penguins) -> None:
    quiet = run(bag, "howto_signals_check", month="2009-01")
    drifted = run(bag, "howto_signals_check", month="2009-03")
    assert task_states(succeeded(quiet))["signal_drift"] == "skipped"
    raised = xcom(succeeded(drifted), "signal_drift")
    assert (raised["kind"], raised["period"], raised["model_version"]) == ("drift", "2009-03", None)
    assert pending_signals("howto_signals") == {("drift", "2009-03")}

    retrained = succeeded(run(bag, "howto_signals_retrain"))
    window = xcom(retrained, "window")
    assert (window["train_months"], window["holdout_month"]) == (["2009-01", "2009-02"], "2009-03")
    assert xcom(retrained, "nothing_new")["train"] is True
    decided = xcom(retrained, "promote")
    assert decided["decision"] == "promoted" and decided["challenger_score"] >= 0.9
    answered = xcom(retrained, "answer_signals")
    assert answered == {"answered": ["drift 2009-03"], "decision": "promoted", "version": decided["challenger_version"]}
    assert task_states(retrained)["retrain_again"] == "skipped"
    assert pending_signals("howto_signals") == set()


def test_rollback_restores_a_named_version_then_the_previous_champion(bag, champion) -> None:
    """Runs last: it moves the champion of ``howto_penguins`` and leaves it where it found it."""
    v1 = champion["train"]["version"]
    v2 = xcom(succeeded(run(bag, "howto_train")), "train")["version"]
    again = xcom(succeeded(run(bag, "howto_promote")), "promote")
    # The same data and seed give the same accuracy: not better, so the champion stays.
    assert (again["decision"], again["challenger_version"], again["champion_version"]) == ("rejected", v2, v1)

    forward = xcom(succeeded(run(bag, "howto_rollback", version=v2, reason="test")), "rollback")
    back = xcom(succeeded(run(bag, "howto_rollback")), "rollback")
    assert (forward["champion_version"], forward["replaced_version"]) == (v2, v1)
    assert (back["champion_version"], back["replaced_version"], back["reason"]) == (v1, v2, "manual rollback")
    registry = MlflowHook().registry
    assert registry.alias_version(MODEL, "champion") == v1 and registry.alias_version(MODEL, "previous_champion") == v2
    assert registry.get_version(MODEL, v1).tags["mlops.decision.decision"] == "rollback"

"""`make demo`: seed the demo data and run the reference DAGs end to end on the embedded default.

Embedded default: SQLite Airflow metadata DB, MLflow store sqlite:///$AIRFLOW_HOME/mlflow.db,
data under file://$AIRFLOW_HOME/mlops-data. Everything lives in $AIRFLOW_HOME (make sets .demo/).
Run it again and the story goes on from its champion: the months are scored and judged again, and with
no new labelled month nothing is retrained (delete $AIRFLOW_HOME to play it from the start).

The settings the demo relies on are its own, whatever the calling shell exported (a walk-through
that exported ``AIRFLOW__CORE__DAGS_FOLDER`` must not point the demo at other DAGs): it sets them,
drops the variables that would send its data, models or runs elsewhere, and says which it ignored.
It ends by saying where every report is and how to open MLflow and the Airflow UI on this state
(``make airflow``), and records that in ``$AIRFLOW_HOME/demo-summary.json`` for ``make airflow``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Written at the end of a finished story; scripts/airflow_local.py reads it.
SUMMARY = "demo-summary.json"
#: Variables (or prefixes) that would send the demo's data, models or runs somewhere else: not taken
#: from the caller's environment.
ELSEWHERE = (
    "AIRFLOW__MLOPS__", "AIRFLOW_CONN_", "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", "MLOPS_DATA_ROOT",
    "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI",
)  # fmt: skip


def own_settings(home: Path) -> dict[str, str]:
    """What the demo runs with: the repository's DAGs, in its own home, with a local executor."""
    return {
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GIT_PYTHON_REFRESH": "quiet",
    }


def configure(environ: MutableMapping[str, str] = os.environ) -> tuple[Path, list[str]]:
    """Set the demo's settings in ``environ`` (before Airflow is imported); return its home and the
    names of the caller's variables it did not take (changed or dropped)."""
    home = Path(environ.setdefault("AIRFLOW_HOME", str(REPO / ".demo"))).resolve()
    environ["AIRFLOW_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    ignored = sorted(k for k in environ if k.startswith(ELSEWHERE))
    for key in ignored:
        del environ[key]
    for key, value in own_settings(home).items():
        if environ.get(key, value) != value and key.startswith("AIRFLOW__"):
            ignored.append(key)
        environ[key] = value
    return home, sorted(ignored)


def main() -> int:
    home, ignored = configure()
    if ignored:
        print(f"Not taken from your shell (the demo runs the repository's DAGs in its own home): {', '.join(ignored)}")
    import warnings

    # Airflow's dag.test() runs its execution API in process through Starlette's TestClient, which
    # warns about its own httpx use: nothing a demo user can act on.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    from airflow_mlops import settings
    from airflow_mlops.example_data import churn
    from airflow_mlops.hooks.mlflow import MlflowHook

    root = f"{settings.data_root()}/churn"
    print(f"AIRFLOW_HOME={home}\nSeeding demo data under {root}")
    summary = churn.generate_dataset(
        root, rows=20_000, months=churn.month_range("2025-01:2025-03"), training_rows=40_000, drift_from="2025-03",
        concept_drift_from="2025-02", rows_per_file=10_000,
    )
    db.initdb()
    bag = DagBag()
    if bag.import_errors:
        print(f"DAG import errors: {bag.import_errors}", file=sys.stderr)
        return 1
    missing = {"mlops_retraining", "mlops_batch_prediction", "mlops_model_monitoring"} - set(bag.dag_ids)
    if missing:
        print(f"{bag.dag_folder} lacks the reference DAGs {sorted(missing)}: the demo runs the repository's dags/", file=sys.stderr)
        return 1

    if (home / SUMMARY).exists():
        print(f"{home} holds a finished demo already: the story goes on from its champion (delete the folder to play it from the start)")
    print("Running mlops_retraining on the training snapshot (window_months=0: no month is labelled yet) ...")
    run = bag.get_dag("mlops_retraining").test(run_conf={"window_months": 0})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    print(f"  state: {run.state}; tasks: {states}")
    if str(run.state) != "success":
        return 1
    client = MlflowHook().client
    champion = client.get_model_version_by_alias("churn", "champion")
    metrics = client.get_run(champion.run_id).data.metrics
    print(f"  champion: churn v{champion.version} ({champion.tags.get('mlops.decision.reason', '')})")
    print("  metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))
    print(f"  MLflow store: {MlflowHook().config.tracking_uri}")

    print("Running mlops_batch_prediction for three months (the generator drifts the inputs of the last one) ...")
    batch = bag.get_dag("mlops_batch_prediction")
    reports: dict[str, list[str]] = {"validation": [], "drift": [], "quality": [], "predictions": []}
    for month in summary["months"]:
        year, mon = (int(part) for part in month.split("-"))
        logical = dt.datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=dt.UTC)  # the 1st of the next month
        run = batch.test(logical_date=logical)
        if str(run.state) != "success":
            print(f"  {month}: run {run.state}", file=sys.stderr)
            return 1
        drift, published = xcom(run, "drift_check"), xcom(run, "publish")
        reports["validation"].append(xcom(run, "validate").get("data_docs_uri", ""))
        reports["drift"].append(drift["report_uri"])
        reports["predictions"].append(published["uri"])
        verdict = f"DRIFT in {drift['drifted_columns']}" if drift["drift_detected"] else "no drift"
        print(f"  {month}: {published['rows']} rows scored by v{','.join(published['model_versions'])} -> {published['uri']}")
        print(f"           {verdict} (share {drift['share']:.2f}); report {drift['report_uri']}")

    print("Running mlops_model_monitoring once each month's labels have arrived (the generator changed what drives churn from 2025-02) ...")
    monitoring = bag.get_dag("mlops_model_monitoring")
    rows = []
    for month in summary["months"]:
        run = monitoring.test(logical_date=dt.datetime(2025, 6, 1, tzinfo=dt.UTC) + dt.timedelta(days=len(rows)), run_conf={"month": month})
        if str(run.state) != "success":
            print(f"  {month}: run {run.state}", file=sys.stderr)
            return 1
        rows.append((month, xcom(run, "quality_check"), states_of(run).get("signal_decay")))
        reports["quality"].append(rows[-1][1].get("report_uri", ""))
    print(f"  {'month':8} {'roc_auc':>8} {'holdout':>8} {'drop':>7} {'coverage':>9}  verdict")
    for month, quality, signal in rows:
        verdict = "DECAYED -> decay event, retraining scheduled" if signal == "success" else ("decayed" if quality["decayed"] else "holds")
        print(f"  {month:8} {quality['value']:8.4f} {quality['baseline']:8.4f} {quality['drop']:7.4f} {quality['coverage']:9.0%}  {verdict}")
    if any(month == "2025-02" and quality["decayed"] for month, quality, _ in rows):
        print("  2025-02: inputs unchanged (no drift), quality decayed: caught by monitoring alone.")

    print("Running mlops_retraining as the drift/decay events schedule it ...")
    run = bag.get_dag("mlops_retraining").test(run_conf={"window_months": 3})
    if str(run.state) != "success":
        print(f"  retraining: run {run.state}: {states_of(run)}", file=sys.stderr)
        return 1
    pending = ", ".join(f"{s['kind']} {s['period']}" for s in xcom(run, "pending_signals")["signals"])
    print(f"  pending signals (drift and decay Asset events no decision had answered): {pending or 'none'}")
    window, decision = xcom(run, "assemble_window"), xcom(run, "promote") or xcom(run, "evaluate")
    latest = window["holdout_month"]
    if decision.get("metric"):
        print(f"  learnt from {', '.join(window['train_months'])} ({window['rows']['train']} labelled rows); both models judged on {latest}")
        print(f"  {decision['metric']} on {latest}: champion v{decision['champion_version']} {decision['champion_score']:.4f} (before)"
              f" -> challenger v{decision['challenger_version']} {decision['challenger_score']:.4f}")
        print(f"  decision: {decision['decision']} ({decision['reason']})")
    else:  # a demo played again on its own state: the champion already learnt from this window
        print(f"  no challenger trained (train: {states_of(run).get('train')}): nothing new since the last decision")
    champion = client.get_model_version_by_alias("churn", "champion")
    print(f"  champion now: churn v{champion.version}; it answered: {champion.tags.get('mlops.signals', 'no signal')}")
    reports["validation"].append(xcom(run, "validate").get("data_docs_uri", ""))
    where = {"champion": str(champion.version), "months": summary["months"], "tracking_uri": MlflowHook().config.tracking_uri,
             "reports": {kind: [uri for uri in uris if uri] for kind, uris in reports.items()}}  # fmt: skip
    (home / SUMMARY).write_text(json.dumps(where, indent=2))
    print(where_to_look(home, where))
    return 0


def where_to_look(home: Path, where: dict) -> str:
    """The closing lines: every report of this demo, the MLflow store, and how to open both UIs on it."""
    titles = {"validation": "validation reports (GX Data Docs)", "drift": "drift reports (Evidently)",
              "quality": "quality reports (per month, per segment)", "predictions": "published predictions"}  # fmt: skip
    lines = ["", f"Where everything is (AIRFLOW_HOME={home}):"]
    for kind, title in titles.items():
        lines.append(f"  {title}:")
        lines += [f"    {uri}" for uri in where["reports"].get(kind, [])]
    store = where["tracking_uri"]
    lines += [
        f"  MLflow store (runs, models, evaluations): {store}",
        "How to open them:",
        "  the Airflow UI on this state: make airflow   -> http://127.0.0.1:8080 (admin / admin): these runs, Browse > MLOps",
        "    (the MLOps page charts these months and links every report; it starts the MLflow UI below too)",
        f"  MLflow alone: .venv/bin/mlflow ui --backend-store-uri {store} --host 127.0.0.1 --port 5000   -> http://127.0.0.1:5000",
        "  a report alone: open its file:// address above in a browser",
    ]
    return "\n".join(lines)


def states_of(dag_run: object) -> dict[str, str]:
    """Task id -> final state of a demo run."""
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}  # type: ignore[attr-defined]


def xcom(dag_run: object, task_id: str) -> dict:
    """Read a task's return value from the demo's own metadata DB (the demo is not a task)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key="return_value").first()  # type: ignore[attr-defined]
        return XComModel.deserialize_value(row) if row else {}


if __name__ == "__main__":
    sys.exit(main())

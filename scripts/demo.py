"""`make demo`: seed the demo data and run the reference DAGs end to end on the embedded default.

Embedded default: SQLite Airflow metadata DB, MLflow store sqlite:///$AIRFLOW_HOME/mlflow.db,
data under file://$AIRFLOW_HOME/mlops-data. Everything lives in $AIRFLOW_HOME (make sets .demo/).
Run it again to retrain on the same data: the challenger is then judged against the champion.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def configure() -> Path:
    home = Path(os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".demo"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    defaults = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    return home


def main() -> int:
    home = configure()
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
    for month in summary["months"]:
        year, mon = (int(part) for part in month.split("-"))
        logical = dt.datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=dt.UTC)  # the 1st of the next month
        run = batch.test(logical_date=logical)
        if str(run.state) != "success":
            print(f"  {month}: run {run.state}", file=sys.stderr)
            return 1
        drift, published = xcom(run, "drift_check"), xcom(run, "publish")
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
    print(f"  {'month':8} {'roc_auc':>8} {'holdout':>8} {'drop':>7} {'coverage':>9}  verdict")
    for month, quality, signal in rows:
        verdict = "DECAYED -> decay event, retraining scheduled" if signal == "success" else ("decayed" if quality["decayed"] else "holds")
        print(f"  {month:8} {quality['value']:8.4f} {quality['baseline']:8.4f} {quality['drop']:7.4f} {quality['coverage']:9.0%}  {verdict}")
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
    print(f"  learnt from {', '.join(window['train_months'])} ({window['rows']['train']} labelled rows); both models judged on {latest}")
    print(f"  {decision['metric']} on {latest}: champion v{decision['champion_version']} {decision['champion_score']:.4f} (before)"
          f" -> challenger v{decision['challenger_version']} {decision['challenger_score']:.4f}")
    print(f"  decision: {decision['decision']} ({decision['reason']})")
    champion = client.get_model_version_by_alias("churn", "champion")
    print(f"  champion now: churn v{champion.version}; it answered: {champion.tags.get('mlops.signals', 'no signal')}")
    return 0


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

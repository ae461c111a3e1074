"""`make demo`: seed the demo data and run the reference DAGs end to end on the embedded default.

Embedded default: SQLite Airflow metadata DB, MLflow store sqlite:///$AIRFLOW_HOME/mlflow.db,
data under file://$AIRFLOW_HOME/mlops-data. Everything lives in $AIRFLOW_HOME (make sets .demo/).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    home = Path(os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".demo"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    from airflow_mlops import settings, tables
    from airflow_mlops.example_data import churn
    from airflow_mlops.spec import FeatureSpec

    root = f"{settings.data_root()}/churn"
    print(f"Seeding demo data under {root}")
    summary = churn.generate_dataset(
        root, rows=20_000, months=churn.month_range("2025-01:2025-03"), training_rows=30_000, drift_from="2025-03"
    )
    spec = FeatureSpec.load(summary["spec"])
    training = tables.read_table(summary["training"], columns=spec.training_columns())
    print(f"Training snapshot: {len(training)} rows, churn rate {training[spec.target].mean():.3f}")
    for month, uri in summary["months"].items():
        drifted = " (drifted)" if month in summary["drifted_months"] else ""
        print(f"  {month}: {uri}{drifted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

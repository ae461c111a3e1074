"""The ``airflow-mlops`` console command."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="airflow-mlops", description="Tools of the airflow-mlops provider.")
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser(
        "generate-data",
        help="write synthetic churn data (training snapshot + monthly partitions + FeatureSpec)",
        description=(
            "Write deterministic synthetic customer-churn data: <to>/training/ (labelled), "
            "<to>/monthly/month=YYYY-MM/ (unlabelled) and <to>/churn_spec.yaml. Each partition ends with a "
            "_SUCCESS marker. Memory is bounded by --rows-per-file whatever --rows is."
        ),
    )
    gen.add_argument("--rows", type=int, required=True, help="rows per monthly partition")
    gen.add_argument("--months", required=True, help="inclusive range YYYY-MM:YYYY-MM, or one month")
    gen.add_argument("--to", required=True, help="root URI: file:///..., s3://bucket/prefix or a local path")
    gen.add_argument("--training-rows", type=int, default=None, help="rows of the training snapshot (default --rows; 0 skips it)")
    gen.add_argument("--drift-from", default=None, help="first month whose features drift (YYYY-MM)")
    gen.add_argument(
        "--drift-features",
        default=None,
        help="comma-separated features the drift shifts (default monthly_charges,support_calls,contract)",
    )
    gen.add_argument("--drift-strength", type=float, default=1.0, help="size of the shift (default 1.0)")
    gen.add_argument("--rows-per-file", type=int, default=250_000, help="rows per part file (default 250000)")
    gen.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    gen.add_argument("--conn-id", default=None, help="Airflow connection for s3:// (default [mlops] data_conn_id)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from airflow_mlops.example_data import churn

    try:
        summary = churn.generate_dataset(
            args.to,
            rows=args.rows,
            months=churn.month_range(args.months),
            training_rows=args.training_rows,
            drift_from=args.drift_from,
            drift_features=args.drift_features.split(",") if args.drift_features else churn.DEFAULT_DRIFT_FEATURES,
            drift_strength=args.drift_strength,
            rows_per_file=args.rows_per_file,
            seed=args.seed,
            conn_id=args.conn_id,
        )
    except ValueError as exc:
        print(f"airflow-mlops generate-data: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

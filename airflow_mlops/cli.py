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
            "Write deterministic synthetic customer-churn data: <to>/training/ (labelled), <to>/labels/month=YYYY-MM/ (the outcomes of each month), "
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
    gen.add_argument(
        "--concept-drift-from", default=None,
        help="first month whose outcomes follow a changed relation to the features (concept drift; YYYY-MM)",
    )
    gen.add_argument("--concept-drift-strength", type=float, default=1.0, help="size of the concept drift (default 1.0)")
    gen.add_argument("--no-labels", action="store_true", help="write no labels/month=YYYY-MM/ feed")
    gen.add_argument("--rows-per-file", type=int, default=250_000, help="rows per part file (default 250000)")
    gen.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    gen.add_argument("--conn-id", default=None, help="Airflow connection for s3:// (default [mlops] data_conn_id)")
    _add_infer_spec(commands)
    user = commands.add_parser(
        "mlflow-user",
        help="create (or update) the MLflow basic-auth user Airflow's mlflow connection signs in as",
        description=(
            "Against an MLflow server run with --app-name basic-auth: sign in as the admin (MLFLOW_ADMIN_USER, "
            "MLFLOW_ADMIN_PASSWORD) and create the connection's login with its password, or set the password when "
            "the user exists. The user is not an admin: MLflow gives it what it creates."
        ),
    )
    user.add_argument("--conn-id", default="mlflow_default", help="the mlflow connection (default mlflow_default)")
    user.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the server (default 120)")
    return parser


def _add_infer_spec(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from airflow_mlops.spec_inference import TASK_RULE

    infer = commands.add_parser(
        "infer-spec",
        help="draft a FeatureSpec YAML from a real table",
        description=(
            "Read a table (a .parquet/.csv file or a partition folder) and draft its FeatureSpec: kinds, numeric "
            "bounds with a margin, nullability, allowed values, task and classes; then check that draft on held-out "
            "rows and loosen what would reject rows of the same population (long tails, rare values: --holdout-share). "
            "The YAML goes to stdout (or -o); what was guessed and why goes to stderr, one line per column, then the "
            "self-check's findings and the held-out rows rejected before and after. Review the draft before use."
        ),
    )
    infer.add_argument("table", metavar="TABLE", help="file or partition folder: file:///..., s3://... or a local path")
    infer.add_argument("--target", required=True, help="the label column")
    infer.add_argument("--positive-label", default=None, help="the positive class of a binary target")
    infer.add_argument("--id", dest="ids", action="append", default=[], metavar="COL", help="an id column (repeatable); never a feature")
    infer.add_argument("--timestamp", default=None, metavar="COL", help="the column with the row's time")
    infer.add_argument("--name", default=None, help="spec name (default: from the table's file or folder name)")
    infer.add_argument(
        "--task", choices=["classification", "regression"], default=None,
        help=f"default: guessed from the target: {TASK_RULE}",
    )  # fmt: skip
    infer.add_argument("--delimiter", default=",", help="CSV delimiter (default ',')")
    infer.add_argument("--encoding", default="utf-8", help="CSV encoding (default utf-8)")
    infer.add_argument("--no-marker", action="store_true", help="read a partition folder that has no _SUCCESS marker")
    infer.add_argument("--max-categories", type=int, default=50, metavar="N", help="list allowed values of text columns with at most N (default 50)")
    infer.add_argument("--margin", type=float, default=0.1, metavar="F", help="numeric bounds: observed range widened by F x range per side (default 0.1)")
    infer.add_argument(
        "--holdout-share", type=float, default=0.2, metavar="F",
        help=(
            "self-check: draft on the rest, check this share of rows held out (the latest by --timestamp, else a "
            "random split by --seed), loosen what would reject them, then draft from the whole table; prints the "
            "held-out rows rejected before and after (default 0.2; 0 = no self-check, the plain rules)"
        ),
    )  # fmt: skip
    infer.add_argument("--seed", type=int, default=0, help="seed of the self-check's random split (default 0)")
    infer.add_argument("-o", "--output", default=None, metavar="FILE", help="write the YAML here (URI or path) instead of stdout")
    infer.add_argument("--conn-id", default=None, help="Airflow connection for s3:// (default [mlops] data_conn_id)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "infer-spec":
        return _infer_spec(args)
    if args.command == "mlflow-user":
        return _mlflow_user(args)
    return _generate_data(args)


def _mlflow_user(args: argparse.Namespace) -> int:
    import os
    import time

    import requests

    from airflow_mlops.hooks.mlflow import MlflowHook

    config = MlflowHook(mlflow_conn_id=args.conn_id).config
    if not (config.username and config.password and config.tracking_uri.startswith("http")):
        print(f"connection {args.conn_id} needs an http(s) host, a login and a password", file=sys.stderr)
        return 2
    admin = (os.environ.get("MLFLOW_ADMIN_USER", ""), os.environ.get("MLFLOW_ADMIN_PASSWORD", ""))
    if not all(admin):
        print("set MLFLOW_ADMIN_USER and MLFLOW_ADMIN_PASSWORD (the server's admin)", file=sys.stderr)
        return 2
    base = f"{config.tracking_uri.rstrip('/')}/api/2.0/mlflow/users"
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            created = requests.post(f"{base}/create", json={"username": config.username, "password": config.password}, auth=admin, timeout=10)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                print(f"MLflow at {config.tracking_uri} did not answer within {args.timeout:.0f} s", file=sys.stderr)
                return 1
            time.sleep(2)
    if created.status_code == 200:
        print(f"created MLflow user {config.username}")
        return 0
    if "RESOURCE_ALREADY_EXISTS" in created.text:
        updated = requests.patch(f"{base}/update-password", json={"username": config.username, "password": config.password}, auth=admin, timeout=10)
        if updated.ok:
            print(f"MLflow user {config.username} exists; its password is the connection's")
            return 0
        created = updated
    print(f"MLflow refused ({created.status_code}): {created.text[:300]}", file=sys.stderr)
    return 1


def _infer_spec(args: argparse.Namespace) -> int:
    """Draft a spec: YAML to stdout or --output, the explanation to stderr (so stdout redirects cleanly)."""
    from airflow_mlops import spec_check, spec_inference, tables

    try:
        options = spec_inference.InferenceOptions(
            target=args.target,
            positive_label=args.positive_label,
            id_columns=tuple(args.ids),
            timestamp_column=args.timestamp,
            name=args.name,
            task=args.task,
            max_categories=args.max_categories,
            margin=args.margin,
        )
        csv = tables.CsvOptions.parse({"delimiter": args.delimiter, "encoding": args.encoding})
        reader = tables.TableReader(conn_id=args.conn_id, require_marker=False if args.no_marker else None, csv=csv)
        if args.holdout_share == 0:
            draft = spec_inference.infer_spec(args.table, options, reader=reader)
        else:
            frame = reader.read(args.table)
            draft, _ = spec_check.checked_draft(frame, options, source=args.table, holdout_share=args.holdout_share, seed=args.seed)
        for line in draft.notes:
            print(line, file=sys.stderr)
        if args.output:
            tables.write_text(draft.yaml, args.output, conn_id=args.conn_id)
            print(f"wrote {args.output}", file=sys.stderr)
        else:
            sys.stdout.write(draft.yaml)
    except (ValueError, OSError) as exc:
        hint = " (on this command: --delimiter, --encoding)" if "csv_options" in str(exc) else ""
        print(f"airflow-mlops infer-spec: error: {exc}{hint}", file=sys.stderr)
        return 2
    return 0


def _generate_data(args: argparse.Namespace) -> int:
    """Write the synthetic churn dataset and print its summary."""
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
            labels_feed=not args.no_labels,
            concept_drift_from=args.concept_drift_from,
            concept_drift_strength=args.concept_drift_strength,
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

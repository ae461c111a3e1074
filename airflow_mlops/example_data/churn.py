"""Generate realistic synthetic churn data: a training snapshot, monthly scoring partitions, and the
labels feed that arrives for them later.

Every file is generated from its own random stream seeded by ``(seed, month, part)``, so any file can
be regenerated alone, the output is identical for the same arguments, and memory is bounded by
``rows_per_file`` whatever the total size. Two knobs:

* ``drift_from``: from that month on the chosen features shift (data drift), which the drift check
  should detect;
* ``concept_drift_from``: from that month on the relation between the features and churn changes
  while the features keep their distribution (concept drift): the drift check sees nothing, the
  quality check on the labels does.

Layout under ``to``::

    training/part-00000.parquet ... _SUCCESS                labelled snapshot (before any drift)
    monthly/month=2025-01/part-00000.parquet ... _SUCCESS   unlabelled monthly partitions
    labels/month=2025-01/part-00000.parquet ... _SUCCESS    the month's outcomes: customer_id, churned
    churn_spec.yaml                                          the FeatureSpec
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops import tables
from airflow_mlops.example_data import SPEC_PATH
from airflow_mlops.periods import month_ordinal, month_range  # noqa: F401 - re-exported for the CLI

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

#: The generator's run key for the publish protocol: a rerun over the same folder replaces it in place.
GENERATOR_RUN = "airflow-mlops generate-data"
CONTRACTS = ("month-to-month", "one-year", "two-year")
PAYMENTS = ("electronic-check", "mailed-check", "bank-transfer", "credit-card")
INTERNET = ("dsl", "fiber", "none")
REGIONS = ("north", "south", "east", "west")
TRAINING_MONTH = "2024-12"


def _shift_charges(df: pd.DataFrame, rng: np.random.Generator, s: float) -> None:
    df["monthly_charges"] = df["monthly_charges"] * (1 + 0.35 * s) + 12 * s


def _shift_support(df: pd.DataFrame, rng: np.random.Generator, s: float) -> None:
    df["support_calls"] = df["support_calls"] + rng.poisson(2.5 * s, len(df))


def _shift_usage(df: pd.DataFrame, rng: np.random.Generator, s: float) -> None:
    df["data_usage_gb"] = df["data_usage_gb"] * (1 + 1.2 * s)


def _shift_contract(df: pd.DataFrame, rng: np.random.Generator, s: float) -> None:
    flip = rng.random(len(df)) < 0.45 * min(s, 1.0)
    df.loc[flip, "contract"] = "month-to-month"


#: Features the drift knob can shift, and how (strength 1.0 is a clearly visible shift).
DRIFTS: dict[str, Callable[[Any, Any, float], None]] = {
    "monthly_charges": _shift_charges,
    "support_calls": _shift_support,
    "data_usage_gb": _shift_usage,
    "contract": _shift_contract,
}
DEFAULT_DRIFT_FEATURES = ("monthly_charges", "support_calls", "contract")


def generate_frame(
    rows: int,
    *,
    seed: int,
    month: str,
    part: int = 0,
    drift_features: Sequence[str] = (),
    drift_strength: float = 1.0,
    labels: bool = True,
    concept_drift: float = 0.0,
) -> pd.DataFrame:
    """Generate one file's rows.

    :param rows: number of rows.
    :param seed: dataset seed; with ``month`` and ``part`` it fixes the random stream.
    :param month: ``"YYYY-MM"`` snapshot month.
    :param part: file number within the month (ids never collide across parts).
    :param drift_features: features shifted by the drift knob (keys of :data:`DRIFTS`).
    :param drift_strength: size of the shift (0 = none, 1 = clear).
    :param labels: include the ``churned`` label.
    :param concept_drift: how far churn's causes move away from the training relation (0 = none, 1 =
        clear): long-tenure two-year customers on fiber start leaving, satisfaction stops mattering.
        The features are drawn exactly as without it.
    """
    import numpy as np
    import pandas as pd

    unknown = sorted(set(drift_features) - set(DRIFTS))
    if unknown:
        raise ValueError(f"unknown drift feature(s) {unknown}; choose from {sorted(DRIFTS)}")
    ordinal = month_ordinal(month)
    rng = np.random.default_rng([seed, ordinal, part])
    contract = rng.choice(CONTRACTS, rows, p=[0.55, 0.25, 0.20])
    tenure = np.clip(rng.gamma(2.0, 14.0, rows) + np.where(contract == "two-year", 12, 0), 0, 72).round()
    internet = rng.choice(INTERNET, rows, p=[0.35, 0.45, 0.20])
    base_charge = np.select([internet == "fiber", internet == "dsl"], [78.0, 55.0], 22.0)
    num_products = np.clip(rng.poisson(1.3, rows) + 1, 1, 8)
    monthly = np.clip(base_charge + 9.5 * (num_products - 1) + rng.normal(0, 9, rows), 10, 400).round(2)
    df = pd.DataFrame(
        {
            "customer_id": np.arange(rows, dtype=np.int64) + ordinal * 10**9 + part * 10**7,
            "snapshot_date": pd.Timestamp(f"{month}-01").date(),
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": (tenure * monthly * rng.uniform(0.92, 1.03, rows)).round(2),
            "support_calls": rng.poisson(1.2 + 0.8 * (contract == "month-to-month"), rows).astype("float64"),
            "data_usage_gb": rng.lognormal(3.0, 0.7, rows).round(2),
            "num_products": num_products.astype("float64"),
            "age": np.clip(rng.normal(45, 14, rows), 18, 100).round(),
            "satisfaction_score": np.clip(rng.normal(3.6, 0.9, rows), 1, 5).round(1),
            "late_payments": rng.poisson(0.6, rows).astype("float64"),
            "contract": contract,
            "payment_method": rng.choice(PAYMENTS, rows, p=[0.34, 0.22, 0.22, 0.22]),
            "internet_service": internet,
            "region": rng.choice(REGIONS, rows, p=[0.3, 0.25, 0.25, 0.2]).astype(object),
        }
    )
    # Realistic gaps: new customers without billing history, unanswered surveys, unknown region.
    df.loc[df["tenure_months"] == 0, "total_charges"] = np.nan
    df.loc[rng.random(rows) < 0.04, "satisfaction_score"] = np.nan
    df.loc[rng.random(rows) < 0.01, "region"] = None
    for feature in drift_features:
        DRIFTS[feature](df, rng, drift_strength)
    if labels:
        logit = (
            -1.6
            + 1.2 * (df["contract"] == "month-to-month")
            - 0.8 * (df["contract"] == "two-year")
            - 0.035 * df["tenure_months"]
            + 0.018 * (df["monthly_charges"] - 65)
            + 0.32 * df["support_calls"]
            + 0.45 * (df["payment_method"] == "electronic-check")
            + 0.35 * (df["internet_service"] == "fiber")
            - 0.45 * (df["satisfaction_score"].fillna(3.6) - 3.6)
            + 0.3 * df["late_payments"]
            + rng.normal(0, 0.9, rows)
        )
        if concept_drift:  # a competitor's fibre offer: loyal customers leave, the old signals fade
            logit = (1 - 0.7 * concept_drift) * logit + concept_drift * (
                1.6 * (df["contract"] == "two-year") + 0.04 * df["tenure_months"] + 1.1 * (df["internet_service"] == "fiber") - 2.2
            )
        df["churned"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    return df


def _write_partition(
    folder: str, total_rows: int, rows_per_file: int, *, conn_id: str | None, **frame_kwargs: Any
) -> list[str]:
    partition = tables.open_partition(folder, run_key=GENERATOR_RUN, conn_id=conn_id)
    names = []
    for part, start in enumerate(range(0, total_rows, rows_per_file)):
        name = f"part-{part:05d}.parquet"
        frame = generate_frame(min(rows_per_file, total_rows - start), part=part, **frame_kwargs)
        tables.write_table(frame, f"{partition['staging']}/{name}", conn_id=conn_id)
        names.append(name)
    tables.publish_partition(partition, files=names, conn_id=conn_id, extra={"rows": total_rows})
    return tables.list_data_files(folder, conn_id=conn_id, require_marker=True)


def _write_month(
    features: str, outcomes: str | None, total_rows: int, rows_per_file: int, *, conn_id: str | None, **frame_kwargs: Any
) -> None:
    """One month: the unlabelled features partition and, apart, its labels feed (same rows, same ids)."""
    folders = {"features": features} | ({"outcomes": outcomes} if outcomes else {})
    partitions = {kind: tables.open_partition(folder, run_key=GENERATOR_RUN, conn_id=conn_id) for kind, folder in folders.items()}
    names = []
    for part, start in enumerate(range(0, total_rows, rows_per_file)):
        name = f"part-{part:05d}.parquet"
        frame = generate_frame(min(rows_per_file, total_rows - start), part=part, labels=True, **frame_kwargs)
        tables.write_table(frame.drop(columns=["churned"]), f"{partitions['features']['staging']}/{name}", conn_id=conn_id)
        if outcomes:
            tables.write_table(frame[["customer_id", "churned"]], f"{partitions['outcomes']['staging']}/{name}", conn_id=conn_id)
        names.append(name)
    for partition in partitions.values():
        tables.publish_partition(partition, files=names, conn_id=conn_id, extra={"rows": total_rows})


def generate_dataset(
    to: str,
    *,
    rows: int,
    months: Sequence[str],
    training_rows: int | None = None,
    drift_from: str | None = None,
    drift_features: Sequence[str] = DEFAULT_DRIFT_FEATURES,
    drift_strength: float = 1.0,
    rows_per_file: int = 250_000,
    seed: int = 42,
    conn_id: str | None = None,
    labels_feed: bool = True,
    concept_drift_from: str | None = None,
    concept_drift_strength: float = 1.0,
) -> dict[str, Any]:
    """Write the training snapshot, the monthly partitions, their labels feed and the spec under ``to``.

    :param to: root URI (``file://``, ``s3://`` or a local path).
    :param rows: rows per monthly partition.
    :param months: months to write (``"YYYY-MM"``).
    :param training_rows: rows of the training snapshot (default ``rows``; 0 skips it).
    :param drift_from: first drifted month; ``None`` for no drift.
    :param rows_per_file: rows per part file; bounds memory.
    :param labels_feed: also write ``labels/month=YYYY-MM/`` (ids + outcome) for every month.
    :param concept_drift_from: first month whose outcomes follow the changed relation; ``None`` for none.
    :return: a summary with the URIs written and the drifted months.
    """
    if rows <= 0 or rows_per_file <= 0:
        raise ValueError("rows and rows_per_file must be positive")
    root = str(to).rstrip("/")
    drift_at = month_ordinal(drift_from) if drift_from else None
    concept_at = month_ordinal(concept_drift_from) if concept_drift_from else None
    training_rows = rows if training_rows is None else training_rows
    summary: dict[str, Any] = {
        "root": root, "spec": f"{root}/churn_spec.yaml", "months": {}, "labels": {}, "drifted_months": [], "concept_drifted_months": [],
    }  # fmt: skip
    tables.write_text(SPEC_PATH.read_text(encoding="utf-8"), summary["spec"], conn_id=conn_id)
    if training_rows:
        summary["training"] = f"{root}/training"
        _write_partition(
            summary["training"], training_rows, rows_per_file, conn_id=conn_id, seed=seed, month=TRAINING_MONTH
        )
    for month in months:
        drifted = drift_at is not None and month_ordinal(month) >= drift_at
        concept = concept_at is not None and month_ordinal(month) >= concept_at
        features = f"{root}/monthly/month={month}"
        outcomes = f"{root}/labels/month={month}" if labels_feed else None
        _write_month(
            features, outcomes, rows, rows_per_file, conn_id=conn_id, seed=seed, month=month,
            drift_features=drift_features if drifted else (), drift_strength=drift_strength,
            concept_drift=concept_drift_strength if concept else 0.0,
        )  # fmt: skip
        summary["months"][month] = features
        if outcomes:
            summary["labels"][month] = outcomes
        if drifted:
            summary["drifted_months"].append(month)
        if concept:
            summary["concept_drifted_months"].append(month)
        log.info("Wrote %s rows for %s%s%s", rows, month, " (drifted)" if drifted else "", " (concept drift)" if concept else "")
    return summary

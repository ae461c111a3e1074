"""Write scikit-learn's diabetes table (regression) the way a team's own export might: semicolon-separated
CSV files and no ``_SUCCESS`` markers. examples/team_diabetes_dag.py and the tests use it.

Layout under ``ROOT``:

* ``training/part-0.csv``: the first 342 patients, with the ``progression`` target;
* ``monthly/month=2025-01/part-0.csv``, ``part-1.csv``: the other 100 patients, without it, in two files.

Usage: ``python examples/diabetes_data.py ROOT`` (a folder or ``file://`` URI).
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import unquote, urlparse


def write_layout(root: str) -> dict[str, int]:
    """Write the layout under ``root``; return the rows written per file."""
    from sklearn.datasets import load_diabetes

    base = Path(unquote(urlparse(root).path) if root.startswith("file://") else root)
    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    frame["sex"] = frame["sex"].map({1.0: "female", 2.0: "male"})
    frame.insert(0, "patient_id", range(len(frame)))
    later = frame.iloc[342:].drop(columns=["progression"])
    files = {"training/part-0.csv": frame.iloc[:342], "monthly/month=2025-01/part-0.csv": later.iloc[:50], "monthly/month=2025-01/part-1.csv": later.iloc[50:]}
    for name, rows in files.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(base / name, sep=";", index=False)
    return {name: len(rows) for name, rows in files.items()}


if __name__ == "__main__":
    print(write_layout(sys.argv[1]))

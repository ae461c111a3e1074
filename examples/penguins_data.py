"""Write the Palmer penguins table (from the ``palmerpenguins`` package) the way a team's own pandas
job would: a labelled training snapshot and unlabelled monthly folders of parquet files, with no
``_SUCCESS`` markers. The README's "Bring your own data" walk-through and the tests use it.

Layout under ``ROOT``:

* ``training/part-0.parquet``: the 2007 and 2008 field seasons, with the ``species`` label;
* ``monthly/month=2009-01/``, ``month=2009-02/``: two random halves of the 2009 season (stable);
* ``monthly/month=2009-03/``: only the Gentoo penguins of 2009 (a real sub-population);
* ``labels/month=2009-01/`` .. ``month=2009-03/``: each month's ``penguin_id`` and ``species``, the
  labels feed (in a real team they arrive after the month was scored).

Usage: ``python examples/penguins_data.py ROOT`` (a folder or ``file://`` URI).
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import unquote, urlparse


def write_layout(root: str) -> dict[str, int]:
    """Write the layout under ``root``; return the rows written per folder."""
    from palmerpenguins import load_penguins

    base = Path(unquote(urlparse(root).path) if root.startswith("file://") else root)
    penguins = load_penguins()
    penguins.insert(0, "penguin_id", range(1, len(penguins) + 1))
    season = penguins[penguins["year"] == 2009].sample(frac=1.0, random_state=7)
    half = len(season) // 2
    months = {"2009-01": season.iloc[:half], "2009-02": season.iloc[half:], "2009-03": season[season["species"] == "Gentoo"]}
    folders = {"training": penguins[penguins["year"] < 2009]}
    for month, rows in months.items():
        folders[f"monthly/month={month}"] = rows.drop(columns=["species"])
        folders[f"labels/month={month}"] = rows[["penguin_id", "species"]]
    for folder, frame in folders.items():
        (base / folder).mkdir(parents=True, exist_ok=True)
        frame.to_parquet(base / folder / "part-0.parquet", index=False)
    return {folder: len(frame) for folder, frame in folders.items()}


if __name__ == "__main__":
    print(write_layout(sys.argv[1]))

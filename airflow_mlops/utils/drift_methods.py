"""Which drift test each column gets: chosen from both sample sizes and the column's kind.

Evidently 0.7 picks a column's test from the *reference* size alone: above 1,000 reference rows it
uses distances (normed Wasserstein for numbers, Jensen-Shannon for categories) with fixed
thresholds (0.1). A distance ignores how many rows it was measured on, and the sampling noise of a
small month is large: a stable month of ~120 rows against a 2,000-row reference read as 54 % of
columns drifted, while a test that accounts for sample size found p >= 0.19 on every column.

So the default here is:

* the smaller side has at most ``small_sample_rows`` (1,000) rows: **hypothesis tests**, whose
  p-values account for both sizes: Kolmogorov-Smirnov (``ks``) for numeric columns, chi-square
  (``chisquare``) for categorical ones, the two-proportion z-test (``z``) for categorical columns
  with two values. KS is conservative on columns with few distinct values: it errs towards no alarm;
* both sides larger: Evidently's **distances** (``wasserstein`` for numeric columns with more than
  five distinct values, ``jensenshannon`` otherwise), because with many rows every hypothesis test
  flags differences too small to matter.

``numeric_method`` / ``categorical_method`` replace the default for one kind of column, and
``column_methods`` for single columns. A method that does not apply to a kind (``ks`` on a
categorical column) is refused before Evidently runs, listing the valid ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from airflow_mlops.spec import FeatureSpec

#: Below this many rows on the smaller side, columns get hypothesis tests instead of distances.
SMALL_SAMPLE_ROWS = 1_000
KINDS = ("numeric", "categorical")


def valid_methods() -> dict[str, list[str]]:
    """Evidently's registered drift methods that apply to each kind of column.

    Read from Evidently's registry, so a method Evidently adds or drops is known without a change here.
    """
    try:  # the registry is Evidently's own table of methods; it has no public accessor in 0.7
        from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
        from evidently.legacy.core import ColumnType
    except ImportError as exc:  # pragma: no cover - a future Evidently that moved it
        raise RuntimeError(f"cannot read Evidently's drift methods ({exc}); this Evidently version is not supported") from exc

    types = {"numeric": ColumnType.Numerical, "categorical": ColumnType.Categorical}
    return {kind: sorted(name for name, by_type in _registered_stat_tests.items() if types[kind] in by_type) for kind in KINDS}


def check_method(kind: str, method: str, where: str, valid: Mapping[str, list[str]]) -> None:
    """Raise ``ValueError`` unless ``method`` applies to columns of ``kind``.

    :param where: the setting or column named in the error.
    """
    if method not in valid[kind]:
        raise ValueError(f"{where}: drift method {method!r} does not apply to {kind} columns; valid: {valid[kind]}")


def choose(
    spec: FeatureSpec,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric_method: str | None = None,
    categorical_method: str | None = None,
    column_methods: Mapping[str, str] | None = None,
    small_sample_rows: int = SMALL_SAMPLE_ROWS,
) -> dict[str, str]:
    """Return ``{column: Evidently method}`` for every feature of ``spec`` (see the module docstring).

    :raises ValueError: a method that does not apply to its kind, or a column override for a column
        the spec does not have; raised before any test runs.
    """
    valid = valid_methods()
    for kind, method in (("numeric", numeric_method), ("categorical", categorical_method)):
        if method:
            check_method(kind, method, f"{kind}_method", valid)
    overrides = dict(column_methods or {})
    kinds = {c: "numeric" for c in spec.numeric_columns} | {c: "categorical" for c in spec.categorical_columns}
    unknown = sorted(set(overrides) - set(kinds))
    if unknown:
        raise ValueError(f"column_methods: {unknown} are not features of the spec (features: {list(kinds)})")
    small = min(len(reference), len(current)) <= small_sample_rows
    chosen = {}
    for column, kind in kinds.items():
        if column in overrides:
            check_method(kind, overrides[column], f"column_methods[{column!r}]", valid)
            chosen[column] = overrides[column]
        elif kind == "numeric":
            chosen[column] = numeric_method or _default_numeric(reference[column], current[column], small)
        else:
            chosen[column] = categorical_method or _default_categorical(reference[column], current[column], small)
    return chosen


def _distinct(reference: pd.Series, current: pd.Series) -> int:
    import pandas as pd

    return int(pd.concat([reference, current], ignore_index=True).nunique())


def _default_numeric(reference: pd.Series, current: pd.Series, small: bool) -> str:
    if small:
        return "ks"
    return "wasserstein" if _distinct(reference, current) > 5 else "jensenshannon"


def _default_categorical(reference: pd.Series, current: pd.Series, small: bool) -> str:
    if not small:
        return "jensenshannon"
    return "z" if _distinct(reference, current) <= 2 else "chisquare"

"""Check rows against a FeatureSpec in Arrow: bounds, allowed values, nullability.

Validation judges a whole table before it is used; this module lets an operator protect itself on its
own input, chunk by chunk, at a cost that does not show next to a model's ``predict`` (vectorised Arrow
kernels; Python only touches the few rows that break a rule). The kernels are those of validation's
engine (:mod:`airflow_mlops.rules`), so both enforce the spec through the same code. NaN counts as null,
as in validation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_mlops.spec import FeatureSpec

MAX_SAMPLE = 5


@dataclass
class Violation:
    """Rows of one column that break one rule of the spec.

    :param column: the column.
    :param rule: what the spec demands, e.g. ``">= 0"``, ``"in [a, b]"``, ``"not null"``.
    :param count: how many rows break it.
    :param sample: a few offending values (distinct, at most ``MAX_SAMPLE``).
    """

    column: str
    rule: str
    count: int = 0
    sample: list[Any] = field(default_factory=list)

    def describe(self) -> str:
        """One line: column, rule, count, sample."""
        shown = "" if self.rule == "not null" else f" (e.g. {', '.join(repr(v) for v in self.sample)})"
        return f"{self.column!r}: {self.count} row(s) break {self.rule}{shown}"

    def absorb(self, other: Violation) -> None:
        """Add the count and new sample values of the same rule found in another chunk."""
        self.count += other.count
        for value in other.sample:
            if len(self.sample) < MAX_SAMPLE and value not in self.sample:
                self.sample.append(value)


def _bound(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _rules(spec: FeatureSpec, batch: pa.RecordBatch) -> list[tuple[str, str, Callable[[], pa.Array] | None]]:
    """``(column, rule, mask)`` for every rule of the spec: ``mask()`` gives the rows that break it, and is
    ``None`` when a cheap look (null count, min/max, the dictionary of a categorical) rules out any."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    from airflow_mlops.rules import beyond, null_mask, outside

    def nulls(col: pa.Array) -> Callable[[], pa.Array] | None:
        has_nan = t.is_floating(col.type) and bool(pc.any(pc.is_nan(col)).as_py())
        return partial(null_mask, col) if col.null_count or has_nan else None

    out: list[tuple[str, str, Callable[[], pa.Array] | None]] = []
    for name in spec.passthrough_columns:
        out.append((name, "not null", nulls(batch.column(name))))
    for num in spec.numeric_features:
        col = batch.column(num.name)
        if not num.nullable:
            out.append((num.name, "not null", nulls(col)))
        if num.min is None and num.max is None:
            continue
        extremes = pc.min_max(col)
        low, high = extremes["min"], extremes["max"]
        if num.min is not None:
            below = low.is_valid and low.as_py() < num.min
            out.append((num.name, f">= {_bound(num.min)}", partial(beyond, pc.less, col, num.min) if below else None))
        if num.max is not None:
            above = high.is_valid and high.as_py() > num.max
            out.append((num.name, f"<= {_bound(num.max)}", partial(beyond, pc.greater, col, num.max) if above else None))
    for cat in spec.categorical_features:
        col = batch.column(cat.name)
        if not cat.nullable:
            out.append((cat.name, "not null", nulls(col)))
        if cat.values is not None:
            allowed = pa.array(list(cat.values), pa.string())
            # a dictionary-encoded column can only hold its dictionary's values: check those few first
            known = t.is_dictionary(col.type) and bool(pc.all(pc.is_in(col.dictionary, value_set=allowed)).as_py())
            out.append((cat.name, f"in {list(cat.values)}", None if known else partial(outside, col, allowed)))
    return out


@dataclass
class BatchCheck:
    """The outcome of :func:`check_batch`.

    :param violations: one per broken (column, rule); empty when every row conforms.
    :param invalid_rows: rows that break at least one rule.
    :param reasons: per row, the rules it breaks (``"tenure_months >= 0; contract in [...]"``) or
        null; only when asked for.
    """

    violations: list[Violation]
    invalid_rows: int
    reasons: pa.Array | None


def check_batch(spec: FeatureSpec, batch: pa.RecordBatch, *, want_reasons: bool = False) -> BatchCheck:
    """Check one batch of scoring rows against ``spec`` (``want_reasons``: also say, per row, what it breaks)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    violations: list[Violation] = []
    broken: list[tuple[str, str, pa.Array]] = []
    for column, rule, make_mask in _rules(spec, batch):
        if make_mask is None:
            continue
        mask = make_mask()
        count = pc.sum(mask).as_py() or 0
        if not count:
            continue
        broken.append((column, rule, mask))
        values = pc.filter(batch.column(column), mask)
        sample = [] if rule == "not null" else pc.unique(values.slice(0, 10_000)).to_pylist()[:MAX_SAMPLE]
        violations.append(Violation(column, rule, int(count), sample))
    invalid = 0
    if broken:
        any_broken = broken[0][2]
        for _, _, mask in broken[1:]:
            any_broken = pc.or_(any_broken, mask)
        invalid = int(pc.sum(any_broken).as_py() or 0)
    if not want_reasons:
        return BatchCheck(violations, invalid, None)
    if not broken:
        return BatchCheck(violations, 0, pa.nulls(batch.num_rows, pa.string()))
    # Python touches only the rows that break a rule: one reason text each, scattered into a null column.
    per_row: dict[int, list[str]] = {}
    for column, rule, mask in broken:
        for i in pc.indices_nonzero(mask).to_pylist():
            per_row.setdefault(i, []).append(f"{column} {rule}")
    texts = pa.array(["; ".join(per_row[i]) for i in sorted(per_row)], pa.string())  # in the order of the mask's rows
    return BatchCheck(violations, invalid, pc.replace_with_mask(pa.nulls(batch.num_rows, pa.string()), any_broken, texts))


def merge(total: list[Violation], found: Sequence[Violation]) -> None:
    """Fold the violations of one chunk into the running ``total`` (same column and rule add up)."""
    for item in found:
        same = next((v for v in total if v.column == item.column and v.rule == item.rule), None)
        if same is None:
            total.append(Violation(item.column, item.rule, item.count, list(item.sample)))
        else:
            same.absorb(item)

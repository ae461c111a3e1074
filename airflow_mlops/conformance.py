"""Check rows against a FeatureSpec in Arrow: bounds, allowed values, nullability.

Validation (Great Expectations) judges a whole table before it is used; this module lets an operator
protect itself on its own input, chunk by chunk, at a cost that does not show next to a model's
``predict`` (vectorised Arrow kernels; Python only touches the few rows that break a rule).
NaN counts as null, as in validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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


def _rules(spec: FeatureSpec, batch: pa.RecordBatch) -> list[tuple[str, str, pa.Array]]:
    """``(column, rule, mask of the rows that break it)`` for every rule of the spec."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out: list[tuple[str, str, pa.Array]] = []
    for name in spec.passthrough_columns:
        out.append((name, "not null", pc.is_null(batch.column(name), nan_is_null=True)))
    for num in spec.numeric_features:
        col = batch.column(num.name)
        if not num.nullable:
            out.append((num.name, "not null", pc.is_null(col, nan_is_null=True)))
        if num.min is not None:
            out.append((num.name, f">= {_bound(num.min)}", pc.fill_null(pc.less(col, num.min), False)))
        if num.max is not None:
            out.append((num.name, f"<= {_bound(num.max)}", pc.fill_null(pc.greater(col, num.max), False)))
    for cat in spec.categorical_features:
        col = batch.column(cat.name)
        if not cat.nullable:
            out.append((cat.name, "not null", pc.is_null(col)))
        if cat.values is not None:
            text = col if _is_text(col.type) else pc.cast(col, pa.string())
            allowed = pc.is_in(text, value_set=pa.array(list(cat.values), pa.string()))
            out.append((cat.name, f"in {list(cat.values)}", pc.and_(pc.invert(allowed), pc.is_valid(col))))
    return out


def _is_text(dtype: pa.DataType) -> bool:
    import pyarrow.types as t

    return t.is_string(dtype) or t.is_large_string(dtype) or (t.is_dictionary(dtype) and t.is_string(dtype.value_type))


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
    for column, rule, mask in _rules(spec, batch):
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
    reasons: list[list[str]] = [[] for _ in range(batch.num_rows)]
    for column, rule, mask in broken:
        for i in pc.indices_nonzero(mask).to_pylist():
            reasons[i].append(f"{column} {rule}")
    return BatchCheck(violations, invalid, pa.array(["; ".join(r) if r else None for r in reasons], pa.string()))


def merge(total: list[Violation], found: Sequence[Violation]) -> None:
    """Fold the violations of one chunk into the running ``total`` (same column and rule add up)."""
    for item in found:
        same = next((v for v in total if v.column == item.column and v.rule == item.rule), None)
        if same is None:
            total.append(Violation(item.column, item.rule, item.count, list(item.sample)))
        else:
            same.absorb(item)

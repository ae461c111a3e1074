"""``infer-spec`` checks its own draft: draft on one part of the table, validate the rest, adjust.

A draft describes the rows it saw; the next months' rows of the same population are other rows. So
before drafting from the whole table, the command drafts (by the rules of
:mod:`airflow_mlops.spec_inference`) from one part and checks the held-out rest with the row rules
batch inference enforces (:func:`airflow_mlops.conformance.check_batch`):

* **split**: with ``--timestamp``, the earliest ``1 - holdout_share`` of the rows (by that column) are
  drafted from and the latest ``holdout_share`` checked; otherwise a random split seeded by ``--seed``.
* **adjustments**, decided per column from the held-out check and from the whole table, then applied to
  the draft of the whole table (``q50``/``q90``/``q10``: quantiles of the column's non-null values):

  - *long right tail* -> **no upper bound**: held-out rows above the part's upper bound, or
    ``max - q90 > 1.5 * (q90 - q50)`` (the top stands out from the bulk: a count or amount whose
    largest values the table has not finished seeing; a bound from a high quantile would cut rows
    the table itself holds, and every such bound would be just another observed maximum).
  - *long left tail* -> **lower bound 0** when every value is >= 0, else **no lower bound**: held-out
    rows below the part's lower bound, or ``q10 - min > 1.5 * (q50 - q10)``.
  - *long-tailed text* -> **open list** (no ``values``): held-out values not in the part's list, or a
    listed value seen in fewer than ``max(5, 1 % of rows)`` rows of the table (Good-Turing: rows with a
    value never seen are about as many as rows with values seen once; a rare value is the visible part
    of a tail of them), or a single value (a constant says nothing of the values the column can take).
    An open list rather than a tolerance: such values come in bursts a per-batch share does not bound.
  - *nulls only in the held-out part* -> **nullable**.
  - **tolerance** (spec-wide): ``3 / rows`` rounded up to two significant digits ("rule of three": an
    event never seen in ``n`` rows may still occur in up to ``3/n`` of new rows, at 95 % confidence): a
    null in a column that had none, a quality grade the table never showed. Within it, validation
    passes and inference scores and flags those rows; beyond it, both fail.

* **rates**: a held-out row is *rejected* when it breaks a rule whose breaking rows exceed the
  feature's tolerance (within it, the row is scored and flagged, not rejected). The summary prints the
  rejected share of the held-out rows under the plain draft (before) and under the adjusted draft of
  the same part (after: 0 by construction for what the held-out rows showed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.spec import FeatureSpec
from airflow_mlops.spec_inference import Draft, InferenceOptions, draft_from_frame, render_yaml

if TYPE_CHECKING:
    import pandas as pd

    from airflow_mlops.conformance import Violation

#: ``max - q90 > TAIL_RATIO * (q90 - q50)`` (and its mirror below) marks a long tail.
TAIL_RATIO = 1.5
#: A listed text value seen in fewer rows than this (or than :data:`RARE_SHARE` of them) is rare.
RARE_ROWS = 5
RARE_SHARE = 0.01
_HEADER = """\
# Self-check: drafted on {drafted} rows, checked on {held} held-out rows ({how}); rows rejected before
# the adjustments {before}, after {after}. Adjusted: long-tailed numeric columns lose the bound on their
# long side, long-tailed text columns list no values, tolerance = 3 / rows (rule of three).
"""


@dataclass
class Adjustment:
    """One change the self-check makes to a column's entry.

    :param column: the column.
    :param action: ``"no upper bound"``, ``"lower bound 0"``, ``"no lower bound"``, ``"open list"`` or ``"nullable"``.
    :param reason: why, in words, with the figures.
    """

    column: str
    action: str
    reason: str


@dataclass
class Rejects:
    """The held-out rows a spec rejects.

    :param rows: rows that break at least one rule beyond its tolerance.
    :param total: rows checked.
    :param violations: every broken rule, tolerated or not.
    :param tolerated: the broken rules within their tolerance (scored and flagged, not rejected).
    """

    rows: int
    total: int
    violations: list[Violation] = field(default_factory=list)
    tolerated: list[Violation] = field(default_factory=list)

    def rate(self) -> str:
        """``12 of 147 rows (8.2 %)``."""
        share = 100 * self.rows / self.total if self.total else 0.0
        return f"{self.rows} of {self.total} rows ({share:.1f} %)"


@dataclass
class SelfCheck:
    """What the self-check found and changed.

    :param drafted: rows of the part drafted from.
    :param how: how the table was split.
    :param before: the held-out rows the plain draft of the part rejects.
    :param after: the held-out rows the adjusted draft of the part rejects.
    :param adjustments: the changes, column by column.
    :param tolerance: the spec-wide tolerance of the final draft.
    """

    drafted: int
    how: str
    before: Rejects
    after: Rejects
    adjustments: list[Adjustment]
    tolerance: float


def checked_draft(frame: pd.DataFrame, options: InferenceOptions, *, source: str, holdout_share: float = 0.2, seed: int = 0) -> tuple[Draft, SelfCheck]:
    """Draft the spec of ``frame`` by :func:`~airflow_mlops.spec_inference.draft_from_frame`, adjusted by
    the self-check of the module docstring.

    :param frame: the table.
    :param options: the user's choices.
    :param source: where the table came from.
    :param holdout_share: the share of rows held out (0 < share < 1).
    :param seed: the seed of the random split (no timestamp column).
    :returns: the adjusted draft (its notes end with the self-check's lines) and the self-check.
    :raises ValueError: a share out of range, or a part left with no rows.
    """
    if not 0 < holdout_share < 1:
        raise ValueError(f"--holdout-share must be between 0 and 1 (exclusive), got {holdout_share}")
    part, held, how = split(frame, holdout_share, seed=seed, timestamp=options.timestamp_column)
    plain = draft_from_frame(part, options, source=source)
    before = rejects(FeatureSpec.from_dict(plain.doc), held)
    adjustments = decide(frame, plain.doc, before.violations)
    part_doc = adjust(plain.doc, adjustments, rows=len(part))
    after = rejects(FeatureSpec.from_dict(part_doc), held)
    whole = draft_from_frame(frame, options, source=source)
    doc = adjust(whole.doc, adjustments, rows=len(frame))
    check = SelfCheck(len(part), how, before, after, adjustments, float(doc.get("tolerance", 0.0)))
    header = "".join(line for line in whole.yaml.splitlines(keepends=True) if line.startswith("#"))
    header += _HEADER.format(drafted=len(part), held=len(held), how=how, before=before.rate(), after=after.rate())
    return Draft(doc, header + render_yaml(doc), whole.notes + notes(check)), check


def split(frame: pd.DataFrame, holdout_share: float, *, seed: int, timestamp: str | None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The part to draft from, the held-out part, and how they were split.

    :param frame: the table.
    :param holdout_share: the share of rows held out.
    :param seed: the seed of the random split.
    :param timestamp: the row-time column: the latest rows are held out.
    :returns: ``(part, held_out, how)``.
    """
    held_rows = round(len(frame) * holdout_share)
    if held_rows < 1 or held_rows >= len(frame):
        raise ValueError(f"--holdout-share {holdout_share} of {len(frame)} rows leaves a part with no rows")
    if timestamp:
        ordered = frame.sort_values(timestamp, kind="stable", na_position="first")
        part, held = ordered.iloc[: len(frame) - held_rows], ordered.iloc[len(frame) - held_rows :]
        how = f"time order: the latest {held_rows} rows by {timestamp!r} held out"
    else:
        held = frame.sample(n=held_rows, random_state=seed)
        part = frame.drop(index=held.index)
        how = f"random split, seed {seed}"
    return part.reset_index(drop=True), held.reset_index(drop=True), how


def rejects(spec: FeatureSpec, frame: pd.DataFrame) -> Rejects:
    """The rows of ``frame`` that ``spec`` rejects (module docstring: beyond a rule's tolerance).

    :param spec: the spec.
    :param frame: the rows (scoring columns at least).
    :returns: the rejected rows, and every broken rule.
    """
    import pyarrow as pa

    from airflow_mlops.conformance import check_batch

    batch = pa.RecordBatch.from_pandas(frame[spec.scoring_columns()], preserve_index=False)
    checked = check_batch(spec, batch)
    found = checked.violations
    tolerated = [v for v in found if v.count <= spec.tolerance_of(v.column) * len(frame)]
    if not tolerated:
        return Rejects(checked.invalid_rows, len(frame), found, [])
    # The tolerated rules are dropped from the spec; what still breaks a rule is rejected.
    doc = spec.to_dict()
    for v in tolerated:
        entry = doc["numeric_features"].get(v.column) or doc["categorical_features"].get(v.column)
        if v.rule == "not null":
            entry.pop("nullable", None)
            if v.column in doc["numeric_features"]:
                entry["nullable"] = True
        elif v.rule.startswith(">="):
            entry.pop("min", None)
        elif v.rule.startswith("<="):
            entry.pop("max", None)
        else:
            entry.pop("values", None)
    return Rejects(check_batch(FeatureSpec.from_dict(doc), batch).invalid_rows, len(frame), found, tolerated)


def decide(frame: pd.DataFrame, doc: dict[str, Any], held_out: list[Violation]) -> list[Adjustment]:
    """The adjustments of the module docstring, column by column.

    :param frame: the whole table (its shape decides long tails and rare values).
    :param doc: the plain draft of the part drafted from.
    :param held_out: the rules that part's draft breaks on the held-out rows.
    :returns: the adjustments, in column order.
    """
    broken = {(v.column, v.rule.split(" ", 1)[0]): v for v in held_out}
    out: list[Adjustment] = []
    for name, entry in doc["numeric_features"].items():
        values = frame[name].dropna()
        if (name, "not") in broken:
            out.append(Adjustment(name, "nullable", f"{broken[name, 'not'].count} held-out null(s), none in the drafted part"))
        if values.empty or entry.get("max") == 1 and entry.get("min") == 0 and set(values.unique()) <= {0, 1}:
            continue
        q10, q50, q90 = (float(q) for q in values.quantile([0.1, 0.5, 0.9]))
        lo, hi = float(values.min()), float(values.max())
        if "max" in entry:
            why = _tail(broken.get((name, "<=")), "above", hi - q90, q90 - q50, f"max {_num(hi)} - q90 {_num(q90)}", f"q90 - q50 {_num(q90 - q50)}")
            if why:
                out.append(Adjustment(name, "no upper bound", why))
        if "min" in entry and lo != 0:  # a lowest value of 0 already gives the bound 0
            why = _tail(broken.get((name, ">=")), "below", q10 - lo, q50 - q10, f"q10 {_num(q10)} - min {_num(lo)}", f"q50 - q10 {_num(q50 - q10)}")
            if why:
                out.append(Adjustment(name, "lower bound 0" if lo >= 0 else "no lower bound", why))
    for name, entry in doc["categorical_features"].items():
        if (name, "not") in broken:
            out.append(Adjustment(name, "nullable", f"{broken[name, 'not'].count} held-out null(s), none in the drafted part"))
        if "values" not in entry:
            continue
        counts = frame[name].dropna().astype(str).value_counts()
        rare = max(RARE_ROWS, math.ceil(RARE_SHARE * len(frame)))
        new = broken.get((name, "in"))
        if new is not None:
            why = f"{new.count} held-out row(s) with values the drafted part never showed (e.g. {', '.join(map(repr, new.sample))})"
        elif len(counts) == 1:
            why = f"a single value {counts.index[0]!r} in {len(frame)} rows: no evidence the list is closed"
        elif int(counts.min()) < rare:
            shown = ", ".join(f"{v!r} x{c}" for v, c in counts[counts < rare].items())
            why = f"rare values (seen in fewer than {rare} rows: {shown}): a tail of values not yet seen"
        else:
            continue
        out.append(Adjustment(name, "open list", why))
    return out


def _tail(broken: Violation | None, side: str, stretch: float, bulk: float, stretch_text: str, bulk_text: str) -> str:
    """Why a side of a numeric column is a long tail (``""``: it is not)."""
    if broken is not None:
        return f"{broken.count} held-out row(s) {side} the drafted part's bound {broken.rule} (e.g. {', '.join(map(_num, broken.sample))})"
    if stretch > TAIL_RATIO * bulk:
        return f"long tail: {stretch_text} = {_num(stretch)} > {TAIL_RATIO} x {bulk_text}"
    return ""


def adjust(doc: dict[str, Any], adjustments: list[Adjustment], *, rows: int) -> dict[str, Any]:
    """A copy of a drafted document with the adjustments and the rule-of-three tolerance applied.

    :param doc: the drafted document.
    :param adjustments: what to change.
    :param rows: the rows it was drafted from (tolerance ``3 / rows``).
    :returns: the new document.
    """
    import copy

    out = copy.deepcopy(doc)
    tolerance = rule_of_three(rows)
    if tolerance:
        ordered = {k: v for k, v in out.items() if k not in ("numeric_features", "categorical_features")}
        out = ordered | {"tolerance": tolerance, "numeric_features": out["numeric_features"], "categorical_features": out["categorical_features"]}
    for item in adjustments:
        numeric = item.column in out["numeric_features"]
        entry = out["numeric_features" if numeric else "categorical_features"][item.column]
        if item.action == "no upper bound":
            entry.pop("max", None)
        elif item.action == "no lower bound":
            entry.pop("min", None)
        elif item.action == "lower bound 0":
            entry["min"] = 0
        elif item.action == "open list":
            entry.pop("values", None)
        elif numeric:  # nullable
            entry["nullable"] = True
        else:
            entry.pop("nullable", None)  # categorical features are nullable by default
    return out


def rule_of_three(rows: int) -> float:
    """``3 / rows`` rounded up to two significant digits; 0 below 4 rows (no share to speak of).

    :param rows: the rows drafted from.
    :returns: the spec-wide tolerance.
    """
    if rows < 4:
        return 0.0
    share = 3 / rows
    step = 10.0 ** (math.floor(math.log10(share)) - 1)
    return float(f"{math.ceil(round(share / step, 9)) * step:.12g}")


def notes(check: SelfCheck) -> list[str]:
    """The self-check's lines for stderr: held-out rejects per column, adjustments, the rates."""
    lines = [f"self-check: drafted on {check.drafted} rows, {check.before.total} held out ({check.how})"]
    tolerated = {(v.column, v.rule) for v in check.before.tolerated}
    for v in check.before.violations:
        within = " (within tolerance)" if (v.column, v.rule) in tolerated else ""
        lines.append(f"self-check: held-out would-be rejects: {v.describe()}{within}")
    lines += [f"self-check: {a.column}: {a.action}: {a.reason}" for a in check.adjustments]
    if check.tolerance:
        lines.append(
            f"self-check: tolerance {check.tolerance} (3 / rows, rule of three): a row of a kind never seen may still be "
            f"that share of new rows; within it rows are scored and flagged, not rejected"
        )
    lines.append(f"self-check: held-out rows rejected: before the adjustments {check.before.rate()}; after {check.after.rate()}")
    return lines


def _num(value: Any) -> str:
    """A number as it reads best: ``57200``, not ``57200.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value) if isinstance(value, str) else str(value)

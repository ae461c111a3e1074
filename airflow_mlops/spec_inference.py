"""Draft a FeatureSpec from a real table (``airflow-mlops infer-spec``).

The draft is a starting point to review, not a decision: it describes the data seen, not what the
columns mean. The rules, so that every guess can be checked:

* **kinds**: numeric dtypes are numeric features; bool, text and categorical columns are categorical
  features; other types (dates, decimals, bytes) are left out with a note (``--timestamp`` names the
  row time). Columns named with ``--id`` are id columns, never features. A column that is unique per
  row, of integer or text type and named ``*id`` stays a feature, with a warning suggesting ``--id``.
* **numeric bounds**: the observed ``[min, max]`` widened by ``margin * (max - min)`` on each side (a
  constant column: by ``margin * |value|``, or ``margin`` if the value is 0), rounded outward to one
  digit below the widening so they read ``62.4``, not ``62.35000000000001``. A lower bound never goes
  below 0 when every observed value is >= 0 (counts, amounts); whole-number columns get integer bounds
  (floor/ceil); 0/1 flags get exactly ``[0, 1]``, with no margin.
* **nullability**: a numeric feature is ``nullable: true`` iff it holds a null; a categorical feature
  is ``nullable: false`` iff it holds none (the spec's defaults otherwise).
* **allowed values**: the sorted distinct values, as text, of a text column with at most
  ``max_categories`` of them; none for wider columns, for a column with no value at all, nor for booleans (the type check keeps those to
  true/false, and the spec lists values as text, which a boolean column would never match).
* **target**: a numeric target (integer or float, not boolean) is a regression target when it holds
  fractional values, or when it has more than 20 distinct values that are also at least 1% of its
  non-null rows (one distinct value per 100 rows: a price, a count with a long tail); any other is a
  classification target whose ``classes`` are its distinct values (text and boolean labels, 0/1
  flags, 1..5 ratings, a few integer codes). ``--task`` overrides the guess. A binary target needs a
  positive label unless its labels are 0/1 or false/true.

The whole table is read into memory: point the command at a representative file or partition.

**Self-check** (``--holdout-share``, default 0.2; :mod:`airflow_mlops.spec_check`): the command first
drafts by the rules above from the earlier ``1 - share`` of the rows (by ``--timestamp``; else a random
split seeded by ``--seed``) and checks the held-out rest with :func:`~airflow_mlops.conformance.check_batch`.
Then it drafts from the whole table and adjusts, with ``q10``/``q50``/``q90`` the column's quantiles:

* a numeric column with held-out rows above the part's upper bound, or ``max - q90 > 1.5 * (q90 - q50)``,
  gets **no upper bound**; one with held-out rows below its lower bound, or ``q10 - min > 1.5 * (q50 - q10)``,
  gets the **lower bound 0** when no value is negative, else **no lower bound**;
* a text column with held-out values outside the part's list, a listed value seen in fewer than
  ``max(5, 1 % of rows)`` rows, or a single value, lists **no values** (an open list);
* a column with nulls only in the held-out part is **nullable**;
* the spec gets ``tolerance: 3 / rows`` rounded up to two significant digits (rule of three: an event never
  seen in ``n`` rows may still be up to ``3/n`` of new rows).

It prints each held-out column's would-be rejects, each adjustment with its figures, and the held-out rows
rejected (beyond tolerance) before and after the adjustments.

(This docstring states every drafting rule, so that each guess can be checked against it: it is why
the module runs a little past 400 lines.)
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.metrics import plain_label, same_label
from airflow_mlops.spec import TASKS, FeatureSpec
from airflow_mlops.tables import FORMATS, TableReader

if TYPE_CHECKING:
    import pandas as pd

#: A numeric target with more distinct values than this (and :data:`MIN_DISTINCT_SHARE` of its rows) is
#: taken for a quantity (regression); a classification target with more classes than this is warned about.
MAX_CLASSES = 20
#: ... provided its distinct values are at least this share of its non-null rows (one per 100 rows):
#: 30 integer codes in a million rows stay classes, 683 prices in 1,611 rows are a quantity.
MIN_DISTINCT_SHARE = 0.01
#: The task rule in one sentence, as infer-spec's notes and ``--task``'s help state it.
TASK_RULE = (
    f"a numeric target is drafted as regression when it holds fractional values, or more than {MAX_CLASSES} "
    f"distinct values, at least one per {round(1 / MIN_DISTINCT_SHARE)} rows; any other target as classification"
)
_ID_NAME = re.compile(r"id$", re.IGNORECASE)
_HEADER = """\
# FeatureSpec drafted by `airflow-mlops infer-spec` from {source}
# Review before use: every entry is a guess from the data seen, not from what the columns mean.
# Numeric bounds: the observed [min, max] widened by {margin} * (max - min) on each side (a constant
# column: by {margin} * |value|, or {margin} if it is 0), rounded outward; a lower bound stays >= 0 when
# every observed value is >= 0; whole-number columns get integer bounds; 0/1 flags get exactly [0, 1].
# Text columns with more than {max_categories} distinct values list no allowed values.
"""


@dataclass(frozen=True)
class InferenceOptions:
    """What the user tells the drafter; everything else is guessed from the data.

    :param target: the label column.
    :param positive_label: the positive class of a binary target, as typed on the command line.
    :param id_columns: columns that identify a row.
    :param timestamp_column: the column with the row's time, if any.
    :param name: the spec's name; ``None`` = derived from the table's file or folder name.
    :param task: ``"classification"`` or ``"regression"``; ``None`` = guessed from the target.
    :param max_categories: text columns with more distinct values list no allowed values.
    :param margin: the fraction of the observed range added on each side of numeric bounds.
    """

    target: str
    positive_label: str | None = None
    id_columns: tuple[str, ...] = ()
    timestamp_column: str | None = None
    name: str | None = None
    task: str | None = None
    max_categories: int = 50
    margin: float = 0.1

    def __post_init__(self) -> None:
        if self.task is not None and self.task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {self.task!r}")
        if self.max_categories < 1:
            raise ValueError(f"--max-categories must be at least 1, got {self.max_categories}")
        if not self.margin >= 0:  # also refuses NaN
            raise ValueError(f"--margin must be >= 0, got {self.margin}")


@dataclass
class Draft:
    """A drafted spec.

    :param doc: the spec document.
    :param yaml: the document as commented YAML that reads back to ``doc``.
    :param notes: one line per column (and warnings): what was guessed and why.
    """

    doc: dict[str, Any]
    yaml: str
    notes: list[str] = field(default_factory=list)


def infer_spec(table_uri: str, options: InferenceOptions, *, reader: TableReader | None = None) -> Draft:
    """Read a table and draft its spec.

    :param table_uri: a ``.parquet``/``.csv`` file or a partition folder (``file://``, ``s3://``, path).
    :param options: the user's choices.
    :param reader: how to read (connection, marker policy, CSV dialect); default: the defaults.
    :returns: the draft.
    :raises ValueError: unreadable table (:class:`~airflow_mlops.exceptions.TableError`), missing
        column, or a target the options do not settle (e.g. a binary target without a positive label).
    """
    frame = (reader or TableReader()).read(table_uri)
    return draft_from_frame(frame, options, source=table_uri)


def draft_from_frame(frame: pd.DataFrame, options: InferenceOptions, *, source: str) -> Draft:
    """Draft the spec of an in-memory table.

    :param frame: the table.
    :param options: the user's choices.
    :param source: where the table came from (named in the YAML header; gives the default name).
    :returns: the draft, whose YAML has been read back and checked to give the same spec.
    """
    _check_columns(frame, options)
    notes = [f"read {len(frame)} rows x {len(frame.columns)} columns from {source}"]
    doc: dict[str, Any] = {"name": options.name or name_from_uri(source)}
    doc.update(_target_entries(frame[options.target], options, notes))
    if options.id_columns:
        doc["id_columns"] = list(options.id_columns)
    if options.timestamp_column:
        doc["timestamp_column"] = options.timestamp_column
    numeric: dict[str, Any] = {}
    categorical: dict[str, Any] = {}
    for name in frame.columns:
        if name != options.target:  # explained with the task, above
            notes.append(_describe_column(str(name), frame[name], options, numeric, categorical))
    doc["numeric_features"], doc["categorical_features"] = numeric, categorical
    header = _HEADER.format(source=source, margin=options.margin, max_categories=options.max_categories)
    return Draft(doc, header + render_yaml(doc), notes)


def _check_columns(frame: pd.DataFrame, options: InferenceOptions) -> None:
    """Refuse a column the options name but the table lacks, or the target named as id/timestamp."""
    named = [options.target, *options.id_columns] + ([options.timestamp_column] if options.timestamp_column else [])
    missing = [c for c in named if c not in frame.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not in the table; it has {[str(c) for c in frame.columns]}")
    if options.target in named[1:]:
        raise ValueError(f"the target {options.target!r} cannot also be an id or timestamp column")


def name_from_uri(uri: str) -> str:
    """A safe identifier from a table's file or folder name (``.../penguins.parquet`` -> ``penguins``).

    :param uri: the table's URI or path.
    :returns: lower-case letters, digits and underscores, not starting with a digit.
    """
    base = uri.rstrip("/").rsplit("/", 1)[-1]
    stem, suffix = os.path.splitext(base)
    name = re.sub(r"[^0-9a-z]+", "_", (stem if suffix.lower() in FORMATS else base).lower()).strip("_")
    return name if name and not name[0].isdigit() else f"table_{name}".rstrip("_")


def _target_entries(series: pd.Series, options: InferenceOptions, notes: list[str]) -> dict[str, Any]:
    """The ``task``, ``target``, ``classes`` and ``positive_label`` entries of the draft."""
    labels = series.dropna()
    missing = len(series) - len(labels)
    if missing:
        # The spec cannot fix these: a labelled table must have every target, so they must go.
        notes.append(
            f"warning: {missing} row(s) have no {options.target!r} value; a labelled table fails validation with "
            f"them: drop them before validating or training"
        )
    task, why = (options.task, "--task") if options.task else _guess_task(labels)
    if not options.task:
        notes.append(f"task rule: {TASK_RULE} (--task decides instead)")
    kind = _column_kind(labels)
    if task == "regression":
        if kind != "numeric":
            raise ValueError(f"a regression target must be numeric; {options.target!r} is {series.dtype}")
        if options.positive_label is not None:
            raise ValueError("--positive-label applies to a classification target, not a regression one")
        notes.append(f"{options.target}: target, regression ({why})")
        return {"task": "regression", "target": options.target}
    classes = _classes(labels, options.target)
    positive = _positive_label(classes, options.positive_label, options.target)
    entries: dict[str, Any] = {"task": "classification", "target": options.target, "classes": classes}
    if positive is not None:
        entries["positive_label"] = positive
    shown = f"; positive label {positive!r}" if positive is not None else ""
    notes.append(f"{options.target}: target, classification ({why}); classes {classes}{shown}")
    if kind == "numeric" and str(labels.dtype).lower().startswith("float"):
        # LabelSpace compares label types: 1.0 in the data is not the class 1 of the spec.
        notes.append(f"warning: {options.target!r} is stored as {labels.dtype}; store it as integers to match these classes")
    if len(classes) > MAX_CLASSES:
        notes.append(f"warning: {options.target!r} has {len(classes)} classes; pass --task regression if it is a quantity")
    return entries


def _guess_task(labels: pd.Series) -> tuple[str, str]:
    """Classification or regression, with the reason, from the target's non-null values (the rule in
    the module docstring)."""
    kind = _column_kind(labels)
    if kind == "other":
        raise ValueError(f"cannot use a {labels.dtype} column as a target")
    if kind != "numeric":
        return "classification", f"{kind} labels"
    if not _whole(labels):
        return "regression", "numeric with fractional values"
    distinct, rows = int(labels.nunique()), len(labels)
    share = distinct / rows if rows else 0.0
    counted = f"{distinct} distinct whole values in {rows} rows ({share:.1%})"
    if distinct > MAX_CLASSES and share >= MIN_DISTINCT_SHARE:
        return "regression", f"numeric, {counted}: more than {MAX_CLASSES} and at least {MIN_DISTINCT_SHARE:.0%} of the rows"
    if distinct > MAX_CLASSES:
        return "classification", f"numeric, {counted}: more than {MAX_CLASSES} but under {MIN_DISTINCT_SHARE:.0%} of the rows, taken for codes"
    return "classification", f"numeric, {counted}: at most {MAX_CLASSES}"


def _classes(labels: pd.Series, target: str) -> list[Any]:
    """The target's distinct labels as Python str/bool/int, sorted; refuse fewer than two."""
    if _column_kind(labels) == "numeric" and not _whole(labels):
        raise ValueError(f"target {target!r} holds fractional numbers; a class label must be a string, integer or boolean")
    # A float target of whole numbers (an integer column with nulls) becomes integer labels.
    classes = sorted({plain_label(v) for v in labels.unique()}, key=lambda v: (type(v).__name__, v))
    if len(classes) < 2:
        raise ValueError(f"target {target!r} has {len(classes)} distinct label(s) {classes}; classification needs two or more")
    return classes


def _positive_label(classes: list[Any], given: str | None, target: str) -> Any:
    """The positive label of a binary target (``None`` when the defaults apply), typed like the classes."""
    if len(classes) != 2:
        if given is not None:
            raise ValueError(f"--positive-label applies to a binary target; {target!r} has {len(classes)} classes")
        return None
    if given is None:
        if _same_labels(classes, [0, 1]) or _same_labels(classes, [False, True]):
            return None
        raise ValueError(
            f"target {target!r} is binary with labels {classes[0]!r} and {classes[1]!r}; name the positive one with "
            f"--positive-label (e.g. --positive-label {classes[1]})"
        )
    value: Any = given
    if isinstance(classes[0], bool):
        value = {"true": True, "false": False}.get(given.lower(), given)
    elif isinstance(classes[0], int):
        value = int(given) if re.fullmatch(r"[+-]?\d+", given.strip()) else given
    if not any(same_label(value, c) for c in classes):
        raise ValueError(f"--positive-label {given!r} is not one of the labels of {target!r}: {classes}")
    return value


def _describe_column(name: str, series: pd.Series, options: InferenceOptions, numeric: dict[str, Any], categorical: dict[str, Any]) -> str:
    """Put one column in its place (feature entry or passthrough) and return the line explaining it."""
    nulls = int(series.isna().sum())
    if name in options.id_columns or name == options.timestamp_column:
        role = "id column (--id)" if name in options.id_columns else "timestamp column (--timestamp)"
        warn = f"; warning: {nulls} null(s), which validation refuses in a passthrough column" if nulls else ""
        return f"{name}: {role}, not a feature{warn}"
    kind = _column_kind(series)
    if kind == "other":
        return f"{name}: left out: {series.dtype} is neither numeric nor categorical (pass --timestamp {name} if it is the row time)"
    if kind == "numeric":
        numeric[name], line = _numeric_entry(series, options.margin)
    else:
        categorical[name], line = _categorical_entry(series, kind, options.max_categories)
    return f"{name}: {line}{_id_warning(name, series, kind)}"


def _numeric_entry(series: pd.Series, margin: float) -> tuple[dict[str, Any], str]:
    """A numeric feature's entry (bounds, nullability) and its explanation."""
    values = series.dropna()
    nulls = len(series) - len(values)
    entry: dict[str, Any] = {}
    if values.empty or not math.isfinite(float(values.min())) or not math.isfinite(float(values.max())):
        why = "no finite values: no bounds"
    else:
        lo, hi, whole = float(values.min()), float(values.max()), _whole(values)
        if whole and set(values.unique()) == {0, 1}:
            entry["min"], entry["max"] = 0, 1
            why = "0/1 flag: bounds exactly [0, 1], no margin"
        else:
            entry["min"], entry["max"] = widen(lo, hi, margin=margin, whole=whole)
            shown = (int(lo), int(hi)) if whole else (lo, hi)
            rule = "; integer bounds" if whole else ""
            floor = "; never below 0, no negative value seen" if lo >= 0 else ""
            why = f"observed [{shown[0]}, {shown[1]}] -> bounds [{entry['min']}, {entry['max']}] (margin {margin}{rule}{floor})"
    if nulls:
        entry["nullable"] = True
    return entry, f"numeric ({series.dtype}); {why}; {_nullability(nulls)}"


def _categorical_entry(series: pd.Series, kind: str, max_categories: int) -> tuple[dict[str, Any], str]:
    """A categorical feature's entry (allowed values, nullability) and its explanation."""
    distinct = sorted({str(v) for v in series.dropna().unique()})
    nulls = int(series.isna().sum())
    entry: dict[str, Any] = {}
    if kind == "boolean":
        why = "boolean; values not listed (the type check keeps them to true/false)"
    elif not distinct:
        why = "text; no value at all (every row null): values not listed"
    elif len(distinct) > max_categories:
        why = f"text; {len(distinct)} distinct values > --max-categories {max_categories}: too many to list, values not checked"
    else:
        entry["values"] = distinct
        why = f"text; {len(distinct)} distinct values listed {distinct}"
    if not nulls:
        entry["nullable"] = False
    return entry, f"categorical ({why}); {_nullability(nulls)}"


def _id_warning(name: str, series: pd.Series, kind: str) -> str:
    """A warning for a feature that looks like a row identifier (kept as a feature: no silent drop)."""
    from pandas.api import types

    integer_or_text = kind == "text" or types.is_integer_dtype(series.dtype)
    if len(series) > 1 and integer_or_text and _ID_NAME.search(name) and series.notna().all() and series.is_unique:
        return f"; warning: unique per row and named like an identifier: kept as a feature; pass --id {name} if it identifies rows"
    return ""


def widen(lo: float, hi: float, *, margin: float, whole: bool) -> tuple[float, float]:
    """Numeric bounds from the observed range, by the rule in the module docstring.

    :param lo: observed minimum.
    :param hi: observed maximum.
    :param margin: fraction of the range added on each side.
    :param whole: the column holds whole numbers (bounds become integers).
    :returns: ``(min, max)``, always containing ``[lo, hi]``.
    """
    pad = margin * (hi - lo) if hi > lo else margin * (abs(lo) or 1.0)
    new_lo, new_hi = _round_out(lo - pad, pad, down=True), _round_out(hi + pad, pad, down=False)
    if lo >= 0:
        new_lo = max(new_lo, 0.0)
    # Rounding must never cut into the data, whatever floating point does.
    new_lo, new_hi = min(new_lo, lo), max(new_hi, hi)
    if whole:
        return math.floor(new_lo), math.ceil(new_hi)
    return new_lo, new_hi


def _round_out(value: float, pad: float, *, down: bool) -> float:
    """Round away from the data to one decimal digit below ``pad``, so bounds stay readable."""
    if pad <= 0 or not math.isfinite(pad):
        return value
    digits = 1 - math.floor(math.log10(pad))
    step = 10.0**-digits
    quotient = value / step
    # 6.3 / 0.01 is 629.999...: snap such float noise to the whole step instead of widening one step more.
    nearest = round(quotient)
    if math.isclose(quotient, nearest, rel_tol=1e-9, abs_tol=1e-9):
        steps = nearest
    else:
        steps = math.floor(quotient) if down else math.ceil(quotient)
    return float(round(steps * step, digits))


def render_yaml(doc: dict[str, Any]) -> str:
    """The spec document as YAML that reads back to the same spec, labels and values keeping their types.

    :param doc: the spec document.
    :returns: the YAML text (``safe_dump`` quotes text that YAML would read as another type: "Yes", "on", "1").
    :raises FeatureSpecError: the document is not a valid spec (e.g. it declares no features).
    """
    import yaml

    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, allow_unicode=True, width=110)
    expected, read_back = FeatureSpec.from_dict(doc), FeatureSpec.from_yaml_text(text)
    # repr, not ==: equality would take True for 1 and miss a label that changed type on the way.
    if repr(read_back.to_dict()) != repr(expected.to_dict()):
        raise RuntimeError(f"the drafted YAML does not read back as drafted:\n{text}")
    return text


def _column_kind(series: pd.Series) -> str:
    """``numeric``, ``boolean``, ``text`` or ``other``, from the dtype (object columns: from their values)."""
    from pandas.api import types

    if types.is_bool_dtype(series.dtype):
        return "boolean"
    if types.is_numeric_dtype(series.dtype):
        return "numeric"
    values = series.dropna().unique()
    if len(values) and all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, str) for v in values):
        return "text"
    return "other"


def _whole(values: pd.Series) -> bool:
    """Whether every non-null value is a whole number (integer dtype, or floats like 181.0)."""
    from pandas.api import types

    if types.is_integer_dtype(values.dtype):
        return True
    present = values.dropna()
    return bool(((present % 1) == 0).all())


def _same_labels(a: Iterable[Any], b: Iterable[Any]) -> bool:
    """Label-list equality that keeps ``True`` apart from ``1``."""
    a, b = list(a), list(b)
    return len(a) == len(b) and all(same_label(x, y) for x, y in zip(a, b, strict=True))


def _nullability(nulls: int) -> str:
    """How the explanation words a column's nullability."""
    return f"nullable ({nulls} null(s))" if nulls else "not nullable (no nulls)"

"""FeatureSpec: one description of a tabular dataset, loaded from YAML, read by every operator.

.. code-block:: yaml

    name: churn
    task: classification            # or regression
    target: churned
    classes: [0, 1]                 # optional; classification only
    positive_label: 1               # the positive class of a binary target (required unless 0/1 or false/true)
    id_columns: [customer_id]
    timestamp_column: snapshot_month   # optional
    segments: [contract]            # optional: categorical features whose values are judged one by one
    tolerance: 0.001                # optional: share of rows that may break a feature's rule (default 0)
    numeric_features:
      tenure_months: {min: 0, max: 120}
      monthly_charges: {min: 0, nullable: true}
      total_charges: {min: 0, tolerance: 0.01}   # a column's own tolerance overrides the spec's
    categorical_features:
      contract: {values: [month-to-month, one-year, two-year]}
      region: {}

Numeric features are non-null unless ``nullable: true``; categorical features are nullable unless
``nullable: false``.

**Tolerance** is the share of rows (0 <= t < 1) allowed to break each rule of a feature: its bounds,
its allowed values, its nullability. Within it, validation passes and reports the rows that broke the
rule (GX's own ``mostly = 1 - t``), and batch inference scores those rows, flags them
(``invalid_reason``) and counts them; beyond it both fail, naming the column, rule, counts and
tolerance. Column types, id and timestamp columns and the target have no tolerance. Labels may be strings, booleans or integers; quote text labels that YAML would
read as booleans (``"Yes"``, ``"No"``, ``"on"``). A malformed spec raises :class:`~airflow_mlops.exceptions.FeatureSpecError`
naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_mlops.exceptions import FeatureSpecError

TASKS = ("classification", "regression")
_TOP_KEYS = {
    "name", "task", "target", "classes", "positive_label", "id_columns", "timestamp_column", "numeric_features",
    "categorical_features", "segments", "tolerance", "description",
}
_NUMERIC_KEYS = {"min", "max", "nullable", "tolerance", "description"}
_CATEGORICAL_KEYS = {"values", "nullable", "tolerance", "description"}


@dataclass(frozen=True)
class NumericFeature:
    """A numeric input column: optional inclusive bounds, non-null unless ``nullable``; ``tolerance``
    (share of rows that may break those rules) is the spec's when ``None``."""

    name: str
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    tolerance: float | None = None


@dataclass(frozen=True)
class CategoricalFeature:
    """A categorical input column: optional allowed values, nullable unless ``nullable`` is false;
    ``tolerance`` (share of rows that may break those rules) is the spec's when ``None``."""

    name: str
    values: tuple[str, ...] | None = None
    nullable: bool = True
    tolerance: float | None = None


@dataclass(frozen=True)
class FeatureSpec:
    """What a tabular dataset holds and what each column means.

    :param name: dataset name (used in experiment and asset names).
    :param task: ``"classification"`` or ``"regression"``.
    :param target: label column.
    :param classes: the target's classes (classification), in any order; ``None`` = learnt from the data.
    :param positive_label: the positive class of a binary target; ``None`` = ``1``/``True`` when the
        classes are 0/1 or false/true (a binary target with other labels must name it).
    :param id_columns: columns that identify a row (carried into predictions, never used as features).
    :param timestamp_column: optional column with the row's time.
    :param numeric_features: numeric input columns.
    :param categorical_features: categorical input columns.
    :param segments: categorical features by whose values quality is also measured (each value a
        segment); batch inference carries them into its output.
    :param tolerance: the share of rows allowed to break each rule of a feature (0 = none), unless the
        feature sets its own.
    """

    name: str
    task: str
    target: str
    classes: tuple[Any, ...] | None = None
    positive_label: Any = None
    id_columns: tuple[str, ...] = ()
    timestamp_column: str | None = None
    numeric_features: tuple[NumericFeature, ...] = ()
    categorical_features: tuple[CategoricalFeature, ...] = ()
    segments: tuple[str, ...] = ()
    tolerance: float = 0.0
    source: str | None = field(default=None, compare=False)

    @property
    def feature_columns(self) -> list[str]:
        """Input columns of the model: numeric then categorical, in spec order."""
        return [f.name for f in self.numeric_features] + [f.name for f in self.categorical_features]

    @property
    def numeric_columns(self) -> list[str]:
        """Names of the numeric features."""
        return [f.name for f in self.numeric_features]

    @property
    def categorical_columns(self) -> list[str]:
        """Names of the categorical features."""
        return [f.name for f in self.categorical_features]

    @property
    def passthrough_columns(self) -> list[str]:
        """Id and timestamp columns: carried along, never fed to the model."""
        return list(self.id_columns) + ([self.timestamp_column] if self.timestamp_column else [])

    def tolerance_of(self, column: str) -> float:
        """The share of rows allowed to break the rules of ``column``: the feature's own tolerance, else
        the spec's; 0 for columns that are not features (ids, timestamp, target)."""
        features: list[NumericFeature | CategoricalFeature] = [*self.numeric_features, *self.categorical_features]
        own = next((f.tolerance for f in features if f.name == column), 0.0 if column not in self.feature_columns else None)
        return self.tolerance if own is None else own

    def scoring_columns(self) -> list[str]:
        """Columns a scoring (unlabelled) table must have."""
        return self.passthrough_columns + self.feature_columns

    def training_columns(self) -> list[str]:
        """Columns a training (labelled) table must have."""
        return self.scoring_columns() + [self.target]

    @classmethod
    def from_dict(cls, doc: Any, *, source: str | None = None) -> FeatureSpec:
        """Build and validate a spec from a parsed YAML/JSON document."""
        return _parse(doc, source)

    @classmethod
    def from_yaml_text(cls, text: str, *, source: str | None = None) -> FeatureSpec:
        """Parse YAML text into a spec."""
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FeatureSpecError(f"not valid YAML: {exc}", source=source) from exc
        return _parse(doc, source)

    @classmethod
    def load(cls, uri: str, *, conn_id: str | None = None) -> FeatureSpec:
        """Load a spec from a YAML file on any object storage (``file://``, ``s3://``, plain path)."""
        from airflow_mlops.exceptions import TableError
        from airflow_mlops.tables import read_text

        try:
            text = read_text(uri, conn_id=conn_id)
        except TableError as exc:
            raise FeatureSpecError(f"cannot read the spec file: {exc.detail}", source=uri) from exc
        return cls.from_yaml_text(text, source=uri)

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a YAML/JSON-able document that :meth:`from_dict` reads back."""
        doc: dict[str, Any] = {"name": self.name, "task": self.task, "target": self.target}
        if self.classes is not None:
            doc["classes"] = list(self.classes)
        if self.positive_label is not None:
            doc["positive_label"] = self.positive_label
        if self.id_columns:
            doc["id_columns"] = list(self.id_columns)
        if self.timestamp_column:
            doc["timestamp_column"] = self.timestamp_column
        if self.tolerance:
            doc["tolerance"] = self.tolerance
        doc["numeric_features"] = {
            f.name: {k: v for k, v in (("min", f.min), ("max", f.max)) if v is not None}
            | ({"nullable": True} if f.nullable else {})
            | ({"tolerance": f.tolerance} if f.tolerance is not None else {})
            for f in self.numeric_features
        }
        if self.segments:
            doc["segments"] = list(self.segments)
        doc["categorical_features"] = {
            f.name: ({"values": list(f.values)} if f.values is not None else {})
            | ({} if f.nullable else {"nullable": False})
            | ({"tolerance": f.tolerance} if f.tolerance is not None else {})
            for f in self.categorical_features
        }
        return doc


def _fail(message: str, key: str | None, source: str | None) -> FeatureSpecError:
    return FeatureSpecError(message, key=key, source=source)


def _require_str(doc: Mapping[str, Any], key: str, source: str | None, *, required: bool = True) -> str | None:
    value = doc.get(key)
    if value is None:
        if required:
            raise _fail(f"{key!r} is required", key, source)
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{key!r} must be a non-empty string, got {value!r}", key, source)
    return value


def _features_mapping(doc: Mapping[str, Any], key: str, source: str | None) -> dict[str, dict[str, Any]]:
    """Accept ``{name: {options}}`` or a list of names / ``{name: options}`` items."""
    raw = doc.get(key) or {}
    if isinstance(raw, list):
        items: dict[str, Any] = {}
        opts: Any
        for i, item in enumerate(raw):
            if isinstance(item, str):
                name, opts = item, {}
            elif isinstance(item, dict) and len(item) == 1:
                name, opts = next(iter(item.items()))
            else:
                raise _fail(f"item {i} must be a column name or a one-key mapping, got {item!r}", f"{key}[{i}]", source)
            if name in items:
                raise _fail(f"duplicate column {name!r}", f"{key}.{name}", source)
            items[name] = opts
        raw = items
    if not isinstance(raw, dict):
        raise _fail(f"{key!r} must be a mapping of column name to options, got {type(raw).__name__}", key, source)
    out: dict[str, dict[str, Any]] = {}
    for name, opts in raw.items():
        if not isinstance(name, str) or not name:
            raise _fail(f"column names must be non-empty strings, got {name!r}", key, source)
        if opts is None:
            opts = {}
        if not isinstance(opts, dict):
            raise _fail(f"options must be a mapping, got {opts!r}", f"{key}.{name}", source)
        out[name] = opts
    return out


def _check_keys(opts: Mapping[str, Any], allowed: set[str], where: str, source: str | None) -> None:
    unknown = sorted(set(opts) - allowed)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise _fail(f"unknown key {unknown[0]!r}; allowed: {sorted(allowed)}", key, source)


def _number(value: Any, key: str, source: str | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(f"must be a number, got {value!r}", key, source)
    return float(value)


def _tolerance(value: Any, key: str, source: str | None) -> float | None:
    share = _number(value, key, source)
    if share is not None and not 0 <= share < 1:
        raise _fail(f"must be a share of rows, 0 <= tolerance < 1 (0.001 = one row in a thousand), got {value!r}", key, source)
    return share


def _flag(value: Any, default: bool, key: str, source: str | None) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _fail(f"must be true or false, got {value!r}", key, source)
    return value


def _label(value: Any, key: str, source: str | None) -> Any:
    if isinstance(value, str | bool | int) and value != "":
        return value
    raise _fail(f"a class label must be a string, integer or boolean, got {value!r}", key, source)


def plain_label(value: Any) -> Any:
    """A label as the Python scalar JSON and YAML carry: numpy scalars unwrapped, and whole floats as
    integers (pandas stores an integer column that once held a null as float)."""
    value = value.item() if hasattr(value, "item") else value
    return int(value) if isinstance(value, float) and value.is_integer() else value


def same_label(a: Any, b: Any) -> bool:
    """Label equality that keeps ``True`` apart from ``1`` and ``"1"`` from ``1``."""
    return type(a) is type(b) and a == b


def _labels(doc: Mapping[str, Any], task: str, source: str | None) -> tuple[tuple[Any, ...] | None, Any]:
    """Parse ``classes`` and ``positive_label`` (classification only)."""
    raw, positive = doc.get("classes"), doc.get("positive_label")
    if task != "classification":
        for key in ("classes", "positive_label"):
            if doc.get(key) is not None:
                raise _fail(f"{key!r} applies to classification only (task is {task!r})", key, source)
        return None, None
    classes = None
    if raw is not None:
        if not isinstance(raw, list) or len(raw) < 2:
            raise _fail(f"must be a list of at least two class labels, got {raw!r}", "classes", source)
        classes = tuple(_label(v, f"classes[{i}]", source) for i, v in enumerate(raw))
        if len({(type(v), v) for v in classes}) != len(classes):
            raise _fail(f"class labels repeat: {list(classes)}", "classes", source)
        if len({type(v) for v in classes}) > 1:
            raise _fail(f"class labels mix types {sorted({type(v).__name__ for v in classes})}: {list(classes)} (quote them all)", "classes", source)
    if positive is not None:
        positive = _label(positive, "positive_label", source)
        if classes is not None and len(classes) != 2:
            raise _fail(f"positive_label applies to a binary target, but classes has {len(classes)} labels", "positive_label", source)
        if classes is not None and not any(same_label(c, positive) for c in classes):
            raise _fail(f"positive_label {positive!r} is not one of the classes {list(classes)}", "positive_label", source)
    return classes, positive


def _parse(doc: Any, source: str | None) -> FeatureSpec:
    if not isinstance(doc, dict):
        raise _fail(f"the document must be a mapping, got {type(doc).__name__}", None, source)
    _check_keys(doc, _TOP_KEYS, "", source)
    name = _require_str(doc, "name", source) or ""
    task = _require_str(doc, "task", source) or ""
    if task not in TASKS:
        raise _fail(f"task must be one of {list(TASKS)}, got {task!r}", "task", source)
    target = _require_str(doc, "target", source) or ""
    classes, positive = _labels(doc, task, source)
    timestamp = _require_str(doc, "timestamp_column", source, required=False)
    ids = doc.get("id_columns") or []
    if isinstance(ids, str):
        ids = [ids]
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise _fail(f"must be a list of column names, got {ids!r}", "id_columns", source)

    numeric = []
    for col, opts in _features_mapping(doc, "numeric_features", source).items():
        where = f"numeric_features.{col}"
        _check_keys(opts, _NUMERIC_KEYS, where, source)
        lo, hi = _number(opts.get("min"), f"{where}.min", source), _number(opts.get("max"), f"{where}.max", source)
        if lo is not None and hi is not None and lo > hi:
            raise _fail(f"min {lo} is greater than max {hi}", where, source)
        nullable = _flag(opts.get("nullable"), False, f"{where}.nullable", source)
        numeric.append(NumericFeature(col, lo, hi, nullable, _tolerance(opts.get("tolerance"), f"{where}.tolerance", source)))

    categorical = []
    for col, opts in _features_mapping(doc, "categorical_features", source).items():
        where = f"categorical_features.{col}"
        _check_keys(opts, _CATEGORICAL_KEYS, where, source)
        values = opts.get("values")
        if values is not None:
            if not isinstance(values, list) or not values:
                raise _fail(f"must be a non-empty list, got {values!r}", f"{where}.values", source)
            values = tuple(str(v) for v in values)
            if len(set(values)) != len(values):
                raise _fail("allowed values repeat", f"{where}.values", source)
        nullable = _flag(opts.get("nullable"), True, f"{where}.nullable", source)
        categorical.append(CategoricalFeature(col, values, nullable, _tolerance(opts.get("tolerance"), f"{where}.tolerance", source)))

    if not numeric and not categorical:
        raise _fail("the spec declares no features", "numeric_features", source)
    seen: dict[str, str] = {}
    roles = (
        [(c, "id_columns") for c in ids]
        + ([(timestamp, "timestamp_column")] if timestamp else [])
        + [(f.name, "numeric_features") for f in numeric]
        + [(f.name, "categorical_features") for f in categorical]
    )
    for col, role in roles:
        if col == target:
            raise _fail(f"the target {target!r} is also listed in {role}", f"{role}.{col}" if role != "timestamp_column" else role, source)
        if col in seen:
            raise _fail(f"duplicate column {col!r} (in {seen[col]} and {role})", f"{role}.{col}", source)
        seen[col] = role
    segments = doc.get("segments") or []
    if isinstance(segments, str):
        segments = [segments]
    categorical_names = [f.name for f in categorical]
    if not isinstance(segments, list) or any(s not in categorical_names for s in segments):
        raise _fail(f"must list categorical features (one of {categorical_names}), got {segments!r}", "segments", source)
    return FeatureSpec(
        name=name,
        task=task,
        target=target,
        classes=classes,
        positive_label=positive,
        id_columns=tuple(ids),
        timestamp_column=timestamp,
        numeric_features=tuple(numeric),
        categorical_features=tuple(categorical),
        segments=tuple(segments),
        tolerance=_tolerance(doc.get("tolerance"), "tolerance", source) or 0.0,
        source=source,
    )

"""scikit-learn glue: estimators by dotted path, a preprocessing Pipeline from the FeatureSpec, the rows
a model learns from (labelled, classes a stratified split can cut), and its input signature from the
spec, checked against a model and an input before scoring (metrics: :mod:`airflow_mlops.metrics`)."""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from airflow_mlops import settings
from airflow_mlops.exceptions import ModelResolutionError, TableError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from sklearn.pipeline import Pipeline

    from airflow_mlops.spec import FeatureSpec

MAX_SEARCH_ITERATIONS = 50
#: The estimator training uses when none is given, by the FeatureSpec's ``task``.
DEFAULT_ESTIMATORS = {
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}
#: Packages pinned into the logged model's requirements, so MLflow skips its ~8 s inference.
MODEL_REQUIREMENTS = ("scikit-learn", "pandas", "numpy", "scipy", "cloudpickle", "mlflow")


def default_estimator(task: str) -> str:
    """The dotted path of the default estimator for ``task`` (:data:`DEFAULT_ESTIMATORS`).

    :raises ValueError: ``task`` is neither ``classification`` nor ``regression``.
    """
    try:
        return DEFAULT_ESTIMATORS[task]
    except KeyError:
        raise ValueError(f"no default estimator for task {task!r}; name one (estimator=...)") from None


def load_estimator(path: str, params: dict[str, Any] | None, task: str) -> Any:
    """Import ``path`` (``sklearn.ensemble.HistGradientBoostingClassifier``), instantiate it with ``params``.

    :raises ValueError: the path does not import, is not an estimator, rejects a parameter, or does
        not fit the task (a regressor for classification...). Runs before any MLflow write.
    """
    from sklearn.base import is_classifier, is_regressor

    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise ValueError(f"estimator must be a dotted path like 'sklearn.linear_model.LogisticRegression', got {path!r}")
    extra = settings.allowed_estimators()
    # Checked before any import: a path from a trigger form must not import (and run) an arbitrary module.
    if module_name.split(".")[0] != "sklearn" and path not in extra:
        raise ValueError(
            f"estimator {path!r} is not allowed: scikit-learn's estimators are, others once listed in "
            f"[mlops] allowed_estimators (now {sorted(extra) or 'empty'})"
        )
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"estimator {path!r} cannot be imported: {exc}") from exc
    if module_name.startswith("sklearn") and cls not in _sklearn_estimators():
        raise ValueError(f"{path!r} is not one of scikit-learn's estimators (sklearn.utils.all_estimators)")
    if not isinstance(cls, type) or not hasattr(cls, "fit") or not hasattr(cls, "get_params"):
        raise ValueError(f"estimator {path!r} is not a scikit-learn estimator class")
    try:
        estimator = cls().set_params(**(params or {}))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"estimator {path!r} rejects its parameters {params}: {exc}") from exc
    fits = {"classification": (is_classifier, "a classifier"), "regression": (is_regressor, "a regressor")}
    if task in fits and not fits[task][0](estimator):
        raise ValueError(
            f"estimator {path!r} is not {fits[task][1]}, but the spec's task is {task}: name {fits[task][1]}, or leave "
            f"the estimator unset for the task's default ({DEFAULT_ESTIMATORS[task]})"
        )
    return estimator


def _sklearn_estimators() -> set[type]:
    """scikit-learn's own list of its estimators (classifiers, regressors and the rest)."""
    from sklearn.utils import all_estimators

    return {cls for _, cls in all_estimators()}


def build_pipeline(spec: FeatureSpec, estimator: Any) -> Pipeline:
    """Pipeline(preprocess, model): numeric impute(median)+scale, categorical impute+one-hot (unknown
    categories ignored, so an unseen value at scoring time does not crash a monthly run)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    transformers = []
    if spec.numeric_columns:
        numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
        transformers.append(("numeric", numeric, spec.numeric_columns))
    if spec.categorical_columns:
        categories = [list(f.values) if f.values else "auto" for f in spec.categorical_features]
        if any(c == "auto" for c in categories):
            categories = "auto"  # type: ignore[assignment]
        categorical = Pipeline(
            [
                ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
                ("onehot", OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("categorical", categorical, spec.categorical_columns))
    return Pipeline([("preprocess", ColumnTransformer(transformers, remainder="drop")), ("model", estimator)])


def feature_frame(df: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Select the model's input columns with stable dtypes: numeric float64, categorical object (None for null)."""
    out = df[spec.feature_columns].copy()
    for col in spec.numeric_columns:
        if out[col].dtype != "float64":
            out[col] = out[col].astype("float64")
    for col in spec.categorical_columns:
        values = out[col] if out[col].dtype == object else out[col].astype(object)
        out[col] = values.where(values.notna(), None) if values.hasnans else values
    return out


def input_schema(spec: FeatureSpec, train: pd.DataFrame) -> Any:
    """The model's input schema (MLflow ``Schema``), from the FeatureSpec's column kinds, not from a sample.

    Numeric features are ``double`` (:func:`feature_frame` casts them); categorical features are
    ``string``, or ``boolean`` when every value the training table holds is a boolean. Every column is
    required (the pipeline selects each by name) and may hold nulls (it imputes them). Inferring the
    schema from a few training rows typed a mostly-null text column that had no value in them as
    ``Any``, and scoring then refused the months where that column has values.

    :param spec: the FeatureSpec.
    :param train: the training table (only its categorical columns' values are read, to tell booleans).
    """
    from mlflow.types import ColSpec, DataType, Schema
    from pandas.api.types import infer_dtype

    kinds = dict.fromkeys(spec.numeric_columns, DataType.double)
    for name in spec.categorical_columns:
        booleans = infer_dtype(train[name], skipna=True) == "boolean" and bool(train[name].notna().any())
        kinds[name] = DataType.boolean if booleans else DataType.string
    return Schema([ColSpec(kinds[name], name, required=True) for name in spec.feature_columns])


def pip_requirements() -> list[str]:
    """Pinned requirements of a logged model, read from the installed (locked) versions."""
    pins = []
    for name in MODEL_REQUIREMENTS:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


# -- what a model learns from: labelled rows, classes a split can cut -------------------------------

def labelled(spec: FeatureSpec, frame: pd.DataFrame, uri: str) -> pd.DataFrame:
    """``frame`` ready to learn from: no null target (refused, counted), and a classification target of
    whole floats (pandas' type for an integer column that once held a null) as integers.

    :raises ValueError: the target has nulls, naming the table and the count.
    """
    missing = int(frame[spec.target].isna().sum())
    if missing:
        raise ValueError(f"{uri}: target {spec.target!r} is null in {missing} of {len(frame)} rows; drop or label them")
    target = frame[spec.target]
    if spec.task == "classification" and target.dtype.kind == "f" and (target % 1 == 0).all():
        frame = frame.assign(**{spec.target: target.astype("int64")})
    return frame


#: How many of the rarest classes a refused split names.
RARE_CLASSES_SHOWN = 5


def min_class_rows(test_size: float) -> int:
    """The fewest rows a class needs for a stratified split by ``test_size`` to put at least one of them
    in the holdout and one in training: ``ceil(1 / min(test_size, 1 - test_size))``, at least 2 (5 for
    0.2, 4 for 0.3, 2 for 0.5). A class of ``n`` rows gets about ``n * test_size`` of them in the holdout."""
    import math

    return max(2, math.ceil(1 / min(test_size, 1 - test_size) - 1e-9))


def check_class_counts(spec: FeatureSpec, data: pd.DataFrame, test_size: float, *, uri: str) -> None:
    """Refuse, before anything is fitted, a classification table a stratified split by ``test_size``
    cannot cut: a class with fewer than :func:`min_class_rows` rows (scikit-learn would fail deep in the
    split, "The least populated classes in y have only 1 member", or leave a class out of the holdout).

    :raises TableError: naming the target, the rule, how many classes there are and how many fall short,
        the rarest ones with their counts, and what to change (``task: regression`` for a numeric target).
    """
    if spec.task != "classification":
        return
    need = min_class_rows(test_size)
    counts = data[spec.target].value_counts()
    short = counts[counts < need]
    if short.empty:
        return
    from airflow_mlops.spec import plain_label

    rarest = sorted(((int(n), plain_label(label)) for label, n in short.items()), key=lambda c: (c[0], type(c[1]).__name__, c[1]))
    shown = ", ".join(f"{label!r} ({n} row{'s' if n != 1 else ''})" for n, label in rarest[:RARE_CLASSES_SHOWN])
    more = f" and {len(rarest) - RARE_CLASSES_SHOWN} more" if len(rarest) > RARE_CLASSES_SHOWN else ""
    fix = "merge or drop the rare classes, or give a holdout_uri (no split)"
    if data[spec.target].dtype.kind in "iuf":
        fix = (
            f"the target is numeric: if {spec.target!r} is a quantity, set `task: regression` in the spec "
            f"({spec.source or spec.name}); else {fix}"
        )
    raise TableError(
        f"cannot split {len(data)} rows into training and holdout by class of {spec.target!r}: with test_size "
        f"{test_size:g} each class needs at least {need} rows (one in the holdout, the rest in training), and "
        f"{len(short)} of the {len(counts)} classes {'has' if len(short) == 1 else 'have'} fewer: {shown}{more}; {fix}",
        uri=uri,
    )


# -- what a model can score: its signature against the spec and the input -----------------------------

_ARROW_KIND = {"double": "number", "float": "number", "long": "number", "integer": "number", "string": "string", "boolean": "bool"}


def _arrow_kind(dtype: pa.DataType) -> str:
    import pyarrow.types as t

    if t.is_integer(dtype) or t.is_floating(dtype) or t.is_decimal(dtype):
        return "number"
    if t.is_string(dtype) or t.is_large_string(dtype) or t.is_dictionary(dtype):
        return "string"
    if t.is_boolean(dtype):
        return "bool"
    if t.is_null(dtype):
        return "null"
    return str(dtype)


def check_input_schema(schema: pa.Schema, spec: FeatureSpec, signature: Any, uri: str) -> None:
    """Refuse input that the model cannot score: a missing column, or a type the signature does not take.

    :raises TableError: naming the file, the column, the expected and the found type.
    """
    missing = [c for c in spec.passthrough_columns + spec.feature_columns if c not in schema.names]
    if missing:
        raise TableError(f"missing column(s) {missing} needed to score", uri=uri)
    expected = {}
    if signature is not None and signature.inputs is not None:
        # Any: a model trained before signatures came from the spec, on rows where the column was all null.
        for col in (c for c in signature.inputs.inputs if str(c.type) != "Any"):
            expected[col.name] = _ARROW_KIND.get(str(col.type).split(".")[-1].lower(), "other")
    for name in spec.feature_columns:
        want = expected.get(name) or ("number" if name in spec.numeric_columns else "string")
        found = _arrow_kind(schema.field(name).type)
        if found != "null" and found != want:
            raise TableError(f"column {name!r} has type {schema.field(name).type}, the model expects {want}", uri=uri)


def check_signature(signature: Any, spec: FeatureSpec, model: str) -> None:
    """Refuse a model whose signature asks for columns the FeatureSpec does not feed it (a model
    trained on another dataset): it would fail mid-file, or worse, score garbage.

    :raises ModelResolutionError: naming the model and the columns.
    """
    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        return
    unknown = [name for name in signature.inputs.input_names() if name not in spec.feature_columns]
    if unknown:
        raise ModelResolutionError(
            f"the model's signature needs column(s) {unknown} that the FeatureSpec {spec.source or spec.name!r} does not "
            f"provide (its features: {spec.feature_columns}); it was trained on other data",
            model_name=model,
        )

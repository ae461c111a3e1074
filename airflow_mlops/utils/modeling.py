"""scikit-learn glue: estimators by dotted path, a preprocessing Pipeline from the FeatureSpec (metrics: :mod:`airflow_mlops.metrics`)."""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from airflow_mlops import settings

if TYPE_CHECKING:
    import pandas as pd
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

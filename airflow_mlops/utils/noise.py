"""Library messages that are noise in this provider, muted where they arise, each with the reason.

Only messages that say nothing a user should act on are muted, each matched by its own text and only
around the call that makes it; everything else from MLflow, GX and Evidently reaches the task log.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

#: Warning texts muted around MLflow calls, and why.
MLFLOW_WARNINGS = {
    # Lineage and evaluation datasets document the table as it is; nothing enforces their schema at
    # scoring time (the model's signature is inferred from float features), so the hint does not apply.
    "Hint: Inferred schema contains integer column": UserWarning,
    # MLflow registers the local-artifact source class twice and then warns that the two match.
    "The specified dataset source can be interpreted in multiple ways": UserWarning,
    # MLflow's evaluator passes its label list with the positive label last to log_loss; sklearn
    # sorts the labels itself, and the probability columns are in sorted order, so the value is right.
    "But this function assumes labels are ordered lexicographically": UserWarning,
    # A holdout that lacks a class (a month of one sub-population) is judged on labels: scikit-learn
    # sets the absent class's precision and recall to 0.0 inside MLflow's evaluator, as the macro
    # average documented for multiclass metrics intends.
    "is ill-defined and being set to 0.0": Warning,
}
#: Warning texts muted around Evidently's quality report, and why: on a period that lacks classes (a
#: month of one sub-population) its per-class tables divide by classes with no row; a regression
#: report scores groups too small for R². The verdict's
#: numbers come from :mod:`airflow_mlops.metrics`, which leaves an undefined metric out.
REPORT_WARNINGS = {
    "is ill-defined and being set to 0.0": Warning,
    "A single label was found in 'y_true' and 'y_pred'": UserWarning,
    "invalid value encountered in scalar divide": RuntimeWarning,
    # A regression report also scores small groups of the period's rows; a group of one row has no
    # R² (Evidently leaves it empty). Seen on a month of house sales.
    "R^2 score is not well-defined with less than two samples": Warning,
}
#: MLflow log records muted, by logger and the start of their text, and why.
MLFLOW_RECORDS = {
    # cloudpickle is chosen deliberately (skops refuses HistGradientBoosting's TreePredictor) and
    # models are only loaded from the project's own registry (see the training operator).
    "mlflow.sklearn": "Saving scikit-learn models in the pickle or cloudpickle format",
    # The model type comes from the FeatureSpec; MLflow's guess from label values cannot tell string
    # or 0/1 labels apart ("looks like None").
    "mlflow.models.evaluation.evaluators.classifier": "According to the evaluation dataset label values, the model type looks like",
    # mlflow.models.evaluate turns on tracing for every GenAI library it knows while it runs, and
    # boto3 (imported for s3:// data) counts as Bedrock's. The provider calls no Bedrock model and
    # no trace is written: the notice (and the one announcing the tracing) is about nothing it does.
    "mlflow.bedrock": "Enabled auto-tracing for Bedrock",
    "mlflow.models.evaluation.utils.trace": "Auto tracing is temporarily enabled during the model evaluation",
}
#: Loggers whose INFO (and DEBUG) records are dropped in every process that uses the MLflow hook, and why.
SCHEMA_LOGGERS = {
    # MLflow creates and upgrades its store's schema with alembic the first time a process opens a
    # new store (one line per migration, about 70), and says "Context impl SQLiteImpl" each time it
    # checks an existing one: bookkeeping of MLflow's own tables, in every task log. A failed
    # migration still raises and logs at ERROR. Airflow migrates its own database in
    # `airflow db migrate`, a process that does not construct the hook.
    "alembic.runtime.migration": "MLflow's schema migrations",
    "mlflow.store.db.utils": "MLflow creating and updating its store's tables",
}


class _BelowWarning(logging.Filter):
    """Drops records below WARNING (see :data:`SCHEMA_LOGGERS`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


class _Drop(logging.Filter):
    """Drops the records whose message starts with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


@contextmanager
def mlflow_quiet() -> Iterator[None]:
    """Mute the MLflow warnings of :data:`MLFLOW_WARNINGS` and the records of :data:`MLFLOW_RECORDS`."""
    filters = [(logging.getLogger(name), _Drop(prefix)) for name, prefix in MLFLOW_RECORDS.items()]
    with warnings.catch_warnings():
        for text, category in MLFLOW_WARNINGS.items():
            warnings.filterwarnings("ignore", message=f".*{re.escape(text)}", category=category)
        for logger, drop in filters:
            logger.addFilter(drop)
        try:
            yield
        finally:
            for logger, drop in filters:
                logger.removeFilter(drop)


@contextmanager
def report_quiet() -> Iterator[None]:
    """Mute the warnings of :data:`REPORT_WARNINGS`."""
    with warnings.catch_warnings():
        for text, category in REPORT_WARNINGS.items():
            warnings.filterwarnings("ignore", message=f".*{re.escape(text)}", category=category)
        yield


def route_library_logging() -> None:
    """Send MLflow's log lines through Python logging, at their own level, instead of raw stderr, less
    the schema bookkeeping of :data:`SCHEMA_LOGGERS`.

    MLflow installs its own stderr handler on its loggers (and draws artifact progress bars on
    stderr); on a real scheduler every stderr line of a task becomes an ``[error] task.stderr`` line
    of its log, so INFO messages read as errors. MLflow's own switches turn both off; they are read
    when ``mlflow`` is first imported, so a handler installed earlier is taken off here.
    """
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in SCHEMA_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _BelowWarning) for f in logger.filters):
            logger.addFilter(_BelowWarning())
    if "mlflow" not in sys.modules:
        return
    for name in ("mlflow", "alembic", "huey"):
        logger = logging.getLogger(name)
        if not logger.propagate:
            logger.handlers = []
            logger.propagate = True

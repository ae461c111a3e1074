"""Library messages that are noise in this provider, muted where they arise, each with the reason.

Only messages that say nothing a user should act on are muted, and only around the call that makes
them; everything else from MLflow, GX and Evidently reaches the task log as it is.
"""

from __future__ import annotations

import logging
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
}
#: MLflow loggers muted (below ERROR) around one call, and why.
MLFLOW_LOGGERS = {
    # cloudpickle is chosen deliberately (skops refuses HistGradientBoosting's TreePredictor) and
    # models are only loaded from the project's own registry: the caution is said once, in the docs.
    "log_model": ("mlflow.sklearn",),
    # The model type comes from the FeatureSpec; MLflow's guess from label values ("looks like None")
    # cannot tell string or 0/1 labels apart and adds nothing.
    "evaluate": ("mlflow.models.evaluation.evaluators.classifier", "mlflow.models.evaluation.default_evaluator"),
}


@contextmanager
def mlflow_quiet(call: str | None = None) -> Iterator[None]:
    """Mute MLflow's noise (see :data:`MLFLOW_WARNINGS`) and, for ``call``, its loggers in :data:`MLFLOW_LOGGERS`."""
    loggers = [logging.getLogger(name) for name in MLFLOW_LOGGERS.get(call or "", ())]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        for text, category in MLFLOW_WARNINGS.items():
            warnings.filterwarnings("ignore", message=f".*{text}", category=category)
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)

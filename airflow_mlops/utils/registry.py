"""Names and pure helpers of the MLflow model-registry protocol; the calls themselves are
:class:`~airflow_mlops.hooks.mlflow.MlflowHook` methods (one gateway to MLflow)."""

from __future__ import annotations

CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous_champion"
CHALLENGER = "challenger"
#: Aliases only a promotion (or a rollback) moves: training refuses them.
RESERVED_ALIASES = (CHAMPION, PREVIOUS_CHAMPION)
#: Registered-model tag holding the promotion lock: ``{"token", "holder", "expires_at"}`` as JSON.
LOCK_TAG = "mlops.promotion_lock"


class PromotionLockTimeout(TimeoutError):
    """Another task held the promotion lock of a model for longer than we were willing to wait."""


def quote_filter(value: str) -> str:
    """Quote a value for an MLflow search filter string."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def is_not_found(exc: Exception) -> bool:
    """Whether an MLflow error says "no such model, version or alias" (and waiting may help).

    MLflow reports a missing alias as ``INVALID_PARAMETER_VALUE`` ("Registered model alias x not
    found."), the same code as a malformed alias name: only the first is "not there yet", so a sensor
    given a malformed alias fails at once instead of waiting for its timeout.
    """
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException):
        return False
    if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
        return True
    return exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc.message).lower()

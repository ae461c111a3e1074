"""Domain errors of ``airflow_mlops``.

Each error subclasses a built-in so callers can catch it generically, names the object it is about
(file, column, expectation, model) and pickles with its structured attributes intact.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException


def _rebuild(cls: type[MlopsError], detail: str, kwargs: dict[str, Any]) -> MlopsError:
    return cls(detail, **kwargs)


class MlopsError(Exception):
    """Base class of every error raised by ``airflow_mlops``.

    Subclasses that take keyword arguments list them in ``_pickle_fields`` so that the error survives
    pickling (Airflow ships exceptions between processes) with its attributes.
    """

    _pickle_fields: tuple[str, ...] = ()

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.detail, {f: getattr(self, f) for f in self._pickle_fields}))


class MlopsConfigurationError(MlopsError, AirflowFailException):
    """A setting a deployment must give is missing (the message says which and how). An
    ``AirflowFailException``: the task fails at once, since a retry would find the same configuration."""


class MlflowAuthError(MlopsError, AirflowFailException):
    """The MLflow server refused the connection's credentials (HTTP 401) or their rights (HTTP 403). The
    task fails at once, without retries: the same credentials would be refused again. The message names
    the server, the connection and the login, never the password or token."""


class FeatureSpecError(MlopsError, ValueError):
    """A FeatureSpec document is malformed.

    :param detail: what is wrong.
    :param key: dotted path of the offending key (``numeric_features.age.min``), if known.
    :param source: where the spec came from (file/URI), if known.
    """

    _pickle_fields = ("key", "source")

    def __init__(self, detail: str, *, key: str | None = None, source: str | None = None) -> None:
        super().__init__(detail)
        self.key = key
        self.source = source
        where = f" in {source}" if source else ""
        at = f" at key {key!r}" if key else ""
        self.args = (f"Invalid FeatureSpec{where}{at}: {detail}",)


class TableError(MlopsError, ValueError):
    """A table (file or partition) cannot be read, or does not hold what was asked of it.

    :param detail: what is wrong.
    :param uri: the file or partition URI.
    """

    _pickle_fields: tuple[str, ...] = ("uri",)

    def __init__(self, detail: str, *, uri: str) -> None:
        super().__init__(detail)
        self.uri = uri
        self.args = (f"{uri}: {detail}",)


class PartitionNotReadyError(TableError):
    """A partition has no data files or lacks its ``_SUCCESS`` completion marker."""


class PartitionConflictError(TableError, AirflowFailException):
    """Another run replaced the version of the partition this run started from (it won the claim on
    that version, see :func:`airflow_mlops.tables.publish_partition`): nothing of this run was
    published, so the partition holds one run's files only. Rerun to replace them.

    An ``AirflowFailException``: the task fails at once, since a retry would be refused the same way
    (only a new run, which opens the partition anew, can replace the winner's version).

    :param detail: what happened, naming the winner, and what to do.
    :param uri: the partition.
    :param winner: the ``run_key`` of the run that won (``"unknown"`` when the store does not say).
    """

    _pickle_fields: tuple[str, ...] = ("uri", "winner")

    def __init__(self, detail: str, *, uri: str, winner: str = "unknown") -> None:
        super().__init__(detail, uri=uri)
        self.winner = winner


class ModelResolutionError(MlopsError, LookupError):
    """A registered model, alias or version does not exist (or is not usable).

    :param detail: what is wrong.
    :param model_name: the registered model name.
    """

    _pickle_fields = ("model_name",)

    def __init__(self, detail: str, *, model_name: str) -> None:
        super().__init__(detail)
        self.model_name = model_name
        self.args = (f"Model {model_name!r}: {detail}",)


class DataValidationError(MlopsError, ValueError):
    """A table failed its expectations.

    :param detail: which table failed and the failed expectations with their columns.
    :param summary: the JSON summary the task pushed to XCom (counts, failures, report URIs).
    """

    _pickle_fields = ("summary",)

    def __init__(self, detail: str, *, summary: dict[str, Any]) -> None:
        super().__init__(detail)
        self.summary = summary


class ModelRejectedError(MlopsError, RuntimeError):
    """A challenger did not beat the champion, and the policy says to fail.

    :param detail: the decision's reason.
    :param model_name: the registered model.
    :param decision: the recorded decision (scores, versions, reason).
    """

    _pickle_fields = ("model_name", "decision")

    def __init__(self, detail: str, *, model_name: str, decision: dict[str, Any]) -> None:
        super().__init__(detail)
        self.model_name = model_name
        self.decision = decision
        self.args = (f"Model {model_name!r}: {detail}",)


class DriftDetectedError(MlopsError, RuntimeError):
    """Drift was detected and the policy says to fail.

    :param detail: which table drifted, in which columns.
    :param summary: the JSON summary pushed to XCom.
    """

    _pickle_fields = ("summary",)

    def __init__(self, detail: str, *, summary: dict[str, Any]) -> None:
        super().__init__(detail)
        self.summary = summary


class ModelDecayError(MlopsError, RuntimeError):
    """A model's quality on a labelled period decayed below its limits, and the policy says to fail.

    :param detail: which model and version, which period, the metric against its baseline.
    :param summary: the JSON summary pushed to XCom.
    """

    _pickle_fields = ("summary",)

    def __init__(self, detail: str, *, summary: dict[str, Any]) -> None:
        super().__init__(detail)
        self.summary = summary

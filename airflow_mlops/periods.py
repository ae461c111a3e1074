"""Monthly periods (``YYYY-MM``): the month a run works on, the instant a month closed, and the pieces a
DAG file needs to say so once: a ``month`` form field, the month-of-run template and the macros.

A monthly DAG of a team writes::

    from airflow_mlops import periods

    with DAG(..., params={"month": periods.month_param()}, user_defined_macros=periods.macros()):
        partition = "{{ data_root() }}/my_model/monthly/month=" + periods.MONTH

``MONTH`` renders to ``params.month`` when the form sets it, else to the month before the run's
logical date (a run on 2025-02-01 scores January); a run without a logical date (the CLI's and REST
API's default in Airflow 3) takes the month before its ``run_after``. Partitions, reports, the drift
hysteresis and the signals all name periods this way.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Param

#: What a month looks like in a form field or a partition name.
MONTH_PATTERN = "^[0-9]{4}-(0[1-9]|1[0-2])$"
#: Jinja expression of the month a run works on: the form's ``month``, else the month before the run.
MONTH_OF_RUN = "params.month or previous_month(logical_date or dag_run.run_after)"
#: Template of :data:`MONTH_OF_RUN`, to put in a URI: ``".../month=" + periods.MONTH``.
MONTH = "{{ " + MONTH_OF_RUN + " }}"
#: Template of the instant the run's month closed (ISO 8601, UTC), the same for every run of a month:
#: the scoring block stamps predictions with it.
MONTH_CLOSED_AT = "{{ month_closed_at(" + MONTH_OF_RUN + ") }}"


def labelled_month_template(lag: str = "params.label_lag_months") -> str:
    """Template of the month whose labels have closed at the run: the form's ``month``, else the month
    before the run, ``lag`` months earlier (a Jinja expression or a number: ``"1"``)."""
    return "{{ params.month or labelled_month(logical_date or dag_run.run_after, " + lag + ") }}"


def month_param(description: str = "Work on this month instead of the one before the run.", *, title: str = "Month (YYYY-MM)") -> Param:
    """The ``month`` form field (``null`` or ``YYYY-MM``) that :data:`MONTH` reads."""
    from airflow.sdk import Param

    return Param(None, type=["null", "string"], pattern=MONTH_PATTERN, title=title, description=description)


def macros() -> dict[str, Any]:
    """``user_defined_macros`` for a DAG that uses these templates: ``previous_month``,
    ``labelled_month``, ``month_closed_at`` and ``data_root`` (:func:`airflow_mlops.settings.data_root`)."""
    from airflow_mlops import settings

    return {
        "data_root": settings.data_root,
        "previous_month": previous_month,
        "labelled_month": labelled_month,
        "month_closed_at": month_closed_at,
    }


def month_ordinal(month: str) -> int:
    """Return ``year * 12 + month - 1`` for ``"YYYY-MM"``; raise ``ValueError`` on anything else."""
    try:
        parsed = dt.datetime.strptime(month, "%Y-%m")
    except ValueError as exc:
        raise ValueError(f"month must look like YYYY-MM, got {month!r}") from exc
    return parsed.year * 12 + parsed.month - 1


def month_name(ordinal: int) -> str:
    """Inverse of :func:`month_ordinal`."""
    return f"{ordinal // 12:04d}-{ordinal % 12 + 1:02d}"


def month_range(spec: str) -> list[str]:
    """Expand ``"2025-01:2025-06"`` (inclusive) or ``"2025-03"`` into a list of months."""
    first, _, last = spec.partition(":")
    lo, hi = month_ordinal(first), month_ordinal(last or first)
    if hi < lo:
        raise ValueError(f"month range {spec!r} ends before it starts")
    return [month_name(o) for o in range(lo, hi + 1)]


def previous_month(moment: dt.datetime | dt.date | None) -> str:
    """The month before ``moment`` as ``YYYY-MM``: a run on 2025-02-01 scores January.

    Templates pass ``logical_date or dag_run.run_after``: a run triggered without a logical date
    (the CLI's and REST API's default in Airflow 3) takes its month from when it was meant to run.
    """
    if moment is None:
        raise ValueError("this run has neither a logical date nor run_after; pass the month explicitly (params.month)")
    return month_name(moment.year * 12 + moment.month - 2)


def labelled_month(logical_date: dt.datetime | None, lag_months: int | str) -> str:
    """The month whose labels have closed at ``logical_date``: the month before it, ``lag_months`` earlier
    (a run on 2025-04-01 with a lag of 1 judges 2025-02, scored on 2025-03-01)."""
    return month_name(month_ordinal(previous_month(logical_date)) - int(lag_months))


def month_closed_at(month: str) -> str:
    """The first instant after ``month`` (ISO 8601, UTC), ``2025-02-01T00:00:00+00:00`` for ``2025-01``:
    the moment a month is complete, the same for every run that scores it (a scheduled run's logical date)."""
    ordinal = month_ordinal(month) + 1
    return dt.datetime(ordinal // 12, ordinal % 12 + 1, 1, tzinfo=dt.UTC).isoformat()

"""Monthly periods (``YYYY-MM``) as used by partitions, reports and the drift hysteresis."""

from __future__ import annotations

import datetime as dt


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

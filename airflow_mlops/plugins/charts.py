"""Monthly charts of the MLOps page, laid out here and drawn as inline SVG by the page template.

No charting library and no script: the page must render offline (no CDN) inside the Airflow UI's
iframe, and a server-side layout is a few lines of arithmetic. Every drawn point carries its period
and value as ``data-`` attributes, so a browser test (and a curious user) can read the numbers back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WIDTH = 540
HEIGHT = 220
#: Room for the axis labels: left, right, top, bottom.
MARGIN = (48, 12, 12, 28)


@dataclass(frozen=True)
class Mark:
    """One drawn value: where, which series and period, whether it is flagged (decayed, drifted), and
    whether its month was the scoring version's own holdout month (not an out-of-sample check)."""

    series: str
    period: str
    value: float
    x: float
    y: float
    flagged: bool = False
    holdout: bool = False


@dataclass(frozen=True)
class Line:
    """A series drawn as a polyline (``points`` is the SVG ``points`` attribute)."""

    series: str
    label: str
    points: str


@dataclass(frozen=True)
class Bar:
    """A series value drawn as a bar from the axis."""

    series: str
    period: str
    value: float
    x: float
    y: float
    width: float
    height: float
    flagged: bool = False


@dataclass
class Chart:
    """A laid-out chart: ticks, lines, bars and marks in SVG user units (``WIDTH`` x ``HEIGHT``)."""

    name: str
    title: str
    width: int = WIDTH
    height: int = HEIGHT
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_labels: list[tuple[float, str]] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)


def _scale(values: list[float], *, floor: float | None = None, ceiling: float | None = None) -> tuple[float, float]:
    """A y range holding every value with a little room, clamped to ``floor``/``ceiling``."""
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or max(abs(high) * 0.05, 0.01)
    low, high = low - pad, high + pad
    if floor is not None:
        low = max(low, floor)
    if ceiling is not None:
        high = min(high, ceiling)
    return low, high


class _Frame:
    """Maps (period index, value) to SVG coordinates."""

    def __init__(self, periods: list[str], low: float, high: float) -> None:
        left, right, top, bottom = MARGIN
        self.left, self.top = left, top
        self.plot_w, self.plot_h = WIDTH - left - right, HEIGHT - top - bottom
        self.step = self.plot_w / max(len(periods), 1)
        self.low, self.high = low, high

    def x(self, index: int) -> float:
        return round(self.left + self.step * (index + 0.5), 1)

    def y(self, value: float) -> float:
        share = (value - self.low) / ((self.high - self.low) or 1.0)
        return round(self.top + self.plot_h * (1 - share), 1)

    def ticks(self, count: int = 4) -> list[tuple[float, str]]:
        values = [self.low + (self.high - self.low) * i / count for i in range(count + 1)]
        return [(self.y(v), f"{v:.3g}") for v in values]


def _x_labels(frame: _Frame, periods: list[str]) -> list[tuple[float, str]]:
    every = max(1, len(periods) // 12)  # at most ~12 labels, so they never overlap
    return [(frame.x(i), p) for i, p in enumerate(periods) if i % every == 0]


def quality_chart(checks: list[dict[str, Any]]) -> Chart | None:
    """The judged metric per month with the version's holdout baseline and the decay limit.

    ``checks`` are quality summaries in any order (see :func:`airflow_mlops.plugins.dashboard.quality_checks`);
    a month marked ``holdout_of_version`` (the scoring version was judged on it when trained) gets a ringed mark.
    """
    rows = sorted((c for c in checks if c.get("value") is not None), key=lambda c: c["period"])
    if not rows:
        return None
    periods = [r["period"] for r in rows]
    series: dict[str, list[float | None]] = {
        "value": [float(r["value"]) for r in rows],
        "baseline": [float(r["baseline"]) if r.get("baseline") is not None else None for r in rows],
        "limit": [float(r["limit"]) if r.get("limit") is not None else None for r in rows],
    }
    drawn = [v for values in series.values() for v in values if v is not None]
    frame = _Frame(periods, *_scale(drawn))
    metric = rows[-1].get("metric") or "metric"
    chart = Chart(name="quality", title=f"{metric} per month", y_ticks=frame.ticks(), x_labels=_x_labels(frame, periods))
    labels = {"value": f"{metric} on the month's labels", "baseline": "the version's holdout value", "limit": "decay limit"}
    for name, values in series.items():
        points = [(frame.x(i), frame.y(v)) for i, v in enumerate(values) if v is not None]
        if not points:
            continue
        chart.lines.append(Line(name, labels[name], " ".join(f"{x},{y}" for x, y in points)))
        chart.legend.append((name, labels[name]))
        for i, v in enumerate(values):
            if v is not None:
                flagged = name == "value" and bool(rows[i].get("decayed"))
                holdout = name == "value" and bool(rows[i].get("holdout_of_version"))
                chart.marks.append(Mark(name, periods[i], v, frame.x(i), frame.y(v), flagged, holdout))
    if any(m.holdout for m in chart.marks):
        chart.legend.append(("holdout", "ringed: the month the scoring version was judged on when trained"))
    return chart


def drift_chart(checks: list[dict[str, Any]]) -> Chart | None:
    """The share of drifted columns per month (bars, red when drift was detected) and the threshold."""
    rows = sorted((c for c in checks if c.get("share") is not None), key=lambda c: c["period"])
    if not rows:
        return None
    periods = [r["period"] for r in rows]
    shares = [float(r["share"]) for r in rows]
    limits = [float(r["drift_share"]) if r.get("drift_share") is not None else None for r in rows]
    frame = _Frame(periods, 0.0, max(1.0, *shares))
    chart = Chart(name="drift", title="share of drifted columns per month", y_ticks=frame.ticks(), x_labels=_x_labels(frame, periods))
    base = frame.y(0.0)
    width = round(frame.step * 0.6, 1)
    for i, (period, share) in enumerate(zip(periods, shares, strict=True)):
        top = frame.y(share)
        bar = Bar("share", period, share, round(frame.x(i) - width / 2, 1), top, width, round(base - top, 1), bool(rows[i].get("drift_detected")))
        chart.bars.append(bar)
    chart.legend.append(("share", "drifted share (red: drift detected)"))
    points = [(frame.x(i), frame.y(v)) for i, v in enumerate(limits) if v is not None]
    if points:
        chart.lines.append(Line("threshold", "drift threshold", " ".join(f"{x},{y}" for x, y in points)))
        chart.legend.append(("threshold", "drift threshold"))
        chart.marks += [Mark("threshold", periods[i], v, frame.x(i), frame.y(v)) for i, v in enumerate(limits) if v is not None]
    return chart

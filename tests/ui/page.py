"""Reads the MLOps page's charts and tables back from its HTML, as a browser would show them."""

from __future__ import annotations

from html.parser import HTMLParser


class _PageReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.chart: str | None = None
        self.values: dict[str, dict[str, dict[str, tuple[float, bool]]]] = {}
        self.segments: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "figure" and a.get("data-chart"):
            self.chart = a["data-chart"]
        elif tag in ("circle", "rect") and a.get("data-series") and self.chart:
            series = self.values.setdefault(self.chart, {}).setdefault(str(a["data-series"]), {})
            series[str(a["data-period"])] = (float(str(a["data-value"])), a.get("data-flagged") == "true")
        elif tag == "tr" and a.get("data-segment"):
            self.segments.add(str(a["data-segment"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self.chart = None


def chart_values(page: str) -> dict[str, dict[str, dict[str, tuple[float, bool]]]]:
    """``{chart: {series: {period: (value, flagged)}}}`` of every drawn mark and bar."""
    reader = _PageReader()
    reader.feed(page)
    return reader.values


def segment_rows(page: str) -> set[str]:
    """The ``column=value`` keys of the segment table's rows."""
    reader = _PageReader()
    reader.feed(page)
    return reader.segments

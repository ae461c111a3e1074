"""Every report opens styled with no network: the Data Docs page of a validation, the drift report
and the quality report are each one HTML file that fetches nothing (no CDN script or stylesheet, no
remote image or font, not even a relative asset that would be missing next to the file).

The reports are made the way the operators make them, on a small churn table (the quality report by
:func:`monitoring.write_quality_report`, which the quality operator calls). The check reads the
HTML as a browser would (``html.parser``): every attribute a browser fetches, ``<style>`` text and
``style=""`` attributes (``@import``, ``url(...)``). Plain hyperlinks (``<a href>``) are not fetched
and are allowed.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from airflow_mlops import tables
from airflow_mlops.example_data import SPEC_PATH, churn
from airflow_mlops.metrics import LabelSpace
from airflow_mlops.operators.drift import EvidentlyDriftCheckOperator
from airflow_mlops.operators.validation import GxValidateTableOperator
from airflow_mlops.spec import FeatureSpec
from airflow_mlops.utils import data_docs, monitoring
from tests.helpers import task_context

#: ``<link rel=...>`` values whose ``href`` a browser loads.
FETCHED_RELS = {"stylesheet", "preload", "prefetch", "modulepreload", "icon", "apple-touch-icon", "manifest", "mask-icon"}
#: Attributes a browser loads, by tag.
FETCHED_ATTRS = {
    "script": ("src",), "img": ("src", "srcset"), "source": ("src", "srcset"), "iframe": ("src",), "frame": ("src",),
    "embed": ("src",), "object": ("data",), "video": ("src", "poster"), "audio": ("src",), "track": ("src",),
    "input": ("src",), "image": ("href", "xlink:href"), "use": ("href", "xlink:href"),
}  # fmt: skip
CSS_URL = re.compile(r"""@import\s+(?:url\(\s*)?['"]?([^'");\s]+)|url\(\s*['"]?([^'")]+)""", re.IGNORECASE)


class _Fetches(HTMLParser):
    """Every URL the page would load, with where it was found."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str]] = []
        self._in_style = False

    def _css(self, where: str, text: str) -> None:
        for imported, url in CSS_URL.findall(text):
            self.found.append((where, (imported or url).strip()))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v or "" for k, v in attrs}
        for name in FETCHED_ATTRS.get(tag, ()):
            if a.get(name):
                urls = [part.split()[0] for part in a[name].split(",") if part.strip()] if name == "srcset" else [a[name]]
                self.found += [(f"<{tag} {name}>", u.strip()) for u in urls]
        if tag == "link" and a.get("href") and FETCHED_RELS & set(a.get("rel", "").lower().split()):
            self.found.append((f"<link rel={a['rel']!r}>", a["href"].strip()))
        if a.get("style"):
            self._css(f"<{tag} style>", a["style"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._css("<style>", data)


def fetched(html: str) -> list[tuple[str, str]]:
    """The resources ``html`` would load that are not inside it (anything but a ``data:`` URI)."""
    parser = _Fetches()
    parser.feed(html)
    return [(where, url) for where, url in parser.found if not url.lower().startswith("data:")]


def external(html: str) -> list[tuple[str, str]]:
    """The subset of :func:`fetched` that goes to the network: ``http(s)://`` or protocol-relative ``//``."""
    return [(where, url) for where, url in fetched(html) if re.match(r"(?:https?:)?//", url, re.IGNORECASE)]


def make_churn_data(root: Path) -> dict:
    """A month and a training table of the churn generator, big enough that Evidently's drift check
    uses its large-sample tests (no small-sample fallback warnings)."""
    return churn.generate_dataset(str(root), rows=1500, months=["2025-01"], training_rows=1500, rows_per_file=1500, seed=5)


def make_data_docs(table: str, reports: Path) -> str:
    """The Data Docs page the validation operator writes for ``table``."""
    summary = GxValidateTableOperator(
        task_id="validate", table_uri=table, spec_uri=str(SPEC_PATH), reports_uri=str(reports), on_failure="continue"
    ).execute(task_context())
    return summary["data_docs_uri"]


def make_failing_table(data: dict, root: Path) -> str:
    """The training table with an unknown category, out-of-range values and a missing column."""
    frame = tables.read_table(data["training"])
    frame.loc[5, "contract"] = "weekly"
    frame.loc[[10, 20], "tenure_months"] = -1
    return tables.write_table(frame.drop(columns=["region"]), str(root / "bad.parquet"))


def make_drift_report(data: dict, reports: Path) -> str:
    """The Evidently drift report the drift operator writes for the month against the training table."""
    summary = EvidentlyDriftCheckOperator(
        task_id="drift", current_uri=data["months"]["2025-01"], reference_uri=data["training"], spec_uri=str(SPEC_PATH),
        model_name="churn", period="2025-01", reports_uri=str(reports),
    ).execute(task_context())  # fmt: skip
    return summary["report_uri"]


def make_quality_report(data: dict, reports: Path) -> str:
    """The Evidently quality report :func:`monitoring.write_quality_report` writes for scored, labelled rows."""
    spec = FeatureSpec.load(str(SPEC_PATH))
    frame = tables.read_table(data["training"])
    scores = np.random.default_rng(0).random(len(frame))
    frame = frame.assign(prediction=(scores > 0.5).astype(int), probability=scores)
    labels = LabelSpace.resolve(spec, frame[spec.target], where="test")
    return monitoring.write_quality_report(spec, frame, labels, str(reports / "report.html"), conn_id=None)


def read(uri: str) -> str:
    return Path(uri).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def churn_data(tmp_path_factory) -> dict:
    return make_churn_data(tmp_path_factory.mktemp("offline"))


def test_the_checker_sees_what_a_browser_would_fetch() -> None:
    page = """<html><head>
      <link rel="stylesheet" href="https://cdn.example/b.css"><link rel="shortcut icon" href="static/favicon.ico">
      <link rel="canonical" href="https://example.org/page">
      <script src="//cdn.example/j.js"></script><script>var a = "https://not.fetched/";</script>
      <style>@import "https://fonts.example/f.css"; .x { background: url('https://s3.example/logo.png') }
        .y { background: url(data:image/png;base64,AAAA) }</style></head>
      <body><img src="http://img.example/a.png" srcset="a.png 1x, https://img.example/b.png 2x">
      <div style="background-image: url(//img.example/c.png)"></div><a href="https://docs.example/">docs</a></body></html>"""

    assert external(page) == [
        ("<link rel='stylesheet'>", "https://cdn.example/b.css"),
        ("<script src>", "//cdn.example/j.js"),
        ("<style>", "https://fonts.example/f.css"),
        ("<style>", "https://s3.example/logo.png"),
        ("<img src>", "http://img.example/a.png"),
        ("<img srcset>", "https://img.example/b.png"),
        ("<div style>", "//img.example/c.png"),
    ]
    assert ("<link rel='shortcut icon'>", "static/favicon.ico") in fetched(page)
    assert ("<img srcset>", "a.png") in fetched(page)


def test_self_contained_data_docs_drops_what_it_cannot_inline_and_inlines_what_gx_ships() -> None:
    page = """<!DOCTYPE html><html><head><link rel="stylesheet" href="//cdn.example/b.css">
      <link rel="canonical" href="https://example.org/docs"><link rel="shortcut icon" href="../../static/images/favicon.ico">
      <script src="https://cdn.example/vega.js" crossorigin="anonymous"></script><script>vegaEmbed('#g', {});</script>
      <style>@import url("https://fonts.example/f.css"); .n a { background: url('https://s3.example/dark.png') 0 0 no-repeat }</style>
      </head><body><img src="https://great-expectations-web-assets.s3.example.com/logo-long.png?d=1" alt="GX">
      <img src="https://elsewhere.example/x.png" alt="other"><div style="background:url(//img.example/c.png)">x</div>
      <a href="https://greatexpectations.io">docs</a></body></html>"""

    html = data_docs.self_contained_data_docs(page)

    assert fetched(html) == []
    assert '<link rel="canonical" href="https://example.org/docs">' in html and '<a href="https://greatexpectations.io">' in html
    assert 'href="data:image/x-icon;base64,' in html and '<img src="data:image/png;base64,' in html  # GX's own favicon and logo
    assert '<img alt="other">' in html and "background: none 0 0 no-repeat" in html and 'style="background:none"' in html
    assert html.index("window.vegaEmbed") < html.index("vegaEmbed('#g'")  # defined before the page's scripts run


def test_data_docs_of_a_passing_table_fetch_nothing_and_carry_their_styles(churn_data, tmp_path) -> None:
    html = read(make_data_docs(churn_data["training"], tmp_path))

    assert external(html) == [] and fetched(html) == []
    assert "Expectation Validation Result" in html and "tenure_months" in html  # the page itself is all there
    # Bootstrap's layout and components, GX's own styles and its logo are inline; the page's scripts
    # (the "Failed Only" filter, "Show more info...") have what they call.
    assert re.search(r"<style>[^<]*\.card\{", html) and re.search(r"<style>[^<]*\.table\{", html)
    assert ".ge-section" in html and 'src="data:image/png;base64,' in html
    assert "window.$" in html and 'data-toggle="collapse"' in html
    assert len(html.encode()) < 250_000


def test_data_docs_of_a_failing_table_fetch_nothing(churn_data, tmp_path) -> None:
    html = read(make_data_docs(make_failing_table(churn_data, tmp_path), tmp_path / "reports"))

    assert external(html) == [] and fetched(html) == []
    assert "fa-times" in html and "weekly" in html and "Show exception traceback..." in html


def test_drift_report_fetches_nothing(churn_data, tmp_path) -> None:
    html = read(make_drift_report(churn_data, tmp_path))

    assert external(html) == [] and fetched(html) == []
    # Evidently's own bundle (JS and the icon font) is inline, and draws the report from inline data.
    assert "window.drawDashboard(" in html and "url(data:font/" in html and "monthly_charges" in html


def test_quality_report_fetches_nothing(churn_data, tmp_path) -> None:
    html = read(make_quality_report(churn_data, tmp_path))

    assert external(html) == [] and fetched(html) == []
    assert "window.drawDashboard(" in html and "url(data:font/" in html

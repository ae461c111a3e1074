"""Great Expectations 1.x glue: expectations from a FeatureSpec, batched validation, merged results.

GX validates in-memory DataFrames; to keep memory bounded the table is streamed and validated batch
by batch with one ephemeral context and one suite, and the per-batch results are merged:

* column-map expectations (per row: not null, in set, between, in type list) merge exactly: a
  failure in any batch fails the whole, counts add up, unexpected samples are pooled (capped);
* table-level expectations (row count, column means of a user suite) are judged per batch and fail
  if any batch fails; the row-count minimum is judged on the whole table, since it is the one most
  specs carry. Pass ``batch_rows`` at least the table size to judge other aggregates on the whole.
* expectations about how rows relate to each other (uniqueness, order, distinct counts) cannot be
  judged batch by batch at all: a duplicate or an out-of-order row may sit in another batch. A
  suite with one of :data:`WHOLE_TABLE_ONLY` is refused as soon as the table needs a second batch,
  naming the expectation and the ``batch_rows`` that would hold the table.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core import ExpectationSuiteValidationResult

    from airflow_mlops.spec import FeatureSpec

log = logging.getLogger(__name__)

NUMERIC_DTYPES = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64",
    "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32", "Float64",
]  # fmt: skip
STRING_DTYPES = ["object", "str", "string", "category", "bool", "boolean"]
class WholeTableOnlyError(ValueError):
    """A suite holds an expectation about rows of other batches (:data:`WHOLE_TABLE_ONLY`) and the
    table needs more than one batch."""


#: Expectations whose verdict depends on rows of other batches: judged only when one batch holds the table.
WHOLE_TABLE_ONLY = frozenset({
    "expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique", "expect_column_values_to_be_increasing",
    "expect_column_values_to_be_decreasing", "expect_column_unique_value_count_to_be_between",
    "expect_column_proportion_of_unique_values_to_be_between", "expect_column_distinct_values_to_be_in_set",
    "expect_column_distinct_values_to_contain_set", "expect_column_distinct_values_to_equal_set",
})  # fmt: skip
MAX_FAILURES_IN_SUMMARY = 20
MAX_SAMPLES = 10


def spec_expectations(spec: FeatureSpec, *, labelled: bool) -> list[dict[str, Any]]:
    """Return GX expectation configs (``{"type", "kwargs"}``) that a table described by ``spec`` must meet.

    :param labelled: the table must also hold the target (training/holdout data).
    """
    out: list[dict[str, Any]] = [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}]
    required = spec.training_columns() if labelled else spec.scoring_columns()
    out += [{"type": "expect_column_to_exist", "kwargs": {"column": c}} for c in required]
    for col in spec.passthrough_columns:
        out.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": col}})
    for num in spec.numeric_features:
        out.append({"type": "expect_column_values_to_be_in_type_list", "kwargs": {"column": num.name, "type_list": NUMERIC_DTYPES}})
        if not num.nullable:
            out.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": num.name}})
        if num.min is not None or num.max is not None:
            bounds = {k: v for k, v in (("min_value", num.min), ("max_value", num.max)) if v is not None}
            out.append({"type": "expect_column_values_to_be_between", "kwargs": {"column": num.name, **bounds}})
    for cat in spec.categorical_features:
        out.append({"type": "expect_column_values_to_be_in_type_list", "kwargs": {"column": cat.name, "type_list": STRING_DTYPES}})
        if not cat.nullable:
            out.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": cat.name}})
        if cat.values is not None:
            out.append({"type": "expect_column_values_to_be_in_set", "kwargs": {"column": cat.name, "value_set": list(cat.values)}})
    if labelled:
        out.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": spec.target}})
        if spec.classes is not None:
            out.append({"type": "expect_column_values_to_be_in_set", "kwargs": {"column": spec.target, "value_set": list(spec.classes)}})
        if spec.task == "regression":
            out.append({"type": "expect_column_values_to_be_in_type_list", "kwargs": {"column": spec.target, "type_list": NUMERIC_DTYPES}})
    return out


def load_suite_json(text: str, *, source: str) -> list[dict[str, Any]]:
    """Read a GX expectation suite JSON (``{"expectations": [{"type", "kwargs"}]}``) into configs."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"expectation suite {source} is not valid JSON: {exc}") from exc
    items = doc.get("expectations") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ValueError(f"expectation suite {source} must be an object with an 'expectations' list")
    configs = []
    for i, item in enumerate(items):
        kind = item.get("type") or item.get("expectation_type") if isinstance(item, dict) else None
        if not isinstance(kind, str):
            raise ValueError(f"expectation suite {source}: expectation {i} has no 'type'")
        configs.append({"type": kind, "kwargs": dict(item.get("kwargs") or {}), "meta": {"source": source}})
    return configs


def _quiet_context() -> Any:
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}  # type: ignore[assignment]
    return context


def _build_suite(context: Any, configs: Iterable[dict[str, Any]], name: str) -> Any:
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    suite = context.suites.add(gx.ExpectationSuite(name=name))
    for config in configs:
        try:
            configuration = ExpectationConfiguration(type=config["type"], kwargs=config["kwargs"], meta=config.get("meta"))
            suite.add_expectation(configuration.to_domain_obj())
        except Exception as exc:  # GX raises several types for unknown expectations / bad kwargs
            raise ValueError(f"invalid expectation {config['type']} {config['kwargs']}: {exc}") from exc
    suite.save()
    return suite


@dataclass
class MergedValidation:
    """The merge of per-batch GX results: the GX result object of the whole table plus totals."""

    result: ExpectationSuiteValidationResult
    rows: int
    batches: int
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return bool(self.result.success)


def _merge_into(total: Any, part: Any) -> None:
    """Fold one batch's ExpectationValidationResult into the running total (same expectation)."""
    total.success = bool(total.success and part.success)
    a, b = total.result, part.result
    for key in ("element_count", "unexpected_count", "missing_count"):
        if key in a or key in b:
            a[key] = (a.get(key) or 0) + (b.get(key) or 0)
    if "partial_unexpected_list" in b:
        a["partial_unexpected_list"] = (a.get("partial_unexpected_list") or []) + b["partial_unexpected_list"]
        a["partial_unexpected_list"] = a["partial_unexpected_list"][:MAX_SAMPLES]
    if "partial_unexpected_counts" in b:  # GX's counts are per batch: add them up by value
        counts: dict[Any, int] = {}
        for item in (a.get("partial_unexpected_counts") or []) + b["partial_unexpected_counts"]:
            counts[item["value"]] = counts.get(item["value"], 0) + item["count"]
        a["partial_unexpected_counts"] = [{"value": v, "count": c} for v, c in sorted(counts.items(), key=lambda vc: -vc[1])][:MAX_SAMPLES]
    if a.get("element_count"):
        a["unexpected_percent"] = 100.0 * (a.get("unexpected_count") or 0) / a["element_count"]
    if not part.success and part.exception_info and not total.exception_info:
        total.exception_info = part.exception_info


def _failure(evr: Any, missing: set[str], ranges: dict[str, list[float]], strays: dict[str, dict[Any, int]]) -> dict[str, Any]:
    cfg = evr.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
    res = evr.result or {}
    failure: dict[str, Any] = {"expectation": cfg.type, "column": kwargs.get("column")}
    for key in ("min_value", "max_value"):
        if kwargs.get(key) is not None:
            failure[key] = kwargs[key]
    if kwargs.get("value_set") is not None:
        failure["value_set"] = list(kwargs["value_set"])[:20]
    for key in ("observed_value", "element_count", "unexpected_count", "unexpected_percent"):
        if res.get(key) is not None:
            failure[key] = res[key]
    if cfg.type == "expect_column_values_to_be_between" and kwargs.get("column") in ranges:
        failure["observed_min"], failure["observed_max"] = ranges[kwargs["column"]]
    if cfg.type == "expect_column_values_to_be_in_set" and strays.get(kwargs.get("column") or ""):
        counted = sorted(strays[kwargs["column"]].items(), key=lambda vc: (-vc[1], str(vc[0])))
        failure["unexpected_counts"] = [{"value": v, "count": c} for v, c in counted[:5]]  # exact, over every batch
    elif res.get("partial_unexpected_counts"):  # GX counts its sample of unexpected values
        failure["unexpected_counts"] = [
            {"value": None if c["value"] != c["value"] else c["value"], "count": c["count"]} for c in res["partial_unexpected_counts"][:5]
        ]  # NaN -> None
    if res.get("partial_unexpected_list"):
        failure["unexpected_sample"] = [None if v != v else v for v in res["partial_unexpected_list"][:5]]  # NaN -> None
    info = evr.exception_info or {}
    message = info.get("exception_message") if isinstance(info, dict) else None
    if message:
        failure["error"] = str(message)[:300]
    if kwargs.get("column") in missing:
        failure["error"] = f"column {kwargs['column']!r} is missing"
    return json.loads(json.dumps(failure, default=str))


def validate_frames(frames: Iterator[pd.DataFrame], configs: list[dict[str, Any]], *, suite_name: str) -> MergedValidation:
    """Validate a stream of DataFrames against ``configs`` and merge the results.

    Empty frames are skipped unless the whole stream is empty, so a table with zero rows fails the
    row-count expectation once and a partition with one empty file does not.
    """
    import great_expectations as gx

    context = _quiet_context()
    source = context.data_sources.add_pandas("mlops")
    batch_definition = source.add_dataframe_asset("table").add_batch_definition_whole_dataframe("whole")
    suite = _build_suite(context, configs, suite_name)
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=suite_name, data=batch_definition, suite=suite))

    merged: Any = None
    columns: set[str] | None = None
    whole_table_only = {c["type"] for c in configs if c["type"] in WHOLE_TABLE_ONLY}
    bounded = {c["kwargs"]["column"] for c in configs if c["type"] == "expect_column_values_to_be_between"}
    allowed = {c["kwargs"]["column"]: set(c["kwargs"]["value_set"]) for c in configs if c["type"] == "expect_column_values_to_be_in_set"}
    ranges: dict[str, list[float]] = {}
    strays: dict[str, dict[Any, int]] = {}
    rows = batches = 0
    empty: pd.DataFrame | None = None
    for frame in frames:
        columns = set(frame.columns) if columns is None else columns
        if frame.empty:
            empty = frame if empty is None else empty
            continue
        if batches == 1 and whole_table_only:
            raise WholeTableOnlyError(
                f"{sorted(whole_table_only)} cannot be judged batch by batch (a duplicate or an out-of-order row can sit in "
                f"another batch) and the table does not fit one batch of {rows} rows: set batch_rows above the table's row count"
            )
        result = definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")
        _track_ranges(frame, bounded, ranges)
        _track_strays(frame, allowed, strays)
        rows += len(frame)
        batches += 1
        if merged is None:
            merged = result
        else:
            for total, part in zip(merged.results, result.results, strict=True):
                _merge_into(total, part)
        log.info("Validated batch %d (%d rows so far)", batches, rows)
    if merged is None:
        if empty is None:
            raise ValueError("the table yielded no batch at all")
        merged = definition.run(batch_parameters={"dataframe": empty}, result_format="SUMMARY")
        batches = 1
    for evr in merged.results:
        if evr.expectation_config.type == "expect_table_row_count_to_be_between":
            evr.result["observed_value"] = rows
            lo, hi = evr.expectation_config.kwargs.get("min_value"), evr.expectation_config.kwargs.get("max_value")
            evr.success = (lo is None or rows >= lo) and (hi is None or rows <= hi)
    merged.success = all(evr.success for evr in merged.results)
    stats = merged.statistics
    stats["successful_expectations"] = sum(1 for evr in merged.results if evr.success)
    stats["unsuccessful_expectations"] = stats["evaluated_expectations"] - stats["successful_expectations"]
    stats["success_percent"] = 100.0 * stats["successful_expectations"] / max(stats["evaluated_expectations"], 1)
    required = {c["kwargs"]["column"] for c in configs if c["type"] == "expect_column_to_exist"}
    missing = required - (columns or set())
    failed = sorted((evr for evr in merged.results if not evr.success), key=lambda evr: evr.expectation_config.type != "expect_column_to_exist")
    failures = [_failure(evr, missing, ranges, strays) for evr in failed]
    return MergedValidation(result=merged, rows=rows, batches=batches, failures=failures)


def _track_ranges(frame: pd.DataFrame, columns: set[str], ranges: dict[str, list[float]]) -> None:
    """Keep the observed min and max of ``columns`` over the batches (for messages on out-of-range values)."""
    import pandas as pd

    for column in columns & set(frame.columns):
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.notna().any():
            low, high = float(values.min()), float(values.max())
            seen = ranges.setdefault(column, [low, high])
            seen[0], seen[1] = min(seen[0], low), max(seen[1], high)


def _track_strays(frame: pd.DataFrame, allowed: dict[str, set[Any]], strays: dict[str, dict[Any, int]]) -> None:
    """Count, per column with allowed values, every value outside them (for exact counts in messages)."""
    for column, values in allowed.items():
        if column not in frame.columns:
            continue
        series = frame[column]
        outside = series[series.notna() & ~series.isin(values)]
        for value, count in outside.value_counts().items():
            counts = strays.setdefault(column, {})
            counts[value] = counts.get(value, 0) + int(count)


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


def describe_failure(failure: dict[str, Any]) -> str:
    """One line saying what a failed expectation found: values found against the bound, a few
    unexpected values with counts, rows found against rows expected."""
    kind, column = failure["expectation"], failure.get("column")
    if "error" in failure:
        return f"{kind}({column}): {failure['error']}"
    count = failure.get("unexpected_count")
    of_rows = f" of {failure['element_count']} rows" if failure.get("element_count") is not None else ""
    found = ", ".join(f"{c['value']!r} x{c['count']}" for c in failure.get("unexpected_counts", []))
    if kind == "expect_table_row_count_to_be_between":
        want = " and ".join(f"{word} {failure[key]}" for key, word in (("min_value", "at least"), ("max_value", "at most")) if key in failure)
        return f"the table has {failure.get('observed_value', '?')} row(s), expected {want}"
    if kind == "expect_column_values_to_be_between":
        bounds = f"[{_num(failure['min_value']) if 'min_value' in failure else '-inf'}, {_num(failure['max_value']) if 'max_value' in failure else 'inf'}]"
        sample = ", ".join(_num(c["value"]) for c in failure.get("unexpected_counts", []))
        seen = [f"found min {_num(failure['observed_min'])}, max {_num(failure['observed_max'])}"] if "observed_min" in failure else []
        details = "; ".join(seen + ([f"e.g. {sample}"] if sample else []))
        return f"{column!r}: {count} value(s){of_rows} outside {bounds}" + (f" ({details})" if details else "")
    if kind == "expect_column_values_to_be_in_set":
        return f"{column!r}: {count} value(s){of_rows} not in the allowed {failure.get('value_set')}" + (f" (found {found})" if found else "")
    if kind == "expect_column_values_to_not_be_null":
        return f"{column!r}: {count} null value(s){of_rows}, but the column is not nullable"
    if kind == "expect_column_values_to_be_in_type_list":
        return f"{column!r}: {count} value(s){of_rows} of the wrong type" + (f" (e.g. {found})" if found else "")
    if count is not None:
        return f"{kind}({column}): {count} unexpected value(s){of_rows}" + (f" (e.g. {found})" if found else "")
    return f"{kind}({column}): observed {failure.get('observed_value')!r}"


def render_data_docs(result: ExpectationSuiteValidationResult) -> str:
    """Render a validation result as a GX Data Docs HTML page that opens styled with no network.

    GX's page template loads Bootstrap, jQuery, Font Awesome, Vega and its logo from CDNs, and GX has
    no option to bundle them (its package ships only its own styles and images), so offline the page
    is unstyled text. :func:`self_contained_data_docs` makes it one file that fetches nothing.
    """
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    return self_contained_data_docs(str(DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result))))


def self_contained_data_docs(page: str) -> str:
    """Make a rendered Data Docs page self-contained.

    * every ``<script src>`` and ``<link>`` stylesheet/preload/icon that points off the page is
      removed, and so is a CSS ``@import`` of one; a CSS ``url()`` to another host becomes ``none``;
    * an image or icon GX ships (its logo, its favicon; matched by file name in
      ``great_expectations/render/view/static/images``) is inlined as a ``data:`` URI, any other
      image reference is dropped (its ``alt`` text stays);
    * in their place, at the top of ``<head>``: :data:`_DATA_DOCS_CSS`, the part of Bootstrap 4 the Data
      Docs templates use (layout, cards, tables, badges, alerts, navigation, the status icons), and
      :data:`_DATA_DOCS_JS`, what the page's own scripts call (a few jQuery methods, Bootstrap's collapse
      and button toggles). Charts (Vega) are not bundled: a chart shows a line saying so.

    GX's own inline styles and the page content are left as they are.
    """
    page = re.sub(r"<script\b[^>]*>\s*</script\s*>", lambda m: "" if _fetches(_attr(m.group(0), "src")) else m.group(0), page, flags=re.I)
    page = re.sub(r"<(img|link)\b[^>]*>", _offline_tag, page, flags=re.I)
    page = re.sub(r"(<style\b[^>]*>)(.*?)(</style\s*>)", lambda m: m.group(1) + _offline_css(m.group(2)) + m.group(3), page, flags=re.I | re.S)
    page = re.sub(r'(\bstyle\s*=\s*")([^"]*url\([^"]*)(")', lambda m: m.group(1) + _offline_css(m.group(2)) + m.group(3), page, flags=re.I)
    inline = f"\n<style>{_DATA_DOCS_CSS}</style>\n<script>{_DATA_DOCS_JS}</script>\n"
    head = re.search(r"<head\b[^>]*>", page, flags=re.I)
    return page[: head.end()] + inline + page[head.end() :] if head else inline + page


#: ``<link rel>`` values whose ``href`` a browser loads.
_FETCHED_RELS = frozenset({"stylesheet", "preload", "prefetch", "modulepreload", "icon", "apple-touch-icon", "mask-icon", "manifest"})
_IMAGE_TYPES = {".png": "image/png", ".ico": "image/x-icon", ".svg": "image/svg+xml", ".gif": "image/gif", ".jpg": "image/jpeg"}


def _attr(tag: str, name: str) -> str | None:
    """The value of attribute ``name`` in the start tag ``tag`` (quoted or not), or ``None``."""
    found = re.search(rf"""\s{name}\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", tag, flags=re.I)
    return None if found is None else next(v for v in found.groups() if v is not None)


def _fetches(url: str | None) -> bool:
    """Whether the browser would load ``url`` from outside the page (anything but a ``data:`` URI or a fragment)."""
    return bool(url and url.strip() and not re.match(r"\s*(?:data:|#)", url, flags=re.I))


def _offline_tag(match: re.Match[str]) -> str:
    tag = match.group(0)
    attr = "src" if match.group(1).lower() == "img" else "href"
    url = _attr(tag, attr)
    if match.group(1).lower() == "link" and not _FETCHED_RELS & set((_attr(tag, "rel") or "").lower().split()):
        return tag  # canonical, alternate...: not loaded
    if not _fetches(url):
        return tag
    inlined = _gx_image(str(url))
    strip = re.compile(rf"""\s{attr}\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+)""", flags=re.I)
    if inlined is not None:
        return strip.sub(lambda _: f' {attr}="{inlined}"', tag, count=1)
    return strip.sub("", tag, count=1) if attr == "src" else ""


def _offline_css(css: str) -> str:
    css = re.sub(r"""@import\s+(?:url\(\s*)?['"]?\s*(?:https?:)?//[^;]*;?""", "", css, flags=re.I)
    return re.sub(r"""url\(\s*['"]?\s*(?:https?:)?//[^)]*\)""", "none", css, flags=re.I)


def _gx_image(url: str) -> str | None:
    """The image GX ships under the name of the last path segment of ``url``, as a ``data:`` URI, or ``None``."""
    return _gx_image_named(url.split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1])


@functools.lru_cache(maxsize=8)
def _gx_image_named(name: str) -> str | None:
    from importlib.resources import files

    kind = _IMAGE_TYPES.get(os.path.splitext(name)[1].lower())
    image = files("great_expectations").joinpath("render", "view", "static", "images", name)
    if kind is None or not image.is_file():
        return None
    return f"data:{kind};base64,{base64.b64encode(image.read_bytes()).decode('ascii')}"


def _spacing_css() -> str:
    """Bootstrap 4's margin and padding utilities (``m-0`` ... ``py-5``, ``mr-auto``), and the horizontal
    ones per breakpoint (``pl-sm-3``, ``pr-md-3``...; the only responsive ones the templates use)."""
    sizes = {"0": "0", "1": ".25rem", "2": ".5rem", "3": "1rem", "4": "1.5rem", "5": "3rem", "auto": "auto"}
    sides = {"": ("",), "t": ("-top",), "b": ("-bottom",), "l": ("-left",), "r": ("-right",), "x": ("-left", "-right"), "y": ("-top", "-bottom")}

    def rules(infix: str, only: str) -> str:
        return "".join(
            f".{short}{side}-{infix}{size}{{{';'.join(f'{prop}{p}:{value}!important' for p in props)}}}"
            for short, prop in (("m", "margin"), ("p", "padding"))
            for side, props in sides.items()
            if side in only
            for size, value in sizes.items()
            if size != "auto" or (short == "m" and not infix)
        )

    every = "".join(sides)
    return f"{rules('', every)}@media(min-width:576px){{{rules('sm-', 'lrx')}}}@media(min-width:768px){{{rules('md-', 'lrx')}}}"


def _columns_css() -> str:
    def cols(infix: str) -> str:
        return "".join(f".col-{infix}{n}{{flex:0 0 {100 * n / 12:.4f}%;max-width:{100 * n / 12:.4f}%}}" for n in range(1, 13))

    return f"{cols('')}@media(min-width:576px){{{cols('sm-')}}}@media(min-width:768px){{{cols('md-')}}}@media(min-width:992px){{{cols('lg-')}}}"


#: The part of Bootstrap 4.3 (and of Font Awesome: the status icons, as text glyphs) that GX's Data
#: Docs templates and renderers use, with a dark variant as Data Docs have one.
_DATA_DOCS_CSS = (
    ":root{--fg:#212529;--bg:#fff;--muted:#6c757d;--line:#dee2e6;--light:#f8f9fa;--card:#fff;--cap:rgba(0,0,0,.03);--link:#007bff}"
    "@media(prefers-color-scheme:dark){:root{--fg:#e9ecef;--bg:#1b1e21;--muted:#adb5bd;--line:#495057;--light:#2b3035;--card:#24282c;"
    "--cap:rgba(255,255,255,.05);--link:#6ea8fe}.navbar .navbar-brand a img{visibility:visible;filter:invert(1) hue-rotate(180deg)}}"
    "*,::after,::before{box-sizing:border-box}html{-webkit-text-size-adjust:100%}"
    "body{margin:0;font-family:-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,'Helvetica Neue',Arial,'Noto Sans',sans-serif;"
    "font-size:1rem;font-weight:400;line-height:1.5;color:var(--fg);background-color:var(--bg);text-align:left}"
    "h1,h2,h3,h4,h5,h6,.h6{margin-top:0;margin-bottom:.5rem;font-weight:500;line-height:1.2}"
    "h1{font-size:2.5rem}h2{font-size:2rem}h3{font-size:1.75rem}h4{font-size:1.5rem}h5{font-size:1.25rem}h6,.h6{font-size:1rem}"
    "p,ol,ul,dl,pre{margin-top:0;margin-bottom:1rem}ol ol,ol ul,ul ol,ul ul{margin-bottom:0}b,strong{font-weight:bolder}small{font-size:80%}"
    "a{color:var(--link);text-decoration:none;background-color:transparent}a:hover{text-decoration:underline}"
    "code,kbd,pre,samp,.text-monospace{font-family:SFMono-Regular,Menlo,Monaco,Consolas,'Liberation Mono','Courier New',monospace}"
    "code{font-size:87.5%;color:#e83e8c;word-wrap:break-word}pre{display:block;overflow:auto;font-size:87.5%;color:var(--fg)}"
    "img,svg{vertical-align:middle}img{border-style:none}table{border-collapse:collapse}th{text-align:inherit}label{display:inline-block}"
    "button,input{margin:0;font-family:inherit;font-size:inherit;line-height:inherit}hr{margin:1rem 0;border:0;border-top:1px solid var(--line)}"
    ".lead{font-size:1.25rem;font-weight:300}"
    ".container-fluid{width:100%;padding-right:15px;padding-left:15px;margin-right:auto;margin-left:auto}"
    ".row{display:flex;flex-wrap:wrap;margin-right:-15px;margin-left:-15px}"
    ".col,[class*=' col-'],[class^=col-]{position:relative;width:100%;padding-right:15px;padding-left:15px}"
    + _columns_css()
    + ".d-none{display:none!important}.d-inline{display:inline!important}.d-inline-block{display:inline-block!important}"
    ".d-block{display:block!important}.d-flex{display:flex!important}.d-inline-flex{display:inline-flex!important}"
    ".flex-row{flex-direction:row!important}.flex-column{flex-direction:column!important}.flex-wrap{flex-wrap:wrap!important}"
    ".justify-content-center{justify-content:center!important}.justify-content-between{justify-content:space-between!important}"
    ".align-items-center{align-items:center!important}.float-left{float:left!important}.float-right{float:right!important}"
    ".h-100{height:100%!important}.w-100{width:100%!important}.invisible{visibility:hidden!important}"
    ".sticky-top{position:sticky;top:0;z-index:1020}.text-left{text-align:left!important}.text-center{text-align:center!important}"
    ".text-right{text-align:right!important}.text-success{color:#28a745!important}.text-danger{color:#dc3545!important}"
    ".text-warning{color:#e0a800!important}.text-info{color:#17a2b8!important}.text-muted{color:var(--muted)!important}"
    ".bg-light{background-color:var(--light)!important}.border{border:1px solid var(--line)!important}"
    ".border-bottom{border-bottom:1px solid var(--line)!important}.border-top-0{border-top:0!important}.rounded{border-radius:.25rem!important}"
    "@media(min-width:576px){.d-sm-none{display:none!important}.d-sm-block{display:block!important}.flex-sm-row{flex-direction:row!important}}"
    "@media(min-width:768px){.d-md-none{display:none!important}.d-md-block{display:block!important}.d-md-inline-flex{display:inline-flex!important}}"
    + _spacing_css()
    + ".table{width:100%;margin-bottom:1rem;color:var(--fg)}.table td,.table th{padding:.75rem;vertical-align:top;border-top:1px solid var(--line)}"
    ".table thead th{vertical-align:bottom;border-bottom:2px solid var(--line)}.table-sm td,.table-sm th{padding:.3rem}"
    ".table-bordered,.table-bordered td,.table-bordered th{border:1px solid var(--line)}.table-unbordered td,.table-unbordered th{border:0}"
    ".table-responsive{display:block;width:100%;overflow-x:auto}"
    ".badge{display:inline-block;padding:.25em .4em;font-size:75%;font-weight:700;line-height:1;text-align:center;white-space:nowrap;"
    "vertical-align:baseline;border-radius:.25rem;color:#fff}.badge-pill{padding-right:.6em;padding-left:.6em;border-radius:10rem}"
    ".badge-primary{background-color:#007bff}.badge-secondary{background-color:#6c757d}.badge-info{background-color:#17a2b8}"
    ".badge-warning{background-color:#ffc107;color:#212529}.badge-danger{background-color:#dc3545}.badge-success{background-color:#28a745}"
    ".alert{position:relative;padding:.75rem 1.25rem;margin-bottom:1rem;border:1px solid transparent;border-radius:.25rem}"
    ".alert-heading{color:inherit}.alert-secondary{color:#383d41;background-color:#e2e3e5;border-color:#d6d8db}"
    ".alert-warning{color:#856404;background-color:#fff3cd;border-color:#ffeeba}.alert-danger{color:#721c24;background-color:#f8d7da;border-color:#f5c6cb}"
    ".card{position:relative;display:flex;flex-direction:column;min-width:0;word-wrap:break-word;background-color:var(--card);"
    "background-clip:border-box;border:1px solid var(--line);border-radius:.25rem}.card-body{flex:1 1 auto;padding:1.25rem}"
    ".card-header{padding:.75rem 1.25rem;margin-bottom:0;background-color:var(--cap);border-bottom:1px solid var(--line)}.card-text:last-child{margin-bottom:0}"
    ".btn{display:inline-block;font-weight:400;color:var(--fg);text-align:center;vertical-align:middle;user-select:none;cursor:pointer;"
    "background-color:transparent;border:1px solid transparent;padding:.375rem .75rem;font-size:1rem;line-height:1.5;border-radius:.25rem}"
    ".btn-sm{padding:.25rem .5rem;font-size:.875rem;line-height:1.5;border-radius:.2rem}"
    ".btn-primary{color:#fff;background-color:#007bff;border-color:#007bff}.btn-primary:hover{background-color:#0069d9;border-color:#0062cc}"
    ".btn-primary.active{background-color:#0056b3;border-color:#004fa5}.btn-secondary{color:#fff;background-color:#6c757d;border-color:#6c757d}"
    ".btn-group{position:relative;display:inline-flex;vertical-align:middle}.btn-group>.btn{position:relative;flex:1 1 auto}"
    ".btn-group>.btn:not(:last-child){border-top-right-radius:0;border-bottom-right-radius:0}"
    ".btn-group>.btn:not(:first-child){margin-left:-1px;border-top-left-radius:0;border-bottom-left-radius:0}"
    ".btn-group-toggle>.btn input{position:absolute;clip:rect(0,0,0,0);pointer-events:none}"
    ".close{float:right;font-size:1.5rem;font-weight:700;line-height:1;color:inherit;opacity:.5;background:0 0;border:0;padding:0}"
    ".nav{display:flex;flex-wrap:wrap;padding-left:0;margin-bottom:0;list-style:none}.nav-link{display:block;padding:.5rem 1rem}"
    ".nav-pills .nav-link{border-radius:.25rem}.nav-pills .nav-link.active{color:#fff;background-color:#007bff}"
    ".nav-tabs{border-bottom:1px solid var(--line)}.nav-tabs .nav-link{margin-bottom:-1px;border:1px solid transparent;border-radius:.25rem .25rem 0 0}"
    ".nav-tabs .nav-link.active{border-color:var(--line) var(--line) var(--bg);background-color:var(--bg)}"
    ".tab-content>.tab-pane{display:none}.tab-content>.active{display:block}"
    ".navbar{position:relative;display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;padding:.5rem 1rem}"
    ".navbar.sticky-top{background-color:var(--bg)}.navbar-brand{display:inline-block;padding-top:.3125rem;padding-bottom:.3125rem;"
    "margin-right:1rem;font-size:1.25rem;line-height:inherit;white-space:nowrap}@media(min-width:768px){.navbar-expand-md{flex-flow:row nowrap;justify-content:flex-start}}"
    ".breadcrumb{display:flex;flex-wrap:wrap;padding:.75rem 1rem;margin-bottom:1rem;list-style:none;border-radius:.25rem}"
    ".breadcrumb-item+.breadcrumb-item{padding-left:.5rem}.breadcrumb-item+.breadcrumb-item::before{display:inline-block;padding-right:.5rem;"
    "color:var(--muted);content:'/'}.breadcrumb-item.active{color:var(--muted)}"
    ".list-group{display:flex;flex-direction:column;padding-left:0;margin-bottom:0}.collapse:not(.show){display:none}"
    ".fa,.fas{display:inline-block;font-style:normal;font-weight:700;line-height:1;font-family:'DejaVu Sans','Segoe UI Symbol',sans-serif}"
    ".fa-check-circle::before{content:'\\2714\\FE0E'}.fa-times::before{content:'\\2716\\FE0E'}"
    ".fa-exclamation-triangle::before{content:'\\26A0\\FE0E'}.fa-question-circle::before{content:'?'}.fa-comment::before{content:'\\270E\\FE0E'}"
    ".ge-vega-offline{padding:.5rem;color:var(--muted);font-style:italic}"
)

#: What the Data Docs page's inline scripts call, without jQuery, Bootstrap or Vega: ``$(...)`` with
#: ``parent``/``each``/``fadeIn``/``fadeOut`` (the "Failed Only" filter) and no-ops for the plugins,
#: Bootstrap's collapse ("Show more info...") and button-group toggles, and a ``vegaEmbed`` that says
#: the chart is not drawn offline.
_DATA_DOCS_JS = """(function () {
  document.addEventListener('click', function (e) {
    var link = e.target.closest && e.target.closest('[data-toggle="collapse"]');
    if (link) {
      e.preventDefault();
      var body = document.getElementById((link.getAttribute('data-target') || link.getAttribute('href') || '').replace(/^#/, ''));
      if (body) {
        var open = body.classList.toggle('show');
        link.setAttribute('aria-expanded', String(open));
        link.classList.toggle('collapsed', !open);
      }
      return;
    }
    var button = e.target.closest && e.target.closest('.btn-group-toggle > .btn');
    if (button) {
      Array.prototype.forEach.call(button.parentNode.children, function (b) { b.classList.toggle('active', b === button); });
    }
  });
  function Q(items) { this.items = items; this.length = items.length; }
  function self() { return this; }
  Q.prototype = {
    each: function (f) { this.items.forEach(function (el, i) { f.call(el, i, el); }); return this; },
    parent: function () {
      var out = [];
      this.items.forEach(function (el) { var p = el.parentElement; if (p && out.indexOf(p) < 0) out.push(p); });
      return new Q(out);
    },
    fadeIn: function () { return this.each(function (i, el) { el.style.display = ''; }); },
    fadeOut: function () { return this.each(function (i, el) { el.style.display = 'none'; }); },
    addClass: function (c) { return this.each(function (i, el) { el.classList.add(c); }); },
    removeClass: function (c) { return this.each(function (i, el) { el.classList.remove(c); }); },
    ready: function (f) {
      if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', f); else f();
      return this;
    },
    on: self, modal: self, popover: self, tooltip: self, bootstrapTable: self, prepend: self
  };
  Q.prototype.show = Q.prototype.fadeIn;
  Q.prototype.hide = Q.prototype.fadeOut;
  window.$ = window.jQuery = function (s) {
    if (typeof s === 'function') return new Q([document]).ready(s);
    if (typeof s === 'string') {
      try { return new Q(Array.prototype.slice.call(document.querySelectorAll(s))); } catch (err) { return new Q([]); }
    }
    return new Q(s ? [s] : []);
  };
  window.vegaEmbed = function (selector) {
    var el = document.querySelector(selector);
    if (el) {
      el.className += ' ge-vega-offline';
      el.textContent = 'Chart not drawn: the Vega library is not bundled in this offline report (the validation result JSON holds the values).';
    }
    return Promise.resolve();
  };
})();"""


def gx_analytics_off() -> None:
    """Turn GX analytics off unless the user decided otherwise (must run before GX is imported)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

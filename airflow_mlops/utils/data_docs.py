"""GX Data Docs as one HTML file that opens styled with no network (offline and air-gapped workers).

GX's page template loads Bootstrap, jQuery, Font Awesome, Vega and its logo from CDNs, and GX has no
option to bundle them (its package ships only its own styles and images). :func:`render_data_docs`
renders a validation result with GX's own renderer and view, then :func:`self_contained_data_docs`
removes what would be fetched and inlines what GX ships, with the small part of Bootstrap and of the
page's scripts that the Data Docs templates use. Most of this module is that CSS and JS, as text.
"""

from __future__ import annotations

import base64
import functools
import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult


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

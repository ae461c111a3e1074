"""The reports open styled in a browser with no network: headless Chromium (``browser/offline.mjs``)
opens each file with every request cut off and reads back what the page asked for, its page errors,
computed styles and, on the Data Docs page, its two scripted controls.

Needs no Airflow: the reports are made as in ``tests/unit/test_offline_reports.py``. Screenshots land
in ``test-artifacts/ui/`` (``offline-*.png``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import ARTIFACTS, BROWSER_DIR, CHROMIUM
from tests.unit.test_offline_reports import (
    make_churn_data,
    make_data_docs,
    make_drift_report,
    make_failing_table,
    make_quality_report,
)

pytestmark = [pytest.mark.ui]


def open_offline(page: str, kind: str, name: str) -> dict[str, Any]:
    """Run ``browser/offline.mjs`` on ``page`` and return its JSON result."""
    missing = [what for what, ok in (("Chromium", Path(CHROMIUM).exists()), ("node", shutil.which("node") is not None),
               ("playwright-core", (BROWSER_DIR / "node_modules" / "playwright-core").is_dir())) if not ok]  # fmt: skip
    if missing:
        pytest.fail(f"the browser check needs {', '.join(missing)}: run `make ui-deps`", pytrace=False)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    args = {"chromium": CHROMIUM, "page": page, "kind": kind, "artifacts": str(ARTIFACTS), "name": name}
    out = subprocess.run(["node", str(BROWSER_DIR / "offline.mjs"), json.dumps(args)], cwd=BROWSER_DIR, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        pytest.fail(f"offline.mjs failed on {page}:\n{out.stderr[-4000:]}", pytrace=False)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def churn_data(tmp_path_factory) -> dict:
    return make_churn_data(tmp_path_factory.mktemp("offline_browser"))


def test_data_docs_open_styled_and_working_offline(churn_data, tmp_path) -> None:
    page = open_offline(make_data_docs(make_failing_table(churn_data, tmp_path), tmp_path / "reports"), "data_docs", "offline-data-docs")

    assert page["requests"] == [] and page["errors"] == []
    styles, defaults = page["styles"], page["defaults"]
    assert styles["bodyFont"] != defaults["fontFamily"] and styles["rowDisplay"] == "flex"
    assert styles["cardBorder"] == "1px" and styles["badgeBackground"] not in ("rgba(0, 0, 0, 0)", None)
    assert styles["tableCellPadding"] != "1px"  # Bootstrap's cell padding, not the browser's
    assert "\u2716" in styles["failIcon"] and "\u2714" in styles["okIcon"]
    assert page["logoWidth"] > 0
    assert page["collapse"] == {"before": False, "after": True}  # "Show more info..." opens
    # "Failed Only" hides the passing expectations and keeps the failed ones.
    assert page["filter"]["all"] > 0 and page["filter"]["failedOnly"] == 0 and page["filter"]["failedShown"] > 0


@pytest.mark.parametrize("make", [make_drift_report, make_quality_report], ids=["drift", "quality"])
def test_evidently_reports_draw_offline(make, churn_data, tmp_path) -> None:
    page = open_offline(make(churn_data, tmp_path), "evidently", f"offline-{make.__name__}")

    assert page["requests"] == [] and page["errors"] == []
    assert page["drawn"] > 50 and page["bodyFont"] != page["defaults"]["fontFamily"]

"""The documentation site builds strictly and covers the code: every operator, sensor, trigger, hook and
extra link has a reference entry, every ``[mlops]`` option is on the configuration page, and every task of every
reference DAG is on the DAG page. A new operator without docs fails here, as does a broken link."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html import escape as html_escape
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # builds the site with mkdocs in a subprocess


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "-d", str(out)],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-6000:]}"
    return out


def _ids(html: str) -> set[str]:
    return set(re.findall(r'\sid="([^"]+)"', html))


def test_every_operator_sensor_trigger_hook_and_extra_link_has_a_reference_entry(site: Path) -> None:
    """The same walk as the provider-info test (tests/unit/provider_classes.py), abstract bases included."""
    from tests.unit.provider_classes import provider_classes

    classes = [c.path for c in provider_classes()]
    # The walk itself must find what the package has, or this test could pass vacuously.
    assert {
        "airflow_mlops.operators.training.MlflowTrainModelOperator",
        "airflow_mlops.sensors.partition.DataPartitionSensor",
        "airflow_mlops.triggers.mlflow.MlflowModelVersionTrigger",
        "airflow_mlops.hooks.mlflow.MlflowHook",
        "airflow_mlops.links.reports.QualityReportLink",
    } <= set(classes)
    anchors: set[str] = set()
    for page in (site / "reference").rglob("*.html"):
        anchors |= _ids(page.read_text(encoding="utf-8"))
    missing = [c for c in classes if c not in anchors]
    assert not missing, f"no reference entry (add ::: {missing[0]} to docs/reference/): {missing}"


def test_every_mlops_option_is_on_the_configuration_page(site: Path) -> None:
    from airflow_mlops.get_provider_info import get_provider_info

    html = (site / "configuration" / "index.html").read_text(encoding="utf-8")
    options = get_provider_info()["config"]["mlops"]["options"]
    assert options
    for name, option in options.items():
        assert f'id="option-{name}"' in html, name
        assert f"AIRFLOW__MLOPS__{name.upper()}" in html, name
        assert html_escape(option["description"][:40], quote=False) in html, name
    for field in ("registry_uri", "token", "ui_base_url", "artifact_root"):
        assert f"<code>{field}</code>" in html, field


def test_the_dag_page_shows_every_task_of_each_reference_dag(site: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    assert {"mlops_retraining", "mlops_batch_prediction", "mlops_model_monitoring"} <= set(bag.dag_ids)
    html = (site / "dags" / "index.html").read_text(encoding="utf-8")
    for dag_id in bag.dag_ids:
        start = html.find(f'<h2 id="{dag_id}"')
        assert start >= 0, f"no section for {dag_id}"
        end = html.find("<h2 ", start + 1)
        section = html[start : end if end > 0 else len(html)]
        assert '<pre class="mermaid">' in section, dag_id
        for task_id in bag.dags[dag_id].task_ids:
            assert f"<code>{task_id}</code>" in section, f"{dag_id}.{task_id}"
            assert re.search(rf"^\s+{re.escape(task_id)}\[", section, re.MULTILINE), f"{dag_id}.{task_id} not in the graph"


def test_the_command_line_page_shows_every_subcommand_and_argument(site: Path) -> None:
    import argparse

    from airflow_mlops.cli import _parser

    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    # The parser itself must have what the package ships, or the walk below could pass on nothing.
    assert {"generate-data", "infer-spec", "mlflow-user"} <= set(commands.choices)
    html = (site / "cli" / "index.html").read_text(encoding="utf-8")
    for name, sub in commands.choices.items():
        start = html.find(f'<h2 id="airflow-mlops-{name}"')
        assert start >= 0, f"no section for airflow-mlops {name}"
        end = html.find("<h2 ", start + 1)
        section = html[start : end if end > 0 else len(html)]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flag = action.option_strings[-1] if action.option_strings else action.metavar
            assert f"<code>{flag}" in section or f", {flag}" in section, f"airflow-mlops {name}: {flag} not on the page"
            assert html_escape(action.help, quote=False) in section, f"airflow-mlops {name} {flag}: its help is not on the page"


def test_the_readme_shows_only_code_the_examples_ship() -> None:
    """Each code block of the README is a verbatim part of the example file linked just before it; the e2e
    suite runs that file as shipped (tests/e2e/test_team_dag.py), so the README shows code that runs."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = list(re.finditer(r"```python\n(.*?)```", readme, re.DOTALL))
    assert blocks, "the README shows no team example"
    for block in blocks:
        links = re.findall(r"\]\((examples/[\w./-]+\.py)\)", readme[: block.start()])
        assert links, "a README code block without a link to the example file it comes from"
        shipped = (REPO / links[-1]).read_text(encoding="utf-8")
        assert block.group(1) in shipped, f"the README's code is not a part of {links[-1]} as shipped"

"""The plugin is registered once, by the entry point, whether or not the repo's plugins/ folder is
mounted too; importing it stays cheap for workers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PROBE = r"""
import json, sys
from airflow import plugins_manager
plugins, errors = plugins_manager._get_plugins()
mlops = [p for p in plugins if p.name == "mlops"]
apps, _ = plugins_manager.get_fastapi_plugins()
print(json.dumps({"count": len(mlops), "source": str(mlops[0].source) if mlops else None, "errors": errors,
                  "mounts": [a["url_prefix"] for a in apps], "hrefs": [v["href"] for p in mlops for v in p.external_views]}))
"""


def _plugins(plugins_folder: Path, **env_vars: str) -> dict:
    env_cmd = [sys.executable, "-c", PROBE]
    import os

    env = os.environ | {"AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder)} | env_vars
    out = subprocess.run(env_cmd, capture_output=True, text=True, timeout=180, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # spawns a process
def test_entry_point_and_the_repo_plugins_folder_give_one_plugin_and_no_import_error() -> None:
    result = _plugins(REPO / "plugins")

    assert result["count"] == 1 and "airflow.plugins" in result["source"]
    assert result["errors"] == {}
    assert result["mounts"] == ["/mlops"]
    assert result["hrefs"] == ["/mlops/"]


@pytest.mark.slow  # spawns a process
def test_the_navigation_link_follows_the_api_base_url() -> None:
    result = _plugins(REPO / "plugins", AIRFLOW__API__BASE_URL="https://airflow.example.com/team-a/")

    assert result["hrefs"] == ["/team-a/mlops/"]


@pytest.mark.slow  # spawns a process
def test_a_folder_module_that_always_exposes_the_class_is_skipped_harmlessly(tmp_path: Path) -> None:
    # An older or hand-written copy in a mounted plugins folder: Airflow loads the folder first, then
    # skips the entry point's plugin of the same name. Still one plugin and one mount.
    (tmp_path / "mlops_copy.py").write_text("from airflow_mlops.plugins.mlops_plugin import MlopsPlugin\n")

    result = _plugins(tmp_path)

    assert result["count"] == 1 and result["mounts"] == ["/mlops"]
    assert list(result["errors"].values()) == ["Plugin 'mlops' already registered, skipping"]


def test_the_folder_module_exposes_the_plugin_only_without_the_entry_point(monkeypatch) -> None:
    import airflow_mlops.plugins as package
    from airflow_mlops.plugins.mlops_plugin import MlopsPlugin

    assert package.entry_point_installed() and package.folder_plugin() is None
    monkeypatch.setattr(package, "entry_points", lambda group: [])
    assert package.folder_plugin() is MlopsPlugin


@pytest.mark.slow  # spawns a process
def test_importing_the_plugin_does_not_load_fastapi_or_the_api_server() -> None:
    code = (
        "import sys, airflow_mlops.plugins.mlops_plugin as m; "
        "print([x for x in ('fastapi', 'airflow.api_fastapi.core_api.security', 'mlflow', 'pandas') if x in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)

    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"

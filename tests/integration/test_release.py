"""The release artefacts: an sdist and a wheel that install into a fresh venv from the constraints
file and register the provider with Airflow."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import zipfile

import pytest

from tests.conftest import REPO, VENV_BIN


@pytest.mark.timeout(900)
def test_sdist_and_wheel_install_into_a_fresh_venv_and_airflow_lists_the_provider(tmp_path) -> None:
    dist = tmp_path / "dist"
    built = subprocess.run([str(VENV_BIN / "uv"), "build", "--out-dir", str(dist), str(REPO)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (sdist,) = dist.glob("airflow_mlops-*.tar.gz")
    (wheel,) = dist.glob("airflow_mlops-*-py3-none-any.whl")

    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "airflow_mlops/plugins/templates/mlops.html"} <= names
    assert not any(n.startswith(("tests/", "bench/", ".venv/")) for n in names)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"airflow_mlops/py.typed", "airflow_mlops/plugins/templates/mlops.html", "airflow_mlops/example_data/churn_spec.yaml"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata = archive_text(wheel, ".dist-info/METADATA")
    assert "License-Expression: Apache-2.0" in metadata and "Project-URL: Changelog," in metadata

    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV"))} | {"AIRFLOW_HOME": str(tmp_path / "home")}
    subprocess.run([str(VENV_BIN / "uv"), "venv", "--python", "3.11", str(venv)], check=True, capture_output=True, timeout=120, env=env)
    installed = subprocess.run(
        [str(VENV_BIN / "uv"), "pip", "install", "--python", str(venv / "bin" / "python"), str(wheel), "-c", str(REPO / "constraints.txt")],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]

    listed = subprocess.run([str(venv / "bin" / "airflow"), "providers", "list", "-o", "json"], capture_output=True, text=True, timeout=300, env=env)
    assert listed.returncode == 0, listed.stderr[-3000:]
    providers = {p["package_name"]: p["version"] for p in json.loads(listed.stdout)}
    assert providers["airflow-mlops"] == "0.1.0"
    cli = subprocess.run([str(venv / "bin" / "airflow-mlops"), "--help"], capture_output=True, text=True, timeout=120, env=env)
    assert cli.returncode == 0 and "infer-spec" in cli.stdout


def archive_text(wheel, suffix: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(suffix)]
        return archive.read(name).decode()

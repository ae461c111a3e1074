"""Bring-your-own-data fixtures: a real table from a PyPI package (Palmer penguins: string labels,
NaNs, categoricals) laid out as a team's pandas job writes it, with no ``_SUCCESS`` markers."""

from __future__ import annotations

import runpy
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.spec import FeatureSpec
from tests.conftest import REPO

PENGUINS_SPEC = REPO / "examples" / "penguins_spec.yaml"


@pytest.fixture(scope="session")
def penguins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The penguins layout (examples/penguins_data.py): training/ and monthly/month=2009-0[1-3]/."""
    root = tmp_path_factory.mktemp("penguins")
    runpy.run_path(str(REPO / "examples" / "penguins_data.py"))["write_layout"](str(root))
    return root


@pytest.fixture
def model_name() -> str:
    return f"penguins_{uuid.uuid4().hex[:8]}"


def write_spec(tmp_path: Path, **changes: Any) -> str:
    """The penguins spec with top-level keys changed (``None`` removes a key); returns its path."""
    import yaml

    doc = FeatureSpec.load(str(PENGUINS_SPEC)).to_dict()
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    path = tmp_path / f"spec_{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    FeatureSpec.load(str(path))  # the variant is itself a valid spec
    return str(path)

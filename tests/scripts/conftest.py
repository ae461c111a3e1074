"""Load ``scripts/*.py`` as modules (they are files to run, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load(name: str, path: Path | None = None) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"mlops_script_{name}", path or SCRIPTS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module

"""The provider's operators, sensors, triggers, hooks and extra links, found by walking its modules.

What the provider info must register (tests/unit/test_provider_info.py) and the docs reference must
document (tests/unit/test_docs.py): a class added to any module below these packages is found here
without anyone listing it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import NamedTuple

#: The packages walked, every module below them imported.
PACKAGES = ("airflow_mlops.operators", "airflow_mlops.sensors", "airflow_mlops.triggers", "airflow_mlops.hooks", "airflow_mlops.links")
#: Bases that never run as such (no task, trigger or link is one of them): documented, not registered.
ABSTRACT = frozenset(
    {
        "airflow_mlops.operators.base.MlopsBaseOperator",
        "airflow_mlops.operators.base.MlopsTableOperator",
        "airflow_mlops.operators.base.PeriodicCheckOperator",
        "airflow_mlops.sensors.base.MlopsDeferrableSensor",
        "airflow_mlops.links.mlflow.XComUrlLink",
        "airflow_mlops.links.reports.ReportLink",
    }
)


class ProviderClass(NamedTuple):
    """One class of the provider: ``module.Class``, its module, the provider-info section it belongs
    to (``operators``, ``sensors``, ``triggers``, ``hooks`` or ``extra-links``) and the class."""

    path: str
    module: str
    section: str
    cls: type

    @property
    def abstract(self) -> bool:
        return self.path in ABSTRACT


def _section(cls: type) -> str | None:
    from airflow.sdk import BaseHook, BaseOperator, BaseOperatorLink, BaseSensorOperator
    from airflow.triggers.base import BaseTrigger

    # A sensor is an operator too: the narrower kind first.
    for base, section in (
        (BaseSensorOperator, "sensors"),
        (BaseOperator, "operators"),
        (BaseTrigger, "triggers"),
        (BaseHook, "hooks"),
        (BaseOperatorLink, "extra-links"),
    ):
        if issubclass(cls, base):
            return section
    return None


def provider_classes() -> list[ProviderClass]:
    """Every public class defined in a module below :data:`PACKAGES` that subclasses BaseOperator,
    BaseSensorOperator, BaseTrigger, BaseHook or BaseOperatorLink."""
    found = []
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if not inspect.isclass(obj) or obj.__module__ != module.__name__ or name.startswith("_"):
                    continue
                section = _section(obj)
                if section is not None:
                    found.append(ProviderClass(f"{module.__name__}.{name}", module.__name__, section, obj))
    return found

"""Shape controls for the parse benchmark: each reference DAG with this provider's operators and
sensors swapped for a stub built on Airflow's EmptyOperator.

A control keeps everything else of the DAG (its params form, default_args, @task functions, branch,
HITL operator, mapping and dependencies), so parsing it measures what Airflow itself spends on a DAG
of that shape; the difference to the real file is what importing and building this provider's
operators costs.
"""

from __future__ import annotations

import re
from pathlib import Path

_OUR_IMPORT = re.compile(r"^from airflow_mlops\.(?:operators|sensors)\.\w+ import (\w+)\n", re.MULTILINE)
# .partial() checks its keyword arguments against the operator's signature at parse time; the stub
# takes none of ours, so a control's partial() keeps only the task_id.
_PARTIAL = re.compile(r"\.partial\(\s*task_id=(\"\w+\")[^)]*\)")
_STUB = '''from airflow.providers.standard.operators.empty import EmptyOperator as _Empty


class _Stub(_Empty):
    """Takes any of this provider's arguments and ignores them."""

    def __init__(self, *, task_id, retries=None, **ignored):
        super().__init__(task_id=task_id, **({"retries": retries} if retries is not None else {}))


'''


def write_control(dag_file: Path, out_dir: Path) -> Path:
    """Write the control of ``dag_file`` into ``out_dir``; return its path."""
    source = dag_file.read_text()
    names = _OUR_IMPORT.findall(source)
    if not names:
        raise ValueError(f"{dag_file} imports no operator or sensor of this provider")
    source = _OUR_IMPORT.sub("", source)
    source = _PARTIAL.sub(r".partial(task_id=\1)", source)
    source = source.replace('dag_id="', 'dag_id="control_')
    last_import = list(re.finditer(r"^(?:from \S+ import [^(\n]+|import \S+)\n", source, re.MULTILINE))[-1].end()
    aliases = "".join(f"{name} = _Stub\n" for name in names)
    control = out_dir / f"control_{dag_file.name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    control.write_text(source[:last_import] + "\n" + _STUB + aliases + source[last_import:])
    return control

"""MkDocs hooks (``hooks:`` in mkdocs.yml): the parts of the site generated from the code at build time.

- ``<!-- mlops:config-options -->``: the ``[mlops]`` options, from ``airflow_mlops/get_provider_info.py``.
- ``<!-- mlops:connection-fields -->``: the ``mlflow`` connection form, from the same provider info.
- ``<!-- mlops:compose-services -->``: the services of ``docker-compose.yaml``.
- ``<!-- mlops:cli -->``: the ``airflow-mlops`` command line, from the argparse parser of ``airflow_mlops/cli.py``.
- ``<!-- mlops:dag <dag_id> -->``: a reference DAG's task graph (mermaid) and task table, from the DAG
  objects Airflow builds when it parses ``dags/*.py`` (one subprocess per build, ~2 s, offline, with
  a throwaway ``AIRFLOW_HOME``). Every reference DAG must be placed on a page, or the build fails.

Run ``python docs/hooks.py dags/*.py`` to print what the DAG parse returns (JSON).
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import json
import os
import re
import subprocess  # nosec B404: runs this file with the same interpreter to parse the DAGs
import sys
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent
DAG_MARKER = re.compile(r"<!-- mlops:dag (\S+) -->")
# Sphinx roles in docstrings (``:class:`~airflow_mlops.x.Y` ``), which mkdocstrings leaves as text.
ROLE = re.compile(r":(?:class|mod|func|meth|attr|exc|data):<code>(~?)([\w.]+)</code>")
_dags: dict[str, dict[str, Any]] | None = None
_placed: set[str] = set()


def _provider_info() -> dict[str, Any]:
    """The provider info of this checkout, loaded from its file (no package import, no Airflow)."""
    spec = importlib.util.spec_from_file_location("_mlops_docs_provider_info", ROOT / "airflow_mlops" / "get_provider_info.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    info: dict[str, Any] = module.get_provider_info()
    return info


def _code(text: Any) -> str:
    """Text for a code span in a table cell (the tables extension leaves pipes in code spans alone)."""
    return "" if text is None else str(text).replace("\n", " ")


def _cell(text: Any) -> str:
    """Prose for a table cell (``<data_root>`` is text, not an HTML tag)."""
    return html.escape(_code(text), quote=False).replace("|", "\\|")


def config_options_table() -> str:
    options = _provider_info()["config"]["mlops"]["options"]
    rows = ["| option | environment variable | type | default | example | description |", "|---|---|---|---|---|---|"]
    for name, opt in options.items():
        default = f"`{opt['default']}`" if opt.get("default") is not None else "see description"
        rows.append(
            f'| <span id="option-{name}"></span>`{name}` | `AIRFLOW__MLOPS__{name.upper()}` | {opt["type"]} | {default} '
            f"| `{_code(opt['example'])}` | {_cell(opt['description'])} |"
        )
    return "\n".join(rows)


def connection_fields_table() -> str:
    rows = []
    for conn in _provider_info()["connection-types"]:
        behaviour = conn.get("ui-field-behaviour", {})
        labels = behaviour.get("relabeling", {})
        placeholders = behaviour.get("placeholders", {})
        hidden = behaviour.get("hidden-fields", [])
        rows += [
            f"Connection type `{conn['connection-type']}` (hook `{conn['hook-class-name']}`); hidden fields: "
            + (", ".join(f"`{f}`" for f in hidden) or "none")
            + ".",
            "",
            "| field | label | placeholder / description |",
            "|---|---|---|",
        ]
        for field, label in labels.items():
            rows.append(f"| `{field}` | {_cell(label)} | {_cell(placeholders.get(field, ''))} |")
        for field, spec in conn.get("conn-fields", {}).items():
            secret = " (masked)" if spec.get("schema", {}).get("format") == "password" else ""  # nosec B105: a form flag
            rows.append(f"| extra `{field}` | {_cell(spec['label'])}{secret} | {_cell(spec.get('description', ''))} |")
        rows.append("")
    return "\n".join(rows)


def compose_services_table() -> str:
    import yaml

    services = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]
    rows = ["| service | image | command | ports | waits for | health check |", "|---|---|---|---|---|---|"]
    for name, svc in services.items():
        command = svc.get("command") or svc.get("entrypoint")
        if not command:
            command_cell = "-"
        elif isinstance(command, list) or len(command) > 40:
            command_cell = "a shell script (see the file)"
        else:
            command_cell = f"`{command}`"
        depends = svc.get("depends_on") or {}
        if isinstance(depends, dict):
            waits = ", ".join(f"`{d}` ({(c or {}).get('condition', 'started').replace('service_', '')})" for d, c in depends.items())
        else:
            waits = ", ".join(f"`{d}`" for d in depends)
        image = f"`{svc.get('image', '')}`" + (" (built from `Dockerfile`)" if svc.get("build") else "")
        ports = ", ".join(f"`{p}`" for p in svc.get("ports", [])) or "-"
        health = "yes" if svc.get("healthcheck") else "-"
        rows.append(f"| `{name}` | {image} | {command_cell} | {ports} | {waits or '-'} | {health} |")
    return "\n".join(rows)


def _cli_parser() -> argparse.ArgumentParser:
    """The console command's parser, loaded from its file: the module imports only the standard library
    at its top (the commands import what they need when they run), so nothing heavy loads here."""
    spec = importlib.util.spec_from_file_location("_mlops_docs_cli", ROOT / "airflow_mlops" / "cli.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    parser: argparse.ArgumentParser = module._parser()
    return parser


def cli_reference() -> str:
    """One section per subcommand: its summary, description, usage and a table of its arguments."""
    parser = _cli_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {a.dest: a.help for a in commands._choices_actions}
    lines = [_cell(parser.description), ""]
    lines += [f"- [`{parser.prog} {name}`](#{parser.prog}-{name}): {_cell(summaries.get(name, ''))}" for name in commands.choices]
    for name, sub in commands.choices.items():
        # A fixed width: argparse otherwise wraps the usage to the terminal of whoever builds the site.
        sub.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
        formatter = sub._get_formatter()
        lines += ["", f"## `{parser.prog} {name}`", "", _cell(sub.description or summaries.get(name, "")), ""]
        lines += ["```text", sub.format_usage().strip(), "```", ""]
        lines += ["| argument | required | what it is |", "|---|---|---|"]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            # argparse's own rendering of the flag and its metavar (``-o FILE, --output FILE``).
            invocation = formatter._format_action_invocation(action)
            required = "yes" if action.required else ""
            lines.append(f"| `{_code(invocation)}` | {required} | {_cell(action.help)} |")
    return "\n".join(lines)


def parse_dags() -> dict[str, dict[str, Any]]:
    """Every reference DAG, parsed by Airflow in a subprocess (cached for the build)."""
    global _dags
    if _dags is None:
        with tempfile.TemporaryDirectory(prefix="mlops-docs-") as home:
            env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
            files = sorted(str(p) for p in (ROOT / "dags").glob("*.py"))
            done = subprocess.run(  # nosec B603: this interpreter, this file, the repository's DAG files
                [sys.executable, __file__, *files], env=env, capture_output=True, text=True, timeout=120, check=False
            )
        if done.returncode != 0:
            raise PluginError(f"parsing the reference DAGs failed:\n{done.stderr[-4000:]}")
        _dags = json.loads(done.stdout)
    return _dags


def _node(task: dict[str, Any]) -> str:
    kind = task["kind"] + (" (mapped)" if task["mapped"] else "")
    return f'{task["id"]}["{task["id"]}<br/>{kind}"]'


def dag_section(dag_id: str) -> str:
    dags = parse_dags()
    if dag_id not in dags:
        raise PluginError(f"the docs name DAG {dag_id!r}, but dags/ defines only {sorted(dags)}")
    dag = dags[dag_id]
    lines = ["```mermaid", "flowchart LR"]
    lines += [f"    {_node(t)}" for t in dag["tasks"]]
    lines += [f"    {t['id']} --> {down}" for t in dag["tasks"] for down in t["downstream"]]
    lines += [
        "```",
        "",
        f"Schedule: {dag['schedule']}. Generated at build time from `{dag['file']}` as Airflow parses it.",
        "",
        "| task | operator | trigger rule | downstream |",
        "|---|---|---|---|",
    ]
    for t in dag["tasks"]:
        kind = f"`{t['kind']}`" + (" (mapped)" if t["mapped"] else "")
        down = ", ".join(f"`{d}`" for d in t["downstream"]) or "-"
        lines.append(f"| `{t['id']}` | {kind} | `{t['trigger_rule']}` | {down} |")
    if dag["params"]:
        lines += ["", "Trigger form (`params`):", "", "| param | title | default | schema | description |", "|---|---|---|---|---|"]
        for p in dag["params"]:
            schema = ", ".join(f"{k}={json.dumps(v)}" for k, v in p["schema"].items())
            lines.append(
                f"| `{p['name']}` | {_cell(p['title'])} | `{_code(json.dumps(p['default']))}` | `{_code(schema)}` | {_cell(p['description'])} |"
            )
    return "\n".join(lines)


GENERATED = {
    "<!-- mlops:config-options -->": config_options_table,
    "<!-- mlops:connection-fields -->": connection_fields_table,
    "<!-- mlops:compose-services -->": compose_services_table,
    "<!-- mlops:cli -->": cli_reference,
}


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    for marker, generate in GENERATED.items():
        if marker in markdown:
            markdown = markdown.replace(marker, generate())

    def dag(match: re.Match[str]) -> str:
        _placed.add(match.group(1))
        return dag_section(match.group(1))

    return DAG_MARKER.sub(dag, markdown)


def on_page_content(html_text: str, page: Any, **kwargs: Any) -> str:
    """Turn Sphinx roles into cross-references (an object not documented here stays plain code)."""

    def ref(match: re.Match[str]) -> str:
        short, target = match.groups()
        title = target.rsplit(".", 1)[-1] if short else target
        return f'<autoref identifier="{target}" optional><code>{title}</code></autoref>'

    return ROLE.sub(ref, html_text)


def on_env(env: Any, config: Any, files: Any) -> Any:
    """After every page's markdown: each reference DAG must have been placed on a page."""
    missing = sorted(set(parse_dags()) - _placed)
    if missing:
        raise PluginError(f"reference DAGs without a graph in the docs (add <!-- mlops:dag ID --> to dags.md): {missing}")
    return env


def on_startup(**kwargs: Any) -> None:
    global _dags
    _dags = None
    _placed.clear()


def _schedule(schedule: Any) -> str:
    """A DAG's schedule in words: a preset or cron expression, its assets, or both."""
    if schedule is None or isinstance(schedule, str):
        return f"`{schedule}`"
    parts = []
    timetable = getattr(schedule, "timetable", schedule)
    if getattr(timetable, "expression", None):
        parts.append(f"cron `{timetable.expression}` ({timetable.timezone})")
    condition = getattr(schedule, "asset_condition", None)
    if condition is not None:
        names = [getattr(a, "name", str(a)) for a in getattr(condition, "objects", [condition])]
        joint = " and " if type(condition).__name__ == "AssetAll" else " or "
        parts.append("an event on " + joint.join(f"`{n}`" for n in names))
    return " or ".join(parts) or f"`{schedule!r}`"


def _describe(paths: list[str]) -> dict[str, dict[str, Any]]:
    """Run in the subprocess: import each DAG file and describe the DAGs it defines."""
    from airflow.sdk import DAG

    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        spec = importlib.util.spec_from_file_location(f"_mlops_docs_dag_{Path(path).stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for dag in (v for v in vars(module).values() if isinstance(v, DAG)):
            tasks = []
            for task in dag.tasks:
                name = getattr(task, "operator_name", None) or task.task_type
                kind = name if name.startswith("@") else task.task_type
                tasks.append(
                    {
                        "id": task.task_id,
                        "kind": kind,
                        "mapped": type(task).__name__ == "MappedOperator",
                        "trigger_rule": str(getattr(task.trigger_rule, "value", task.trigger_rule)),
                        "downstream": sorted(task.downstream_task_ids),
                    }
                )
            params = []
            for name in dag.params:
                param = dag.params.get_param(name)
                schema = {k: v for k, v in param.schema.items() if k not in ("title", "description", "properties")}
                params.append(
                    {
                        "name": name,
                        "title": param.schema.get("title", ""),
                        "default": param.value,
                        "schema": schema,
                        "description": param.description or param.schema.get("description", ""),
                    }
                )
            out[dag.dag_id] = {
                "file": str(Path(path).resolve().relative_to(ROOT)),
                "description": dag.description or "",
                "params": params,
                "schedule": _schedule(dag.schedule),
                "tasks": tasks,
            }
    return out


if __name__ == "__main__":
    print(json.dumps(_describe(sys.argv[1:]), indent=1))

"""`make bench`: prepare data once, run every case in fresh processes, write bench/RESULTS.md.

Usage: python bench/run.py [--repeat 3] [--quick] [--cases inference,validation,parse]
--quick runs tiny sizes once (a smoke test of the harness, not figures to quote).
--cases runs only the cases whose result names start with one of the given prefixes (``inference``,
``inference_ours``, ``validation``, ``drift``, ``quality``, ``window``, ``parse``, ``control``, ``import``,
``training``, ``promotion``, ``end_to_end``; ``parse`` also selects the control DAGs), prepares only the data they
read, and writes results-subset.json instead of RESULTS.md (a subset is not the full report).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "data"
OUT = HERE / "out"


def child(case: str, *args: str, runs: int = 1) -> list[dict[str, Any]]:
    """Run ``case`` ``runs`` times in one fresh process; return one result per run."""
    env = os.environ | {"BENCH_OUT": str(OUT), "PYTHONPATH": str(REPO), "BENCH_REPEAT": str(runs)}
    proc = subprocess.run([sys.executable, str(HERE / "cases.py"), case, *args], capture_output=True, text=True, env=env, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or len(lines) != runs:
        raise RuntimeError(f"{case} {args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return [json.loads(line.removeprefix("RESULT ")) for line in lines]


def repeat(n: int, case: str, *args: str, fresh: bool = False) -> dict[str, Any]:
    """Median/min/max of ``n`` runs: in one process (the libraries' imports paid once, outside the
    clock anyway), or with ``fresh`` one process per run, for cases that measure cold imports."""
    return summarize([r for _ in range(n) for r in child(case, *args)] if fresh else child(case, *args, runs=n))


def interleaved(n: int, cases: tuple[str, str], *args: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``n`` runs of each of two cases, alternating, each in a fresh process; their summaries as :func:`repeat` gives."""
    runs: dict[str, list[dict[str, Any]]] = {case: [] for case in cases}
    for _ in range(n):
        for case in cases:
            runs[case] += child(case, *args)
    return tuple(summarize(runs[case]) for case in cases)  # type: ignore[return-value]


@contextlib.contextmanager
def mlflow_server(work: Path) -> Iterator[str]:
    """A real ``mlflow server`` (SQLite store, one worker) on a free loopback port; its URL."""
    import socket
    import urllib.request

    work.mkdir(parents=True, exist_ok=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    mlflow = Path(sys.executable).parent / "mlflow"
    argv = [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{work}/mlflow.db", "--artifacts-destination", str(work / "artifacts")]  # fmt: skip
    with open(work / "server.log", "wb") as log:
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)  # our own loopback server
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"mlflow server did not start: {(work / 'server.log').read_text()[-2000:]}") from None
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median/min/max of the runs' seconds (and medians of their other timings), the peak of their peaks."""
    seconds = [r["seconds"] for r in runs]
    out = dict(runs[-1])
    for key, value in out.items():  # sub-timings (fit, io_seconds, ...) as medians too
        if isinstance(value, float):
            out[key] = statistics.median(r[key] for r in runs)
    out |= {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds), "runs": len(runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}  # fmt: skip
    return out


def prepare(sizes: dict[str, int], training_rows: int, quick: bool) -> dict[str, str]:
    from airflow_mlops.example_data import churn

    root = DATA / ("quick" if quick else "full") / "churn"
    months: dict[str, str] = {}
    for month, rows in sizes.items():
        folder = root / "monthly" / f"month={month}"
        months[month] = f"file://{folder}"  # not as_uri(): it would percent-encode the "=" of month=
        if (folder / "_SUCCESS").exists():
            continue
        print(f"generating {rows} rows for {month}", flush=True)
        churn.generate_dataset(str(root), rows=rows, months=[month], training_rows=0, drift_from="2025-03", rows_per_file=1_000_000)
    if not (root / "training" / "_SUCCESS").exists():
        churn.generate_dataset(str(root), rows=1, months=[], training_rows=training_rows, rows_per_file=1_000_000)
    months["training"] = f"file://{root / 'training'}"
    return months


#: The training window case: this many months of 1M rows each (and their labels feed), the last one the holdout.
WINDOW_MONTHS = [f"2024-{m:02d}" for m in range(1, 13)]


def prepare_window(rows: int, quick: bool) -> str:
    """(Once) twelve months of features and their labels feed, for the training window case; their root."""
    from airflow_mlops.example_data import churn

    root = DATA / ("quick" if quick else "full") / "churn_window"
    if not all((root / kind / f"month={m}" / "_SUCCESS").exists() for kind in ("monthly", "labels") for m in WINDOW_MONTHS):
        print(f"generating {len(WINDOW_MONTHS)} months of {rows} rows for the training window", flush=True)
        churn.generate_dataset(str(root), rows=rows, months=WINDOW_MONTHS, training_rows=0, rows_per_file=1_000_000)
    return str(root)


def train_model(training: str) -> tuple[str, str]:
    from unittest import mock

    from airflow_mlops.example_data import SPEC_PATH
    from airflow_mlops.operators.training import MlflowTrainModelOperator

    ti = mock.MagicMock(dag_id="bench", task_id="train", run_id="bench-model", map_index=-1, try_number=1)
    result = MlflowTrainModelOperator(task_id="train", train_uri=training, spec_uri=str(SPEC_PATH), model_name="bench_churn").execute(
        {"ti": ti, "logical_date": None}
    )
    return "bench_churn", result["version"]


def fmt(r: dict[str, Any], rows: int | None = None) -> str:
    rate = f"{rows / r['median'] / 1000:.1f}k rows/s, " if rows else ""
    return f"{rate}{r['median']:.2f} s [{r['min']:.2f}-{r['max']:.2f}], {r['peak_rss_mb'] / 1024:.2f} GiB"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cases", default="", help="comma-separated result-name prefixes; default: every case")
    args = parser.parse_args()
    prefixes = tuple(p.strip() for p in args.cases.split(",") if p.strip())
    if "parse" in prefixes:
        prefixes += ("control",)  # a DAG's parse time is only read against its control

    def wanted(*names: str) -> bool:
        """Whether any of the result names ``names`` is selected by ``--cases`` (all are, without it)."""
        return not prefixes or any(name.startswith(prefixes) for name in names)

    def needed(*groups: str) -> bool:
        """Whether a selected case lies in one of ``groups`` (result-name prefixes): its data or model is needed."""
        return not prefixes or any(p.startswith(group) or group.startswith(p) for p in prefixes for group in groups)

    os.environ.setdefault("AIRFLOW_HOME", str(HERE / "airflow-home"))
    os.environ.update({"GX_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
                       "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"})  # fmt: skip
    n = 1 if args.quick else args.repeat
    scale = 100 if args.quick else 1
    sizes = {"2025-01": 1_000_000 // scale, "2025-02": 5_000_000 // scale, "2025-03": 10_000_000 // scale,
             "2025-04": 1_000_000 // scale, "2024-12": 1_000_000 // scale, "2024-11": 100_000 // scale,
             "2025-05": 100_000 // scale, "2025-06": 50_000_000 // scale}  # fmt: skip
    started = time.perf_counter()
    # Bytecode for the project, as a deployment has it (this machine kind sets PYTHONDONTWRITEBYTECODE;
    # `make install` compiles the installed packages): parse and import times must not include compiling.
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(REPO / d) for d in ("airflow_mlops", "dags", "bench"))], check=True)
    needs = {"2025-01": ("inference", "quality", "validation", "drift_ours_1M_undrifted", "drift_bare_1M_undrifted"),
             "2025-02": ("inference", "validation"), "2025-03": ("inference_ours_10M", "inference_naive_10M", "quality_ours_10M"),
             "2025-04": ("drift",), "2024-12": ("drift",), "2024-11": ("drift",), "2025-05": ("drift",),
             "2025-06": ("validation_ours_50M", "validation_floor_50M")}  # fmt: skip
    sizes = {month: rows for month, rows in sizes.items() if needed(*needs[month])}
    data = prepare(sizes, 200_000 // scale, args.quick)
    model, version = train_model(data["training"]) if needed("inference", "quality", "training") else ("", "")
    results: dict[str, Any] = {"sizes": sizes}

    for month, label in (("2025-01", "1M"), ("2025-02", "5M"), ("2025-03", "10M")):
        if month not in sizes:  # no case of this size selected
            continue
        rows = sizes[month]
        for variant in ("ours", "naive"):
            if not wanted(f"inference_{variant}_{label}"):
                continue
            results[f"inference_{variant}_{label}"] = r = repeat(n, f"inference_{variant}", data[month], str(OUT / f"{variant}-{label}"), model, version)
            print(f"inference {variant} {label}: {fmt(r, rows)}", flush=True)
    # Spec enforcement: (a) with and without its row checks on the same 5M rows, runs interleaved
    # (with, without, with, ...) so that a slow stretch of the machine does not land on one side.
    if wanted("inference_checked_5M", "inference_unchecked_5M"):
        results["inference_checked_5M"], results["inference_unchecked_5M"] = pair = interleaved(
            n + 1, ("inference_ours", "inference_unchecked"), data["2025-02"], str(OUT / "checks-5M"), model, version
        )
        print(f"inference ours with / without row checks 5M: {fmt(pair[0], sizes['2025-02'])} / {fmt(pair[1], sizes['2025-02'])}", flush=True)
    if wanted("inference_floor_1M"):
        results["inference_floor_1M"] = r = repeat(n, "inference_floor", data["2025-01"], str(OUT / "floor"), model, version)
        print(f"inference floor 1M: predict {fmt(r, sizes['2025-01'])}; read+write {sizes['2025-01'] / r['io_seconds'] / 1000:.0f}k rows/s", flush=True)

    for current, reference, label in (("2025-05", "2024-11", "100k"), ("2025-04", "2024-12", "1M")):
        for variant in ("ours", "bare"):
            if not wanted(f"drift_{variant}_{label}"):
                continue
            results[f"drift_{variant}_{label}"] = r = repeat(n, f"drift_{variant}", data[current], data[reference], "100000")
            print(f"drift {variant} {label}: {fmt(r)} drift={r['drift']} {r['columns']}", flush=True)
    for variant in ("ours", "bare"):  # agreement on an undrifted month (one run each)
        if not wanted(f"drift_{variant}_1M_undrifted"):
            continue
        results[f"drift_{variant}_1M_undrifted"] = r = child(f"drift_{variant}", data["2025-01"], data["2024-12"], "100000")[0]
        print(f"drift {variant} 1M undrifted: drift={r['drift']} {r['columns']}", flush=True)

    # Model quality on 1M scored rows + 1M labels (ours and bare Evidently), and ours on 10M + 10M: the
    # join runs out of core (DuckDB, bounded memory), so the figure to watch at 10M is the peak RSS.
    for month, label, variants in (("2025-01", "1M", ("ours", "bare")), ("2025-03", "10M", ("ours",))):
        for variant in variants:
            if not wanted(f"quality_{variant}_{label}"):
                continue
            results[f"quality_{variant}_{label}"] = r = repeat(n, f"quality_{variant}", data[month], model, version)
            print(f"quality {variant} {label}: {fmt(r)} {r['metrics']}", flush=True)

    if wanted("window_ours_12x1M"):  # the training window: 11 months + the holdout month, each 1M rows + labels
        root = prepare_window(1_000_000 // scale, args.quick)
        results["window_ours_12x1M"] = r = repeat(n, "window_ours", root, WINDOW_MONTHS[-1], str(len(WINDOW_MONTHS) - 1))
        print(f"window 12 x {1_000_000 // scale} rows: {fmt(r)} {r['rows']}", flush=True)

    for month, label in (("2025-01", "1M"), ("2025-02", "5M")):
        for variant in ("floor", "ours", "gx", "bare"):
            if not wanted(f"validation_{variant}_{label}"):
                continue
            results[f"validation_{variant}_{label}"] = r = repeat(n, f"validation_{variant}", data[month], "500000")  # the operator default
            print(f"validation {variant} {label}: {fmt(r)} failed={r.get('failed', r.get('broken'))}", flush=True)
    for variant in ("floor", "ours"):  # 50M rows, one run each: the engine's bounded memory at scale
        if "2025-06" in sizes and wanted(f"validation_{variant}_50M"):
            results[f"validation_{variant}_50M"] = r = repeat(1, f"validation_{variant}", data["2025-06"], "500000")
            print(f"validation {variant} 50M: {fmt(r)} failed={r.get('failed', r.get('broken'))}", flush=True)

    for baseline in ("trivial", "trivial_taskflow"):
        if not wanted(f"parse_{baseline}"):
            continue
        results[f"parse_{baseline}"] = r = repeat(max(n, 5), "parse", str(HERE / f"{baseline}_dag.py"), fresh=True)
        print(f"parse {baseline}: {fmt(r)}", flush=True)
    from bench.control_dags import write_control

    for dag_file in sorted((REPO / "dags").glob("*.py")):
        if wanted(f"parse_{dag_file.stem}"):
            results[f"parse_{dag_file.stem}"] = r = repeat(max(n, 5), "parse", str(dag_file), fresh=True)
            print(f"parse {dag_file.stem}: {fmt(r)}", flush=True)
        if not wanted(f"control_{dag_file.stem}"):
            continue
        control = write_control(dag_file, OUT / "control")
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(control)], check=True)
        results[f"control_{dag_file.stem}"] = r = repeat(max(n, 5), "parse", str(control), fresh=True)
        print(f"parse {control.stem}: {fmt(r)}", flush=True)
    if wanted("import_provider"):
        results["import_provider"] = r = repeat(max(n, 5), "import_provider", fresh=True)
        print(f"import airflow_mlops + operators: {fmt(r)}", flush=True)

    if wanted("training"):
        results["training"] = r = repeat(n, "training", data["training"], model)
        print(f"training: {fmt(r)} fit={r['fit']:.2f} logging={r['mlflow_logging']:.2f}", flush=True)

    # Promotion: the registry lock's cost, side by side with the same registry calls without it (what a
    # promotion serialised by the one-slot pool alone costs), runs alternating, on a real mlflow server.
    if wanted("promotion_locked", "promotion_unlocked"):
        with mlflow_server(OUT / "promotion-mlflow") as url:
            promotions: dict[str, list[dict[str, Any]]] = {"1": [], "0": []}
            for _ in range(n):
                for locked in ("1", "0"):
                    promotions[locked] += child("promotion", url, locked, "10")
        results["promotion_locked"], results["promotion_unlocked"] = summarize(promotions["1"]), summarize(promotions["0"])
        print(f"promotion with / without the lock: {fmt(results['promotion_locked'])} / {fmt(results['promotion_unlocked'])}", flush=True)

    if wanted("end_to_end"):
        results["end_to_end"] = r = json.loads(subprocess.run(
            [sys.executable, str(HERE / "end_to_end.py")], capture_output=True, text=True, check=True, cwd=REPO,
            env=os.environ | {"PYTHONPATH": str(REPO), "AIRFLOW_HOME": str(OUT / "e2e-home")},
        ).stdout.strip().splitlines()[-1])  # fmt: skip
        print(f"end to end: {r}", flush=True)

    results["total_minutes"] = (time.perf_counter() - started) / 60
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    results["cases"] = list(prefixes)
    name = "results-quick.json" if args.quick else "results-subset.json" if prefixes else "results.json"
    (HERE / name).write_text(json.dumps(results, indent=2, default=str))
    if not args.quick and not prefixes:
        from bench.report import write_report

        write_report(results, HERE / "RESULTS.md")
    print(f"done in {results['total_minutes']:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

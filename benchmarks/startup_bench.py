"""Start-up time (issue 27, "Start fast"): ``import scanpy`` vs ``import sasp_atlas`` vs the public
API (``from sasp_atlas import score, load_dataset, load_user_data``) vs ``sasp-atlas --help``, each
in a fresh interpreter, the median of ``--runs`` wall-clock runs; writes ``benchmarks/results/startup.json``.

Targets: the public API costs <= 0.3 s more than ``import scanpy``; ``--help`` takes under half the
time of ``import scanpy`` (it imports neither scanpy nor numba, which the JSON records too). Each is
reported by wall time, CPU time and (the API's extra cost) ``-X importtime`` own times of the modules
scanpy does not load, the one measure that holds when other processes share the cores.

    python benchmarks/startup_bench.py [--runs 5] [--out benchmarks/results/startup.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: children run as an installed package does: with bytecode caches (PYTHONDONTWRITEBYTECODE would
#: recompile the package's sources on every start, while scanpy's wheel has its .pyc files)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
HEAVY = ("scanpy", "numba", "dask", "distributed", "jsonschema", "liana", "papermill", "playwright")
CASES = {
    "import scanpy": "import scanpy",
    "import sasp_atlas": "import sasp_atlas",
    "from sasp_atlas import score, load_dataset, load_user_data": "from sasp_atlas import score, load_dataset, load_user_data",
    "sasp-atlas --help": "import sys; sys.argv = ['sasp-atlas', '--help']; from sasp_atlas.cli import main; main()",
}


def _run(code: str) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of a fresh interpreter running ``code``: CPU time is
    what the targets compare when other processes share the cores (wall time then measures the queue)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code], check=False, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _loaded(code: str) -> list[str]:
    probe = (
        f"import sys, atexit\natexit.register(lambda: sys.__stderr__.write(repr(sorted(m for m in {HEAVY!r} "
        f"if m in sys.modules))))\n{code}"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False, env=ENV)
    return eval(proc.stderr.strip().splitlines()[-1]) if proc.stderr.strip() else []  # noqa: S307 - our own repr


def _import_times(code: str) -> dict[str, int]:
    """``python -X importtime``: each module's own import time (microseconds)."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=False, env=ENV
    ).stderr
    out = {}
    for line in err.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            own, _, name = line[len("import time:") :].split("|")
            if own.strip().isdigit():
                out[name.strip()] = int(own)
    return out


def _extra_import_seconds(code: str) -> float:
    """Own import time of the modules ``code`` loads beyond ``import scanpy`` (-X importtime): the
    package's own cost, robust to other processes on the cores (wall time is not)."""
    base, api = _import_times("import scanpy"), _import_times(code)
    return sum(v for k, v in api.items() if k not in base) / 1e6


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "startup.json"))
    parser.add_argument(
        "--warmup",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one untimed start of each case first, to warm the file cache (--no-warmup: smoke runs)",
    )
    args = parser.parse_args(argv)
    if args.warmup:
        _run("pass")  # warm the file cache
        for code in CASES.values():
            _run(code)
    results = {}
    for _ in range(args.runs):  # interleaved, so load from other processes hits every case alike
        for name, code in CASES.items():
            results.setdefault(name, []).append(_run(code))
    out = {"python": platform.python_version(), "runs": args.runs, "load_average": os.getloadavg(), "cases": {}}
    for name, times in results.items():
        walls, cpus = [w for w, _ in times], [c for _, c in times]
        out["cases"][name] = {
            "median_s": round(statistics.median(walls), 3),
            "median_cpu_s": round(statistics.median(cpus), 3),
            "runs_s": [round(t, 3) for t in walls],
            "runs_cpu_s": [round(t, 3) for t in cpus],
            "heavy_modules_loaded": _loaded(CASES[name]),
        }
    out["targets"] = {}
    for kind in ("median_s", "median_cpu_s"):
        scanpy = out["cases"]["import scanpy"][kind]
        api = out["cases"]["from sasp_atlas import score, load_dataset, load_user_data"][kind]
        helptime = out["cases"]["sasp-atlas --help"][kind]
        out["targets"][kind] = {
            "api_minus_scanpy_s": round(api - scanpy, 3),
            "api_target_met": api - scanpy <= 0.3,
            "help_over_scanpy": round(helptime / scanpy, 3),
            "help_target_met": helptime < scanpy / 2,
        }
    api_code = CASES["from sasp_atlas import score, load_dataset, load_user_data"]
    extra = [_extra_import_seconds(api_code) for _ in range(args.runs)]
    out["targets"]["importtime_extra_over_scanpy"] = {
        "median_s": round(statistics.median(extra), 3),
        "runs_s": [round(x, 3) for x in extra],
        "api_target_met": statistics.median(extra) <= 0.3,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""`make bench`: run every bench/bench_*.py and write bench/results/<part>.json.

Each benchmark module exposes `run() -> dict`. The result is stored with a description of the
machine it ran on, so a number is never quoted without the hardware behind it.

    python3 bench/run.py [PART ...]      # e.g. `python3 bench/run.py hook` runs bench_hook.py only
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else "unavailable"


def describe_machine() -> dict[str, object]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except (OSError, ValueError):
        pass
    os_name = "unknown"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "os": os_name,
        "kernel": platform.release(),
        "python": platform.python_version(),
        # slurmd -V needs no slurm.conf (sinfo --version tries to find a controller first)
        "slurm": _first_line(["slurmd", "-V"]),
        "gcc": _first_line(["gcc", "--version"]),
        "gpu": "none (simulated GPU from build/fakegpu)",
        "git_commit": _first_line(["git", "-C", str(BENCH_DIR), "rev-parse", "--short", "HEAD"]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def main(argv: list[str]) -> int:
    wanted = set(argv)
    modules = sorted(BENCH_DIR.glob("bench_*.py"))
    if wanted:
        modules = [m for m in modules if m.stem.removeprefix("bench_") in wanted]
        missing = wanted - {m.stem.removeprefix("bench_") for m in modules}
        if missing:
            print(f"bench: no benchmark named {', '.join(sorted(missing))}", file=sys.stderr)
            return 2
    RESULTS_DIR.mkdir(exist_ok=True)
    machine = describe_machine()
    failed = 0
    for path in modules:
        part = path.stem.removeprefix("bench_")
        print(f"bench: {part} ...", flush=True)
        spec = importlib.util.spec_from_file_location(f"bench_{part}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        started = time.monotonic()
        try:
            spec.loader.exec_module(module)
            results = module.run()
        except Exception:
            traceback.print_exc()
            print(f"bench: {part} FAILED", file=sys.stderr)
            failed += 1
            continue
        doc = {
            "benchmark": part,
            "command": f"python3 bench/run.py {part}",
            "seconds": round(time.monotonic() - started, 1),
            "machine": machine,
            "results": results,
        }
        out = RESULTS_DIR / f"{part}.json"
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        tmp.replace(out)
        print(f"bench: {part} done in {doc['seconds']} s -> {out.relative_to(BENCH_DIR.parent)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Benchmark of the simulated GPU itself (native/fakegpu): what its calls cost, and how
closely a program's waits follow simulated kernel time. Baselines for the hook's overhead.

    python3 bench/run.py fakegpu
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("VGPU_FAKEGPU_BUILD", str(REPO / "build" / "fakegpu")))
CALLS = 200_000
REPEATS = 5


def _run(args: list[str], env: dict[str, str]) -> str:
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=True)
    return out.stdout


def run() -> dict[str, object]:
    prog = BUILD / "test-drv-api"
    if not prog.is_file():
        return {"skipped": f"{prog} not built (make -C native/fakegpu)"}
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "bench.state"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAKEGPU_")}
        env.update({"FAKEGPU_STATE": str(state), "LD_LIBRARY_PATH": str(BUILD)})
        _run([str(BUILD / "fakegpu-ctl"), "create", "--count", "1", "--mem", "80G"], env)
        calls = [json.loads(_run([str(prog), "bench", str(CALLS)], env)) for _ in range(REPEATS)]
        # 20 kernels of 10 ms queued, then one sync: wall time beyond the simulated 200 ms
        overshoot_ms = []
        for _ in range(REPEATS):
            fields = dict(p.split("=", 1) for p in
                          _run([str(prog), "launch", "10000000", "20"], env).split() if "=" in p)
            overshoot_ms.append((float(fields["total_s"]) - 0.2) * 1e3)
        dump_s = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            _run([str(BUILD / "fakegpu-dump")], env)
            dump_s.append(time.perf_counter() - t0)

    def med(key: str) -> float:
        return round(statistics.median(float(c[key]) for c in calls), 1)

    return {
        "what": "per-call cost of the fake driver (no hook), median of "
                f"{REPEATS} runs of {CALLS} calls; sync overshoot over 200 ms of simulated work",
        "command": "python3 bench/run.py fakegpu",
        "mem_get_info_ns": med("mem_get_info_ns"),
        "launch_ns": med("launch_ns"),
        "alloc_free_1mib_ns": med("alloc_free_ns"),
        "sync_overshoot_ms_median": round(statistics.median(overshoot_ms), 3),
        "sync_overshoot_ms_max": round(max(overshoot_ms), 3),
        "dump_ms_median": round(statistics.median(dump_s) * 1e3, 2),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

#!/usr/bin/env python3
"""One control cycle of the policy daemon (policy evaluation + action planning) on a synthetic
snapshot of 1,000 nodes x 8 GPUs with 20,000 jobs. Goals: < 200 ms and < 300 MB.

Run alone: `python3 bench/bench_daemon.py` (prints JSON); `make bench` stores it in
bench/results/daemon.json. The measurement runs in a fresh child process so that its peak RSS
is the daemon-equivalent footprint (interpreter + snapshot + plan), not the bench runner's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

NODES, GPUS_PER_NODE, JOBS, REPEATS = 1000, 8, 20000, 15
GOAL_MS, GOAL_MB = 200.0, 300.0


def measure() -> dict[str, Any]:
    import gc
    import resource
    import statistics
    import time
    import tracemalloc

    from slurm_vgpu.policies.decide.config import (
        BackfillConfig,
        PackingConfig,
        PolicyConfig,
        ShareConfig,
    )
    from slurm_vgpu.policies.decide.planner import plan_cycle
    from slurm_vgpu.policies.sim.synthetic import synthetic_cluster

    rss_start_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    snapshot = synthetic_cluster(NODES, GPUS_PER_NODE, JOBS)
    build_s = time.perf_counter() - t0
    cfg = PolicyConfig(
        share=ShareConfig(),
        backfill=BackfillConfig(enabled=True, preemptible_partitions=("scavenger",)),
        packing=PackingConfig(enabled=True),
    )
    plan = plan_cycle(snapshot, cfg)  # warm-up
    times = []
    for _ in range(REPEATS):
        gc.collect()
        t0 = time.perf_counter()
        plan = plan_cycle(snapshot, cfg)
        times.append((time.perf_counter() - t0) * 1000)
    tracemalloc.start()
    plan_cycle(snapshot, cfg)
    _, cycle_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    # Observation side, for scale: parsing `squeue --json` for the same 20,000 jobs (22.05
    # prints every job; the daemon filters its node's).
    from slurm_vgpu.policies.slurm.slurm_client import parse_squeue_json

    doc = {"jobs": [{"job_id": j.job_id, "job_state": "RUNNING", "nodes": j.node,
                     "gres_detail": [f"vgpu(CNT:{j.vgpu_slices})"], "partition": j.partition,
                     "qos": j.qos, "user_id": j.uid, "start_time": int(j.start_time)}
                    for j in snapshot.jobs]}
    t0 = time.perf_counter()
    parsed = parse_squeue_json(doc)
    parse_ms = (time.perf_counter() - t0) * 1000
    assert len(parsed) == len(snapshot.jobs)
    t0 = time.perf_counter()
    mine = parse_squeue_json(doc, ["node0007"])  # what one node's daemon does
    node_parse_ms = (time.perf_counter() - t0) * 1000
    assert mine and all(set(j.vgpu_per_node) == {"node0007"} for j in mine)
    kinds: dict[str, int] = {}
    for a in plan.actions:
        kinds[type(a).__name__] = kinds.get(type(a).__name__, 0) + 1
    times.sort()
    cycle_ms = statistics.median(times)
    rss_mb = rss_peak_kib / 1024
    return {
        "workload": {"nodes": NODES, "gpus_per_node": GPUS_PER_NODE,
                     "jobs": len(snapshot.jobs), "repeats": REPEATS},
        "cycle_ms_median": round(cycle_ms, 1),
        "cycle_ms_min": round(times[0], 1),
        "cycle_ms_max": round(times[-1], 1),
        "cycle_alloc_peak_mb": round(cycle_peak / 2**20, 1),
        "process_peak_rss_mb": round(rss_mb, 1),
        "interpreter_rss_mb_at_start": round(rss_start_kib / 1024, 1),
        "snapshot_build_s": round(build_s, 2),
        "squeue_json_parse_ms_20000_jobs": round(parse_ms, 1),
        "squeue_json_parse_ms_one_node_of_20000_jobs": round(node_parse_ms, 1),
        "actions": kinds,
        "goal_cycle_ms": GOAL_MS,
        "goal_memory_mb": GOAL_MB,
        "meets_goal": cycle_ms < GOAL_MS and rss_mb < GOAL_MB,
        "command": "python3 bench/bench_daemon.py",
    }


def run() -> dict[str, object]:
    """Entry point for bench/run.py: measure in a child process, return its JSON."""
    out = subprocess.run(
        [sys.executable, __file__, "--child"], capture_output=True, text=True, timeout=600,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


if __name__ == "__main__":
    if "--child" in sys.argv:
        print(json.dumps(measure()))
    else:
        print(json.dumps(run(), indent=2))

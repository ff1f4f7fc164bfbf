#!/usr/bin/env python3
"""The controller's placement steering at scale: one Steerer cycle at 1,000 nodes x 8 GPUs
with 20,000 pending jobs, of which `--held` are new jobs job_submit.lua holds for it.

    python3 bench/bench_steering.py [--nodes 1000] [--pending 20000] [--held 50]
        [--cycles 20] [--out bench/results/steering.json]

What is timed is the controller's own work in a cycle: parsing squeue's and sinfo's output
(texts built here, in the format the commands print), the agents' reports into arrays, the
mix, fragmentation of every node, and one choice per held job; the `scontrol update` calls
are not run (one per held job; about 10 ms of CLI each). The Slurm reads themselves are one
job-info RPC (`squeue -t PD`) and one node-info RPC (`sinfo -N`); their time on a real
slurmctld is bench_scale.py reader's (squeue's formatted read: about 11 ms per 1,000 jobs on
Slurm 22.05, bench/results/scale-reader.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from bench_scale import machine  # noqa: E402

from slurm_vgpu.policies.decide.config import SteeringConfig  # noqa: E402
from slurm_vgpu.policies.service.exchange import GpuTenants, NodeReport  # noqa: E402
from slurm_vgpu.policies.service.steerer import Steerer  # noqa: E402
from slurm_vgpu.policies.slurm.steering_reads import SteeringSlurm  # noqa: E402


def iso(t: float) -> str:
    return datetime.fromtimestamp(t).isoformat(timespec="seconds")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pending", type=int, default=20000)
    ap.add_argument("--held", type=int, default=50)
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    rng = np.random.default_rng(1)
    now = time.time()
    names = [f"gpu{i:05d}" for i in range(a.nodes)]
    shapes = [1, 2, 3, 5, 10, 20]
    reports: dict[str, NodeReport] = {}
    sinfo_lines = []
    for n in names:
        used = [int(x) for x in rng.choice([0, 0, 3, 5, 7, 10], size=8)]
        reports[n] = NodeReport(n, now, 80, gpus=tuple(GpuTenants(10, u, ()) for u in used))
        alloc = int(rng.integers(0, 64))
        sinfo_lines.append(f"{n}|{alloc}/{64 - alloc}/0/64|512000|{alloc * 4000}|mix|gpu*")
    sinfo = "\n".join(sinfo_lines) + "\n"

    def squeue_text(first_id: int) -> str:
        lines = []
        for i in range(a.pending - a.held):  # waiting for resources, not ours
            lines.append(f"{i + 1}|{iso(now - 3600)}|{iso(now - 3600)}|Resources||(null)|1|4|"
                         f"16G|gres:vgpu:{shapes[i % len(shapes)]}|gpu")
        for k in range(a.held):  # new, held by the lua
            lines.append(f"{first_id + k}|{iso(now)}|{iso(now + 10)}|BeginTime||(null)|1|"
                         f"{1 + k % 8}|8G|gres:vgpu:{shapes[k % len(shapes)]}|gpu")
        return "\n".join(lines) + "\n"

    cycle_ids = [10_000_000 + c * a.held for c in range(a.cycles)]
    texts = {c: squeue_text(cycle_ids[c]) for c in range(a.cycles)}
    current = [0]
    steered = [0]

    def run(tool: str, *args: str) -> str:
        if tool == "squeue":
            return texts[current[0]]
        if tool == "sinfo":
            return sinfo
        steered[0] += 1  # scontrol update: not run
        return ""

    work = Path("/tmp") / f"vgpu-bench-steering-{int(now)}"
    cfg = SteeringConfig(enabled=True, file=str(work / "steering"))
    steerer = Steerer(cfg, 5.0, SteeringSlurm(run),
                      lambda: now + 1, stale_after=30.0)
    seconds = []
    for c in range(a.cycles):
        current[0] = c
        t0 = time.perf_counter()
        steerer.cycle(reports, {})
        seconds.append(time.perf_counter() - t0)
        steerer.steered.clear()  # they started; the next cycle's held jobs are new ones
    result = {
        "bench": "steering", "machine": machine(),
        "nodes": a.nodes, "gpus_per_node": 8, "pending_jobs": a.pending,
        "held_jobs_per_cycle": a.held, "cycles": a.cycles,
        "cycle_seconds_median": round(statistics.median(seconds), 4),
        "cycle_seconds_max": round(max(seconds), 4),
        "per_held_job_ms": round(1000 * statistics.median(seconds[1:] or seconds) / a.held, 3),
        "steered": steerer.counts["steered"], "released": steerer.counts["released"],
        "goal": "a cycle at 1,000 nodes x 8 GPUs with 20,000 jobs under 200 ms",
        "not_timed": "the two Slurm reads (one RPC each) and one scontrol update per held job",
        "command": "python3 bench/bench_steering.py",
    }
    text = json.dumps(result, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()

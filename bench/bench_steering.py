#!/usr/bin/env python3
"""The controller's placement steering at scale: one Steerer cycle at 1,000 nodes x 8 GPUs
with 20,000 pending jobs, of which `--held` are new jobs job_submit.lua holds for it.

    python3 bench/bench_steering.py [--nodes 1000] [--pending 20000] [--held 50]
        [--read reader|squeue] [--cycles 20] [--out bench/results/steering.json]

What is timed is the controller's own work in a cycle: parsing the reads' output (texts built
here, in the format the commands print: `vgpu-slurm-read held`, which prints only the held
jobs, or with `--read squeue` squeue's line for every pending job; `scontrol show nodes -o`
and `scontrol show partitions -o`), the agents' reports into arrays, the mix, fragmentation
of every node, and one choice per held job; the `scontrol update` calls are not run (one per
held job; about 10 ms of CLI each). The reads themselves are one job-info RPC, one node-info
RPC and one partition-info RPC; their time on a real slurmctld is bench_scale.py's (`reader
--jobs 20000`: bench/results/scale-reader-20000.json; `sinfo --nodes 1000`:
bench/results/scale-sinfo-1000.json), added here as `reads_seconds` where those files are.
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


def _measured_reads(read: str) -> dict[str, float]:
    """The cycle's Slurm reads as bench_scale.py measured them on a loopback slurmctld at
    20,000 jobs and 1,000 nodes (best of 3 each), where those result files are."""
    results = REPO / "bench" / "results"
    try:
        jobs = json.loads((results / "scale-reader-20000.json").read_text())
        nodes = json.loads((results / "scale-sinfo-1000.json").read_text())
    except (OSError, ValueError):
        return {}
    pending = "vgpu_slurm_read_held" if read == "reader" else "squeue_steering_pending"
    return {pending: jobs[pending]["seconds_best_of_3"],
            "scontrol_nodes_oneliner": nodes["scontrol_nodes_oneliner"]["seconds_best_of_3"],
            "scontrol_partitions_oneliner":
                nodes["scontrol_partitions_oneliner"]["seconds_best_of_3"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pending", type=int, default=20000)
    ap.add_argument("--held", type=int, default=50)
    ap.add_argument("--read", choices=["reader", "squeue"], default="reader",
                    help="the pending read: vgpu-slurm-read held (installed: what the "
                         "controller uses) or squeue's every pending job")
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    rng = np.random.default_rng(1)
    now = time.time()
    names = [f"gpu{i:05d}" for i in range(a.nodes)]
    shapes = [1, 2, 3, 5, 10, 20]
    reports: dict[str, NodeReport] = {}
    node_allocs: list[tuple[str, int]] = []
    for n in names:
        used = [int(x) for x in rng.choice([0, 0, 3, 5, 7, 10], size=8)]
        reports[n] = NodeReport(n, now, 80, gpus=tuple(GpuTenants(10, u, ()) for u in used))
        node_allocs.append((n, int(rng.integers(0, 64))))

    def scontrol_node(n: str, alloc: int) -> str:
        return (f"NodeName={n} Arch=x86_64 CoresPerSocket=16 CPUAlloc={alloc} CPUEfctv=64 "
                f"CPUTot=64 CPULoad=1.00 AvailableFeatures=(null) ActiveFeatures=(null) "
                f"Gres=vgpu:80 NodeAddr={n} NodeHostName={n} Version=22.05.8 OS=Linux 6.1.0 "
                f"#1 SMP RealMemory=512000 AllocMem={alloc * 4000} FreeMem=400000 Sockets=2 "
                f"Boards=1 State=MIXED ThreadsPerCore=2 TmpDisk=0 Weight=1 Owner=N/A "
                f"MCS_label=N/A Partitions=gpu BootTime=2026-12-01T00:00:00 "
                f"CfgTRES=cpu=64,mem=500G,billing=64,gres/vgpu=80 AllocTRES=cpu={alloc}")

    partitions = "PartitionName=gpu AllowGroups=ALL Default=YES State=UP TotalNodes=1000\n"

    def held_text(first_id: int) -> str:
        lines = [f"V|2|held|{a.pending}"]
        for k in range(a.held):
            lines.append(f"H|{first_id + k}|{int(now)}|{int(now) + 10}|BeginTime|||1|"
                         f"{1 + k % 8}|1|cpu={1 + k % 8},mem=8G,node=1,billing={1 + k % 8}|"
                         f"gres:vgpu:{shapes[k % len(shapes)]}|gpu")
        return "\n".join(lines) + "\n"

    def squeue_text(first_id: int) -> str:
        lines = []
        for i in range(a.pending - a.held):  # waiting for resources, not ours
            lines.append(f"{i + 1}|{iso(now - 3600)}|{iso(now - 3600)}|Resources||(null)|1|4|"
                         f"1|cpu=4,mem=16G,node=1,billing=4|gres:vgpu:{shapes[i % len(shapes)]}|"
                         "gpu")
        for k in range(a.held):  # new, held by the lua
            lines.append(f"{first_id + k}|{iso(now)}|{iso(now + 10)}|BeginTime||(null)|1|"
                         f"{1 + k % 8}|1|cpu={1 + k % 8},mem=8G,node=1,billing={1 + k % 8}|"
                         f"gres:vgpu:{shapes[k % len(shapes)]}|gpu")
        return "\n".join(lines) + "\n"

    nodes_text = "\n".join(scontrol_node(n, alloc) for n, alloc in node_allocs) + "\n"
    cycle_ids = [10_000_000 + c * a.held for c in range(a.cycles)]
    text_of = held_text if a.read == "reader" else squeue_text
    texts = {c: text_of(cycle_ids[c]) for c in range(a.cycles)}
    current = [0]
    steered = [0]

    def run(tool: str, *args: str) -> str:
        if tool == "squeue":
            return texts[current[0]]
        if args[:2] == ("show", "nodes"):
            return nodes_text
        if args[:2] == ("show", "partitions"):
            return partitions
        if args[:2] == ("show", "config"):  # once, then every 10 minutes
            return "SelectTypeParameters    = CR_CORE_MEMORY\n"
        steered[0] += 1  # scontrol update: not run
        return ""

    def read_held(max_wait: int, also: object) -> str:
        return texts[current[0]]

    work = Path("/tmp") / f"vgpu-bench-steering-{int(now)}"
    cfg = SteeringConfig(enabled=True, file=str(work / "steering"))
    steerer = Steerer(cfg, 5.0,
                      SteeringSlurm(run, read_held if a.read == "reader" else None),
                      lambda: now + 1, stale_after=30.0)
    seconds = []
    for c in range(a.cycles):
        current[0] = c
        t0 = time.perf_counter()
        steerer.cycle(reports, {})
        seconds.append(time.perf_counter() - t0)
        steerer.steered.clear()  # they started; the next cycle's held jobs are new ones
    reads = _measured_reads(a.read)
    own = statistics.median(seconds)
    result = {
        "bench": "steering", "machine": machine(), "read": a.read,
        "nodes": a.nodes, "gpus_per_node": 8, "pending_jobs": a.pending,
        "held_jobs_per_cycle": a.held, "cycles": a.cycles,
        "cycle_seconds_median": round(statistics.median(seconds), 4),
        "cycle_seconds_max": round(max(seconds), 4),
        "per_held_job_ms": round(1000 * statistics.median(seconds[1:] or seconds) / a.held, 3),
        "steered": steerer.counts["steered"], "released": steerer.counts["released"],
        "goal": "a cycle at 1,000 nodes x 8 GPUs with 20,000 jobs under 200 ms",
        "reads_seconds": reads,
        "cycle_with_reads_seconds": (round(own + sum(reads.values()), 3)
                                     if reads and a.nodes == 1000 and a.pending == 20000
                                     else None),
        "not_timed": "the Slurm reads (reads_seconds: measured on a loopback slurmctld at "
                     "20,000 jobs and 1,000 nodes by bench_scale.py) and one scontrol update "
                     "per held job",
        "command": "python3 bench/bench_steering.py",
    }
    text = json.dumps(result, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()

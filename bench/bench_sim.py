"""Simulator and report throughput.

- static FGD protocol on the full openb default list (6,212 GPUs), 10 seeds per policy:
  placements per second;
- dynamic Philly replay (2,000 jobs, all three regimes, one seed): simulated minutes/s;
- `vgpu report` over 100,000 synthetic sacct jobs (parse JSON, summaries, aggregate, table):
  goal < 10 s.

    python3 bench/run.py sim      # -> bench/results/sim.json
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from slurm_vgpu.policies.accounting.job_summary import GpuSlices, JobSummary, format_summary
from slurm_vgpu.policies.accounting.report import build_report, format_table, parse_sacct_json
from slurm_vgpu.policies.sim.sim_dynamic import MODES, DynamicConfig, build_jobs, run_dynamic
from slurm_vgpu.policies.sim.sim_static import run_static
from slurm_vgpu.policies.sim.traces import (
    load_jobs,
    load_nodes,
    load_philly,
    load_util_series,
    trace_data_dir,
)

ROOT = Path(__file__).resolve().parent.parent
DATA = trace_data_dir(ROOT)
SEEDS = range(42, 52)


def bench_static() -> dict[str, object]:
    nodes = load_nodes(DATA / "openb" / "openb_node_list_gpu_node.csv")
    jobs = load_jobs(DATA / "openb" / "openb_pod_list_default.csv")
    out: dict[str, object] = {}
    for policy in ("random", "bestfit", "vgpu"):
        start = time.perf_counter()
        placements = sum(run_static(nodes, jobs, policy, s).placements for s in SEEDS)
        elapsed = time.perf_counter() - start
        out[policy] = {"seeds": len(SEEDS), "placements": placements,
                       "seconds": round(elapsed, 2),
                       "placements_per_s": round(placements / elapsed)}
    return out


def bench_dynamic() -> dict[str, object]:
    philly = load_philly(DATA / "philly" / "philly_jobs.csv")
    shares = [j.gpu_milli for j in load_jobs(DATA / "openb" / "openb_pod_list_default.csv")
              if j.num_gpu == 1]
    utils = list(load_util_series(DATA / "genai-util" / "pod_gpu_duty_cycle_anon.csv").values())
    cfg = DynamicConfig()
    jobs, gpus = build_jobs(philly, shares, utils, cfg, 1)
    out: dict[str, object] = {"jobs": len(jobs), "gpus": gpus}
    for mode in MODES:
        start = time.perf_counter()
        r = run_dynamic(jobs, gpus, mode, 1, cfg)
        elapsed = time.perf_counter() - start
        out[mode] = {"ticks": r.ticks, "seconds": round(elapsed, 2),
                     "sim_minutes_per_s": round(r.ticks / elapsed)}
    return out


def synthetic_sacct(n: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    users = [f"user{i}" for i in range(300)]
    jobs = []
    for i in range(n):
        slices = rng.choice((1, 2, 3, 5, 10, 20))
        comment = None
        if rng.random() < 0.9:
            comment = format_summary(JobSummary(
                slices, 10, (GpuSlices(f"GPU-{rng.getrandbits(32):08x}-0000-0000-0000-"
                                       "000000000000", slices),),
                3600, rng.uniform(0, 10 * slices), 10 * slices, rng.randrange(80000)))
        jobs.append({"job_id": i + 1, "user": rng.choice(users), "account": f"acct{i % 40}",
                     "partition": rng.choice(("gpu", "debug", "scavenger")),
                     "state": {"current": "COMPLETED", "reason": "None"},
                     "time": {"elapsed": rng.randrange(60, 86400)},
                     "comment": {"administrator": comment, "job": None, "system": None},
                     "tres": {"allocated": [
                         {"type": "cpu", "name": None, "id": 1, "count": 4},
                         {"type": "mem", "name": None, "id": 2, "count": 16000},
                         {"type": "node", "name": None, "id": 4, "count": 1},
                         {"type": "gres", "name": "vgpu", "id": 1001, "count": slices}]}})
    return json.dumps({"meta": {}, "errors": [], "jobs": jobs})


def bench_report(n: int = 100_000) -> dict[str, object]:
    text = synthetic_sacct(n)
    start = time.perf_counter()
    rep = build_report(parse_sacct_json(text), "s", "e")
    table = format_table(rep)
    elapsed = time.perf_counter() - start
    return {"jobs": n, "json_mib": round(len(text) / 2**20, 1), "seconds": round(elapsed, 2),
            "goal_seconds": 10, "table_lines": table.count("\n") + 1}


def run() -> dict[str, object]:
    return {"static_fgd_default_10_seeds": bench_static(), "dynamic_philly": bench_dynamic(),
            "report_100k_jobs": bench_report()}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

#!/usr/bin/env python3
"""The placement table: unallocated GPU % at 100 % arrived (the FGD paper's static protocol,
seeds 42-51) for random, bestfit, vgpu, weights and fgd on every openb job list in the shared
data and on the generated variants in tests/data/openb-variants, beside the paper's own
numbers where its artifacts publish them (fgd-analysis_allo_discrete.csv).

    python3 bench/placement_table.py [--seeds 42-51] [--jobs 2] [--policies vgpu,fgd]
        [--out docs/results/placement_table.json]

About 35 minutes on 2 cores (fgd and vgpu are most of it); --policies reruns only those and
keeps the other policies' figures from --out. Prints the README's markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from slurm_vgpu.policies.sim.sim_static import run_static  # noqa: E402
from slurm_vgpu.policies.sim.simulate_cli import parse_seeds  # noqa: E402
from slurm_vgpu.policies.sim.traces import (  # noqa: E402
    TraceJob,
    TraceNode,
    load_jobs,
    load_nodes,
    trace_data_dir,
)

POLICIES = ("random", "bestfit", "vgpu", "weights", "fgd")
PAPER = {"01-Random": "random", "05-BestFit": "bestfit", "06-FGD": "fgd"}


def workloads() -> list[Path]:
    openb = trace_data_dir(REPO) / "openb"
    lists = sorted(openb.glob("openb_pod_list_*.csv"))
    return lists + sorted((REPO / "tests" / "data" / "openb-variants").glob("*.csv"))


def paper_numbers() -> dict[str, dict[str, list[float]]]:
    path = trace_data_dir(REPO) / "openb" / "fgd-analysis_allo_discrete.csv"
    out: dict[str, dict[str, list[float]]] = {}
    if not path.exists():
        return out
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            policy = PAPER.get(row["sc_policy"])
            if policy:
                out.setdefault(row["workload"], {}).setdefault(policy, []).append(
                    100.0 - float(row["100"]))
    return out


@cache
def _nodes() -> list[TraceNode]:
    return load_nodes(trace_data_dir(REPO) / "openb" / "openb_node_list_gpu_node.csv")


@cache
def _jobs(path: str) -> list[TraceJob]:
    return load_jobs(Path(path))


def one(args: tuple[str, str, int]) -> tuple[str, str, int, float]:
    """One run in a worker; each worker reads a trace file once."""
    jobs_path, policy, seed = args
    result = run_static(_nodes(), _jobs(jobs_path), policy, seed)
    return jobs_path, policy, seed, result.unallocated_pct_at_100


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="42-51")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "placement_table.json"))
    ap.add_argument("--policies", default=",".join(POLICIES),
                    help="policies to run; the others' figures are kept from --out")
    ap.add_argument("--workloads", default="",
                    help="comma list of workloads to run (e.g. default,gpuspec33); the others' "
                         "figures are kept from --out")
    a = ap.parse_args()
    seeds = parse_seeds(a.seeds)
    run_policies = [p for p in a.policies.split(",") if p]
    unknown = set(run_policies) - set(POLICIES)
    if unknown:
        ap.error(f"--policies: unknown {', '.join(sorted(unknown))}; "
                 f"choose from {', '.join(POLICIES)}")
    only = {w for w in a.workloads.split(",") if w}
    kept: dict[str, dict[str, object]] = {}
    if (only or set(run_policies) != set(POLICIES)) and Path(a.out).exists():
        kept = {r["workload"]: r for r in json.loads(Path(a.out).read_text())["table"]}
    runs = [(str(w), p, s) for w in workloads() for p in run_policies for s in seeds
            if not only or w.stem.removeprefix("openb_pod_list_") in only]
    with ProcessPoolExecutor(a.jobs) as pool:
        results = list(pool.map(one, runs))
    paper = paper_numbers()
    table = []
    for w in workloads():
        name = w.stem.removeprefix("openb_pod_list_")
        row: dict[str, object] = {"workload": name, "generated": w.parent.name != "openb"}
        for p in POLICIES:
            un = [r[3] for r in results if r[0] == str(w) and r[1] == p]
            if not un:
                if p in kept.get(name, {}):
                    row[p] = kept[name][p]
                continue
            row[p] = {"mean": round(statistics.mean(un), 2),
                      "std": round(statistics.stdev(un), 2) if len(un) > 1 else 0.0}
        for p, values in paper.get(w.stem, {}).items():
            row[f"paper_{p}"] = {"mean": round(statistics.mean(values), 2),
                                 "std": round(statistics.stdev(values), 2)}
        table.append(row)
    Path(a.out).write_text(json.dumps({"protocol": "fgd-static", "seeds": seeds,
                                       "inflation": 1.3, "table": table,
                                       "command": "python3 bench/placement_table.py"},
                                      indent=1) + "\n")

    def cell(row: dict[str, object], key: str) -> str:
        v = row.get(key)
        return f"{v['mean']:.2f} ± {v['std']:.2f}" if isinstance(v, dict) else "-"

    print("| workload | random | bestfit | weights only | vgpu (ours) | fgd (ours) | "
          "Random, paper | BestFit, paper | FGD, paper |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in table:
        label = f"{row['workload']} (generated)" if row["generated"] else str(row["workload"])
        print(f"| {label} | " + " | ".join(cell(row, k) for k in (
            "random", "bestfit", "weights", "vgpu", "fgd", "paper_random", "paper_bestfit",
            "paper_fgd")) + " |")


if __name__ == "__main__":
    main()

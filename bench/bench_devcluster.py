"""Cold start of the loopback Slurm test cluster (contrib/devcluster/devcluster.py).

Each run starts a fresh cluster in a new temporary directory (mariadb-install-db included),
waits until both nodes are idle and the cluster is registered in slurmdbd, then measures how
long a `--gres=vgpu:3` job takes from submission to its AllocTRES in sacct; then the cold
start of a cluster without accounting (no MariaDB, no slurmdbd). Needs root.

    python3 bench/run.py devcluster        # writes bench/results/devcluster.json
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "contrib" / "devcluster"))
from devcluster import SlurmCluster

RUNS = 5


def _one_run() -> dict[str, float]:
    t0 = time.monotonic()
    cluster = SlurmCluster()
    try:
        cluster.start()
        started = time.monotonic() - t0
        t1 = time.monotonic()
        jobid = cluster.sbatch("--gres=vgpu:3", "--wrap", "true")
        cluster.wait_job(jobid)
        completed = time.monotonic() - t1
        cluster.sacct_alloc_tres(jobid)
        accounted = time.monotonic() - t1
    finally:
        t2 = time.monotonic()
        cluster.stop()
        stopped = time.monotonic() - t2
    t3 = time.monotonic()
    light = SlurmCluster(accounting=False)
    try:
        light.start()
        light_started = time.monotonic() - t3
    finally:
        light.stop()
    return {
        "cold_start_s": round(started, 3),
        "cold_start_no_accounting_s": round(light_started, 3),
        "job_submit_to_completed_s": round(completed, 3),
        "job_submit_to_sacct_s": round(accounted, 3),
        "stop_s": round(stopped, 3),
    }


def run() -> dict[str, object]:
    runs = [_one_run() for _ in range(RUNS)]
    keys = runs[0].keys()
    return {
        "what": "devcluster cold start (2 slurmd nodes + slurmctld + slurmdbd + MariaDB + "
        "munged, fresh work directory; and without MariaDB/slurmdbd), first vgpu job latency",
        "runs": runs,
        "median": {k: round(statistics.median(r[k] for r in runs), 3) for k in keys},
        "max": {k: max(r[k] for r in runs) for k in keys},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))

#!/usr/bin/env python3
"""Capture real `squeue --json`, `sinfo --json` and `scontrol show nodes --json` output of the
installed Slurm for the parser tests (tests/data/slurm-<release>/), from a loopback cluster in a
known state.

    python3 contrib/devcluster/capture_json.py [--out tests/data]   # as root

Run it on each release of the matrix (`contrib/chroot/vgpu-chroot run 24.11 --out DIR --
.venv/bin/python contrib/devcluster/capture_json.py --out /out`). The state, whatever the
release (tests/test_daemon_slurm_parsing.py asserts it):

- nodes n1, n2 with vgpu:20 each; n1 has weight 5; partitions normal and scavenger (every job
  names its partition);
- running on n1: vgpu:3 (AdminComment set), vgpu:10; on n1+n2: a 2-node vgpu:4 job;
- pending: a scavenger vgpu:5 job pinned to n1 (no room: reason Resources), a held vgpu:2 job,
  a job without GRES.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from devcluster import SlurmCluster

ADMIN_COMMENT = "vgpu1;sl:3;spg:10;obs:60;avg:12.5;pk:30;mem:512;bor:0;bf:0;bs:0"
PARTITIONS = ("PartitionName=normal Nodes=ALL MaxTime=INFINITE State=UP\n"
              "PartitionName=scavenger Nodes=ALL MaxTime=INFINITE State=UP\n")


def release(cluster: SlurmCluster) -> str:
    out = cluster.run("sinfo", "-V").stdout.split()  # "slurm 24.11.5" / "slurm-wlm 24.11.5"
    return ".".join(out[-1].split(".")[:2])


def wait_state(cluster: SlurmCluster, job: int, state: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.job_state(job) == state:
            return
        time.sleep(0.3)
    raise SystemExit(f"capture: job {job} did not reach {state} (is {cluster.job_state(job)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).resolve().parents[2] / "tests" / "data"
    parser.add_argument("--out", default=str(default_out),
                        help="directory that gets slurm-<release>/ (default: tests/data)")
    args = parser.parse_args()
    with SlurmCluster(extra_conf=PARTITIONS) as cluster:
        cluster.run("scontrol", "update", "nodename=n1", "weight=5")
        sleep = ["--wrap", "sleep 600", "-o", "/dev/null"]
        small = cluster.sbatch("-p", "normal", "-w", "n1", "--gres=vgpu:3", *sleep)
        big = cluster.sbatch("-p", "normal", "-w", "n1", "--gres=vgpu:10", *sleep)
        wide = cluster.sbatch("-p", "normal", "-N", "2", "--gres=vgpu:4", *sleep)
        for job in (small, big, wide):
            wait_state(cluster, job, "RUNNING")
        cluster.run("scontrol", "update", f"jobid={small}", f"admincomment={ADMIN_COMMENT}")
        waiting = cluster.sbatch("-p", "scavenger", "-w", "n1", "--gres=vgpu:5", *sleep)
        held = cluster.sbatch("-p", "normal", "-H", "--gres=vgpu:2", *sleep)
        plain = cluster.sbatch("-p", "normal", "-H", *sleep)
        for job in (waiting, held, plain):
            wait_state(cluster, job, "PENDING")
        time.sleep(2)  # let the scheduler give the waiting job its reason
        name = release(cluster)
        target = Path(args.out) / f"slurm-{name}"
        target.mkdir(parents=True, exist_ok=True)
        reads = {"squeue": ["squeue", "--json"], "sinfo": ["sinfo", "--json"]}
        if name != "22.05":  # scontrol --json exists from 23.02 on
            reads["scontrol-nodes"] = ["scontrol", "show", "nodes", "--json"]
        for stem, argv in reads.items():
            doc = json.loads(cluster.run(*argv).stdout)
            (target / f"{stem}.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        ids = {"small": small, "big": big, "wide": wide, "waiting": waiting, "held": held,
               "plain": plain}
        (target / "jobs.json").write_text(json.dumps(ids, indent=2) + "\n")
        print(f"capture: wrote {target} (jobs {ids})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

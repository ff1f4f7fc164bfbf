"""Real Slurm places a scripted job sequence where the simulator's `vgpu` policy says.

The mechanism is the product's: node weights from the packing policy's own function
(`packing_policy.node_weight`, through the simulator's state), applied with `scontrol update
nodename=X weight=N` after every start as the daemon's applier does; slurmctld's choice of
node; the SPANK plugin's choice of GPU (best fit on one GPU). The simulator predicts node and
GPU for every job before it is submitted; the test compares with where slurmctld and the
plugin put it. A CPU-only job first makes the nodes' free CPUs differ: among nodes of equal
weight slurmctld takes the one with the fewest free CPUs, not the first (its first run found
the simulator assuming node order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from slurm_cluster import SlurmCluster, require_slurm_cluster
from spank_cluster import SpankSite, spank_cluster, wait_for

from slurm_vgpu.policies.sim.placement import ClusterState, PlaceFn, place_weights
from slurm_vgpu.policies.sim.traces import TraceJob, TraceNode

pytestmark = [pytest.mark.slurm, pytest.mark.native, pytest.mark.slow]

NODES = ("n1", "n2", "n3")
CPUS = 8
# slices of a 10-slice GPU per job, in submission order: fills, best fits, whole GPUs, and
# jobs that only fit where a GPU is untouched
SEQUENCE = (3, 7, 5, 4, 10, 2, 6, 8, 1, 5)


def apply_weights(cluster: SlurmCluster, state: ClusterState) -> dict[str, int]:
    weights = {name: state.packing_weight(i) for i, name in enumerate(NODES)}
    for name, weight in weights.items():
        cluster.run("scontrol", "update", f"nodename={name}", f"weight={weight}")
    return weights


def predict(state: ClusterState, job: TraceJob,
            place: PlaceFn = place_weights) -> tuple[str, int]:
    """The node and GPU the simulator's policy puts the job on (committed to its state)."""
    before = state.gpu_free.copy()
    assert place(state, job, job.gpu_milli, np.random.default_rng(0)), job
    node, gpu = (int(x[0]) for x in np.nonzero(state.gpu_free != before))
    return NODES[node], gpu


def where(cluster: SlurmCluster, site: SpankSite, job: int) -> tuple[str, int]:
    node = str(cluster.job_info(job).get("NodeList"))
    # RUNNING can come before the plugin's prolog has written its row (seen on 24.11)
    wait_for(lambda: any(j == job for j, _, _ in site.placements(node)),
             f"job {job}'s placement on {node}")
    rows = [gpu for j, gpu, _ in site.placements(node) if j == job]
    assert len(rows) == 1, (node, site.placements(node))
    return node, rows[0]


def test_real_slurm_places_each_job_where_the_simulator_said(tmp_path: Path) -> None:
    require_slurm_cluster()
    with spank_cluster(nodes=NODES, cpus_per_node=CPUS) as (cluster, site):
        state = ClusterState([TraceNode(n, CPUS * 1000, 10**6, 2, "sim") for n in NODES])
        state.weight = np.array([state.packing_weight(i) for i in range(len(NODES))])
        apply_weights(cluster, state)
        # a CPU-only job on n3: equal weights everywhere, but n3 has fewer CPUs free
        cpu_job = cluster.sbatch("-w", "n3", "-c", "3", "--mem=1", "-o", "/dev/null",
                                 "--wrap", "sleep 600")
        wait_for(lambda: cluster.job_state(cpu_job) == "RUNNING", "the CPU-only job")
        state.commit(2, TraceJob("cpu", 3000, 1, 0, 0, ()), 0, [])
        jobs = []
        for i, slices in enumerate(SEQUENCE):
            job = TraceJob(f"j{i}", 1000, 1, 1, slices * 100, ())
            expected = predict(state, job)
            jobid = cluster.sbatch("-c", "1", "--mem=1", f"--gres=vgpu:{slices}",
                                   "-o", "/dev/null", "--wrap", "sleep 600")
            wait_for(lambda j=jobid: cluster.job_state(j) == "RUNNING", f"job {jobid}")
            got = where(cluster, site, jobid)
            jobs.append((slices, expected, got))
            assert got == expected, jobs
            # the daemon's next cycle: every node's weight from its new tenancy
            apply_weights(cluster, state)

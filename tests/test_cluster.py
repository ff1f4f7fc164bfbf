"""The loopback Slurm test cluster itself: custom GRES vgpu, accounting, two nodes, teardown."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from slurm_cluster import (
    ClusterFactory,
    DevClusterCommandError,
    SlurmCluster,
    parse_tres,
    pid_alive,
)

pytestmark = pytest.mark.slurm


def _poll(predicate: object, timeout: float, what: str) -> None:
    """Wait until ``predicate()`` is true; fail with ``what`` after ``timeout`` seconds."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def test_vgpu_job_is_accounted_for_job_and_steps(slurm_cluster: SlurmCluster) -> None:
    jobid = slurm_cluster.sbatch("--gres=vgpu:3", "--wrap", "srun true")
    slurm_cluster.wait_job(jobid, timeout=60)
    tres = slurm_cluster.sacct_alloc_tres(jobid, steps=("", "batch", "0"))
    for record in (str(jobid), f"{jobid}.batch", f"{jobid}.0"):
        assert parse_tres(tres[record]).get("gres/vgpu") == "3", (record, tres)


def test_job_details_show_the_vgpu_allocation(slurm_cluster: SlurmCluster) -> None:
    jobid = slurm_cluster.sbatch("--gres=vgpu:2", "--wrap", "sleep 30")
    try:
        slurm_cluster.wait_job(jobid, states=("RUNNING",), timeout=60)
        detail = slurm_cluster.run("scontrol", "show", "job", "-d", str(jobid)).stdout
        assert "vgpu:2" in detail or "vgpu(CNT:2)" in detail, detail
    finally:
        slurm_cluster.run("scancel", str(jobid), check=False)


def test_srun_spans_both_nodes(slurm_cluster: SlurmCluster) -> None:
    result = slurm_cluster.run("srun", "-N2", "-l", "printenv", "SLURMD_NODENAME", timeout=60)
    assert sorted(line.split()[-1] for line in result.stdout.splitlines()) == ["n1", "n2"]


def test_request_larger_than_any_node_is_rejected(slurm_cluster: SlurmCluster) -> None:
    with pytest.raises(DevClusterCommandError) as info:
        slurm_cluster.sbatch("--gres=vgpu:21", "--wrap", "true")
    assert "Requested node configuration is not available" in info.value.stderr


def test_client_env_points_at_this_cluster(slurm_cluster: SlurmCluster) -> None:
    assert slurm_cluster.env["SLURM_CONF"] == str(slurm_cluster.conf_path)
    assert str(slurm_cluster.workdir) in slurm_cluster.run("scontrol", "show", "config").stdout
    states = slurm_cluster.node_states()
    assert sorted(states) == slurm_cluster.node_names


def test_failure_inside_cluster_context_leaves_nothing_running(
    slurm_cluster_factory: ClusterFactory,
) -> None:
    cluster = slurm_cluster_factory(start=False, accounting=False)
    pidfile = Path(cluster.jobs_dir) / "job.pid"
    started: dict[str, int] = {}
    job_pids: list[int] = []
    with pytest.raises(RuntimeError, match="deliberate"), cluster:
        started.update(cluster.pids())
        jobid = cluster.sbatch("--wrap", f"echo $$ > {pidfile}; exec sleep 300")
        cluster.wait_job(jobid, states=("RUNNING",), timeout=60)
        _poll(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, "the job's pid")
        job_pids.append(int(pidfile.read_text()))
        raise RuntimeError("deliberate failure inside the cluster context")
    assert set(started) == {"munged", "slurmctld", "slurmd-n1", "slurmd-n2"}
    survivors = {name: pid for name, pid in started.items() if pid_alive(pid)}
    assert not survivors
    assert job_pids
    assert not pid_alive(job_pids[0]), "the running job's process outlived the cluster"
    assert cluster.pids() == {}


def test_two_clusters_run_side_by_side(
    slurm_cluster: SlurmCluster, slurm_cluster_factory: ClusterFactory
) -> None:
    other = slurm_cluster_factory(nodes=["a1"], vgpu_per_node=5, accounting=False)
    assert other.ports["slurmctld"] != slurm_cluster.ports["slurmctld"]
    assert other.node_states() == {"a1": "idle"}
    assert "vgpu:5" in other.run("sinfo", "-h", "-o", "%G").stdout
    jobid = other.sbatch("--gres=vgpu:5", "--wrap", "true")
    other.wait_job(jobid, timeout=60)
    # The shared cluster still answers, with its own nodes.
    assert sorted(slurm_cluster.node_states()) == ["n1", "n2"]

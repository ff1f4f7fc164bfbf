"""Real Slurm starts each steered job where the simulator said (docs/placement.md).

The shipped job_submit.lua (its STEER_FILE pointed at this test's) holds every new vgpu batch
job; the controller's Steerer (service/steerer.py, with its real Slurm reads and writes)
names each held job's node; slurmctld starts it there and the SPANK plugin picks the GPU.
What the steerer knows of each node's GPUs is what an agent reports: the plugin's placements
(here read from the plugin's table directly, as the agent does through the limits files).
Before each submission the simulator's `vgpu` policy (the same decide/steering.py code, on
the simulator's own state and mix history) predicts node and GPU; the test compares.
Also: with the controller gone (stale steering file) the lua holds nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from slurm_cluster import SlurmCluster, require_slurm_cluster
from spank_cluster import SpankSite, spank_cluster, wait_for
from test_placement_slurm import CPUS, NODES, predict, where

from slurm_vgpu.policies.decide.config import SteeringConfig
from slurm_vgpu.policies.service.exchange import GpuTenants, NodeReport
from slurm_vgpu.policies.service.steerer import Steerer
from slurm_vgpu.policies.sim.placement import ClusterState, place_vgpu
from slurm_vgpu.policies.sim.traces import TraceJob, TraceNode
from slurm_vgpu.policies.slurm.slurm_client import CliSlurmClient
from slurm_vgpu.policies.slurm.steering_reads import SteeringSlurm

pytestmark = [pytest.mark.slurm, pytest.mark.native, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
LUA = REPO / "contrib" / "job_submit" / "job_submit.lua"
SLICES = 10
# (slices of a 10-slice GPU, CPUs) per job in submission order: shares that fill, best-fit,
# CPU-heavy jobs and whole GPUs, so that fragmentation, packing weight and CPUs all decide
SEQUENCE = ((3, 1), (7, 2), (5, 1), (4, 3), (10, 1), (2, 1), (6, 2), (8, 1), (1, 4), (5, 1))


def agent_reports(site: SpankSite) -> dict[str, NodeReport]:
    reports = {}
    for node in NODES:
        used = [0, 0]
        jobs: list[list[int]] = [[], []]
        for job, gpu, slices in site.placements(node):
            used[gpu] += slices
            jobs[gpu].append(job)
        reports[node] = NodeReport(node, time.time(), 2 * SLICES, gpus=tuple(
            GpuTenants(SLICES, used[g], tuple(jobs[g])) for g in range(2)))
    return reports


def test_real_slurm_starts_each_steered_job_where_the_simulator_said(tmp_path: Path) -> None:
    require_slurm_cluster()
    steer_file = tmp_path / "steering"
    lua = LUA.read_text().replace('"/run/slurm-vgpu/steering"', f'"{steer_file}"')
    with spank_cluster(nodes=NODES, cpus_per_node=CPUS, job_submit_lua=lua) as (cluster, site):
        cfg = SteeringConfig(enabled=True, file=str(steer_file), hold_seconds=60)
        steerer = Steerer(cfg, 5.0,
                          SteeringSlurm(CliSlurmClient(env=cluster.env)._run), time.time,
                          stale_after=60.0)
        state = ClusterState([TraceNode(n, CPUS * 1000, 10**6, 2, "sim") for n in NODES])
        # a CPU-only job on n3 (Slurm's own placement; the steerer never sees it)
        cpu_job = cluster.sbatch("-w", "n3", "-c", "3", "--mem=1", "-o", "/dev/null",
                                 "--wrap", "sleep 600")
        wait_for(lambda: cluster.job_state(cpu_job) == "RUNNING", "the CPU-only job")
        state.commit(2, TraceJob("cpu", 3000, 1, 0, 0, ()), 0, [])
        steerer.announce(time.time())
        jobs = []
        for i, (slices, cpus) in enumerate(SEQUENCE):
            job = TraceJob(f"j{i}", cpus * 1000, 1, 1, slices * 100, ())
            expected = predict(state, job, place_vgpu)
            jobid = cluster.sbatch("-c", str(cpus), "--mem=1", f"--gres=vgpu:{slices}",
                                   "-o", "/dev/null", "--wrap", "sleep 600")
            info = cluster.job_info(jobid)
            assert info.get("JobState") == "PENDING" and info.get("Reason") == "BeginTime", info
            steerer.cycle(agent_reports(site), {})
            wait_for(lambda j=jobid: cluster.job_state(j) == "RUNNING", f"job {jobid}")
            got = where(cluster, site, jobid)
            jobs.append((slices, cpus, expected, got))
            assert got == expected, jobs
        assert steerer.counts["steered"] == len(SEQUENCE), steerer.counts


def test_a_stale_steering_file_holds_nothing(tmp_path: Path) -> None:
    require_slurm_cluster()
    steer_file = tmp_path / "steering"
    lua = LUA.read_text().replace('"/run/slurm-vgpu/steering"', f'"{steer_file}"')
    with spank_cluster(nodes=NODES, cpus_per_node=CPUS, job_submit_lua=lua) as (cluster, _):
        # the controller wrote it 100 s ago and promised 15 s: it is gone
        steer_file.write_text(f"{int(time.time()) - 100} 10 15\n")
        jobid = cluster.sbatch("-c", "1", "--mem=1", "--gres=vgpu:2", "-o", "/dev/null",
                               "--wrap", "sleep 600")
        wait_for(lambda: cluster.job_state(jobid) == "RUNNING", f"job {jobid}")
        # fresh: held, and started at its BeginTime when nobody steers it
        steer_file.write_text(f"{int(time.time())} 3 15\n")
        held = cluster.sbatch("-c", "1", "--mem=1", "--gres=vgpu:2", "-o", "/dev/null",
                              "--wrap", "sleep 600")
        assert cluster.job_info(held).get("Reason") == "BeginTime"
        # nor is an array (its pending tasks are one record the controller does not steer)
        array = cluster.sbatch("--array=1-2", "-c", "1", "--mem=1", "--gres=vgpu:2", "-o",
                               "/dev/null", "--wrap", "sleep 1")
        assert cluster.job_info(array).get("Reason") != "BeginTime"
        # nor an exclusive job (it could not start on the used node the steering prefers)
        for flag in ("--exclusive", "--exclusive=user"):
            alone = cluster.sbatch(flag, "-c", "1", "--mem=1", "--gres=vgpu:2", "-o",
                                   "/dev/null", "--wrap", "sleep 1")
            assert cluster.job_info(alone).get("Reason") != "BeginTime", flag
        # nor a job in a reservation (it may start only on the reservation's nodes)
        cluster.run("scontrol", "create", "reservation", "reservationname=course",
                    "users=root", f"nodes={NODES[-1]}", "starttime=now", "duration=10")
        reserved = cluster.sbatch("--reservation=course", "-c", "1", "--mem=1",
                                  "--gres=vgpu:2", "-o", "/dev/null", "--wrap", "sleep 1")
        assert cluster.job_info(reserved).get("Reason") != "BeginTime"
        oversubscribed = cluster.sbatch("--oversubscribe", "-c", "1", "--mem=1",
                                        "--gres=vgpu:2", "-o", "/dev/null", "--wrap", "sleep 1")
        assert cluster.job_info(oversubscribed).get("Reason") == "BeginTime"
        # srun/salloc jobs are never held (nobody waits on a prompt)
        wait_for(lambda: cluster.job_state(held) == "RUNNING", f"job {held}", timeout=90)


@contextlib.contextmanager
def _resteering(tmp_path: Path, nodes: tuple[str, ...]
                ) -> Iterator[tuple[SlurmCluster, SteeringSlurm, Steerer]]:
    """The shipped lua on a cluster of `nodes` with 4 CPUs each, and a steerer with its real
    reads that steers a waiting job again after one second."""
    require_slurm_cluster()
    steer_file = tmp_path / "steering"
    lua = LUA.read_text().replace('"/run/slurm-vgpu/steering"', f'"{steer_file}"')
    with spank_cluster(nodes=nodes, cpus_per_node=4, job_submit_lua=lua) as (cluster, _):
        cfg = SteeringConfig(enabled=True, file=str(steer_file), hold_seconds=60,
                             resteer_after_seconds=1.0)
        reads = SteeringSlurm(CliSlurmClient(env=cluster.env)._run)
        yield cluster, reads, Steerer(cfg, 5.0, reads, time.time, stale_after=60.0)


def test_a_job_steered_to_a_node_that_filled_up_is_steered_again_or_released(
        tmp_path: Path) -> None:
    """The race: the controller read the nodes before a job Slurm placed itself took n2's
    CPUs. The steered job waits there (Reason=Resources) until the next cycle steers it again
    with a fresh read; when no node fits, it is released with its node list cleared."""
    nodes = ("n1", "n2")
    with _resteering(tmp_path, nodes) as (cluster, reads, steerer):
        steerer.announce(time.time())
        blocker = cluster.sbatch("-w", "n2", "-c", "4", "--mem=1", "-o", "/dev/null",
                                 "--wrap", "sleep 600")
        wait_for(lambda: cluster.job_state(blocker) == "RUNNING", "the blocker")
        job = cluster.sbatch("-c", "2", "--mem=1", "--gres=vgpu:3", "-o", "/dev/null",
                             "--wrap", "sleep 600")
        # a stale read: n2 looked idle and n1 busy, so the job goes to n2 (where it cannot run)
        fresh = reads.room()
        stale = {"n1": dataclasses.replace(fresh["n1"], cpus_free=1),
                 "n2": dataclasses.replace(fresh["n2"], cpus_free=4)}
        reports = {n: NodeReport(n, time.time(), 20, gpus=(GpuTenants(10, 0), GpuTenants(10, 0)))
                   for n in nodes}
        real_room = reads.room
        reads.room = lambda: stale  # type: ignore[method-assign]
        steerer.cycle(reports, {})
        reads.room = real_room  # type: ignore[method-assign]
        assert steerer.steered[job].node == "n2"
        wait_for(lambda: cluster.job_info(job).get("Reason") == "Resources", "Resources")
        time.sleep(1.5)  # resteer_after_seconds
        steerer.cycle(reports, {})
        assert steerer.counts["resteered"] == 1
        wait_for(lambda: cluster.job_state(job) == "RUNNING", f"job {job}")
        assert cluster.job_info(job).get("NodeList") == "n1"
        # nothing fits: released, its node list cleared, Slurm queues it
        other = cluster.sbatch("-c", "4", "--mem=1", "--gres=vgpu:3", "-o", "/dev/null",
                               "--wrap", "sleep 600")
        steerer.cycle({n: dataclasses.replace(r, time=time.time()) for n, r in reports.items()},
                      {})
        assert steerer.counts["released"] == 1
        wait_for(lambda: cluster.job_info(other).get("Reason") in ("Resources", "Priority"),
                 "the released job to wait in Slurm's queue")
        assert cluster.job_info(other).get("ReqNodeList") in (None, "(null)", "")


def test_cpu_only_jobs_are_held_and_steered_only_while_the_cpus_bind(tmp_path: Path) -> None:
    """Above steering.cpu_jobs_above (here 0.5) of the CPUs allocated, and more of them than
    of the GPUs, the steering file names the partition and the lua holds CPU-only batch jobs
    too (named partition or the default one); the steerer puts each where the simulator's
    vgpu policy says. Below it, a CPU-only job is not held."""
    require_slurm_cluster()
    steer_file = tmp_path / "steering"
    lua = LUA.read_text().replace('"/run/slurm-vgpu/steering"', f'"{steer_file}"')
    with spank_cluster(nodes=NODES, cpus_per_node=CPUS, job_submit_lua=lua) as (cluster, site):
        cfg = SteeringConfig(enabled=True, file=str(steer_file), hold_seconds=60,
                             cpu_jobs_above=0.5)
        steerer = Steerer(cfg, 5.0,
                          SteeringSlurm(CliSlurmClient(env=cluster.env)._run), time.time,
                          stale_after=60.0)
        state = ClusterState([TraceNode(n, CPUS * 1000, 10**6, 2, "sim") for n in NODES])
        state.steering = cfg
        # CPU work Slurm placed itself (pinned: never held): 15 of 24 CPUs
        for i, cpus in enumerate((7, 6, 2)):
            pinned = cluster.sbatch("-w", NODES[i], "-c", str(cpus), "--mem=1", "-o",
                                    "/dev/null", "--wrap", "sleep 600")
            wait_for(lambda j=pinned: cluster.job_state(j) == "RUNNING", f"job {pinned}")
            state.commit(i, TraceJob(f"pinned{i}", cpus * 1000, 1, 0, 0, ()), 0, [])
        steerer.announce(time.time())
        # a vgpu job first: the mix the CPU-only jobs are scored under
        gpu_job = TraceJob("g", 1000, 1, 1, 300, ())
        expected_gpu = predict(state, gpu_job, place_vgpu)
        jobid = cluster.sbatch("-c", "1", "--mem=1", "--gres=vgpu:3", "-o", "/dev/null",
                               "--wrap", "sleep 600")
        steerer.cycle(agent_reports(site), {})
        wait_for(lambda: cluster.job_state(jobid) == "RUNNING", f"job {jobid}")
        assert where(cluster, site, jobid) == expected_gpu
        assert steerer.cpu_jobs_steered and steerer.cpu_partitions == ("debug*",)
        steerer.announce(time.time())
        for extra in ((), ("-p", "debug")):
            cpu_job = TraceJob("c", 1000, 1, 0, 0, ())
            before = state.cpu_free.copy()
            assert place_vgpu(state, cpu_job, 0, np.random.default_rng(0))
            expected = NODES[int(np.flatnonzero(state.cpu_free != before)[0])]
            jobid = cluster.sbatch(*extra, "-c", "1", "--mem=1", "-o", "/dev/null",
                                   "--wrap", "sleep 600")
            info = cluster.job_info(jobid)
            assert info.get("Reason") == "BeginTime", (extra, info)
            steerer.cycle(agent_reports(site), {})
            wait_for(lambda j=jobid: cluster.job_state(j) == "RUNNING", f"job {jobid}")
            assert cluster.job_info(jobid).get("NodeList") == expected, extra
        assert steerer.counts["steered"] == 3, steerer.counts
        # the CPUs no longer bind: the file names no partition, a CPU-only job is not held
        cluster.run("scancel", "-u", "root")
        wait_for(lambda: not cluster.run("squeue", "-h").stdout.strip(), "the queue to empty")
        steerer.cycle(agent_reports(site), {})
        assert not steerer.cpu_jobs_steered
        steerer.announce(time.time())
        jobid = cluster.sbatch("-c", "1", "--mem=1", "-o", "/dev/null", "--wrap", "sleep 600")
        assert cluster.job_info(jobid).get("Reason") != "BeginTime"


def test_a_job_kept_off_its_node_by_a_maintenance_window_goes_elsewhere(
        tmp_path: Path) -> None:
    """What the steering does not read: n2 has a maintenance reservation ahead, so a one-hour
    job steered there cannot start (its node looks best: its GPUs are in use). After
    resteer_after_seconds it is steered to n1, not back to n2, and starts."""
    nodes = ("n1", "n2")
    with _resteering(tmp_path, nodes) as (cluster, _, steerer):
        cluster.run("scontrol", "create", "reservation", "reservationname=maint",
                    "starttime=now+600", "duration=10", "nodes=n2", "users=root",
                    "flags=maint")
        steerer.announce(time.time())
        job = cluster.sbatch("--time=60", "-c", "1", "--mem=1", "--gres=vgpu:3", "-o",
                             "/dev/null", "--wrap", "sleep 600")
        # n2's GPU 0 carries 7 slices: the steering prefers it
        busy = {"n1": (0, 0), "n2": (7, 0)}
        reports = {n: NodeReport(n, time.time(), 20, gpus=tuple(GpuTenants(10, u)
                                                                for u in busy[n]))
                   for n in nodes}
        steerer.cycle(reports, {})
        assert steerer.steered[job].node == "n2"
        wait_for(lambda: cluster.job_info(job).get("ReqNodeList") == "n2"
                 and cluster.job_info(job).get("Reason") not in (None, "BeginTime", "None"),
                 "the job to wait on n2")
        time.sleep(1.5)  # resteer_after_seconds
        steerer.cycle({n: dataclasses.replace(r, time=time.time()) for n, r in reports.items()},
                      {})
        assert steerer.counts["resteered"] == 1 and steerer.steered[job].node == "n1"
        wait_for(lambda: cluster.job_state(job) == "RUNNING", f"job {job}")
        assert cluster.job_info(job).get("NodeList") == "n1"

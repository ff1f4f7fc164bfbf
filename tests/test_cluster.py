"""The loopback Slurm test cluster itself: custom GRES vgpu, accounting, two nodes, teardown."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import REQUIRE_NATIVE, skip_or_fail
from slurm_cluster import (
    ClusterFactory,
    DevClusterCommandError,
    DevClusterError,
    SlurmCluster,
    ensure_user,
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
    pidfile = Path(slurm_cluster.jobs_dir) / f"bystander-{time.monotonic_ns()}.pid"
    bystander = slurm_cluster.sbatch("--wrap", f"echo $$ > {pidfile}; exec sleep 120")
    try:
        slurm_cluster.wait_job(bystander, states=("RUNNING",))
        _poll(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, "the job's pid")
        other = slurm_cluster_factory(nodes=["a1"], vgpu_per_node=5, accounting=False)
        assert other.ports["slurmctld"] != slurm_cluster.ports["slurmctld"]
        assert other.node_states() == {"a1": "idle"}
        assert "vgpu:5" in other.run("sinfo", "-h", "-o", "%G").stdout
        jobid = other.sbatch("--gres=vgpu:5", "--wrap", "sleep 60")
        other.wait_job(jobid, states=("RUNNING",))
        other.stop()  # with a job of its own running
        # The shared cluster, its daemons and its running job are untouched.
        assert sorted(slurm_cluster.node_states()) == ["n1", "n2"]
        assert slurm_cluster.job_state(bystander) == "RUNNING"
        assert pid_alive(int(pidfile.read_text()))
    finally:
        slurm_cluster.run("scancel", str(bystander), check=False)


def test_start_failure_raises_with_the_daemon_log_and_cleans_up(
    slurm_cluster_factory: ClusterFactory,
) -> None:
    cluster = slurm_cluster_factory(start=False, accounting=False,
                                    extra_conf="SelectType=select/no_such_plugin")
    with pytest.raises(DevClusterError) as info:
        cluster.start()
    message = str(info.value)
    assert "slurmctld" in message
    assert "no_such_plugin" in message, message  # the log tail names the cause
    assert set(cluster.started_pids) >= {"munged", "slurmctld"}
    assert not [pid for pid in cluster.started_pids.values() if pid_alive(pid)]
    assert not cluster.workdir.exists()  # its own temporary directory is gone


def test_taken_port_is_retried_with_new_ports(
    slurm_cluster_factory: ClusterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import devcluster

    with socket.socket() as squatter:
        squatter.bind(("0.0.0.0", 0))  # as another cluster's daemon would hold it
        squatter.listen()
        busy = squatter.getsockname()[1]
        real_free_ports = devcluster._free_ports
        calls: list[int] = []

        def first_pick_taken(count: int) -> list[int]:
            calls.append(count)
            ports = real_free_ports(count)
            return [busy, *ports[1:]] if len(calls) == 1 else ports

        monkeypatch.setattr(devcluster, "_free_ports", first_pick_taken)
        cluster = slurm_cluster_factory(accounting=False)
    assert len(calls) == 2
    assert busy not in cluster.ports.values()
    assert sorted(cluster.node_states()) == ["n1", "n2"]


def test_restart_slurmctld_and_slurmd_keep_a_running_job(
    slurm_cluster_factory: ClusterFactory,
) -> None:
    cluster = slurm_cluster_factory(accounting=False)
    jobid = cluster.sbatch("--gres=vgpu:4", "-w", "n1", "--wrap", "sleep 120")
    cluster.wait_job(jobid, states=("RUNNING",))
    old = cluster.pids()
    cluster.restart("slurmctld")
    cluster.restart("slurmd-n1")
    new = cluster.pids()
    assert new["slurmctld"] != old["slurmctld"] and not pid_alive(old["slurmctld"])
    assert new["slurmd-n1"] != old["slurmd-n1"] and not pid_alive(old["slurmd-n1"])
    assert new["slurmd-n2"] == old["slurmd-n2"]
    assert cluster.job_state(jobid) == "RUNNING"
    assert "vgpu(CNT:4)" in cluster.run("scontrol", "show", "job", "-d", str(jobid)).stdout
    cluster.run("scancel", str(jobid))
    cluster.wait_job(jobid, states=("CANCELLED",))


def test_update_config_then_reconfigure_changes_gres(slurm_cluster_factory: ClusterFactory) -> None:
    cluster = slurm_cluster_factory(accounting=False)
    cluster.update_config(gres_conf={"n1": "Name=vgpu Count=10", "n2": "Name=vgpu Count=30"},
                          node_gres={"n1": "vgpu:10", "n2": "vgpu:30"})
    cluster.reconfigure()
    out = cluster.run("sinfo", "-h", "-N", "-o", "%N %G").stdout
    assert out.split("\n")[:2] == ["n1 vgpu:10", "n2 vgpu:30"], out
    jobid = cluster.sbatch("--gres=vgpu:25", "--wrap", "true")
    assert cluster.wait_job(jobid) == "COMPLETED"
    assert cluster.job_info(jobid)["NodeList"] == "n2"
    # A full restart (every slurmd and slurmctld) applies node definition changes too.
    cluster.update_config(cpus_per_node=4)
    cluster.restart("slurm")
    assert cluster.run("sinfo", "-h", "-N", "-o", "%c").stdout.split() == ["4", "4"]


def test_slurmd_env_reaches_slurmd_and_nodes_have_their_own_host_name(
        slurm_cluster_factory: ClusterFactory) -> None:
    cluster = slurm_cluster_factory(accounting=False, slurmd_env={"VGPU_TEST_MARK": "m-%n"})
    environ = Path(f"/proc/{cluster.pids()['slurmd-n2']}/environ").read_bytes().split(b"\0")
    assert b"VGPU_TEST_MARK=m-%n" in environ
    # Each slurmd runs in a UTS namespace named after its node, as on a real cluster: the job
    # (and a SPANK plugin in slurmstepd, whose environment is empty from 23.02 on) sees it.
    out = Path(cluster.jobs_dir) / "hostname.txt"
    jobid = cluster.sbatch("-w", "n2", "--wrap", f"hostname > {out}")
    cluster.wait_job(jobid)
    assert out.read_text().split() == ["n2"]


def test_prolog_epilog_and_own_plugstack(
    slurm_cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    scripts = {}
    for kind in ("prolog", "epilog"):
        script = tmp_path / f"{kind}.sh"
        script.write_text(f"#!/bin/sh\ntouch {marks}/{kind}-$SLURM_JOB_ID\n")
        script.chmod(0o755)
        scripts[kind] = str(script)
    cluster = slurm_cluster_factory(accounting=False, plugstack_conf="# no plugins\n", **scripts)
    config = cluster.run("scontrol", "show", "config").stdout
    assert f"PlugStackConfig         = {cluster.conf_dir}/plugstack.conf" in config
    jobid = cluster.sbatch("--wrap", "true")
    cluster.wait_job(jobid)
    _poll(lambda: (marks / f"epilog-{jobid}").exists(), 30, "the epilog's mark")
    assert (marks / f"prolog-{jobid}").exists()


def test_job_as_unprivileged_user(slurm_cluster: SlurmCluster) -> None:
    uid, _ = ensure_user("vgpu-test")
    out = Path(slurm_cluster.jobs_dir) / f"whoami-{time.monotonic_ns()}.txt"
    jobid = slurm_cluster.sbatch("--gres=vgpu:1", "--wrap", f"id -u > {out}", user="vgpu-test")
    slurm_cluster.wait_job(jobid)
    assert out.read_text().strip() == str(uid)
    assert slurm_cluster.job_info(jobid)["UserId"].startswith("vgpu-test(")


def test_command_line_up_status_env_down() -> None:
    script = Path(__file__).resolve().parent.parent / "contrib" / "devcluster" / "devcluster.py"
    workdir = tempfile.mkdtemp(prefix="vgpu-cli-")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(script), *args, "--workdir", workdir],
                              capture_output=True, text=True, timeout=120, check=False)

    try:
        up = cli("up", "--nodes", "c1", "--vgpu", "7", "--slurmd-env", "VGPU_X=1")
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip() == f"export SLURM_CONF={workdir}/etc/slurm.conf"
        assert cli("env").stdout == up.stdout
        status = cli("status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert "c1 idle vgpu:7" in status.stdout
        assert cli("up").returncode == 1  # refuses a second cluster in the same directory
        attached = SlurmCluster.attach(workdir)
        pids = attached.pids()
        assert set(pids) == {"munged", "mariadb", "slurmdbd", "slurmctld", "slurmd-c1"}
        assert (attached.slurmd_env, attached.vgpu_per_node) == ({"VGPU_X": "1"}, 7)
        attached.restart("slurmd-c1")  # from another process, with the same options
        assert attached.pids()["slurmd-c1"] != pids["slurmd-c1"]
        pids = attached.pids()
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    assert not [pid for pid in pids.values() if pid_alive(pid)]
    assert cli("status").returncode == 3
    shutil.rmtree(workdir)


@pytest.mark.slow
def test_demo_script_runs_end_to_end_and_tears_down() -> None:
    repo = Path(__file__).resolve().parent.parent
    demo = repo / "contrib" / "demo" / "run-demo.sh"
    for built in ("spank/vgpu.so", "native/libvgpu.so", "fakegpu/libcuda.so.1",
                  "native/tests/vgpu_probe"):
        if not (repo / "build" / built).exists():
            skip_or_fail(f"build/{built} is not built (make)", REQUIRE_NATIVE)
    workdir = tempfile.mkdtemp(prefix="vgpu-demo-test-")
    try:
        result = subprocess.run([str(demo)], env={**os.environ, "VGPU_DEMO_DIR": workdir},
                                capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        assert "gres/vgpu=3" in out
        # job_submit.lua refuses it, naming the largest request a node can take
        assert "vgpu: --gres=vgpu:21 is more slices than any node has" in out
        assert "--vgpu-share=always is not valid" in out
        # enforcement: the vgpu:3 job's CUDA program sees 3 GiB and cannot allocate beyond it
        if (repo / "build" / "fakegpu" / "test-rt-basic").exists():  # nvcc-built (cudart 13)
            assert "(within the cap): alloc_rc=0 free=536870912 total=3221225472" in out
            assert "(over the cap):   alloc_rc=2 free=3221225472 total=3221225472" in out
        else:  # no nvcc: the demo falls back to the driver-API probe
            assert "(within the cap): alloc rc=0" in out
            assert "(over the cap):   alloc rc=2" in out
        # best fit: the vgpu:3 job lands beside the vgpu:7 job
        placements = re.findall(r"job=(\d+) gpu=(\d+) slices=(\d+)", out)
        gpu_of = {slices: gpu for _, gpu, slices in placements}
        assert gpu_of["7"] == gpu_of["3"] != gpu_of["5"], placements
        assert "vgpu_job_compute_achieved_ratio" in out  # the daemon's metrics were scraped
        # accounting keeps the plugin's placement and the daemon's utilization summary
        assert re.search(r"vgpu:n1=gpu\d:3 vgpu1;n:n1;sl:3;spg:10;", out, re.IGNORECASE), out
        assert "compute: average" in out  # vgpu report --job
        # backfill: an idle owner's slices are lent, a scavenger job runs on them capped at
        # its 4 slices, and is requeued when the owner wakes
        assert "n1 vgpu:24" in out
        assert "guest's probe: total rc=0 total=4294967296 alloc rc=0" in out
        assert re.search(r"requeue_job: RequeueJob\(job_id=\d+", out), out
        # placement steering: three unpinned batch jobs held, steered by the controller, started
        assert len(re.findall(r"controller: steering: job \d+ steered to n\d", out)) == 3, out
        assert len(re.findall(r"job \d+: started on n\d, GPU \d", out)) == 3, out
        assert SlurmCluster.attach(workdir).pids() == {}
    finally:
        subprocess.run([sys.executable, str(demo.parent.parent / "devcluster" / "devcluster.py"),
                        "down", "--workdir", workdir], capture_output=True, timeout=120,
                       check=False)
        shutil.rmtree(workdir, ignore_errors=True)

"""The policy daemon (`vgpu daemon`, a real subprocess) against the real loopback Slurm 22.05.

The SPANK plugin's part (writing each job's limits file) and the hook's part (its usage state)
are played by the test with the hook's own binding, so these tests exercise the daemon's Slurm
side for real: squeue/sinfo polling, `scontrol update gres=`, requeue, slurmctld restarts,
/metrics over HTTP, kill -9 and restart of the daemon.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from slurm_vgpu.gres.inventory import InventoryGpu, NodeInventory, format_inventory
from slurm_vgpu.native import (
    GpuLimit,
    JobLimits,
    SharePolicy,
    read_limits_file,
    write_limits_file,
)
from slurm_vgpu.native._ffi import (
    VGPU_MAX_GPUS,
    VGPU_MAX_PROCS,
    VGPU_STATE_MAGIC,
    VGPU_STATE_VERSION,
    ffi,
)
from slurm_vgpu.native.usage import STATE_SIZE
from slurm_vgpu.policies.decide.lent_file import parse_lent

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

GIB = 1 << 30
UUIDS = ("GPU-0a0a0a0a-0000-4000-8000-000000000000", "GPU-1b1b1b1b-0000-4000-8000-000000000001")
REPO = Path(__file__).resolve().parent.parent


def wait_until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Node:
    """One simulated node's files: inventory, runtime dir, job files written as the SPANK plugin
    and the hook would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runtime = root / "run"
        (self.runtime / "jobs").mkdir(parents=True)
        self.inventory = root / "inventory.conf"
        self.inventory.write_text(format_inventory(NodeInventory("n1", tuple(
            InventoryGpu(i, uuid, 10, GIB, 100, 10 * GIB, "Simulated GPU")
            for i, uuid in enumerate(UUIDS)))))

    def job_dir(self, job_id: int) -> Path:
        d = self.runtime / "jobs" / str(job_id)
        d.mkdir(exist_ok=True)
        return d

    def place(self, job_id: int, share: SharePolicy, *gpus: tuple[int, int]) -> Path:
        """Write the job's limits file: (gpu index, slices) pairs."""
        path = self.job_dir(job_id) / "limits"
        write_limits_file(path, JobLimits(job_id=job_id, uid=0, share_policy=share, gpus=tuple(
            GpuLimit(UUIDS[g], g, s, s * GIB, s * 100, s * 100) for g, s in gpus)))
        return path

    def usage(self, job_id: int, busy_ns: int, used_bytes: int = 0) -> None:
        """Write the job's usage state (struct vgpu_state) as the hook keeps it."""
        st: Any = ffi.new("struct vgpu_state *")
        st.magic, st.version, st.size = VGPU_STATE_MAGIC, VGPU_STATE_VERSION, STATE_SIZE
        st.ngpus, st.nprocs = VGPU_MAX_GPUS, VGPU_MAX_PROCS
        for g in range(2):
            st.gpu[g].busy_ns = busy_ns
            st.gpu[g].used_bytes = used_bytes
        path = self.job_dir(job_id) / "state"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, bytes(ffi.buffer(st)), 0)
        finally:
            os.close(fd)


@contextlib.contextmanager
def busy(node: Node, job_id: int, used_bytes: int = 0) -> Iterator[None]:
    """Keep a job's measured device time growing (the job computes) until the block ends."""
    stop = threading.Event()

    def run() -> None:
        busy_ns = 10**9
        while not stop.is_set():
            busy_ns += 10**9
            node.usage(job_id, busy_ns, used_bytes)
            stop.wait(0.2)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(5)


class DaemonProcess:
    def __init__(self, cluster: Any, node: Node, config: str) -> None:
        self.cluster = cluster
        self.port = free_port()
        self.config = node.root / "vgpu-daemon.yaml"
        self.config.write_text(
            f"nodes: [n1]\ncontrol_period_seconds: 0.5\nruntime_dir: {node.runtime}\n"
            f"inventory: {node.inventory}\nnvml: false\nlog_level: debug\n"
            f"metrics: {{port: {self.port}, address: 127.0.0.1}}\n"
            "slurm: {backoff_initial_seconds: 0.5, backoff_max_seconds: 2}\n" + config)
        self.log = node.root / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "slurm_vgpu.cli", "daemon", "--config", str(self.config)],
                env=self.cluster.env, stdout=out, stderr=subprocess.STDOUT)
        wait_until(lambda: "vgpu_daemon_cycles_total" in self.metrics(), "daemon metrics")

    def metrics(self) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            return ""

    def metric(self, name: str, **labels: str) -> float | None:
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if labels else "") + \
            r" (\S+)$"
        for line in self.metrics().splitlines():
            m = re.match(pattern, line)
            if m:
                return float(m.group(1))
        return None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for d in started:
        d.kill(signal.SIGTERM)


def vgpu_count(cluster: Any) -> int | None:
    out = cluster.run("sinfo", "-h", "-N", "-n", "n1", "-o", "%G").stdout
    m = re.search(r"vgpu:(\d+)", out)
    return int(m.group(1)) if m else None


def running(cluster: Any, job_id: int) -> bool:
    return bool(cluster.job_state(job_id) == "RUNNING")


def test_share_change_metrics_and_daemon_restart(slurm_cluster_factory: Any, node: Node,
                                                 daemons: list[DaemonProcess]) -> None:
    cluster = slurm_cluster_factory(nodes=("n1",), accounting=False)
    burst_job = cluster.sbatch("--gres=vgpu:3", "-o", "/dev/null", "--wrap", "sleep 300")
    owner_job = cluster.sbatch("--gres=vgpu:7", "-o", "/dev/null", "--wrap", "sleep 300")
    wait_until(lambda: running(cluster, burst_job) and running(cluster, owner_job), "jobs")
    burst_limits = node.place(burst_job, SharePolicy.BURST, (0, 3))
    node.place(owner_job, SharePolicy.GUARANTEED, (0, 7))
    node.usage(owner_job, busy_ns=10**9)  # the owner's device time does not advance: idle

    d = DaemonProcess(cluster, node, "share: {idle_after_seconds: 1}\n")
    daemons.append(d)
    d.start()

    def compute() -> int:
        return read_limits_file(burst_limits).gpus[0].compute_limit_permille

    wait_until(lambda: compute() == 1000, "the burst job to get the idle owner's share")
    labels = {"node": "n1", "job": str(burst_job), "gpu": "0", "uuid": UUIDS[0]}
    # the limits file is written mid-cycle, the metrics when the cycle ends
    wait_until(lambda: d.metric("vgpu_job_compute_target_ratio", **labels) == 1.0,
               "the burst job's target in the metrics")
    assert d.metric("vgpu_job_compute_guaranteed_ratio", **labels) == 0.3
    assert d.metric("vgpu_job_memory_limit_bytes", **labels) == 3 * GIB
    assert d.metric("vgpu_gpu_slices_allocated", node="n1", gpu="0", uuid=UUIDS[0]) == 10
    assert d.metric("vgpu_daemon_slurm_up") == 1.0
    assert (d.metric("vgpu_daemon_last_slurm_success_timestamp_seconds") or 0) > time.time() - 30
    assert (d.metric("vgpu_policy_actions_total", action="set_compute_limit") or 0) >= 1

    status = subprocess.run(
        [sys.executable, "-m", "slurm_vgpu.cli", "status", "--config", str(d.config), "--json",
         "--sample-seconds", "0"], env=cluster.env, capture_output=True, text=True, timeout=60,
        check=True)
    doc = json.loads(status.stdout)
    assert doc["slurm_ok"] is True
    jobs = {j["job_id"]: j for j in doc["nodes"][0]["jobs"]}
    assert jobs[burst_job]["gpus"][0]["compute_target_permille"] == 1000
    assert jobs[owner_job]["partition"] == "debug"

    with busy(node, owner_job):  # the owner computes again: its share comes back
        wait_until(lambda: compute() == 300, "the owner's share to come back")

    # kill -9 mid-job, restart: everything is re-derived from Slurm and the job files
    d.kill()
    assert compute() == 300  # the last limits stay in force while no daemon runs
    d.start()
    wait_until(lambda: d.metric("vgpu_job_slices", **labels) == 3, "jobs seen after restart")
    wait_until(lambda: compute() == 1000, "the burst share after the restart")
    assert "Traceback" not in d.log_text()


def test_backfill_slurmctld_restart_and_requeue(slurm_cluster_factory: Any, node: Node,
                                                daemons: list[DaemonProcess]) -> None:
    cluster = slurm_cluster_factory(nodes=("n1",), accounting=False, extra_conf=(
        "PreemptType=preempt/partition_prio\nPreemptMode=REQUEUE\n"
        "PartitionName=scavenger Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=0 "
        "PreemptMode=REQUEUE\n"))
    owner = cluster.sbatch("--gres=vgpu:20", "-o", "/dev/null", "--wrap", "sleep 300")
    wait_until(lambda: running(cluster, owner), "the owner job")
    node.place(owner, SharePolicy.GUARANTEED, (0, 10), (1, 10))
    node.usage(owner, busy_ns=10**9)  # idle

    d = DaemonProcess(cluster, node, (
        "backfill: {enabled: true, idle_after_seconds: 2, max_offer_slices: 4,"
        " preemptible_partitions: [scavenger]}\n"))
    daemons.append(d)
    d.start()
    wait_until(lambda: vgpu_count(cluster) == 24, "the node's vgpu count to be raised")
    # the metric is published when the cycle that raised the count ends
    wait_until(lambda: d.metric("vgpu_node_slices_lent", node="n1") == 4, "the lent metric")
    assert parse_lent((node.runtime / "lent").read_text()) == {0: 4}

    guest = cluster.sbatch("-p", "scavenger", "--gres=vgpu:4", "-o", "/dev/null",
                           "--wrap", "sleep 300")
    wait_until(lambda: running(cluster, guest), "the preemptible job to run on lent slices")

    # slurmctld restart resets the count to slurm.conf's; the daemon puts it back
    def count_updates() -> float:
        return d.metric("vgpu_policy_actions_total", action="set_node_vgpu_count") or 0

    cluster.restart("slurmctld")
    wait_until(lambda: count_updates() >= 2, "the count re-applied after a restart")
    wait_until(lambda: vgpu_count(cluster) == 24, "the count back at 24 after a restart")
    assert running(cluster, guest)
    # so does `scontrol reconfigure`
    cluster.reconfigure()
    wait_until(lambda: count_updates() >= 3, "the count re-applied after a reconfigure")
    wait_until(lambda: vgpu_count(cluster) == 24, "the count back at 24 after a reconfigure")
    assert running(cluster, guest)

    # the guest runs on GPU 0 and holds 3 GiB there
    node.place(guest, SharePolicy.GUARANTEED, (0, 4))
    node.usage(guest, busy_ns=10**9, used_bytes=3 * GIB)
    wait_until(lambda: d.metric("vgpu_job_backfilled", node="n1", job=str(guest), gpu="0",
                                uuid=UUIDS[0]) == 1.0, "the guest counted as backfilled")
    assert d.metric("vgpu_gpu_slices_backfilled", node="n1", gpu="0", uuid=UUIDS[0]) == 4
    assert d.metric("vgpu_node_slices_backfilled", node="n1") == 4

    with busy(node, owner):  # the owner wakes up: offer withdrawn, guest throttled, requeued
        wait_until(lambda: vgpu_count(cluster) == 20, "the offer to be withdrawn")
        wait_until(lambda: cluster.job_state(guest) in ("PENDING", "REQUEUED"),
                   "the guest to be requeued (its memory is the owner's)")
    assert (d.metric("vgpu_policy_actions_total", action="requeue_job") or 0) >= 1
    assert running(cluster, owner)
    assert "Traceback" not in d.log_text()


def test_slurm_stopped_under_the_daemon(slurm_cluster_factory: Any, node: Node,
                                        daemons: list[DaemonProcess]) -> None:
    cluster = slurm_cluster_factory(nodes=("n1",), accounting=False)
    job = cluster.sbatch("--gres=vgpu:3", "-o", "/dev/null", "--wrap", "sleep 300")
    wait_until(lambda: running(cluster, job), "the job")
    limits = node.place(job, SharePolicy.BURST, (0, 3))
    d = DaemonProcess(cluster, node, "")
    daemons.append(d)
    d.start()
    wait_until(lambda: read_limits_file(limits).gpus[0].compute_limit_permille == 1000,
               "the burst share")
    # Stop slurmctld (by the PID the cluster recorded) and leave it down for a while.
    cluster._stop_daemon("slurmctld")
    wait_until(lambda: d.metric("vgpu_daemon_slurm_up") == 0.0, "slurm_up to drop to 0")
    assert read_limits_file(limits).gpus[0].compute_limit_permille == 1000
    assert d.proc is not None and d.proc.poll() is None
    cluster.restart("slurmctld")
    wait_until(lambda: d.metric("vgpu_daemon_slurm_up") == 1.0, "slurm_up back to 1", 60)
    assert "Slurm reachable again" in d.log_text()
    assert "Traceback" not in d.log_text()


def node_gpu_uuid(node: str, index: int) -> str:
    return f"GPU-{node}00000{index}-0000-4000-8000-00000000000{index}"


def test_packing_weights_steer_slurmctld(slurm_cluster_factory: Any, node: Node,
                                         daemons: list[DaemonProcess]) -> None:
    cluster = slurm_cluster_factory(nodes=("n1", "n2"), accounting=False)
    inventories = {}
    for name in ("n1", "n2"):
        path = node.root / f"inventory-{name}.conf"
        path.write_text(format_inventory(NodeInventory(name, tuple(
            InventoryGpu(i, node_gpu_uuid(name, i), 10, GIB, 100,
                         10 * GIB, "Simulated GPU") for i in range(2)))))
        inventories[name] = path
    # n1: a 1-slice job breaks one of its GPUs. n2: a CPU-only job, GPUs whole, but more CPUs
    # in use, which slurmctld's own best fit prefers.
    small = cluster.sbatch("-w", "n1", "-c", "1", "--gres=vgpu:1", "-o", "/dev/null",
                           "--wrap", "sleep 300")
    cpu_only = cluster.sbatch("-w", "n2", "-c", "4", "-o", "/dev/null", "--wrap", "sleep 300")
    wait_until(lambda: running(cluster, small) and running(cluster, cpu_only), "the jobs")
    write_limits_file(node.job_dir(small) / "limits", JobLimits(job_id=small, uid=0, gpus=(
        GpuLimit(node_gpu_uuid("n1", 0), 0, 1, GIB, 100, 100),)))
    # Control: without weights, the next vgpu job goes to n2.
    control = cluster.sbatch("--gres=vgpu:3", "-o", "/dev/null", "--wrap", "sleep 300")
    wait_until(lambda: running(cluster, control), "the control job")
    natural = cluster.job_info(control).get("NodeList")
    cluster.run("scancel", str(control))
    wait_until(lambda: cluster.job_state(control) not in ("RUNNING", "COMPLETING"),
               "the control job to end")
    assert natural == "n2"

    d = DaemonProcess(cluster, node, "packing: {enabled: true}\n")
    d.config.write_text(d.config.read_text().replace("nodes: [n1]", "nodes: [n1, n2]").replace(
        f"inventory: {node.inventory}", f"inventory: {node.root}/inventory-%n.conf"))
    daemons.append(d)
    d.start()

    def weights() -> dict[str, int]:
        out = cluster.run("sinfo", "-h", "-N", "-o", "%N %w").stdout.split()
        return {out[i]: int(out[i + 1]) for i in range(0, len(out), 2)}

    # n1: one whole GPU left, 9 free slices on the other (100 + 1000 + 9); n2: both GPUs whole
    wait_until(lambda: weights() == {"n1": 1109, "n2": 2100}, "packing weights")
    wait_until(lambda: d.metric("vgpu_node_weight", node="n1") == 1109, "the weight metric")
    assert d.metric("vgpu_job_slices", node="n1", job=str(small), gpu="0",
                    uuid=node_gpu_uuid("n1", 0)) == 1
    second = cluster.sbatch("--gres=vgpu:3", "-o", "/dev/null", "--wrap", "sleep 300")
    wait_until(lambda: running(cluster, second), "the second job")
    # the weights send it beside the 1-slice job, keeping n2's GPUs whole
    assert cluster.job_info(second).get("NodeList") == "n1"

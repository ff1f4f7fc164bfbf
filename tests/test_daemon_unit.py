"""The daemon's cycle with a fake Slurm client and NVML (pure logic), but real per-job files
written with the hook's binding in a temporary runtime directory."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from summary_runner import FakeRunner

from slurm_vgpu.cli import main as vgpu_main
from slurm_vgpu.errors import ConfigError
from slurm_vgpu.native import GpuLimit, GpuUsage, JobLimits, JobUsage, write_limits_file
from slurm_vgpu.native import SharePolicy as NativeShare
from slurm_vgpu.policies.accounting import job_tracker
from slurm_vgpu.policies.accounting.job_summary import (
    GpuSlices,
    JobSummary,
    format_summary,
    parse_summary,
)
from slurm_vgpu.policies.decide.actions import SetComputeLimit
from slurm_vgpu.policies.decide.config import (
    AccountingConfig,
    BackfillConfig,
    DaemonConfig,
    PolicyConfig,
    ShareConfig,
    config_from_dict,
    load_config,
)
from slurm_vgpu.policies.decide.lent_file import format_lent, parse_lent, parse_lent_file
from slurm_vgpu.policies.decide.snapshot import GpuState, PendingJob
from slurm_vgpu.policies.service.applier import Applier
from slurm_vgpu.policies.service.daemon import Daemon, build_daemon
from slurm_vgpu.policies.service.job_files import RuntimeDirJobFiles
from slurm_vgpu.policies.service.metrics import DaemonCollector
from slurm_vgpu.policies.service.nvml_source import DeviceReading, ProcessReading
from slurm_vgpu.policies.service.observer import InventoryGpuInfo
from slurm_vgpu.policies.service.proc_attribution import attribute_pid
from slurm_vgpu.policies.slurm.slurm_client import SlurmJob, SlurmNode, SlurmUnavailable

GIB = 1 << 30
UUID0 = "GPU-00000000-1111-2222-3333-444444444444"
UUID1 = "GPU-11111111-1111-2222-3333-444444444444"
INVENTORY = {"n1": [InventoryGpuInfo(0, UUID0, 10, 8 * GIB, 100, 80 * GIB),
                    InventoryGpuInfo(1, UUID1, 10, 8 * GIB, 100, 80 * GIB)]}

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="limits files must be root-owned")


class FakeSlurm:
    def __init__(self, jobs: list[SlurmJob], vgpu: int = 20, weight: int = 1) -> None:
        self.jobs = jobs
        self.vgpu = vgpu
        self.weight = weight
        self.down = False
        self.calls: list[tuple[str, object]] = []
        self.pending: list[PendingJob] = []  # waiting vgpu jobs (from the squeue read)
        self.partitions: tuple[str, ...] = ("normal", "scavenger")

    def _maybe_fail(self) -> None:
        if self.down:
            raise SlurmUnavailable("slurmctld is down (fake)")

    def running_jobs(self, nodes: Sequence[str] | None = None) -> list[SlurmJob]:
        self._maybe_fail()
        self.calls.append(("squeue", None))
        return list(self.jobs)

    def pending_jobs(self) -> list[PendingJob]:
        return list(self.pending)

    def nodes(self, names: Sequence[str]) -> list[SlurmNode]:
        self._maybe_fail()
        self.calls.append(("sinfo", None))
        return [SlurmNode("n1", "mixed", self.vgpu, 0, self.weight, self.partitions)]

    def set_node_vgpu_count(self, node: str, count: int) -> None:
        self._maybe_fail()
        self.calls.append(("gres", count))
        self.vgpu = count

    def set_node_weight(self, node: str, weight: int) -> None:
        self._maybe_fail()
        self.calls.append(("weight", weight))
        self.weight = weight

    def requeue_job(self, job_id: int) -> None:
        self.calls.append(("requeue", job_id))

    def cancel_step(self, job_id: int, step: str) -> None:
        self.calls.append(("cancel", f"{job_id}.{step}"))


class FakeUsageFiles(RuntimeDirJobFiles):
    """Real limits files; usage (busy time) set by the test instead of a running hook."""

    def __init__(self, runtime_dir: Path) -> None:
        super().__init__(runtime_dir)
        self.busy_ns: dict[int, int] = {}
        self.used: dict[int, int] = {}

    def read_usage(self, job_id: int, ngpus: int) -> JobUsage | None:
        if job_id not in self.busy_ns:
            return None
        gpu = GpuUsage(index=0, used_bytes=self.used.get(job_id, 0), peak_bytes=0,
                       busy_ns=self.busy_ns[job_id], throttled_ns=0, oom_denials=0,
                       tokens_ns=0, effective_permille=0, gate_closed=False, sampler_pid=0)
        return JobUsage(initialized=True, gpus=(gpu,), processes=(), repairs=0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write_job(runtime: Path, job_id: int, slices: int, share: NativeShare,
              uuid: str = UUID0, index: int = 0) -> Path:
    d = runtime / "jobs" / str(job_id)
    d.mkdir(parents=True)
    write_limits_file(d / "limits", JobLimits(
        job_id=job_id, uid=1000, share_policy=share,
        gpus=(GpuLimit(uuid, index, slices, slices * 8 * GIB, slices * 100, slices * 100),)))
    return d / "limits"


def slurm_job(job_id: int, slices: int, partition: str = "normal") -> SlurmJob:
    return SlurmJob(job_id, "RUNNING", partition, "normal", 1000, float(job_id),
                    {"n1": slices})


def make_daemon(tmp_path: Path, slurm: FakeSlurm, cfg: DaemonConfig | None = None,
                files: RuntimeDirJobFiles | None = None, nvml: object = None,
                proc_root: Path = Path("/proc"), runner: FakeRunner | None = None,
                dry_run: bool = False) -> tuple[Daemon, Clock]:
    cfg = cfg or DaemonConfig(nodes=("n1",), nvml=False, policy=PolicyConfig(
        share=ShareConfig(idle_after_seconds=10)))
    cfg = dataclasses.replace(cfg, runtime_dir=str(tmp_path))
    d = build_daemon(cfg, slurm=slurm, files=files or RuntimeDirJobFiles(tmp_path),
                     inventories=INVENTORY, nvml=nvml, proc_root=proc_root,  # type: ignore[arg-type]
                     dry_run=dry_run, summary_runner=runner or FakeRunner())
    clock = Clock()
    d.observer.clock = clock
    return d, clock


def read_compute(path: Path) -> int:
    from slurm_vgpu.native import read_limits_file

    return read_limits_file(path).gpus[0].compute_limit_permille


@needs_root
def test_burst_share_reaches_limits_file_and_comes_back(tmp_path: Path) -> None:
    burst = write_job(tmp_path, 1, 3, NativeShare.BURST)
    write_job(tmp_path, 2, 7, NativeShare.GUARANTEED)
    files = FakeUsageFiles(tmp_path)
    slurm = FakeSlurm([slurm_job(1, 3), slurm_job(2, 7)])
    d, clock = make_daemon(tmp_path, slurm, files=files)
    files.busy_ns = {1: 0, 2: 0}
    d.cycle()  # first sample: everyone counts as active
    assert read_compute(burst) == 300
    for _ in range(3):  # job 1 busy, job 2 idle for 15 s
        clock.now += 5
        files.busy_ns[1] += 5 * 10**9 * 3 // 10
        d.cycle()
    assert read_compute(burst) == 1000
    clock.now += 5  # job 2 wakes up: its share is back after this one period
    files.busy_ns[1] += 10**9
    files.busy_ns[2] += 2 * 10**9
    d.cycle()
    assert read_compute(burst) == 300
    assert d.state.actions["set_compute_limit"] == 2


@needs_root
def test_slurm_down_keeps_limits_backs_off_and_says_so(tmp_path: Path) -> None:
    burst = write_job(tmp_path, 1, 3, NativeShare.BURST)
    slurm = FakeSlurm([slurm_job(1, 3)])
    d, clock = make_daemon(tmp_path, slurm)
    d.cycle()
    assert read_compute(burst) == 1000  # alone on the GPU, no usage data yet: may burst
    slurm.down = True
    calls = len(slurm.calls)
    for _ in range(5):
        clock.now += 0.5
        d.cycle()
    assert read_compute(burst) == 1000
    assert d.observer.health.consecutive_failures >= 2
    assert d.state.slurm_up is False
    text = scrape(d)
    assert "vgpu_daemon_slurm_up 0.0" in text
    assert "vgpu_daemon_last_slurm_success_timestamp_seconds 1000.0" in text
    slurm.down = False
    clock.now += 120
    d.cycle()
    assert d.state.slurm_up is True
    assert len(slurm.calls) == calls + 2  # one squeue + one sinfo once it answers


@needs_root
def test_restart_rederives_state_and_does_not_flap(tmp_path: Path) -> None:
    write_job(tmp_path, 1, 3, NativeShare.BURST)
    write_job(tmp_path, 2, 7, NativeShare.GUARANTEED)
    slurm = FakeSlurm([slurm_job(1, 3), slurm_job(2, 7)])
    first, _ = make_daemon(tmp_path, slurm)
    first.cycle()
    before = first.state.snapshot
    second, _ = make_daemon(tmp_path, slurm)  # "restarted": nothing carried over
    second.cycle()
    after = second.state.snapshot
    assert before is not None and after is not None
    assert [j.gpus for j in before.jobs] == [j.gpus for j in after.jobs]
    assert second.state.actions["set_compute_limit"] == 0


@needs_root
def test_restart_while_slurm_down_uses_runtime_dir(tmp_path: Path) -> None:
    write_job(tmp_path, 5, 4, NativeShare.BURST)
    slurm = FakeSlurm([])
    slurm.down = True
    d, _ = make_daemon(tmp_path, slurm)
    d.cycle()
    assert d.state.snapshot is not None
    assert [j.job_id for j in d.state.snapshot.jobs] == [5]
    assert not [c for c in slurm.calls if c[0] in ("gres", "weight")]


def idle_owner_daemon(tmp_path: Path, **backfill: Any
                      ) -> tuple[Daemon, Clock, FakeSlurm, FakeUsageFiles]:
    """A daemon with backfill on (idle after 30 s, `scavenger` preemptible) and one idle
    guaranteed job holding 8 slices of n1's GPU 0."""
    write_job(tmp_path, 1, 8, NativeShare.GUARANTEED)
    files = FakeUsageFiles(tmp_path)
    files.busy_ns = {1: 0}
    slurm = FakeSlurm([slurm_job(1, 8)])
    cfg = DaemonConfig(nodes=("n1",), nvml=False, policy=PolicyConfig(
        backfill=BackfillConfig(enabled=True, idle_after_seconds=30,
                                preemptible_partitions=("scavenger",), **backfill)))
    d, clock = make_daemon(tmp_path, slurm, cfg, files=files)
    return d, clock, slurm, files


@needs_root
def test_backfill_count_raised_then_reset_and_reapplied(tmp_path: Path) -> None:
    d, clock, slurm, files = idle_owner_daemon(tmp_path)
    for _ in range(8):
        clock.now += 5
        d.cycle()
    assert slurm.vgpu == 28
    lent = parse_lent_file((tmp_path / "lent").read_text())  # for the SPANK plugin
    assert (lent.node, lent.gpus, lent.partitions, lent.qos) == ("n1", {0: 8}, ("scavenger",), ())
    assert "\nversion=2\n" in (tmp_path / "lent").read_text()
    slurm.vgpu = 20  # scontrol reconfigure reset it
    clock.now += 5
    d.cycle()
    assert slurm.vgpu == 28
    files.busy_ns[1] += 5 * 10**9  # owner active again: offer withdrawn
    clock.now += 5
    d.cycle()
    assert slurm.vgpu == 20
    assert parse_lent((tmp_path / "lent").read_text()) == {}
    assert [c for c in slurm.calls if c[0] == "gres"] == [("gres", 28), ("gres", 28),
                                                          ("gres", 20)]


@needs_root
def test_backfill_withdrawn_and_held_off_when_the_plugin_refused_a_job(tmp_path: Path) -> None:
    d, clock, slurm, _ = idle_owner_daemon(tmp_path, holdoff_seconds=60)
    for _ in range(8):
        clock.now += 5
        d.cycle()
    assert slurm.vgpu == 28
    marker = tmp_path / "lent.refused"
    # a marker that is not root's own file is ignored (a user must not stop backfill)
    refused_at = int(clock.now)
    marker.write_text(f"time={refused_at} job=7 slices=4\n")
    os.chown(marker, 65534, 65534)
    clock.now += 5
    d.cycle()
    assert slurm.vgpu == 28
    # the plugin requeued a normal job started on the lent slices: the offer is withdrawn
    os.chown(marker, 0, 0)
    reads = len(slurm.calls)
    clock.now += 5
    d.cycle()
    assert slurm.vgpu == 20
    assert parse_lent((tmp_path / "lent").read_text()) == {}
    assert 'vgpu_node_backfill_withheld{node="n1",reason="holdoff"} 1.0' in scrape(d)
    # (no extra Slurm reads for it: the marker is a file)
    assert [c[0] for c in slurm.calls[reads:]] == ["squeue", "sinfo", "gres"]
    # held off: nothing offered for holdoff_seconds after the marker's time
    while clock.now + 5 < refused_at + 60:
        clock.now += 5
        d.cycle()
        assert slurm.vgpu == 20
    clock.now += 5
    d.cycle()
    assert slurm.vgpu == 28
    assert parse_lent((tmp_path / "lent").read_text()) == {0: 8}


def test_no_lending_while_a_normal_job_waits_for_the_node(tmp_path: Path) -> None:
    d, clock, slurm, _ = idle_owner_daemon(tmp_path)
    # waiting: a normal job that could start here (it would land on lent slices and be
    # requeued), a scavenger job (may use them), a job of a partition n1 is not in
    slurm.pending = [PendingJob(7, ("normal",), "normal", 4),
                     PendingJob(8, ("scavenger",), "normal", 4),
                     PendingJob(9, ("other",), "normal", 4)]
    for _ in range(8):
        clock.now += 5
        d.cycle()
    assert slurm.vgpu == 20 and parse_lent((tmp_path / "lent").read_text()) == {}
    assert 'vgpu_node_backfill_withheld{node="n1",reason="waiting_job"} 1.0' in scrape(d)
    reads = len(slurm.calls)
    slurm.pending = slurm.pending[1:]  # the normal job started elsewhere or was cancelled
    clock.now += 5
    d.cycle()
    assert slurm.vgpu == 28
    assert [c[0] for c in slurm.calls[reads:]] == ["squeue", "sinfo", "gres"]  # no extra read
    assert "vgpu_node_backfill_withheld{" not in scrape(d)
    slurm.pending.append(PendingJob(10, ("scavenger", "normal"), "normal", 2))  # may run in
    clock.now += 5                                                         # normal too
    d.cycle()
    assert slurm.vgpu == 20


class FakeNvml:
    def __init__(self, procs: list[ProcessReading]) -> None:
        self.procs = procs

    def sample(self) -> tuple[list[DeviceReading], list[ProcessReading]]:
        return [DeviceReading(UUID0, 0, 500, 30 * GIB, 80 * GIB)], self.procs


def fake_proc(root: Path, pid: int, ppid: int, uid: int, cmdline: bytes = b"x",
              cgroup: str = "0::/\n") -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "status").write_text(f"Name:\tx\nPPid:\t{ppid}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
    (d / "cmdline").write_bytes(cmdline)
    (d / "cgroup").write_text(cgroup)


def test_proc_attribution(tmp_path: Path) -> None:
    fake_proc(tmp_path, 10, 1, 0, b"slurmstepd: [42.0]\0")
    fake_proc(tmp_path, 11, 10, 1000)
    fake_proc(tmp_path, 12, 11, 1000)
    # a user process pretending to be a slurmstepd does not count (not root-owned)
    fake_proc(tmp_path, 20, 1, 1000, b"slurmstepd: [99.0]\0")
    fake_proc(tmp_path, 21, 20, 1000)
    fake_proc(tmp_path, 30, 1, 1000, cgroup="0::/system.slice/slurmstepd.scope/job_77/step_batch/"
              "user/task_0\n")
    assert attribute_pid(12, tmp_path) == (42, "0")
    assert attribute_pid(21, tmp_path) is None
    assert attribute_pid(30, tmp_path) == (77, "batch")
    assert attribute_pid(999, tmp_path) is None


@needs_root
def test_backstop_cancels_step_over_cap(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    write_job(runtime, 42, 2, NativeShare.GUARANTEED)  # cap 16 GiB
    proc = tmp_path / "proc"
    fake_proc(proc, 10, 1, 0, b"slurmstepd: [42.0]\0")
    fake_proc(proc, 11, 10, 1000)
    slurm = FakeSlurm([slurm_job(42, 2)])
    cfg = DaemonConfig(nodes=("n1",), nvml=True, policy=PolicyConfig(
        backstop=dataclasses.replace(PolicyConfig().backstop, action="cancel_step")))
    d, _ = make_daemon(runtime, slurm, cfg, files=RuntimeDirJobFiles(runtime),
                       nvml=FakeNvml([ProcessReading(UUID0, 11, 20 * GIB)]), proc_root=proc)
    d.cycle()
    assert ("cancel", "42.0") in slurm.calls
    text = scrape(d)
    assert f'vgpu_backstop_events_total{{kind="over_cap",node="n1",uuid="{UUID0}"}} 1.0' in text
    assert 'vgpu_backstop_over_cap_bytes{job="42"' in text


@needs_root
def test_job_just_started_is_held_to_its_files_caps_until_slurm_lists_it(tmp_path: Path) -> None:
    """A node agent hears of a new job a period or two after its first allocation: until
    then the job's root-owned limits file gives its caps (not a cap of 0: no cancel), for a
    bounded time; a job Slurm listed and dropped is never brought back from its files."""
    runtime = tmp_path / "run"
    write_job(runtime, 42, 2, NativeShare.GUARANTEED)  # cap 16 GiB
    proc = tmp_path / "proc"
    fake_proc(proc, 10, 1, 0, b"slurmstepd: [42.batch]\0")
    fake_proc(proc, 11, 10, 1000)
    slurm = FakeSlurm([])
    d, clock = make_daemon(runtime, slurm, DaemonConfig(nodes=("n1",), nvml=True),
                           files=RuntimeDirJobFiles(runtime),
                           nvml=FakeNvml([ProcessReading(UUID0, 11, 4 * GIB)]), proc_root=proc)
    d.cycle()
    assert not [c for c in slurm.calls if c[0] == "cancel"]
    snap = d.state.snapshot
    assert snap is not None and [j.job_id for j in snap.jobs] == [42]
    assert snap.jobs[0].gpus[0].memory_limit_bytes == 16 * GIB
    assert d.observer.just_started == {42}  # what a node agent reports to its controller
    clock.now += 5
    slurm.jobs = [slurm_job(42, 2)]  # now Slurm lists it ...
    d.cycle()
    assert d.observer.just_started == set()
    clock.now += 5
    slurm.jobs = []  # ... and drops it (ended): its files no longer make it a running job
    d.cycle()
    assert ("cancel", "42.batch") in slurm.calls


@needs_root
def test_files_of_a_job_slurm_never_lists_count_for_a_bounded_time(tmp_path: Path) -> None:
    from slurm_vgpu.policies.service.observer import JUST_STARTED_GRACE_SECONDS

    runtime = tmp_path / "run"
    write_job(runtime, 42, 2, NativeShare.GUARANTEED)
    d, clock = make_daemon(runtime, FakeSlurm([]), files=RuntimeDirJobFiles(runtime))
    d.cycle()
    assert d.state.snapshot is not None and len(d.state.snapshot.jobs) == 1
    clock.now += JUST_STARTED_GRACE_SECONDS + 1
    d.cycle()
    assert d.state.snapshot is not None and d.state.snapshot.jobs == ()


@needs_root
def test_backstop_counts_compute_over_share_as_its_own_kind(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    write_job(runtime, 42, 2, NativeShare.GUARANTEED)  # 20 % of the GPU, within its memory
    proc = tmp_path / "proc"
    fake_proc(proc, 10, 1, 0, b"slurmstepd: [42.0]\0")
    fake_proc(proc, 11, 10, 1000)
    slurm = FakeSlurm([slurm_job(42, 2)])
    d, _ = make_daemon(runtime, slurm, DaemonConfig(nodes=("n1",), nvml=True),
                       files=RuntimeDirJobFiles(runtime),
                       nvml=FakeNvml([ProcessReading(UUID0, 11, GIB, utilization_permille=900)]),
                       proc_root=proc)
    d.cycle()
    assert ("cancel", "42.0") in slurm.calls  # the shipped default stops the step
    text = scrape(d)
    assert f'vgpu_backstop_events_total{{kind="compute",node="n1",uuid="{UUID0}"}} 1.0' in text
    assert 'kind="over_cap"' not in text


@needs_root
def test_metrics_scrape_lists_gpus_jobs_and_health(tmp_path: Path) -> None:
    write_job(tmp_path, 1, 3, NativeShare.BURST)
    d, _ = make_daemon(tmp_path, FakeSlurm([slurm_job(1, 3)]))
    d.cycle()
    text = scrape(d)
    for line in (
        f'vgpu_gpu_slices{{gpu="0",node="n1",uuid="{UUID0}"}} 10.0',
        f'vgpu_gpu_slices_allocated{{gpu="0",node="n1",uuid="{UUID0}"}} 3.0',
        f'vgpu_job_memory_limit_bytes{{gpu="0",job="1",node="n1",uuid="{UUID0}"}} '
        '2.5769803776e+10',
        f'vgpu_job_compute_guaranteed_ratio{{gpu="0",job="1",node="n1",uuid="{UUID0}"}} 0.3',
        f'vgpu_job_compute_target_ratio{{gpu="0",job="1",node="n1",uuid="{UUID0}"}} 1.0',
        'vgpu_node_slices_configured{node="n1"} 20.0',
        'vgpu_policy_actions_total{action="set_compute_limit"} 1.0',
        "vgpu_daemon_slurm_up 1.0",
        "vgpu_daemon_cycles_total 1.0",
    ):
        assert line in text, line


def scrape(d: Daemon) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(d.state))
    return generate_latest(registry).decode()


@needs_root
def test_applier_refuses_policy_bugs(tmp_path: Path) -> None:
    write_job(tmp_path, 1, 3, NativeShare.BURST)
    files = RuntimeDirJobFiles(tmp_path)
    d, _ = make_daemon(tmp_path, FakeSlurm([slurm_job(1, 3)]))
    snapshot = d.observer.observe()
    applier = Applier(FakeSlurm([]), files)
    result = applier.apply(snapshot, [SetComputeLimit(1, UUID0, 1500, "bug"),
                                      SetComputeLimit(9, UUID0, 100, "unknown job")])
    assert result.failed["set_compute_limit"] == 2
    assert read_compute(tmp_path / "jobs" / "1" / "limits") == 300


@needs_root
def test_memory_cap_never_raised_by_writes(tmp_path: Path) -> None:
    from slurm_vgpu.policies.service.job_files import MemoryCapViolation

    write_job(tmp_path, 1, 3, NativeShare.BURST)
    files = RuntimeDirJobFiles(tmp_path)
    with pytest.raises(MemoryCapViolation):
        files.write_gpu_limit(1, UUID0, memory_limit_bytes=25 * GIB)
    files.write_gpu_limit(1, UUID0, memory_limit_bytes=20 * GIB)


def test_limits_file_not_root_owned_is_ignored(tmp_path: Path) -> None:
    d = tmp_path / "jobs" / "3"
    d.mkdir(parents=True)
    (d / "limits").write_bytes(b"\0" * 10)
    os.chmod(d / "limits", 0o666)
    from slurm_vgpu.policies.service.job_files import JobFileError

    with pytest.raises(JobFileError, match="root"):
        RuntimeDirJobFiles(tmp_path).read_limits(3)


# --- config ----------------------------------------------------------------------------------


def test_lent_file_format_round_trips() -> None:
    gpus = [GpuState(node="n7", index=0, uuid="GPU-a", slices=10, slice_bytes=GIB,
                     slice_permille=100, memory_bytes=10 * GIB),
            GpuState(node="n7", index=3, uuid="GPU-b", slices=4, slice_bytes=GIB,
                     slice_permille=250, memory_bytes=4 * GIB)]
    text = format_lent("n7", gpus, {"GPU-b": 2, "GPU-a": 0}, ("scavenger", "low"), ("scav",))
    assert text.splitlines()[1:] == [
        "version=2", "node=n7", "preemptible partitions=scavenger,low qos=scav",
        "gpu index=3 uuid=GPU-b slices=2"]
    lent = parse_lent_file(text)
    assert (lent.node, lent.gpus, lent.partitions, lent.qos) == (
        "n7", {3: 2}, ("scavenger", "low"), ("scav",))
    # nothing lent, no preemptible QOS: the record is still written, with empty lists
    empty = format_lent("n7", gpus, {}, ("scavenger",))
    assert "preemptible partitions=scavenger qos=\n" in empty
    assert parse_lent(empty) == {}
    with pytest.raises(ValueError, match="'a b'"):
        format_lent("n7", gpus, {}, ("a b",))


@pytest.mark.parametrize(("doc", "field"), [
    ({"backfill": {"preemptible_partitions": ["scav,enger"]}}, "backfill.preemptible_partitions"),
    ({"backfill": {"preemptible_qos": ["a#b"]}}, "backfill.preemptible_qos"),
    ({"share": {"idle_after_seconds": "soon"}}, "share.idle_after_seconds"),
    ({"share": {"max_burst_permille": 1200}}, "share.max_burst_permille"),
    ({"backfill": {"enabled": True}}, "backfill.preemptible_partitions"),
    ({"backfill": {"holdoff_seconds": 0}}, "backfill.holdoff_seconds"),
    ({"backfill": {"holdoff_seconds": "soon"}}, "backfill.holdoff_seconds"),
    ({"backstop": {"action": "kill"}}, "backstop.action"),
    ({"metrics": {"port": 70000}}, "metrics.port"),
    ({"packing": {"weight": 3}}, "packing.weight"),
    ({"packing": {"free_gpu_weight": 10}}, "packing.free_gpu_weight"),
    ({"controll_period_seconds": 3}, "controll_period_seconds"),
    ({"slurm": {"client": "rest"}}, "slurm.client"),
    ({"accounting": {"enabled": "yes"}}, "accounting.enabled"),
    ({"accounting": {"update_interval_seconds": -5}}, "accounting.update_interval_seconds"),
    ({"accounting": {"interval": 5}}, "accounting.interval"),
    ([1, 2], "top level"),
])
def test_config_errors_name_the_field(doc: object, field: str) -> None:
    with pytest.raises(ConfigError) as e:
        config_from_dict(doc)
    assert str(e.value).startswith(field), str(e.value)


def test_example_config_is_valid() -> None:
    cfg = load_config(Path(__file__).parent.parent / "contrib" / "config" / "vgpu-daemon.yaml")
    assert cfg.policy.backfill.preemptible_partitions


def test_cli_bad_config_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("share:\n  idle_after_seconds: -1\n")
    assert vgpu_main(["daemon", "--config", str(bad), "--check-config"]) == 2
    err = capsys.readouterr().err
    assert "share.idle_after_seconds" in err and str(bad) in err
    assert vgpu_main(["daemon", "--config", str(tmp_path / "missing.yaml")]) == 2
    bad.write_text("share: [\n")
    assert vgpu_main(["daemon", "--config", str(bad), "--check-config"]) == 2
    good = tmp_path / "good.yaml"
    good.write_text("share:\n  idle_after_seconds: 5\n")
    assert vgpu_main(["daemon", "--config", str(good), "--check-config"]) == 0


@needs_root
def test_slurm_reads_per_cycle_do_not_grow_with_jobs(tmp_path: Path) -> None:
    jobs = []
    for i in range(1, 201):
        write_job(tmp_path, i, 1, NativeShare.GUARANTEED, UUID0 if i % 2 else UUID1, i % 2)
        jobs.append(slurm_job(i, 1))
    slurm = FakeSlurm(jobs, vgpu=20)
    d, clock = make_daemon(tmp_path, slurm)
    for _ in range(3):
        clock.now += 5
        d.cycle()
    assert d.state.snapshot is not None and len(d.state.snapshot.jobs) == 200
    assert [c[0] for c in slurm.calls] == ["squeue", "sinfo"] * 3


@needs_root
def test_nvml_process_utilization_measures_jobs_without_the_hook(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    burst = write_job(runtime, 1, 3, NativeShare.BURST)
    write_job(runtime, 2, 7, NativeShare.GUARANTEED)
    proc = tmp_path / "proc"
    fake_proc(proc, 10, 1, 0, b"slurmstepd: [2.0]\0")
    fake_proc(proc, 11, 10, 1000)
    nvml = FakeNvml([ProcessReading(UUID0, 11, 1 * GIB, 0)])  # job 2 holds memory, computes 0
    slurm = FakeSlurm([slurm_job(1, 3), slurm_job(2, 7)])
    cfg = DaemonConfig(nodes=("n1",), nvml=True, policy=PolicyConfig(
        share=ShareConfig(idle_after_seconds=10)))
    d, clock = make_daemon(runtime, slurm, cfg, files=RuntimeDirJobFiles(runtime), nvml=nvml,
                           proc_root=proc)
    d.cycle()
    assert read_compute(burst) == 300  # job 2 has just been seen: active until proven idle
    for _ in range(3):
        clock.now += 5
        d.cycle()
    assert read_compute(burst) == 1000
    snapshot = d.state.snapshot
    assert snapshot is not None
    job2 = next(j for j in snapshot.jobs if j.job_id == 2)
    assert job2.gpus[0].memory_used_bytes == 1 * GIB  # from NVML too
    nvml.procs = [ProcessReading(UUID0, 11, 1 * GIB, 650)]  # it computes: share back
    clock.now += 5
    d.cycle()
    assert read_compute(burst) == 300


@needs_root
def test_poll_interval_spaces_slurm_reads_but_not_share_updates(tmp_path: Path) -> None:
    write_job(tmp_path, 1, 3, NativeShare.BURST)
    slurm = FakeSlurm([slurm_job(1, 3)])
    cfg = DaemonConfig(nodes=("n1",), nvml=False, slurm=dataclasses.replace(
        DaemonConfig().slurm, poll_interval_seconds=10))
    d, clock = make_daemon(tmp_path, slurm, cfg)
    for _ in range(6):
        clock.now += 5
        d.cycle()
        assert d.state.slurm_up
    assert [c[0] for c in slurm.calls].count("squeue") == 3
    assert d.state.cycles == 6


# --- job summaries (AdminComment) ----------------------------------------------------------


def summary_of(call: list[str]) -> JobSummary | None:
    return parse_summary(call[-1].removeprefix("AdminComment="))


@needs_root
def test_ended_job_summary_written_once_and_counted(tmp_path: Path) -> None:
    write_job(tmp_path, 1, 3, NativeShare.BURST)
    files = FakeUsageFiles(tmp_path)
    slurm = FakeSlurm([slurm_job(1, 3)])
    runner = FakeRunner()
    d, clock = make_daemon(tmp_path, slurm, files=files, runner=runner)
    files.busy_ns[1], files.used[1] = 0, GIB
    d.cycle()
    for _ in range(4):  # 60 % of the device for 20 s: borrowed above its 30 % guarantee
        clock.now += 5
        files.busy_ns[1] += 3 * 10**9
        d.cycle()
    assert runner.calls == []  # nothing while it runs (refresh interval 300 s)
    slurm.jobs = []
    for _ in range(3):
        clock.now += 5
        d.cycle()
    assert len(runner.calls) == 1
    assert runner.calls[0][:3] == ["scontrol", "update", "job=1"]
    s = summary_of(runner.calls[0])
    assert s is not None
    assert (s.slices, s.slices_per_gpu, s.gpus) == (3, 10, (GpuSlices(UUID0, 3),))
    assert (s.observed_s, s.avg_compute_pct, s.peak_compute_pct) == (20, 60.0, 60.0)
    assert (s.peak_memory_mib, s.borrowed_s, s.backfilled_s, s.backstop_events) == \
        (1024, 20, 0, 0)
    assert 'vgpu_policy_actions_total{action="job_summary"} 1.0' in scrape(d)


@needs_root
def test_failed_summary_write_is_retried_counted_and_dropped(tmp_path: Path) -> None:
    write_job(tmp_path, 1, 3, NativeShare.GUARANTEED)
    slurm = FakeSlurm([slurm_job(1, 3)])
    runner = FakeRunner()
    runner.fail = {"scontrol", "sacctmgr"}
    d, clock = make_daemon(tmp_path, slurm, runner=runner)
    d.cycle()
    slurm.jobs = []
    for _ in range(200):
        clock.now += 1
        d.cycle()
    assert len(runner.calls) == 2 * job_tracker.WRITE_ATTEMPTS
    text = scrape(d)
    assert f'vgpu_policy_action_errors_total{{action="job_summary"}} ' \
        f'{float(job_tracker.WRITE_ATTEMPTS)}' in text
    assert 'vgpu_policy_action_errors_total{action="job_summary_dropped"} 1.0' in text


@needs_root
def test_dry_run_and_disabled_accounting_write_no_summary(tmp_path: Path) -> None:
    write_job(tmp_path, 1, 3, NativeShare.GUARANTEED)
    for dry_run, enabled in ((True, True), (False, False)):
        slurm = FakeSlurm([slurm_job(1, 3)])
        runner = FakeRunner()
        cfg = DaemonConfig(nodes=("n1",), nvml=False,
                           accounting=AccountingConfig(enabled=enabled,
                                                       update_interval_seconds=1))
        d, clock = make_daemon(tmp_path, slurm, cfg=cfg, runner=runner, dry_run=dry_run)
        for _ in range(3):
            d.cycle()
            clock.now += 5
        slurm.jobs = []
        d.cycle()
        assert runner.calls == []


@needs_root
def test_restart_continues_summary_from_admin_comment_and_refreshes(tmp_path: Path) -> None:
    write_job(tmp_path, 1, 3, NativeShare.GUARANTEED)
    files = FakeUsageFiles(tmp_path)
    earlier = JobSummary(slices=3, slices_per_gpu=10, gpus=(GpuSlices(UUID0, 3),),
                         observed_s=100, avg_compute_pct=10.0, peak_compute_pct=20.0,
                         peak_memory_mib=512, backstop_events=1)
    slurm = FakeSlurm([dataclasses.replace(slurm_job(1, 3),
                                           admin_comment=format_summary(earlier))])
    runner = FakeRunner()
    cfg = DaemonConfig(nodes=("n1",), nvml=False,
                       accounting=AccountingConfig(update_interval_seconds=10))
    d, clock = make_daemon(tmp_path, slurm, cfg=cfg, files=files, runner=runner)
    files.busy_ns[1] = 0
    d.cycle()
    for _ in range(2):  # 30 % for 10 s
        clock.now += 5
        files.busy_ns[1] += 15 * 10**8
        d.cycle()
    assert len(runner.calls) == 1  # refreshed while running (scontrol only)
    assert runner.calls[0][0] == "scontrol"
    s = summary_of(runner.calls[0])
    assert s is not None and s.observed_s == 110
    assert s.avg_compute_pct == pytest.approx((10 * 100 + 30 * 10) / 110, abs=0.05)
    assert (s.peak_compute_pct, s.peak_memory_mib, s.backstop_events) == (30.0, 512, 1)
    # a clean stop stores the running job's summary, so the next daemon continues from it
    stop = threading.Event()
    stop.set()
    d.run(stop)
    assert len(runner.calls) == 2 and runner.calls[1][0] == "scontrol"


# --- GPU vendors (issue 17): a node with an NVIDIA and an AMD GPU ------------------------------

AMD_UUID = "GPU-a9201ef500000001"
MIXED = {"n1": [InventoryGpuInfo(0, UUID0, 10, 8 * GIB, 100, 80 * GIB),
                InventoryGpuInfo(1, AMD_UUID, 10, 6 * GIB, 100, 64 * GIB, "amd")]}


class VendorStub:
    def __init__(self, devices: list[DeviceReading], procs: list[ProcessReading]) -> None:
        self.devices, self.procs = devices, procs

    def sample(self) -> tuple[list[DeviceReading], list[ProcessReading]]:
        return list(self.devices), list(self.procs)


@needs_root
def test_mixed_vendor_node_metrics_and_summary(tmp_path: Path) -> None:
    from slurm_vgpu.policies.service.nvml_source import VendorSources

    write_job(tmp_path, 1, 3, NativeShare.GUARANTEED, uuid=AMD_UUID, index=1)
    files = FakeUsageFiles(tmp_path)
    slurm = FakeSlurm([slurm_job(1, 3)])
    runner = FakeRunner()
    source = VendorSources(
        {"nvidia": VendorStub([DeviceReading(UUID0, 0, 0, 0, 80 * GIB)], []),
         "amd": VendorStub([DeviceReading(AMD_UUID, 1, 250, 2 * GIB, 64 * GIB)], [])},
        {"nvidia": {UUID0}, "amd": {AMD_UUID}})
    cfg = DaemonConfig(nodes=("n1",), nvml=True, runtime_dir=str(tmp_path))
    d = build_daemon(cfg, slurm=slurm, files=files, inventories=MIXED, nvml=source,
                     summary_runner=runner)
    clock = Clock()
    d.observer.clock = clock
    files.busy_ns[1], files.used[1] = 0, GIB
    d.cycle()
    clock.now += 5
    files.busy_ns[1] += 10**9
    d.cycle()
    text = scrape(d)
    assert f'vgpu_gpu_info{{gpu="1",node="n1",uuid="{AMD_UUID}",vendor="amd"}} 1.0' in text
    assert f'vgpu_gpu_info{{gpu="0",node="n1",uuid="{UUID0}",vendor="nvidia"}} 1.0' in text
    assert f'vgpu_gpu_utilization_ratio{{gpu="1",node="n1",uuid="{AMD_UUID}"}} 0.25' in text
    slurm.jobs = []
    clock.now += 5
    d.cycle()
    s = summary_of(runner.calls[0])
    assert s is not None and s.gpus == (GpuSlices(AMD_UUID, 3, "amd"),) and s.vendor == "amd"
    assert ";v:amd;" in runner.calls[0][-1]

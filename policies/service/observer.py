"""Builds one Snapshot per control period from Slurm, the per-job files, NVML and /proc.

Everything here is re-derivable: a restarted daemon rebuilds the same picture from Slurm and
the files (only idle timers start over, which errs on the safe side: nothing is lent or burst
from a job until it has been seen idle for the configured time again).

Slurm is polled at most twice per period (squeue + sinfo) and not at all while backing off
after a failure; the last good answer is reused meanwhile and the snapshot says so
(slurm_ok=False), so limits keep being enforced while no Slurm-side action is taken.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from slurm_vgpu.policies.decide.config import ShareConfig
from slurm_vgpu.policies.decide.lent_file import read_lent_refused
from slurm_vgpu.policies.decide.snapshot import (
    GpuProcess,
    GpuState,
    JobGpuState,
    JobState,
    NodeState,
    PendingJob,
    SharePolicy,
    Snapshot,
)
from slurm_vgpu.policies.service.job_files import JobFileError, JobFiles, JobLimits, JobUsage
from slurm_vgpu.policies.service.nvml_source import NvmlError, NvmlSource
from slurm_vgpu.policies.service.proc_attribution import attribute_pid
from slurm_vgpu.policies.slurm.slurm_client import (
    SlurmClient,
    SlurmJob,
    SlurmNode,
    SlurmUnavailable,
)

log = logging.getLogger("slurm_vgpu.daemon")

# How long a job the runtime directory holds may go unlisted by Slurm and still count as
# running here: covers the controller's period plus the agent's, with room for a slow slurmctld.
JUST_STARTED_GRACE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class InventoryGpuInfo:
    """What the daemon needs from one `gpu` line of the node inventory."""

    index: int
    uuid: str
    slices: int
    slice_bytes: int
    slice_permille: int
    memory_bytes: int
    vendor: str = "nvidia"
    """The inventory's vendor= ("nvidia" for lines without it): which device source reads
    this GPU (NVML or ROCm SMI, daemon.device_source)."""


@dataclass(slots=True)
class _UsageSample:
    time: float
    busy_ns: int
    last_active: float


@dataclass(slots=True)
class SlurmHealth:
    ok: bool = False
    last_success: float | None = None
    last_error: str = ""
    consecutive_failures: int = 0
    next_attempt: float = 0.0


@dataclass(slots=True)
class UsageTracker:
    """Turns the hook's cumulative busy time into an achieved share and an idle duration."""

    threshold_permille: int
    samples: dict[tuple[int, str], _UsageSample] = field(default_factory=dict)

    def update(self, job_id: int, uuid: str, now: float, busy_ns: int | None
               ) -> tuple[int, float]:
        """Returns (achieved permille over the last interval, seconds idle)."""
        key = (job_id, uuid)
        prev = self.samples.get(key)
        if busy_ns is None:
            # No usage data (hook not loaded yet): count the job as active, the safe side.
            self.samples[key] = _UsageSample(now, 0, now)
            return 0, 0.0
        if prev is None or busy_ns < prev.busy_ns or now <= prev.time:
            self.samples[key] = _UsageSample(now, busy_ns, now)
            return 0, 0.0
        achieved = int(min(1000, (busy_ns - prev.busy_ns) / ((now - prev.time) * 1e6)))
        last_active = now if achieved >= self.threshold_permille else prev.last_active
        self.samples[key] = _UsageSample(now, busy_ns, last_active)
        return achieved, now - last_active

    def update_share(self, job_id: int, uuid: str, now: float, achieved: int
                     ) -> tuple[int, float]:
        """Same, from a share measured elsewhere (NVML per-process utilization)."""
        key = (job_id, uuid)
        prev = self.samples.get(key)
        achieved = max(0, min(1000, achieved))
        active = achieved >= self.threshold_permille or prev is None
        last_active = now if active or prev is None else prev.last_active
        self.samples[key] = _UsageSample(now, 0, last_active)
        return achieved, now - last_active

    def forget_except(self, live: set[tuple[int, str]]) -> None:
        for key in [k for k in self.samples if k not in live]:
            del self.samples[key]


class Observer:
    def __init__(self, nodes: Sequence[str], inventory: Mapping[str, Sequence[InventoryGpuInfo]],
                 slurm: SlurmClient, files: JobFiles, share: ShareConfig,
                 nvml: NvmlSource | None = None, proc_root: Path = Path("/proc"),
                 backoff_initial: float = 1.0, backoff_max: float = 60.0,
                 poll_interval: float = 0.0,
                 clock: Callable[[], float] = time.time,
                 lent_refused: Path | None = None) -> None:
        self.node_names = list(nodes)
        self.inventory = {n: list(inventory.get(n, ())) for n in self.node_names}
        self.slurm = slurm
        self.files = files
        self.nvml = nvml
        self.proc_root = proc_root
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.poll_interval = poll_interval
        self.clock = clock
        # the plugin's lent.refused marker of the (one) node, read every cycle (no Slurm read)
        self.lent_refused = lent_refused if len(self.node_names) == 1 else None
        self.usage = UsageTracker(share.active_threshold_permille)
        self.health = SlurmHealth()
        self._jobs: list[SlurmJob] = []
        self._pending: list[PendingJob] = []
        self._nodes: dict[str, SlurmNode] = {}
        self.nvml_error = ""
        # Jobs Slurm has listed here (kept while listed or their files remain), and when each
        # job only the runtime directory knows was first seen (see _jobs_just_started).
        self._listed: set[int] = set()
        self._unlisted_since: dict[int, float] = {}
        # jobs placed here that the Slurm view does not list yet (within the grace): a node
        # agent reports them, so the controller reads the job table for them at once
        self.just_started: frozenset[int] = frozenset()

    # --- Slurm ----------------------------------------------------------------------------

    def _poll_slurm(self, now: float) -> bool:
        """Poll Slurm if due; True when this cycle has fresh Slurm data."""
        h = self.health
        if h.consecutive_failures and now < h.next_attempt:
            return False
        if h.ok and h.last_success is not None and now - h.last_success < self.poll_interval:
            return False  # between polls: the last answer stands, Slurm actions wait
        try:
            jobs = self.slurm.running_jobs(self.node_names)
            nodes = self.slurm.nodes(self.node_names)
        except SlurmUnavailable as e:
            self.slurm_failed(str(e), now)
            return False
        self._jobs = jobs
        self._pending = self.slurm.pending_jobs()  # from the same squeue read
        self._nodes = {n.name: n for n in nodes}
        if h.consecutive_failures:
            log.info("vgpu: Slurm reachable again after %d failed poll(s)",
                     h.consecutive_failures)
        h.ok, h.last_success, h.last_error, h.consecutive_failures = True, now, "", 0
        return True

    def slurm_failed(self, error: str, now: float | None = None) -> None:
        """Record a failed Slurm call (poll or action) and schedule the next try."""
        now = self.clock() if now is None else now
        h = self.health
        h.ok = False
        h.last_error = error
        h.consecutive_failures += 1
        delay = min(self.backoff_max, self.backoff_initial * 2 ** (h.consecutive_failures - 1))
        h.next_attempt = now + delay
        log.warning("vgpu: Slurm unavailable (%s); keeping the last limits, retry in %.1fs",
                    error, delay)

    # --- assembly ---------------------------------------------------------------------------

    def _job_state(self, sj: SlurmJob, node: str, now: float, gpus: dict[str, InventoryGpuInfo],
                   nvml_used: Mapping[tuple[int, str], int],
                   nvml_util: Mapping[tuple[int, str], int], live: set[tuple[int, str]]
                   ) -> JobState:
        limits: JobLimits | None = None
        try:
            limits = self.files.read_limits(sj.job_id)
        except JobFileError as e:
            log.warning("vgpu: job %d: ignoring its limits file: %s", sj.job_id, e)
        share = SharePolicy.GUARANTEED
        job_gpus: list[JobGpuState] = []
        if limits is not None and limits.job_id == sj.job_id:
            if int(limits.share_policy) == int(SharePolicy.BURST):
                share = SharePolicy.BURST
            usage: JobUsage | None = None
            try:
                usage = self.files.read_usage(sj.job_id, len(limits.gpus))
            except (JobFileError, OSError) as e:
                log.debug("vgpu: job %d: no usage state: %s", sj.job_id, e)
            for i, gl in enumerate(limits.gpus):
                if gl.uuid not in gpus:
                    continue
                u = usage.gpus[i] if usage is not None and i < len(usage.gpus) else None
                # An uninitialized state file: no process of the job has touched a GPU yet,
                # so it uses no compute (idle from the first sighting). No file at all: we
                # know nothing, and count the job as active.
                busy = u.busy_ns if u else (0 if usage is not None else None)
                if u is None and (sj.job_id, gl.uuid) in nvml_util:
                    # No hook measurement (not loaded, or bypassed): NVML's own per-process
                    # accounting of the job's processes, which needs no hook.
                    achieved, idle = self.usage.update_share(
                        sj.job_id, gl.uuid, now, nvml_util[(sj.job_id, gl.uuid)])
                else:
                    achieved, idle = self.usage.update(sj.job_id, gl.uuid, now, busy)
                live.add((sj.job_id, gl.uuid))
                used = u.used_bytes if u else nvml_used.get((sj.job_id, gl.uuid), 0)
                job_gpus.append(JobGpuState(
                    gpu_uuid=gl.uuid, slices=gl.slices,
                    memory_limit_bytes=gl.memory_limit_bytes,
                    compute_guaranteed_permille=gl.compute_guaranteed_permille,
                    compute_limit_permille=gl.compute_limit_permille,
                    memory_used_bytes=used, compute_used_permille=achieved,
                    idle_seconds=idle,
                    throttled_seconds=(u.throttled_ns / 1e9) if u else 0.0,
                    memory_peak_bytes=max(u.peak_bytes, u.used_bytes) if u else used,
                ))
        return JobState(
            job_id=sj.job_id, node=node, uid=sj.user_id, partition=sj.partition, qos=sj.qos,
            share=share, start_time=sj.start_time, vgpu_slices=sj.vgpu_per_node.get(node, 0),
            gpus=tuple(job_gpus), admin_comment=sj.admin_comment,
        )

    def _processes(self) -> tuple[list[GpuProcess], dict[str, tuple[int | None, int | None]]]:
        """One NVML sample per cycle; each process goes to the node whose inventory holds
        its GPU (several test nodes may share one host)."""
        if self.nvml is None:
            return [], {}
        try:
            devices, procs = self.nvml.sample()
        except NvmlError as e:
            if str(e) != self.nvml_error:
                log.warning("vgpu: NVML sampling failed: %s", e)
            self.nvml_error = str(e)
            return [], {}
        self.nvml_error = ""
        readings = {d.uuid: (d.utilization_permille, d.memory_used_bytes) for d in devices}
        node_of = {g.uuid: n for n, inv in self.inventory.items() for g in inv}
        result = []
        for p in procs:
            node = node_of.get(p.uuid)
            if node is None:
                continue  # a GPU that is not sliced here: not ours to police
            owner = attribute_pid(p.pid, self.proc_root)
            result.append(GpuProcess(node, p.uuid, p.pid, p.used_memory_bytes,
                                     owner[0] if owner else None, owner[1] if owner else None,
                                     p.utilization_permille))
        return result, readings

    def _jobs_from_files(self, only: set[int] | None = None) -> list[SlurmJob]:
        """Before Slurm has ever answered (daemon restarted while Slurm is down, or `vgpu
        status` without Slurm), or before it lists a job that just started, the runtime
        directory says which jobs hold slices here (`only`: these job ids).
        Partition and QOS are unknown, so none of them counts as preemptible."""
        if len(self.node_names) != 1:
            return []
        jobs = []
        for job_id in self.files.job_ids() if only is None else sorted(only):
            try:
                limits = self.files.read_limits(job_id)
            except JobFileError:
                continue
            if limits is None or limits.job_id != job_id:
                continue
            slices = sum(g.slices for g in limits.gpus)
            jobs.append(SlurmJob(job_id=job_id, state="RUNNING", partition="", qos="",
                                 user_id=limits.uid, start_time=0.0,
                                 vgpu_per_node={self.node_names[0]: slices}))
        return jobs

    def _jobs_just_started(self, now: float) -> list[SlurmJob]:
        """Jobs the plugin has placed here (their root-owned limits file is written before the
        job's first task runs) that the Slurm view does not list yet: a node agent hears of
        jobs through the controller, a period or two late, and a job's processes must be held
        to the caps of its limits file from their first allocation, not to a cap of 0 (the
        backstop would cancel it). Only for `JUST_STARTED_GRACE_SECONDS`, and never a job Slurm
        has listed and dropped (ended: its files may outlive it briefly)."""
        if len(self.node_names) != 1 or self.health.last_success is None:
            return []
        listed = {j.job_id for j in self._jobs}
        on_disk = set(self.files.job_ids())
        self._listed = (self._listed | listed) & (on_disk | listed)
        unlisted = on_disk - self._listed
        self._unlisted_since = {j: self._unlisted_since.get(j, now) for j in unlisted}
        fresh = {j for j, t in self._unlisted_since.items()
                 if now - t < JUST_STARTED_GRACE_SECONDS}
        self.just_started = frozenset(fresh)
        return self._jobs_from_files(fresh) if fresh else []

    def observe(self) -> Snapshot:
        now = self.clock()
        slurm_ok = self._poll_slurm(now)
        if self.health.last_success is None:
            self._jobs = self._jobs_from_files()
        all_jobs = self._jobs + self._jobs_just_started(now)
        nodes: list[NodeState] = []
        jobs: list[JobState] = []
        live: set[tuple[int, str]] = set()
        processes, readings = self._processes()
        nvml_used: dict[tuple[int, str], int] = {}
        nvml_util: dict[tuple[int, str], int] = {}
        for p in processes:
            if p.job_id is not None:
                key = (p.job_id, p.gpu_uuid)
                nvml_used[key] = nvml_used.get(key, 0) + p.used_memory_bytes
                if p.utilization_permille is not None:
                    nvml_util[key] = nvml_util.get(key, 0) + p.utilization_permille
        for name in self.node_names:
            inv = self.inventory[name]
            gpus = tuple(
                GpuState(node=name, index=g.index, uuid=g.uuid, slices=g.slices,
                         slice_bytes=g.slice_bytes, slice_permille=g.slice_permille,
                         memory_bytes=g.memory_bytes,
                         utilization_permille=readings.get(g.uuid, (None, None))[0],
                         memory_used_bytes=readings.get(g.uuid, (None, None))[1])
                for g in inv
            )
            sn = self._nodes.get(name)
            nodes.append(NodeState(
                name=name, gpus=gpus, vgpu_configured=sum(g.slices for g in inv),
                vgpu_current=sn.vgpu_count if sn else None,
                weight=sn.weight if sn else None, state=sn.state if sn else "",
                lent_refused_at=(read_lent_refused(self.lent_refused)
                                 if self.lent_refused is not None else None),
                partitions=sn.partitions if sn else (),
            ))
            by_uuid = {g.uuid: g for g in inv}
            for sj in all_jobs:
                if name in sj.vgpu_per_node:
                    jobs.append(self._job_state(sj, name, now, by_uuid, nvml_used, nvml_util,
                                                live))
        self.usage.forget_except(live)
        notes = () if self.health.ok else (f"slurm unavailable: {self.health.last_error}",)
        return Snapshot(time=now, nodes=tuple(nodes), jobs=tuple(jobs),
                        processes=tuple(processes), slurm_ok=slurm_ok, notes=notes,
                        pending=tuple(self._pending))

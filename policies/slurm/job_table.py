"""The cluster controller's view of the vgpu jobs, kept current at a fraction of a full read.

A full read of the job table (REQUEST_JOB_INFO, `vgpu-slurm-read jobs`) costs slurmctld time
in proportion to every job it holds: 0.64 s of packing under its job read lock at 100,000
jobs on the loopback cluster, whoever asks. Slurm 24.05 added REQUEST_JOB_STATE, which
answers only ids and states. With it the controller:

- reads the whole table every `refresh_seconds` (default 30 s, Slurm's own default backfill
  interval), in a background thread, so no control cycle waits for it;
- every cycle, asks the states of the jobs that read listed (`vgpu-slurm-read states`) and
  drops the running jobs that ended or left and the waiting jobs that started or left.

A state check that finds a listed waiting job running starts a full read at once (in the
background, adopted by the next cycle): where the job runs and in which partition (what its
node's agent needs to reclaim lent slices from it) is only in the job records. Its agent holds
it to its limits file meanwhile (observer.py's just-started grace), as it did when every cycle
read the table. A job submitted and started since the last full read was never listed: its
agent reports it (NodeReport.just_started) and the controller starts a full read for it
(`refresh_now`). What neither can tell is jobs submitted and still waiting since the last full
read: a backfill offer reaches them up to `refresh_seconds` late (Slurm's own backfill looks
every 30 s by default). At most one full read is in flight, so slurmctld packs the table at most
once per read's duration, and no cycle waits for it. On Slurm 22.05-23.11, or with
`refresh_seconds: 0`, every cycle makes a full read, as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from slurm_vgpu.policies.decide.snapshot import PendingJob
from slurm_vgpu.policies.slurm.slurm_client import SlurmJob, SlurmUnavailable

log = logging.getLogger("slurm_vgpu.daemon")

PendingGroups = list[tuple[PendingJob, tuple[int, ...]]]


class StateReadingClient(Protocol):
    """What the job table needs of a Slurm client (ReaderSlurmClient)."""

    def job_groups(self) -> tuple[list[SlurmJob], PendingGroups]: ...

    def job_states(self, believed: Mapping[int, str]) -> dict[int, str] | None: ...


@dataclass(frozen=True, slots=True)
class _FullRead:
    started: float  # clock() when the read began: what it says is at least this fresh
    running: list[SlurmJob]
    pending: PendingGroups


class JobTable:
    """Running and waiting vgpu jobs for each control cycle (`read`)."""

    def __init__(self, client: StateReadingClient, refresh_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._last: _FullRead | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._refresh: Future[_FullRead] | None = None
        self._lock = threading.Lock()
        self.full_reads = 0
        self.state_reads = 0

    def _full_read(self) -> _FullRead:
        started = self.clock()
        running, pending = self.client.job_groups()
        with self._lock:
            self.full_reads += 1
        return _FullRead(started, running, pending)

    @property
    def incremental(self) -> bool:
        """Whether cycles between full reads only check states (False: every cycle reads
        the whole table)."""
        return (self.refresh_seconds > 0
                and getattr(self.client, "has_job_states", None) is not False)

    def read(self) -> tuple[list[SlurmJob], list[PendingJob]]:
        """This cycle's running vgpu jobs and the first waiting job of each (partitions, QOS,
        request). Raises SlurmUnavailable when Slurm cannot be read."""
        now = self.clock()
        if not self.incremental:
            self._last = self._full_read()
            return self._last.running, [p for p, _ in self._last.pending]
        self._adopt_refresh()
        last = self._last
        if last is None or now - last.started > 3 * self.refresh_seconds:
            # first cycle, or the background reads keep failing: read now, in the cycle
            # (a failure here is the cycle's failure, with the controller's back-off)
            last = self._last = self._full_read()
            self.client.job_states({})  # learns whether this Slurm has REQUEST_JOB_STATE
            return last.running, [p for p, _ in last.pending]
        believed = dict.fromkeys((j.job_id for j in last.running), "R")
        for _, members in last.pending:
            believed.update(dict.fromkeys(members, "P"))
        changed = self.client.job_states(believed)
        with self._lock:
            self.state_reads += 1
        if changed is None:  # an older Slurm after all (a downgrade under a running controller)
            self._last = self._full_read()
            return self._last.running, [p for p, _ in self._last.pending]
        running = ([j for j in last.running if changed.get(j.job_id, "R") == "R"]
                   if changed else last.running)
        pending: list[PendingJob] = []
        started = False
        for first, members in last.pending:
            if not changed:
                pending.append(first)
                continue
            still = None
            for i in members:
                state = changed.get(i, "P")
                if state == "R":
                    started = True
                elif state == "P" and still is None:
                    still = i
            if still is not None:
                pending.append(first if still == first.job_id else PendingJob(
                    still, first.partitions, first.qos, first.vgpu_per_node))
        # a vgpu job started: where it runs (and its partition, for reclaim) is only in a full
        # read, so one starts now; otherwise every refresh period, for new submissions
        if started or now - last.started >= self.refresh_seconds:
            self._start_refresh()
        return running, pending

    def refresh_now(self) -> None:
        """Start a full read in the background unless one is under way: an agent holds a
        vgpu job this table does not list (submitted and started since the last read)."""
        if self.incremental and self._last is not None:
            self._start_refresh()

    def _start_refresh(self) -> None:
        if self._refresh is not None:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vgpu-jobs")
        self._refresh = self._pool.submit(self._full_read)

    def _adopt_refresh(self) -> None:
        f = self._refresh
        if f is None or not f.done():
            return
        self._refresh = None
        try:
            fresh = f.result()
        except SlurmUnavailable as e:
            log.warning("vgpu: controller: background read of the job table failed: %s; "
                        "keeping the one of %.0fs ago, checked by state", e,
                        self.clock() - self._last.started if self._last else 0.0)
            return
        if self._last is None or fresh.started >= self._last.started:
            self._last = fresh

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

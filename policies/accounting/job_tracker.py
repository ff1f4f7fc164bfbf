"""Per-job utilization accounting: what the daemon writes into a job's AdminComment.

`JobTracker` (pure) folds each cycle's Snapshot into per-job figures — observed seconds,
time-weighted average and peak compute, peak memory, borrowed and backfilled seconds,
backstop events — and hands back the summaries of the jobs that left the snapshot (ended).
`SummaryWriter` stores them through `job_summary.write_summary`: once at job end (retried on a
few later cycles when Slurm refuses), refreshed every `accounting.update_interval_seconds`
while the job runs, within a time budget per cycle so the control loop is never held up for
long. Semantics of every figure: docs/accounting.md ("Who writes it, and when").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from slurm_vgpu.policies.accounting.job_summary import (
    DEFAULT_VENDOR,
    GpuSlices,
    JobSummary,
    SummaryError,
    format_summary,
    parse_summary,
)
from slurm_vgpu.policies.decide.snapshot import JobState, SharePolicy, Snapshot

log = logging.getLogger("slurm_vgpu.daemon")

MIB = 1 << 20
# A burst job counts as borrowing while it achieves more than its guarantee plus this much
# (permille of the device) on one of its GPUs: the hook's measurement has a little jitter.
BORROW_MARGIN_PERMILLE = 10
# An ended job's summary is tried this many times (a few cycles apart) before giving up.
WRITE_ATTEMPTS = 5
RETRY_DELAY_SECONDS = 5.0  # doubled after every failed attempt


@dataclass(slots=True)
class JobRecord:
    """What the daemon has accumulated about one job."""

    job_id: int
    last_seen: float
    slices: int = 0
    slices_per_gpu: int = 0
    gpus: dict[str, int] = field(default_factory=dict)  # uuid -> slices, placement order
    vendors: dict[str, str] = field(default_factory=dict)  # uuid -> vendor (node inventory)
    nodes: tuple[str, ...] = ()  # this daemon's nodes the job runs on (its summary token's n:)
    placed: bool = False  # the last sighting had a placement (limits file)
    observed_s: float = 0.0
    compute_pct_s: float = 0.0  # integral of compute (% of one GPU) over observed time
    peak_compute_pct: float = 0.0
    peak_memory_bytes: int = 0
    borrowed_s: float = 0.0
    backfilled_s: float = 0.0
    backstop_events: int = 0
    # the job's AdminComment as slurmctld last reported it (placements, other nodes'
    # summaries, site notes: a write keeps them)
    admin_comment: str = ""
    # AdminComment examined, or this daemon wrote one (from then on it holds our own figures)
    comment_done: bool = False
    last_written: float = 0.0  # time of the last (periodic) write, or the first sighting

    @property
    def ever_placed(self) -> bool:
        return bool(self.gpus)

    def summary(self) -> JobSummary:
        avg = self.compute_pct_s / self.observed_s if self.observed_s > 0 else 0.0
        return JobSummary(
            slices=self.slices, slices_per_gpu=self.slices_per_gpu,
            gpus=tuple(GpuSlices(u, n, self.vendors.get(u, DEFAULT_VENDOR))
                       for u, n in self.gpus.items()),
            observed_s=int(self.observed_s), avg_compute_pct=round(avg, 1),
            peak_compute_pct=round(self.peak_compute_pct, 1),
            peak_memory_mib=-(-self.peak_memory_bytes // MIB),
            borrowed_s=int(self.borrowed_s), backfilled_s=int(self.backfilled_s),
            backstop_events=self.backstop_events, node="+".join(self.nodes))

    def restore(self, s: JobSummary) -> None:
        """Continue from a summary an earlier daemon wrote (restart mid-job): its figures are
        added to what this daemon has seen (usually nothing yet; something when the job was
        first seen from the runtime directory while Slurm was down)."""
        self.observed_s += s.observed_s
        self.compute_pct_s += s.avg_compute_pct * s.observed_s
        self.peak_compute_pct = max(self.peak_compute_pct, s.peak_compute_pct)
        self.peak_memory_bytes = max(self.peak_memory_bytes, s.peak_memory_mib * MIB)
        self.borrowed_s += s.borrowed_s
        self.backfilled_s += s.backfilled_s
        self.backstop_events += s.backstop_events


def _borrowing(entries: Iterable[JobState]) -> bool:
    return any(job.share == SharePolicy.BURST and
               jg.compute_used_permille > jg.compute_guaranteed_permille + BORROW_MARGIN_PERMILLE
               for job in entries for jg in job.gpus)


@dataclass(slots=True)
class JobTracker:
    """Accumulates per-job figures over snapshots. Pure: no I/O, time from the snapshots."""

    jobs: dict[int, JobRecord] = field(default_factory=dict)
    # job id -> last known AdminComment of the jobs the last update() found ended
    ended_comments: dict[int, str] = field(default_factory=dict)
    # GPU uuid -> vendor ("nvidia", "amd"), from the node inventory (the daemon sets it); a
    # GPU missing here counts as NVIDIA
    gpu_vendors: dict[str, str] = field(default_factory=dict)

    def update(self, snapshot: Snapshot, backfilled: Collection[int] = (),
               backstop_jobs: Iterable[int] = ()) -> list[tuple[int, JobSummary]]:
        """Fold in one cycle; return (job id, final summary) of the jobs that ended (left the
        snapshot), for those that ever had a placement. `backfilled`: the plan's jobs on lent
        slices; `backstop_jobs`: one entry per backstop event this cycle (new violations)."""
        now = snapshot.time
        by_job: dict[int, list[JobState]] = {}
        for job in snapshot.jobs:
            by_job.setdefault(job.job_id, []).append(job)
        gpu_slices = {g.uuid: g.slices for n in snapshot.nodes for g in n.gpus}
        for job_id, entries in by_job.items():
            rec = self.jobs.get(job_id)
            if rec is None:
                rec = self.jobs[job_id] = JobRecord(job_id, now, last_written=now)
            rec.nodes = tuple(sorted({*rec.nodes, *(job.node for job in entries)}))
            rec.admin_comment = next((j.admin_comment for j in entries if j.admin_comment),
                                     rec.admin_comment)
            if not rec.comment_done:
                self._restore(rec)
            gpus = [jg for job in entries for jg in job.gpus]
            dt = now - rec.last_seen
            # An interval counts when the job was placed at both ends: its compute reading is
            # the share it achieved over exactly that interval (the first one is 0: no sample).
            if rec.placed and gpus and dt > 0:
                compute = sum(jg.compute_used_permille for jg in gpus) / 10.0
                rec.observed_s += dt
                rec.compute_pct_s += compute * dt
                rec.peak_compute_pct = max(rec.peak_compute_pct, compute)
                if _borrowing(entries):
                    rec.borrowed_s += dt
                if job_id in backfilled:
                    rec.backfilled_s += dt
            if gpus:
                rec.gpus = {jg.gpu_uuid: jg.slices for jg in gpus}
                rec.vendors = {u: self.gpu_vendors.get(u, DEFAULT_VENDOR) for u in rec.gpus}
                rec.slices_per_gpu = gpu_slices.get(gpus[0].gpu_uuid, rec.slices_per_gpu)
                memory = sum(max(jg.memory_peak_bytes, jg.memory_used_bytes) for jg in gpus)
                rec.peak_memory_bytes = max(rec.peak_memory_bytes, memory)
            rec.slices = sum(job.vgpu_slices for job in entries) or sum(rec.gpus.values())
            rec.placed = bool(gpus)
            rec.last_seen = now
        for job_id in backstop_jobs:
            if job_id in self.jobs and job_id in by_job:
                self.jobs[job_id].backstop_events += 1
        ended = [j for j in self.jobs if j not in by_job]
        result = []
        self.ended_comments = {}
        for job_id in ended:
            rec = self.jobs.pop(job_id)
            if rec.ever_placed:
                result.append((job_id, rec.summary()))
                self.ended_comments[job_id] = rec.admin_comment
        return result

    @staticmethod
    def _restore(rec: JobRecord) -> None:
        text = rec.admin_comment
        if not text:
            return  # none, or not known yet (jobs listed from the runtime directory)
        rec.comment_done = True
        try:
            earlier = parse_summary(text, nodes=rec.nodes)  # our nodes' token only
        except SummaryError as e:
            log.warning("vgpu: job %d: ignoring its AdminComment: %s", rec.job_id, e)
            return
        if earlier is not None:
            rec.restore(earlier)
            log.info("vgpu: job %d: continuing its summary from AdminComment (%d s observed)",
                     rec.job_id, earlier.observed_s)

    def due_refresh(self, now: float, interval: float) -> list[tuple[int, JobSummary]]:
        """Running jobs whose summary was last written `interval` seconds ago or more."""
        if interval <= 0:
            return []
        return [(r.job_id, r.summary()) for r in self.jobs.values()
                if r.ever_placed and now - r.last_written >= interval]

    def mark_written(self, job_id: int, now: float) -> None:
        if job_id in self.jobs:
            self.jobs[job_id].last_written = now
            self.jobs[job_id].comment_done = True


# write(job_id, summary, running, known AdminComment) -> text written; raises SummaryError
WriteFn = Callable[[int, JobSummary, bool | None, str], str]


@dataclass(slots=True)
class _Pending:
    job_id: int
    summary: JobSummary
    admin_comment: str = ""  # as slurmctld last reported it
    attempts: int = 0
    next_try: float = 0.0


@dataclass(slots=True)
class WriteResult:
    written: int = 0  # summaries stored (end of job and refreshes)
    failed: int = 0  # failed attempts
    dropped: int = 0  # ended jobs given up on after WRITE_ATTEMPTS


class SummaryWriter:
    """Stores summaries: the ended jobs' ones (queued, retried), then due refreshes."""

    def __init__(self, write: WriteFn, dry_run: bool = False,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.write = write
        self.dry_run = dry_run
        self.monotonic = monotonic
        self.pending: dict[int, _Pending] = {}

    def _store(self, job_id: int, summary: JobSummary, running: bool | None,
               admin_comment: str) -> None:
        if self.dry_run:
            log.info("vgpu: dry run: would write the summary of job %d: %s", job_id,
                     format_summary(summary))
            return
        text = self.write(job_id, summary, running, admin_comment)
        log.info("vgpu: job %d: summary %s %s", job_id,
                 "refreshed" if running else "written", text)

    def cycle(self, now: float, tracker: JobTracker, ended: list[tuple[int, JobSummary]],
              slurm_up: bool, refresh_interval: float, budget_s: float) -> WriteResult:
        """One cycle's writes; `now` is the snapshot's time. Nothing is tried while Slurm is
        down (the queue waits), nor once `budget_s` of this cycle has been spent writing."""
        for job_id, summary in ended:
            self.pending[job_id] = _Pending(job_id, summary,
                                            tracker.ended_comments.get(job_id, ""))
        result = WriteResult()
        if not slurm_up:
            return result
        started = self.monotonic()

        def over_budget() -> bool:
            return self.monotonic() - started >= budget_s

        for p in sorted(self.pending.values(), key=lambda p: p.job_id):
            if p.next_try > now:
                continue
            if over_budget():
                return result
            try:
                self._store(p.job_id, p.summary, None, p.admin_comment)
            except SummaryError as e:
                p.attempts += 1
                result.failed += 1
                if p.attempts >= WRITE_ATTEMPTS:
                    log.error("vgpu: job %d: giving up on its summary after %d attempts: %s",
                              p.job_id, p.attempts, e)
                    result.dropped += 1
                    del self.pending[p.job_id]
                else:
                    delay = RETRY_DELAY_SECONDS * 2 ** (p.attempts - 1)
                    log.warning("vgpu: job %d: summary not stored (attempt %d of %d, retry in "
                                "%.0fs): %s", p.job_id, p.attempts, WRITE_ATTEMPTS, delay, e)
                    p.next_try = now + delay
                continue
            result.written += 1
            del self.pending[p.job_id]
        for job_id, summary in tracker.due_refresh(now, refresh_interval):
            if over_budget():
                break
            # tried once per interval whatever the outcome: a refresh is only a safety copy
            tracker.mark_written(job_id, now)
            try:
                self._store(job_id, summary, True, tracker.jobs[job_id].admin_comment)
            except SummaryError as e:
                log.warning("vgpu: job %d: summary refresh failed (next in %.0fs): %s",
                            job_id, refresh_interval, e)
                result.failed += 1
                continue
            result.written += 1
        return result

    def flush(self, tracker: JobTracker, now: float, budget_s: float) -> WriteResult:
        """At shutdown: store every running job's summary now (scontrol), so a restarted
        daemon continues from it; then whatever ended jobs are still queued."""
        result = self.cycle(now, tracker, [], True, 0.0, budget_s)
        started = self.monotonic()
        for rec in list(tracker.jobs.values()):
            if not rec.ever_placed or self.monotonic() - started >= budget_s:
                continue
            try:
                self._store(rec.job_id, rec.summary(), True, rec.admin_comment)
                result.written += 1
            except SummaryError as e:
                log.warning("vgpu: job %d: summary not stored at shutdown: %s", rec.job_id, e)
                result.failed += 1
        return result

"""The cluster controller's placement steering: each new vgpu batch job starts on the node
decide/steering.py chooses (docs/placement.md).

job_submit.lua holds a new single-node vgpu batch job (a BeginTime `hold` seconds ahead)
while this controller's steering file is fresh. Every cycle the controller:

1. writes the steering file ("<now> <hold> <fresh>[ <partitions>]"), so the lua keeps
   holding (CPU-only jobs too, in the partitions named, while the CPUs bind);
2. reads the pending vgpu jobs and every node's free CPUs and memory (one RPC each), and
   decides whether CPU-only jobs are steered (decide/steering.cpu_jobs_steered on the nodes
   of the partitions whose nodes are all managed);
3. builds each node's free capacity per GPU from its agent's report (`gpus`), less what the
   jobs it steered itself hold that the report does not show yet;
4. steers every held job (CPU-only ones while the CPUs bind, else releases them) in
   submission order: `ReqNodeList=<node> StartTime=now`, counting
   each choice before the next; a job that fits nowhere now is released (`StartTime=now`)
   for Slurm to queue as usual;
5. a job it steered that still waits after `resteer_after` (its node filled up between the
   read and slurmctld's start) is steered again, or released.

Nodes whose agent is silent, that are down or drained, or whose GPUs are not all reported,
are not chosen. What slurmctld does with a steered job is its own: the job is eligible on one
node, and the main or backfill scheduler starts it there when the node has room (the race
with jobs Slurm places itself is covered by step 5).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slurm_vgpu.policies.decide.config import SteeringConfig
from slurm_vgpu.policies.decide.fragmentation import (
    WHOLE,
    WorkloadMix,
    fragmentation,
    stranded,
)
from slurm_vgpu.policies.decide.steering import (
    JobRequest,
    MixHistory,
    NodeArrays,
    best_fit_gpu,
    choose,
    cpu_jobs_steered,
)
from slurm_vgpu.policies.service.exchange import NodeReport, write_atomic
from slurm_vgpu.policies.slurm.slurm_client import SlurmRequestRejected
from slurm_vgpu.policies.slurm.steering_reads import NodeRoom, PendingVgpuJob, SteeringSlurm

log = logging.getLogger("slurm_vgpu.daemon")

UNUSABLE = ("down", "drain", "fail", "maint", "future", "boot", "powered", "reserved")
# nodes a job is steered to before Slurm gets it: what keeps a job from starting may be none
# of the nodes' doing (a QOS limit, a job of higher priority), and then no node helps
STEER_TRIES = 3


@dataclass
class _Steered:
    node: str
    request: JobRequest
    at: float
    # the nodes it was steered to, this one included: a job that did not start on one is
    # never steered back there (Slurm keeps it off for a reason the steering does not read:
    # a coming maintenance reservation, a partition's per-node limits, ...)
    tried: frozenset[str] = frozenset()


def _request(job: PendingVgpuJob, slices: int, memory: bool) -> JobRequest | None:
    """The job in fragmentation units on GPUs of `slices` slices (None: a request the
    plugin does not place as one share or as whole GPUs); its memory only where Slurm
    places by memory (`memory`)."""
    mib = job.memory_mib if memory else 0
    if job.vgpu == 0:
        return JobRequest(job.cpus * 1000, mib, 0, 0)
    if job.vgpu <= slices:
        num, milli = 1, job.vgpu * WHOLE // slices
    elif job.vgpu % slices == 0:
        num, milli = job.vgpu // slices, WHOLE
    else:
        return None
    return JobRequest(job.cpus * 1000, mib, num, milli)


class Steerer:
    def __init__(self, cfg: SteeringConfig, period: float,
                 slurm: SteeringSlurm, clock: Callable[[], float],
                 stale_after: float, dry_run: bool = False) -> None:
        self.cfg = cfg
        self.period = period
        self.slurm = slurm
        self.clock = clock
        self.stale_after = stale_after
        self.dry_run = dry_run
        self.steered: dict[int, _Steered] = {}
        self.history = MixHistory(cfg.history_jobs, ["any"])
        self._seen: set[int] = set()
        self.counts = {"steered": 0, "released": 0, "resteered": 0, "failed": 0}
        self._masks: dict[tuple[str, ...], np.ndarray] = {}  # partitions -> nodes, per cycle
        # partitions whose CPU-only jobs the lua holds (announced) and whether they are
        # steered now (the CPUs bind); the default partition is written with a `*`
        self.cpu_partitions: tuple[str, ...] = ()
        self.cpu_jobs_steered = False
        self._cpu_named_before = False  # the file of the cycle before this one named them

    @property
    def hold_seconds(self) -> float:
        return self.cfg.hold_seconds or 2 * self.period

    def announce(self, now: float) -> None:
        """The steering file: the lua holds new jobs while it is fresh."""
        if self.dry_run:
            return
        fresh = max(3 * self.period, self.hold_seconds)
        cpu = f" {','.join(self.cpu_partitions)}" if self.cpu_jobs_steered else ""
        text = f"{int(now)} {round(self.hold_seconds)} {round(fresh)}{cpu}\n"
        try:
            os.makedirs(os.path.dirname(self.cfg.file), mode=0o755, exist_ok=True)
            write_atomic(Path(self.cfg.file), text.encode())
        except OSError as e:
            log.warning("vgpu: steering: cannot write %s: %s", self.cfg.file, e.strerror or e)

    def withdraw(self) -> None:
        """No more holds (the controller stops, or Slurm cannot be read)."""
        if not self.dry_run:
            with contextlib.suppress(OSError):
                os.unlink(self.cfg.file)

    # --- one cycle ------------------------------------------------------------------------------

    def cycle(self, reports: Mapping[str, NodeReport], heard: Mapping[str, float]) -> None:
        now = self.clock()
        self.announce(now)
        pending = self.slurm.pending(self.steered.keys(), self.hold_seconds)
        room = self.slurm.room()
        waiting = {j.job_id: j for j in pending}
        # the lua holds CPU-only jobs only while the file names partitions: the one this cycle
        # wrote, or the last one (jobs it held wait for this cycle); others that look held
        # are a user's own short --begin, left alone
        announced = self.cpu_jobs_steered or self._cpu_named_before
        self._cpu_named_before = self.cpu_jobs_steered
        cpu_parts = self._cpu_binding(reports, room)
        for job_id in [j for j in self.steered if j not in waiting and
                       now - self.steered[j].at > self.stale_after]:
            del self.steered[job_id]
        todo: list[tuple[PendingVgpuJob, bool]] = []
        for job in pending:
            mine = self.steered.get(job.job_id)
            if mine is not None:
                if job.req_nodes == mine.node and now - mine.at > self.cfg.resteer_after_seconds:
                    todo.append((job, True))
            elif job.held_for_steering(self.hold_seconds) and (
                    job.vgpu or (announced and job.partitions
                                 and set(job.partitions) <= cpu_parts)):
                todo.append((job, False))
        if not todo:
            return
        names, arrays, slices = self._arrays(reports, heard, room, waiting)
        self._masks = {}
        memory = self.slurm.memory_placed()
        # no usable GPU node (slices 0): nothing to place on, every job is released
        requests = {job.job_id: _request(job, slices, memory) if slices else None
                    for job, _ in todo}
        for job, _ in todo:
            request = requests[job.job_id]
            if job.vgpu and job.job_id not in self._seen and request is not None:
                self._seen.add(job.job_id)
                self.history.add(request)
        if len(self._seen) > 4 * self.cfg.history_jobs:
            self._seen = {j.job_id for j, _ in todo}
        mix = self.history.rebuild() if self.history.rebuild_due() else self.history.mix
        if mix is not None and names:
            arrays.frag = fragmentation(mix, arrays.cpu_free, arrays.mem_free,
                                        arrays.gpu_free, arrays.model)
            arrays.stranded = stranded(mix, arrays.gpu_free)
        for job, again in todo:
            self._place(job, again, requests[job.job_id], names, arrays, mix, room, now)

    def _place(self, job: PendingVgpuJob, again: bool, request: JobRequest | None,
               names: list[str], arrays: NodeArrays, mix: WorkloadMix | None,
               room: Mapping[str, NodeRoom], now: float) -> None:
        if not job.vgpu and not self.cpu_jobs_steered:
            request = None  # held while the CPUs bound; they no longer do
        choice = None
        before = self.steered.get(job.job_id)
        tried = before.tried if again and before is not None else frozenset()
        if request is not None and mix is not None and names and len(tried) < STEER_TRIES:
            if again:  # its own claim is no longer in the way of its next choice
                self._unclaim(job.job_id, names, arrays, mix)
            arrays.eligible = self._eligible(job.partitions, names, room)
            if tried:
                arrays.eligible = arrays.eligible & ~np.isin(np.array(names), list(tried))
            choice = choose(mix, arrays, request)
        if choice is None:
            self.steered.pop(job.job_id, None)
            if tried:
                why = f"did not start on {', '.join(sorted(tried))}; Slurm places it"
            elif job.vgpu or self.cpu_jobs_steered:
                why = "fits on no node now; Slurm queues it"
            else:
                why = "CPU-only and the CPUs no longer bind; Slurm places it"
            self._write("released", job.job_id, why, lambda: self.slurm.release(job.job_id))
            return
        node = names[choice.node]
        assert request is not None and mix is not None
        if not self._write("resteered" if again else "steered", job.job_id,
                           f"to {node} (score {choice.score})",
                           lambda: self.slurm.steer(job.job_id, node)):
            return
        self.steered[job.job_id] = _Steered(node, request, now, tried | {node})
        self._claim(choice.node, request, arrays, mix, whole_job=True)

    def _cpu_binding(self, reports: Mapping[str, NodeReport],
                     room: Mapping[str, NodeRoom]) -> set[str]:
        """The partitions whose nodes are all managed GPU nodes (returned), and whether CPU-only
        jobs there are steered from now on: decide/steering.cpu_jobs_steered on those nodes'
        allocated CPUs (Slurm's) and GPU slices (the agents')."""
        managed = {n for n, r in reports.items() if r.gpus and n in room}
        members: dict[str, set[str]] = {}
        default = ""
        for name, r in room.items():
            default = default or r.default_partition
            for part in r.partitions:
                members.setdefault(part, set()).add(name)
        parts = {p for p, nodes in members.items() if nodes <= managed}
        nodes = set().union(*(members[p] for p in parts)) if parts else set()
        cpu_used = sum(room[n].cpus_total - room[n].cpus_free for n in nodes)
        cpu_total = sum(room[n].cpus_total for n in nodes)
        gpus = [g for n in nodes for g in reports[n].gpus or ()]
        gpu_used = sum(min(g.used, g.slices) / g.slices for g in gpus if g.slices)
        self.cpu_jobs_steered = bool(parts) and cpu_jobs_steered(
            cpu_used, cpu_total, gpu_used, len(gpus), self.cfg.cpu_jobs_above)
        self.cpu_partitions = tuple(p + ("*" if p == default else "") for p in sorted(parts))
        return parts

    def _eligible(self, partitions: tuple[str, ...], names: list[str],
                  room: Mapping[str, NodeRoom]) -> np.ndarray:
        """(N,) the nodes in any of the job's partitions (one mask per partition list and
        cycle)."""
        mask = self._masks.get(partitions)
        if mask is None:
            wanted = set(partitions)
            mask = self._masks[partitions] = np.array(
                [not wanted or bool(wanted.intersection(room[n].partitions)) for n in names],
                dtype=bool)
        return mask

    def _write(self, kind: str, job_id: int, what: str, call: Callable[[], None]) -> bool:
        if self.dry_run:
            log.info("vgpu: dry run: would %s job %d %s", kind, job_id, what)
            return True
        try:
            call()
        except SlurmRequestRejected as e:  # the job ended or was changed meanwhile
            log.info("vgpu: steering: job %d not %s: %s", job_id, kind, e)
            self.counts["failed"] += 1
            return False
        log.info("vgpu: steering: job %d %s %s", job_id, kind, what)
        self.counts[kind] += 1
        return True

    # --- the cluster as arrays ------------------------------------------------------------------

    def _arrays(self, reports: Mapping[str, NodeReport], heard: Mapping[str, float],
                room: Mapping[str, NodeRoom], waiting: Mapping[int, PendingVgpuJob]
                ) -> tuple[list[str], NodeArrays, int]:
        now = self.clock()
        usable: list[tuple[str, NodeReport]] = []
        for name in sorted(reports):
            r, free = reports[name], room.get(name)
            if (r.gpus is None or not r.gpus or free is None
                    or now - heard.get(name, r.time) > self.stale_after
                    or any(s in free.state.lower() for s in UNUSABLE)):
                continue
            usable.append((name, r))
        width = max((len(r.gpus or ()) for _, r in usable), default=1)
        n = len(usable)
        gpu_free = np.full((n, width), -1, dtype=np.int64)
        slice_counts = [g.slices for _, r in usable for g in r.gpus or ()]
        slices = max(set(slice_counts), key=slice_counts.count) if slice_counts else 0
        cpu = np.zeros(n, dtype=np.int64)
        mem = np.zeros(n, dtype=np.int64)
        for i, (name, r) in enumerate(usable):
            for g, t in enumerate(r.gpus or ()):
                gpu_free[i, g] = max(0, t.slices - t.used) * WHOLE // t.slices
            for _, held in r.unplaced:  # started, GPU not named yet: the plugin's best fit
                _take_best_fit(gpu_free[i], held * WHOLE // max(1, slices))
            cpu[i] = room[name].cpus_free * 1000
            mem[i] = room[name].memory_free_mib
        arrays = NodeArrays(cpu, mem, gpu_free, np.zeros(n, dtype=np.int64), np.zeros(n),
                            np.zeros((n, 0)))
        names = [name for name, _ in usable]
        index = {name: i for i, name in enumerate(names)}
        for job_id, s in self.steered.items():
            if s.node not in index:
                continue
            i = index[s.node]
            r = reports[s.node]
            shown = any(job_id in g.jobs for g in r.gpus or ()) or \
                any(job_id == j for j, _ in r.unplaced)
            if job_id in waiting:  # not started: Slurm's free CPUs do not count it yet
                arrays.cpu_free[i] -= s.request.cpu_milli
                arrays.mem_free[i] -= s.request.memory_mib
            if not shown:
                _take(gpu_free[i], s.request)
        return names, arrays, slices

    def _claim(self, i: int, request: JobRequest, arrays: NodeArrays, mix: WorkloadMix,
               whole_job: bool) -> None:
        if whole_job:
            arrays.cpu_free[i] -= request.cpu_milli
            arrays.mem_free[i] -= request.memory_mib
        _take(arrays.gpu_free[i], request)
        self._refresh(i, arrays, mix)

    def _unclaim(self, job_id: int, names: list[str], arrays: NodeArrays,
                 mix: WorkloadMix) -> None:
        s = self.steered.get(job_id)
        if s is None or s.node not in names:
            return
        i = names.index(s.node)
        arrays.cpu_free[i] += s.request.cpu_milli
        arrays.mem_free[i] += s.request.memory_mib
        _give(arrays.gpu_free[i], s.request)
        self._refresh(i, arrays, mix)

    def _refresh(self, i: int, arrays: NodeArrays, mix: WorkloadMix) -> None:
        sl = slice(i, i + 1)
        arrays.frag[i] = fragmentation(mix, arrays.cpu_free[sl], arrays.mem_free[sl],
                                       arrays.gpu_free[sl], arrays.model[sl])[0]
        arrays.stranded[i] = stranded(mix, arrays.gpu_free[sl])[0]


def _take_best_fit(row: np.ndarray, milli: int) -> None:
    g = int(best_fit_gpu(row[None, :], milli)[0])
    if g >= 0:
        row[g] -= milli


def _take(row: np.ndarray, request: JobRequest) -> None:
    """What the plugin takes on the node: the best-fitting GPU, or untouched whole GPUs."""
    if request.num_gpu == 1 and request.gpu_milli < WHOLE:
        _take_best_fit(row, request.gpu_milli)
        return
    whole = np.flatnonzero(row == WHOLE)[: request.num_gpu]
    row[whole] = 0


def _give(row: np.ndarray, request: JobRequest) -> None:
    """Undo _take approximately (a re-steered job's claim): its share back to the fullest
    GPU that can hold it, or its whole GPUs back."""
    if request.num_gpu == 1 and request.gpu_milli < WHOLE:
        fit = np.flatnonzero((row >= 0) & (row + request.gpu_milli <= WHOLE))
        if fit.size:
            row[fit[np.argmin(row[fit])]] += request.gpu_milli
        return
    empty = np.flatnonzero(row == 0)[: request.num_gpu]
    row[empty] = WHOLE

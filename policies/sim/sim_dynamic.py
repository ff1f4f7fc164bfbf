"""Dynamic replay: Philly arrivals and durations on a smaller cluster, fractional requests and
per-minute utilization, under four regimes.

- whole: Slurm today; every job holds whole GPUs, nothing shared.
- slices: vgpu slices; a job holds its request rounded up to slices, hard-capped at them.
- shared: vgpu slices + the daemon's share adjustment (share_policy.gpu_targets, the daemon's
  own code, every job --vgpu-share=burst) + idle-slice backfill: a job that does not fit may
  start on slices whose owners have been idle for backfill.idle_after_seconds; it is
  throttled to throttle_permille while any owner of its GPU is active (what the daemon does).
- steered: shared + the controller's placement steering (decide/steering.py, the daemon's own
  code): a new job is placed once, at its first cycle, on the node its request mix fragments
  least; a job that fits nowhere then waits and is placed later by the packing weights, as
  Slurm does with a released job. The hold (at most two control periods) is under a tick.

Modelling choices (docs/simulator.md): the cluster is shrunk so the window's whole-GPU demand
is `load` x capacity; durations are capped at `max_duration_s`; one tick is one minute and a
job advances by min(1, compute it got / compute it wanted) per tick; a single-GPU Philly job
gets a GPU share drawn from the openb single-GPU distribution; its demand follows a GenAI
pod's duty cycle scaled so that the pod's 95th percentile equals its request (users size
requests to near-peak), capped at a whole GPU; multi-GPU jobs ask for whole GPUs, at most one
node's (gpus_per_node; larger Philly jobs are cut to that, or one job would hold the shrunk
cluster).
Memory is not modelled (no requeue of backfilled jobs for memory).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from slurm_vgpu.policies.decide.config import ShareConfig, SteeringConfig
from slurm_vgpu.policies.decide.fragmentation import fragmentation, stranded
from slurm_vgpu.policies.decide.policy_common import GpuTenancy
from slurm_vgpu.policies.decide.share_policy import gpu_targets
from slurm_vgpu.policies.decide.snapshot import GpuState, JobGpuState, JobState, SharePolicy
from slurm_vgpu.policies.decide.steering import JobRequest, MixHistory, NodeArrays, choose
from slurm_vgpu.policies.sim.traces import GPU_MILLI, PhillyJob

TICK_S = 60
MODES = ("whole", "slices", "shared", "steered")
# the regimes with share adjustment and idle-slice backfill
LENDING = frozenset({"shared", "steered"})


@dataclass
class DynamicConfig:
    jobs: int = 2000
    first_job: int = 20000  # a busy stretch in the middle of the trace
    load: float = 0.85
    gpus_per_node: int = 8
    slices_per_gpu: int = 10
    max_duration_s: float = 12 * 3600
    idle_after_s: float = 300.0
    active_threshold: float = 0.02
    throttle_permille: int = 0
    max_ticks: int = 50_000
    queue_scan: int = 200


@dataclass
class SimJob:
    idx: int
    submit_tick: int
    ideal_ticks: int
    gpus: int
    share_milli: int  # per GPU, requested
    series: list[float]  # demand per GPU per tick, fraction of a GPU
    series_offset: int
    slices: int = 0  # per GPU, held
    start_tick: int = -1
    end_tick: int = -1
    progress: float = 0.0
    placed: list[int] = field(default_factory=list)  # GPU indices
    backfilled: bool = False
    idle_ticks: int = 0
    held: bool = False  # seen by the steering controller (steered regime)

    def demand(self, tick: int) -> float:
        return self.series[(self.series_offset + tick) % len(self.series)]


@dataclass
class DynamicResult:
    mode: str
    seed: int
    gpus: int
    jobs: int
    finished: int
    mean_wait_s: float
    p95_wait_s: float
    allocation_pct: float
    effective_util_pct: float
    mean_slowdown: float
    p95_slowdown: float
    backfilled_jobs: int
    ticks: int
    # wait plus the time lost to slowdown: finish - submit - the run time alone (ended jobs)
    mean_delay_s: float = 0.0


def _demand_series(util: list[float], request: float) -> list[float]:
    arr = np.asarray(util, dtype=float)
    ref = float(np.quantile(arr, 0.95)) or float(arr.max())
    if ref <= 0:
        return [0.0]
    return [float(x) for x in np.minimum(1.0, arr / ref * request)]


def build_jobs(philly: list[PhillyJob], shares: list[int], utils: list[list[float]],
               cfg: DynamicConfig, seed: int) -> tuple[list[SimJob], int]:
    """The job window and the cluster size (GPUs) that gives it `load`."""
    rng = np.random.default_rng(seed)
    window = philly[cfg.first_job: cfg.first_job + cfg.jobs]
    if not window:
        raise ValueError("the job window is empty: lower --first-job")
    t0 = window[0].submit
    jobs = []
    gpu_seconds = 0.0
    for i, pj in enumerate(window):
        dur = min(max(pj.duration, 1.0), cfg.max_duration_s)
        n_gpus = min(pj.num_gpus, cfg.gpus_per_node)
        share = GPU_MILLI if n_gpus > 1 else int(shares[int(rng.integers(len(shares)))])
        util = utils[int(rng.integers(len(utils)))]
        jobs.append(SimJob(i, int((pj.submit - t0) // TICK_S), max(1, math.ceil(dur / TICK_S)),
                           n_gpus, share, _demand_series(util, share / GPU_MILLI),
                           int(rng.integers(len(util)))))
        gpu_seconds += dur * n_gpus
    span = max(window[-1].submit - t0, TICK_S)
    gpus = math.ceil(gpu_seconds / span / cfg.load)
    gpus = max(cfg.gpus_per_node, math.ceil(gpus / cfg.gpus_per_node) * cfg.gpus_per_node)
    gpus = max(gpus, max(j.gpus for j in jobs))
    return jobs, gpus


class Cluster:
    def __init__(self, gpus: int, cfg: DynamicConfig) -> None:
        self.cfg = cfg
        self.n = gpus
        self.history = MixHistory(SteeringConfig().history_jobs, ["any"])
        self.free = [cfg.slices_per_gpu] * gpus  # owner slices free
        self.lent_free = [0] * gpus  # slices lent by idle owners, not yet used
        self.owners: list[list[SimJob]] = [[] for _ in range(gpus)]
        self.guests: list[list[SimJob]] = [[] for _ in range(gpus)]
        self.node_of = [g // cfg.gpus_per_node for g in range(gpus)]

    def steer(self, job: SimJob, slices: int) -> bool:
        """The controller's steering (decide/steering.py) for a job it holds: the node where
        the held jobs' mix fragments least, the plugin's best fit there. No CPUs here: every
        node has room for every job's CPUs."""
        spg, per_node = self.cfg.slices_per_gpu, self.cfg.gpus_per_node
        whole = job.gpus > 1 or slices == spg
        request = JobRequest(0, 0, job.gpus, GPU_MILLI if whole else slices * GPU_MILLI // spg)
        self.history.add(request)
        mix = self.history.rebuild() if self.history.rebuild_due() else self.history.mix
        assert mix is not None
        nodes = -(-self.n // per_node)
        free = np.full((nodes, per_node), -1, dtype=np.int64)
        for g in range(self.n):
            free[self.node_of[g], g % per_node] = self.free[g] * GPU_MILLI // spg
        big = np.full(nodes, 1 << 40, dtype=np.int64)
        model = np.zeros(nodes, dtype=np.int64)
        arrays = NodeArrays(big, big.copy(), free, model,
                            fragmentation(mix, big, big, free, model), stranded(mix, free))
        choice = choose(mix, arrays, request)
        if choice is None:
            return False
        base = choice.node * per_node
        if whole:
            chosen = [base + i for i in range(per_node)
                      if base + i < self.n and self.free[base + i] == spg][: job.gpus]
        else:
            chosen = [base + choice.gpu]
        for g in chosen:
            self.free[g] -= slices
            self.owners[g].append(job)
        job.placed, job.slices, job.backfilled = chosen, slices, False
        return True

    def place(self, job: SimJob, slices: int, backfill: bool) -> bool:
        spg = self.cfg.slices_per_gpu
        if job.gpus > 1 or slices == spg:
            if backfill:
                return False
            # packing: the node with the fewest untouched GPUs that has enough of them
            by_node: dict[int, list[int]] = {}
            for g in range(self.n):
                if self.free[g] == spg:
                    by_node.setdefault(self.node_of[g], []).append(g)
            fits = [(len(v), k) for k, v in by_node.items() if len(v) >= job.gpus]
            if fits:
                chosen = by_node[min(fits)[1]][: job.gpus]
            else:
                # larger than any node's free GPUs: span nodes, emptiest last
                order = sorted(by_node.items(), key=lambda kv: (len(kv[1]), kv[0]))
                flat = [g for _, v in order for g in v]
                if len(flat) < job.gpus or job.gpus <= self.cfg.gpus_per_node:
                    return False
                chosen = flat[: job.gpus]
        else:
            pool = self.lent_free if backfill else self.free
            cands = [g for g in range(self.n) if pool[g] >= slices]
            if not cands:
                return False
            # packing node weight (untouched GPUs), then best fit on one GPU
            untouched = [0] * (self.n // self.cfg.gpus_per_node + 1)
            for g in range(self.n):
                if self.free[g] == spg:
                    untouched[self.node_of[g]] += 1
            chosen = [min(cands, key=lambda g: (untouched[self.node_of[g]], pool[g], g))]
        for g in chosen:
            if backfill:
                self.lent_free[g] -= slices
                self.guests[g].append(job)
            else:
                self.free[g] -= slices
                self.owners[g].append(job)
        job.placed, job.slices, job.backfilled = chosen, slices, backfill
        return True

    def release(self, job: SimJob) -> None:
        for g in job.placed:
            if job.backfilled:
                self.guests[g].remove(job)
                self.lent_free[g] += job.slices
            else:
                self.owners[g].remove(job)
                self.free[g] += job.slices


def _slices_for(job: SimJob, mode: str, spg: int) -> int:
    if mode == "whole" or job.gpus > 1:
        return spg
    return min(spg, math.ceil(job.share_milli * spg / GPU_MILLI))


def run_dynamic(jobs_in: list[SimJob], gpus: int, mode: str, seed: int,
                cfg: DynamicConfig | None = None,
                tick_cb: Callable[[], None] | None = None) -> DynamicResult:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    cfg = cfg or DynamicConfig()
    jobs = [SimJob(j.idx, j.submit_tick, j.ideal_ticks, j.gpus, j.share_milli, j.series,
                   j.series_offset) for j in jobs_in]
    cluster = Cluster(gpus, cfg)
    spg = cfg.slices_per_gpu
    lending = mode in LENDING
    share_cfg = ShareConfig(enabled=lending, idle_after_seconds=cfg.idle_after_s,
                            active_threshold_permille=int(cfg.active_threshold * 1000))
    slice_permille = GPU_MILLI // spg
    pending = sorted(jobs, key=lambda j: j.submit_tick)
    queue: list[SimJob] = []
    running: list[SimJob] = []
    nxt = 0
    tick = 0
    alloc_acc = 0.0
    used_acc = 0.0
    done = 0
    last_submit = max(j.submit_tick for j in jobs)
    idle_limit = max(1, math.ceil(cfg.idle_after_s / TICK_S))
    while done < len(jobs) and tick < cfg.max_ticks:
        while nxt < len(pending) and pending[nxt].submit_tick <= tick:
            queue.append(pending[nxt])
            nxt += 1
        # lending: idle owners' slices become available to backfill jobs
        if lending:
            for g in range(gpus):
                idle = sum(o.slices for o in cluster.owners[g] if o.idle_ticks >= idle_limit)
                lent_used = sum(x.slices for x in cluster.guests[g])
                cluster.lent_free[g] = max(0, idle - lent_used)
        started: list[SimJob] = []
        for job in queue[: cfg.queue_scan]:
            slices = _slices_for(job, mode, spg)
            # steered: a new job is held and steered once, at its first cycle; one that fits
            # nowhere then is released and waits in Slurm's queue, placed by the weights
            steer = mode == "steered" and not job.held and job.gpus <= cfg.gpus_per_node
            job.held = True
            if (cluster.steer(job, slices) if steer else cluster.place(job, slices, False)) or (
                    lending and cluster.place(job, slices, True)):
                job.start_tick = tick
                started.append(job)
        if started:
            ids = {id(j) for j in started}
            queue = [j for j in queue if id(j) not in ids]
            running.extend(started)
        # compute each job gets on each of its GPUs this tick
        got: dict[int, float] = {}
        measuring = tick <= last_submit
        for g in range(gpus):
            tenants = cluster.owners[g] + cluster.guests[g]
            if not tenants:
                continue
            demands = [t.demand(tick - t.start_tick) for t in tenants]
            if mode == "whole":
                grants = [min(1.0, d) for d in demands]
            else:
                grants = _grants(g, tenants, demands, share_cfg, slice_permille, cfg, mode)
            if measuring:
                used_acc += min(1.0, sum(min(d, gr) for d, gr in zip(demands, grants, strict=True)))
            for t, d, gr in zip(tenants, demands, grants, strict=True):
                rate = 1.0 if d <= 0 else min(1.0, gr / d)
                got[id(t)] = min(got.get(id(t), 1.0), rate)
                t.idle_ticks = t.idle_ticks + 1 if d < cfg.active_threshold else 0
            if measuring:
                alloc_acc += min(spg, sum(o.slices for o in cluster.owners[g])) / spg
        finished = []
        for job in running:
            job.progress += got.get(id(job), 1.0)
            if job.progress >= job.ideal_ticks - 1e-9:
                job.end_tick = tick + 1
                finished.append(job)
        for job in finished:
            cluster.release(job)
            running.remove(job)
            done += 1
        tick += 1
        if tick_cb is not None:
            tick_cb()
    measured = min(tick, last_submit + 1)
    ended = [j for j in jobs if j.end_tick >= 0]
    waits = np.array([float((j.start_tick - j.submit_tick) * TICK_S) for j in ended] or [0.0])
    slow = np.array([(j.end_tick - j.start_tick) / j.ideal_ticks for j in ended] or [1.0])
    delay = np.array([float((j.end_tick - j.submit_tick - j.ideal_ticks) * TICK_S)
                      for j in ended] or [0.0])
    return DynamicResult(
        mode=mode, seed=seed, gpus=gpus, jobs=len(jobs), finished=len(ended),
        mean_wait_s=round(float(waits.mean()), 1),
        p95_wait_s=round(float(np.quantile(waits, 0.95)), 1),
        allocation_pct=round(100 * alloc_acc / max(1, measured * gpus), 2),
        effective_util_pct=round(100 * used_acc / max(1, measured * gpus), 2),
        mean_slowdown=round(float(slow.mean()), 3),
        p95_slowdown=round(float(np.quantile(slow, 0.95)), 3),
        backfilled_jobs=sum(1 for j in ended if j.backfilled), ticks=tick,
        mean_delay_s=round(float(delay.mean()), 1))


def _grants(g: int, tenants: list[SimJob], demands: list[float], share_cfg: ShareConfig,
            slice_permille: int, cfg: DynamicConfig, mode: str) -> list[float]:
    """Compute granted per tenant: the daemon's gpu_targets on a one-GPU tenancy."""
    gpu = GpuState(node="sim", index=g, uuid=f"GPU-sim-{g}", slices=cfg.slices_per_gpu,
                   slice_bytes=1, slice_permille=slice_permille, memory_bytes=1)
    pairs = []
    backfilled = set()
    for i, (t, d) in enumerate(zip(tenants, demands, strict=True)):
        guarantee = t.slices * slice_permille
        jg = JobGpuState(gpu_uuid=gpu.uuid, slices=t.slices, memory_limit_bytes=1,
                         compute_guaranteed_permille=guarantee,
                         compute_limit_permille=guarantee,
                         compute_used_permille=int(d * 1000),
                         idle_seconds=t.idle_ticks * TICK_S if d < cfg.active_threshold else 0)
        job = JobState(job_id=i, node="sim", uid=0, partition="sim", qos="normal",
                       share=SharePolicy.BURST if mode in LENDING else SharePolicy.GUARANTEED,
                       start_time=0.0, vgpu_slices=t.slices, gpus=(jg,))
        if t.backfilled:
            backfilled.add(i)
        pairs.append((job, jg))
    targets = gpu_targets(GpuTenancy(gpu, pairs), share_cfg, frozenset(backfilled),
                          cfg.throttle_permille)
    return [target / 1000.0 for _, _, target in targets]

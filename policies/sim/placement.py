"""Placement policies for the trace simulator, on a vectorised cluster state.

- random: a random node among those where the job fits, a random fitting GPU there.
- bestfit: the fitting node with the least resources left after placement (half the free
  CPU plus half the free GPU, each over the largest node's), the tightest fitting GPU there
  (the FGD paper's BestFit).
- fgd: the FGD paper's Fragmentation Gradient Descent as its published scheduler runs it
  (decide/fragmentation.py): the (node, GPU) whose expected fragmentation under the
  workload's popular request classes (those covering 95 % of the list) grows least, on the
  0..100 integer score; ties go to a node order fixed per run at random (the paper's
  simulator gives every node a random name prefix per seed, and its scheduler keeps the
  first best node in that order). So run, it is within 2 of the paper's standard
  deviations on every list the paper publishes (docs/simulator.md); our first reading
  (random ties per job, the whole list as the mix) left 19.2 % of gpushare100's GPUs
  unallocated against the paper's 13.4 %.
- vgpu: what this product does. The controller steers each GPU job it holds
  (decide/steering.choose, its own code, on the simulator's state and on the mix of the GPU
  jobs it has held so far); on the node the SPANK plugin places the slices on the fitting GPU
  with the least free slices (best fit on one GPU), whole-GPU jobs take untouched GPUs.
  CPU-only jobs are steered too while more than 90 % of the CPUs and more of them than of
  the GPUs are allocated (steering.cpu_jobs_steered). Jobs it does not hold (CPU-only jobs
  below that, GPU models named) go where slurmctld sends them (`weights`).
- weights: slurmctld alone. It picks the eligible node with the lowest weight, ties to the
  one with the fewest free CPUs (cons_tres's best fit), then node order; the weights are what
  the daemon's packing policy sets, computed by its own code (packing_policy.node_weight,
  re-evaluated for a node whenever a job lands on it).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from slurm_vgpu.policies.decide.config import PackingConfig, SteeringConfig
from slurm_vgpu.policies.decide.fragmentation import (
    Request,
    WorkloadMix,
    fragmentation,
    fragmentation_after_share,
    fragmentation_after_whole,
    popular,
    stranded,
)
from slurm_vgpu.policies.decide.packing_policy import node_weight
from slurm_vgpu.policies.decide.policy_common import GpuTenancy, NodeTenancy
from slurm_vgpu.policies.decide.snapshot import GpuState, JobGpuState, JobState, SharePolicy
from slurm_vgpu.policies.decide.steering import (
    JobRequest,
    MixHistory,
    NodeArrays,
    choose,
    cpu_jobs_steered,
)
from slurm_vgpu.policies.sim.traces import GPU_MILLI, TraceJob, TraceNode

PACKING = PackingConfig(enabled=True)
# the share of the list the FGD reference's request classes cover (the paper's setting)
FGD_TYPICAL = 0.95
STEERING = SteeringConfig(enabled=True)


class ClusterState:
    def __init__(self, nodes: list[TraceNode]) -> None:
        width = max(1, max(n.gpus for n in nodes))
        self.cpu_cap = np.array([n.cpu_milli for n in nodes], dtype=np.int64)
        self.mem_cap = np.array([n.memory_mib for n in nodes], dtype=np.int64)
        self.gpu_count = np.array([n.gpus for n in nodes], dtype=np.int64)
        self.cpu_free = self.cpu_cap.copy()
        self.mem_free = self.mem_cap.copy()
        # free milli per GPU slot; -1 marks slots a node does not have
        self.gpu_free = np.full((len(nodes), width), -1, dtype=np.int64)
        for i, n in enumerate(nodes):
            self.gpu_free[i, : n.gpus] = GPU_MILLI
        self.models = np.array([n.model for n in nodes])
        self.capacity_milli = int(self.gpu_count.sum()) * GPU_MILLI
        self.allocated_milli = 0
        self.max_cpu = max(1, int(np.max(self.cpu_cap)))
        self.max_gpu_milli = max(1, int(np.max(self.gpu_count))) * GPU_MILLI
        self._model_masks: dict[tuple[str, ...], np.ndarray] = {}
        # Slurm node weights as the daemon's packing policy sets them, kept current per node
        # (computed on first use: only the vgpu policy needs them)
        self.weight: np.ndarray | None = None
        self.model_names = sorted(set(self.models.tolist()))
        self.model_index = np.array([self.model_names.index(m) for m in self.models],
                                    dtype=np.int64)
        # the workload mix and each node's fragmentation under it (fgd, vgpu policies)
        self.mix: WorkloadMix | None = None
        self.frag: np.ndarray | None = None
        self.stranded: np.ndarray | None = None
        # the vgpu policy's mix: what the controller has held so far (steering.MixHistory)
        self.history: MixHistory | None = None
        # the fgd reference's tie order: node i's rank, drawn once per run
        self.tie_rank: np.ndarray | None = None
        # the controller's steering settings the vgpu policy runs with
        self.steering = STEERING

    def use_mix(self, jobs: list[TraceJob]) -> None:
        """The list's request shapes with their frequency, CPU-only jobs included, without
        memory, cut to the popular ones covering 95 % of the list: the paper's "typical
        pods" as its experiments configured them."""
        self.mix = WorkloadMix(popular((Request(j.cpu_milli, 0, j.num_gpu, j.gpu_milli,
                                                j.gpu_spec) for j in jobs), FGD_TYPICAL),
                               self.model_names)
        self.frag = fragmentation(self.mix, self.cpu_free, self.mem_free, self.gpu_free,
                                  self.model_index)
        self.stranded = stranded(self.mix, self.gpu_free)

    def measure_under(self, mix: WorkloadMix) -> None:
        self.mix = mix
        self.frag = fragmentation(mix, self.cpu_free, self.mem_free, self.gpu_free,
                                  self.model_index)
        self.stranded = stranded(mix, self.gpu_free)

    def packing_weight(self, node: int) -> int:
        """packing_policy.node_weight (the daemon's code) on this node's tenancy."""
        gpus = []
        for g in range(int(self.gpu_count[node])):
            gpu = GpuState(node=str(node), index=g, uuid=f"GPU-sim-{node}-{g}", slices=10,
                           slice_bytes=1, slice_permille=100, memory_bytes=10)
            jobs: list[tuple[JobState, JobGpuState]] = []
            used = GPU_MILLI - int(self.gpu_free[node, g])
            if used > 0:
                jg = JobGpuState(gpu_uuid=gpu.uuid, slices=max(1, used // 100),
                                 memory_limit_bytes=1, compute_guaranteed_permille=used,
                                 compute_limit_permille=used)
                jobs.append((JobState(job_id=0, node=str(node), uid=0, partition="sim",
                                      qos="normal", share=SharePolicy.GUARANTEED,
                                      start_time=0.0, vgpu_slices=jg.slices, gpus=(jg,)), jg))
            gpus.append(GpuTenancy(gpu, jobs))
        return node_weight(NodeTenancy(gpus, []), PACKING)

    def model_mask(self, spec: tuple[str, ...]) -> np.ndarray:
        mask = self._model_masks.get(spec)
        if mask is None:
            mask = np.isin(self.models, list(spec))
            self._model_masks[spec] = mask
        return mask

    def feasible(self, job: TraceJob, per_gpu: int) -> np.ndarray:
        ok = (self.cpu_free >= job.cpu_milli) & (self.mem_free >= job.memory_mib)
        if job.num_gpu:
            if job.num_gpu == 1:
                ok &= (self.gpu_free >= per_gpu).any(axis=1)
            else:
                ok &= (self.gpu_free == GPU_MILLI).sum(axis=1) >= job.num_gpu
            if job.gpu_spec:
                ok &= self.model_mask(job.gpu_spec)
        return ok

    def commit(self, node: int, job: TraceJob, per_gpu: int, gpus: list[int]) -> None:
        self.cpu_free[node] -= job.cpu_milli
        self.mem_free[node] -= job.memory_mib
        for g in gpus:
            self.gpu_free[node, g] -= per_gpu
            self.allocated_milli += per_gpu
        if self.mix is not None:  # use_mix set frag and stranded with it
            assert self.frag is not None and self.stranded is not None
            sl = slice(node, node + 1)
            self.frag[node] = fragmentation(self.mix, self.cpu_free[sl], self.mem_free[sl],
                                            self.gpu_free[sl], self.model_index[sl])[0]
            self.stranded[node] = stranded(self.mix, self.gpu_free[sl])[0]
        if gpus and self.weight is not None:
            self.weight[node] = self.packing_weight(node)

    def fitting_gpus(self, node: int, per_gpu: int) -> np.ndarray:
        return np.flatnonzero(self.gpu_free[node] >= per_gpu)


PlaceFn = Callable[[ClusterState, TraceJob, int, np.random.Generator], bool]


def _gpus_for(state: ClusterState, node: int, job: TraceJob, per_gpu: int,
              rng: np.random.Generator | None) -> list[int]:
    if job.num_gpu == 0:
        return []
    if job.num_gpu > 1 or per_gpu == GPU_MILLI:
        whole = np.flatnonzero(state.gpu_free[node] == GPU_MILLI)
        return [int(g) for g in whole[: job.num_gpu]]
    fit = state.fitting_gpus(node, per_gpu)
    if rng is not None:
        return [int(rng.choice(fit))]
    # best fit: the GPU with the least free capacity that still fits
    return [int(fit[np.argmin(state.gpu_free[node, fit])])]


def place_random(state: ClusterState, job: TraceJob, per_gpu: int,
                 rng: np.random.Generator) -> bool:
    nodes = np.flatnonzero(state.feasible(job, per_gpu))
    if nodes.size == 0:
        return False
    node = int(rng.choice(nodes))
    state.commit(node, job, per_gpu, _gpus_for(state, node, job, per_gpu, rng))
    return True


def place_bestfit(state: ClusterState, job: TraceJob, per_gpu: int,
                  rng: np.random.Generator) -> bool:
    nodes = np.flatnonzero(state.feasible(job, per_gpu))
    if nodes.size == 0:
        return False
    # free CPU and GPU left after placement, each normalised by the largest node's and
    # weighted 1/2, on the 0..100 integer scale the FGD simulator scores with; ties random
    gpu_left = np.clip(state.gpu_free[nodes], 0, None).sum(axis=1) - job.num_gpu * per_gpu
    left = 0.5 * (state.cpu_free[nodes] - job.cpu_milli) / state.max_cpu \
        + 0.5 * gpu_left / state.max_gpu_milli
    score = np.floor(left * 100)
    best = nodes[score == score.min()]
    node = int(rng.choice(best))
    state.commit(node, job, per_gpu, _gpus_for(state, node, job, per_gpu, None))
    return True


def _weights(state: ClusterState) -> np.ndarray:
    if state.weight is None:
        state.weight = np.array([state.packing_weight(i) for i in range(len(state.gpu_count))],
                                dtype=np.int64)
    return state.weight


def place_weights(state: ClusterState, job: TraceJob, per_gpu: int,
                  rng: np.random.Generator) -> bool:
    ok = state.feasible(job, per_gpu)
    nodes = np.flatnonzero(ok)
    if nodes.size == 0:
        return False
    _weights(state)
    assert state.weight is not None
    # slurmctld (select/cons_tres): the lowest weight; among those, best fit on CPUs (the
    # fewest free), then node order. tests/test_placement_slurm.py checks it on real Slurm.
    lowest = nodes[state.weight[nodes] == state.weight[nodes].min()]
    node = int(lowest[int(np.argmin(state.cpu_free[lowest]))])
    state.commit(node, job, per_gpu, _gpus_for(state, node, job, per_gpu, None))
    return True


def place_vgpu(state: ClusterState, job: TraceJob, per_gpu: int,
                rng: np.random.Generator) -> bool:
    """The product: the controller steers each GPU job (decide/steering.py, the daemon's own
    code, on what it would see: every earlier job placed, the weights current, the mix of
    the GPU jobs it held so far), and CPU-only jobs while the CPUs bind; jobs that name GPU
    models (a --constraint), and CPU-only jobs while the CPUs do not bind, are not held and
    go where slurmctld's weights send them."""
    if job.gpu_spec:  # job_submit.lua does not hold it (nor any --constraint)
        return place_weights(state, job, per_gpu, rng)
    request = JobRequest(job.cpu_milli, job.memory_mib, job.num_gpu, per_gpu)
    if job.num_gpu == 0:
        # held and steered only while the CPUs bind (the controller's announcement), and
        # never counted in the mix; before any GPU job there is no mix to score under
        if state.mix is None or not cpu_jobs_steered(
                float(state.cpu_cap.sum() - state.cpu_free.sum()), float(state.cpu_cap.sum()),
                float(state.allocated_milli), float(state.capacity_milli),
                state.steering.cpu_jobs_above):
            return place_weights(state, job, per_gpu, rng)
    else:
        if state.history is None:
            state.history = MixHistory(state.steering.history_jobs, state.model_names)
        state.history.add(request)
        if state.history.rebuild_due():
            mix = state.history.rebuild()
            assert mix is not None
            state.measure_under(mix)
    assert state.mix is not None and state.frag is not None and state.stranded is not None
    arrays = NodeArrays(state.cpu_free, state.mem_free, state.gpu_free, state.model_index,
                        state.frag, state.stranded)
    choice = choose(state.mix, arrays, request)
    if choice is None:
        return False
    gpus = [choice.gpu] if choice.gpu >= 0 else _gpus_for(state, choice.node, job, per_gpu, None)
    state.commit(choice.node, job, per_gpu, gpus)
    return True


def place_fgd(state: ClusterState, job: TraceJob, per_gpu: int,
              rng: np.random.Generator) -> bool:
    """FGD: the (node, GPU) whose expected fragmentation grows least."""
    assert state.mix is not None and state.frag is not None and state.stranded is not None
    nodes = np.flatnonzero(state.feasible(job, per_gpu))
    if nodes.size == 0:
        return False
    if job.num_gpu == 1 and per_gpu < GPU_MILLI:
        free = state.gpu_free[nodes]
        cn, cg = np.nonzero(free >= per_gpu)
        # GPUs of one node with the same free share are the same candidate
        key = nodes[cn] * (GPU_MILLI + 1) + free[cn, cg]
        _, first = np.unique(key, return_index=True)
        cand_node, cand_gpu, take = nodes[cn[first]], cg[first], per_gpu
    else:
        cand_node, cand_gpu, take = nodes, np.zeros(len(nodes), dtype=np.int64), 0
    cpu = state.cpu_free[cand_node] - job.cpu_milli
    mem = state.mem_free[cand_node] - job.memory_mib
    if take:
        after = fragmentation_after_share(state.mix, cpu, mem, state.gpu_free[cand_node],
                                          state.model_index[cand_node],
                                          state.stranded[cand_node], cand_gpu, take)
    else:  # whole GPUs (any untouched ones, all alike) or none
        after = fragmentation_after_whole(state.mix, cpu, mem, state.gpu_free[cand_node],
                                          state.model_index[cand_node],
                                          state.stranded[cand_node], job.num_gpu)
    # the paper's scheduler scores int(100 x sigmoid(-delta / 1000)) (a k8s node score):
    # fragmentation changes within a few dozen milli-GPU tie, and ties go to the first node
    # in the run's fixed order, then to its lowest-numbered GPU
    if state.tie_rank is None:
        state.tie_rank = rng.permutation(len(state.gpu_count))
    score = np.floor(100.0 / (1.0 + np.exp((after - state.frag[cand_node]) / 1000.0)))
    top = np.flatnonzero(score == score.max())
    i = top[np.lexsort((cand_gpu[top], state.tie_rank[cand_node[top]]))[0]]
    node = int(cand_node[i])
    gpus = [int(cand_gpu[i])] if take else _gpus_for(state, node, job, per_gpu, None)
    state.commit(node, job, per_gpu, gpus)
    return True


POLICIES: dict[str, PlaceFn] = {
    "fgd": place_fgd,
    "random": place_random,
    "bestfit": place_bestfit,
    "vgpu": place_vgpu,
    "weights": place_weights,
}

# policies that read the workload mix (the job list the protocol samples from)
NEEDS_MIX = frozenset({"fgd"})

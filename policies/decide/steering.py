"""Which node a new vgpu job should start on: fragmentation gradient descent, used nodes first.

The controller holds a new vgpu batch job for one control period (job_submit.lua gives it a
BeginTime a few seconds ahead) and then steers it: it names the node (`scontrol update
jobid= ReqNodeList= BeginTime=now`), and the SPANK plugin picks the GPU there (best fit on
one GPU). The node is the one where the expected fragmentation of the cluster's GPUs under
the workload's own mix of requests grows least (decide/fragmentation.py; the FGD paper's
score, Weng et al., USENIX ATC 2023), on the paper's 0..100 integer scale, so that changes
of a few dozen milli-GPU tie. Ties go to a node whose GPUs are already in use before one
whose GPUs are all untouched, then to node order: a fixed order, as in the paper's own
scheduler (its simulator draws one random node order per run and keeps the first best
node), so that ties fill the same nodes instead of spreading over idle ones. Random ties
spread jobs over idle nodes and strand whole GPUs on nodes whose CPUs run out
(docs/placement.md: FGD with random ties left 19.2 % of gpushare100's GPUs unallocated,
this rule 13.3 %).

The candidate GPU on each node is the one the plugin will take (the fitting GPU with the
least free capacity; untouched GPUs for whole-GPU jobs), so what the controller scores is
what happens. Jobs that ask for no GPU are left to Slurm's packing weights (which send them
to nodes whose GPUs are already in use) except while the GPU nodes' CPUs are nearly all
allocated and bind more than their GPUs (cpu_jobs_steered): then a CPU-only job on a GPU
node may strand that node's free GPUs, and it is steered by the same score.

Pure: numpy arrays in, a node index out. The trace simulator calls the same function.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from slurm_vgpu.policies.decide.fragmentation import (
    WHOLE,
    Request,
    WorkloadMix,
    fragmentation_after_share,
    fragmentation_after_whole,
)

# milli-GPU of fragmentation growth per unit of the sigmoid's argument (the paper's 1000)
SCORE_SCALE = 1000.0


@dataclass(frozen=True)
class JobRequest:
    """One job's request on one node, in the units the fragmentation measure uses."""

    cpu_milli: int
    memory_mib: int
    num_gpu: int
    gpu_milli: int  # per GPU; WHOLE for whole-GPU jobs
    models: tuple[str, ...] = ()  # accepted GPU models; empty = any


@dataclass
class NodeArrays:
    """The cluster as the controller sees it, one row per node.

    gpu_free holds free milli-GPU per GPU slot (-1 for a slot a node does not have); frag and
    stranded are fragmentation.fragmentation() and fragmentation.stranded() of these arrays
    under the mix (the caller keeps them current per node, so a choice costs O(nodes x
    classes), not O(nodes x GPUs x classes)).
    """

    cpu_free: np.ndarray
    mem_free: np.ndarray
    gpu_free: np.ndarray
    model: np.ndarray  # index into the mix's model list
    frag: np.ndarray
    stranded: np.ndarray
    eligible: np.ndarray | None = None  # bool: nodes the job may use (partition, state)


class MixHistory:
    """The request mix the controller measures fragmentation under: the last `window` GPU
    jobs it held (it never sees the jobs Slurm places itself). Rebuilt when it has grown by a
    tenth since the last build (at most every `refresh` jobs), because every node's
    fragmentation must then be measured again."""

    def __init__(self, window: int, models: list[str], refresh: int = 100) -> None:
        self.requests: deque[Request] = deque(maxlen=window)
        self.models = models
        self.refresh = refresh
        self.mix: WorkloadMix | None = None
        self._since = 0

    def add(self, job: JobRequest) -> None:
        self.requests.append(Request(job.cpu_milli, job.memory_mib, job.num_gpu, job.gpu_milli,
                                     job.models))
        self._since += 1

    def rebuild_due(self) -> bool:
        return self.mix is None or self._since >= min(self.refresh,
                                                      max(1, len(self.requests) // 10))

    def rebuild(self) -> WorkloadMix | None:
        """The mix now (None while no job was seen)."""
        if self.requests:
            self.mix = WorkloadMix(self.requests, self.models)
            self._since = 0
        return self.mix


def cpu_jobs_steered(cpu_used: float, cpu_total: float, gpu_used: float, gpu_total: float,
                     above: float) -> bool:
    """Whether CPU-only jobs are steered too: while more than `above` of the nodes' CPUs are
    allocated and a larger share of their CPUs than of their GPUs. Below that, packing them
    by the weights onto nodes whose GPUs are busy costs nothing; above it (openb's cpu300,
    where thousands of GPU jobs find no node with CPUs left) the weights put them where free
    GPUs lose their last CPUs (docs/placement.md)."""
    if cpu_total <= 0 or gpu_total <= 0:
        return False
    cpu, gpu = cpu_used / cpu_total, gpu_used / gpu_total
    return cpu > above and cpu > gpu


@dataclass(frozen=True)
class Choice:
    node: int
    gpu: int  # the GPU the plugin will take (-1: whole GPUs or none)
    score: int


def fits(nodes: NodeArrays, job: JobRequest, model_ok: np.ndarray | None) -> np.ndarray:
    """(N,) bool: the job fits on the node now (CPU, memory, model, GPUs)."""
    ok = (nodes.cpu_free >= job.cpu_milli) & (nodes.mem_free >= job.memory_mib)
    if job.num_gpu == 1 and job.gpu_milli < WHOLE:
        ok &= (nodes.gpu_free >= job.gpu_milli).any(axis=1)
    elif job.num_gpu:
        ok &= (nodes.gpu_free == WHOLE).sum(axis=1) >= job.num_gpu
    if model_ok is not None:
        ok &= model_ok
    if nodes.eligible is not None:
        ok &= nodes.eligible
    return ok


def best_fit_gpu(gpu_free: np.ndarray, need: int) -> np.ndarray:
    """(C,) per row, the GPU the plugin takes for a share of `need` milli: the fitting one
    with the least free capacity, the lowest index among equals (-1: none fits)."""
    masked = np.where(gpu_free >= need, gpu_free, WHOLE + 1)
    best = np.argmin(masked, axis=1)
    return np.where(masked[np.arange(len(best)), best] <= WHOLE, best, -1)


def choose(mix: WorkloadMix, nodes: NodeArrays, job: JobRequest,
           model_ok: np.ndarray | None = None) -> Choice | None:
    """The node a job should start on, or None where it fits on no node (a CPU-only job,
    num_gpu 0, scores the fragmentation its CPUs and memory cause)."""
    cand = np.flatnonzero(fits(nodes, job, model_ok))
    if cand.size == 0:
        return None
    cpu = nodes.cpu_free[cand] - job.cpu_milli
    mem = nodes.mem_free[cand] - job.memory_mib
    share = job.num_gpu == 1 and job.gpu_milli < WHOLE
    if share:
        gpu = best_fit_gpu(nodes.gpu_free[cand], job.gpu_milli)
        after = fragmentation_after_share(mix, cpu, mem, nodes.gpu_free[cand],
                                          nodes.model[cand], nodes.stranded[cand], gpu,
                                          job.gpu_milli)
    else:
        gpu = np.full(len(cand), -1, dtype=np.int64)
        after = fragmentation_after_whole(mix, cpu, mem, nodes.gpu_free[cand],
                                          nodes.model[cand], nodes.stranded[cand], job.num_gpu)
    delta = after - nodes.frag[cand]
    # the paper's node score: int(100 x sigmoid(-delta / 1000)); clipped so exp never
    # overflows (a delta of 50 GPUs already scores 0)
    score = np.floor(100.0 / (1.0 + np.exp(np.clip(delta / SCORE_SCALE, -50.0, 50.0))))
    # a node none of whose GPUs carries a job yet (slots a node lacks are -1, never WHOLE)
    idle = ((nodes.gpu_free[cand] == WHOLE) | (nodes.gpu_free[cand] < 0)).all(axis=1)
    # lexsort: the last key is the first criterion
    order = np.lexsort((cand, idle, -score))
    i = int(order[0])
    return Choice(node=int(cand[i]), gpu=int(gpu[i]), score=int(score[i]))

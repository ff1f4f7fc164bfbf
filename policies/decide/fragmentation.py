"""Expected GPU fragmentation of a node under a workload's mix of requests.

After the FGD paper (Weng et al., USENIX ATC 2023): for a request class m, the free GPU
capacity of a node that m could not use is a fragment of it. That is all of the node's free
GPU capacity when m does not fit there at all (CPU, memory, GPU model, no GPU with room, or
m asks for no GPU), else the free capacity of the GPUs whose free share is below m's
per-GPU share. A node's fragmentation is the popularity-weighted sum over the classes, in
milli-GPU. The mix is what the cluster is asked for (its queue and recent history), so the
measure follows the workload instead of a fixed rule.

Pure: numpy arrays in, numpy arrays out. Shapes: N nodes, G GPU slots per node (free -1 for
a slot a node does not have), K request classes, M GPU models.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

WHOLE = 1000  # milli-GPU in one GPU


@dataclass(frozen=True)
class Request:
    """One job's request as the mix counts it."""

    cpu_milli: int
    memory_mib: int
    num_gpu: int
    gpu_milli: int  # per GPU
    models: tuple[str, ...] = ()  # accepted GPU models; empty = any


class WorkloadMix:
    """Request classes and their popularity (share of requests), over a model list."""

    def __init__(self, requests: Iterable[Request], models: Sequence[str]) -> None:
        counts = Counter(requests)
        if not counts:
            raise ValueError("a workload mix needs at least one request")
        self.models = list(models)
        # most frequent first (the order fixes the float sums, so results per seed)
        classes = sorted(counts, key=lambda r: (-counts[r], r.num_gpu, r.gpu_milli,
                                                r.cpu_milli, r.memory_mib, r.models))
        total = sum(counts.values())
        self.cpu = np.array([c.cpu_milli for c in classes], dtype=np.int64)
        self.mem = np.array([c.memory_mib for c in classes], dtype=np.int64)
        self.num = np.array([c.num_gpu for c in classes], dtype=np.int64)
        # per-GPU share a class needs from one GPU; whole-GPU classes need a whole one
        self.need = np.array([c.gpu_milli if c.num_gpu == 1 else WHOLE for c in classes],
                             dtype=np.int64)
        self.pop = np.array([counts[c] / total for c in classes], dtype=np.float64)
        index = {m: i for i, m in enumerate(self.models)}
        self.model_ok = np.ones((len(classes), len(self.models)), dtype=bool)
        for k, c in enumerate(classes):
            if c.models:
                self.model_ok[k] = False
                for m in c.models:
                    if m in index:
                        self.model_ok[k, index[m]] = True
        self.gpu_classes = self.num > 0


def popular(requests: Iterable[Request], share: float) -> list[Request]:
    """The requests whose class is among the most popular ones that together cover `share`
    of all requests (the FGD paper's "typical pods": classes are added, most frequent first,
    until they cover the share; 1.0 keeps every request). Rare classes then count for
    nothing, which is what the paper's scheduler ran with (share 0.95)."""
    requests = list(requests)
    counts = Counter(requests)
    keep: set[Request] = set()
    covered = 0
    for request, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].num_gpu,
                                                               kv[0].gpu_milli,
                                                               kv[0].cpu_milli)):
        if covered >= share * len(requests):
            break
        keep.add(request)
        covered += n
    return [r for r in requests if r in keep]


def _fits(mix: WorkloadMix, cpu_free: np.ndarray, mem_free: np.ndarray,
          model: np.ndarray, top_free: np.ndarray, whole_free: np.ndarray) -> np.ndarray:
    """(N, K): class k fits on node n (resources, model, a GPU with room or enough whole)."""
    fit = (cpu_free[:, None] >= mix.cpu[None, :]) & (mem_free[:, None] >= mix.mem[None, :])
    fit &= mix.model_ok.T[model]
    single = mix.num == 1
    gpu_fit = np.where(single[None, :], top_free[:, None] >= mix.need[None, :],
                       whole_free[:, None] >= mix.num[None, :])
    return fit & np.where(mix.gpu_classes[None, :], gpu_fit, False)


def _below(mix: WorkloadMix, free: np.ndarray) -> np.ndarray:
    """(..., K): free capacity on GPUs with less free than class k needs, per GPU."""
    return np.where(free[..., None] < mix.need, free[..., None], 0)


def stranded(mix: WorkloadMix, gpu_free: np.ndarray) -> np.ndarray:
    """(N, K): per node, the free capacity on GPUs too full for class k (what a caller keeps
    per node and passes to the *_after functions, so a candidate costs K, not G x K)."""
    return np.asarray(_below(mix, np.clip(gpu_free, 0, None)).sum(axis=1))


def _combine(mix: WorkloadMix, fit: np.ndarray, below: np.ndarray,
             total: np.ndarray) -> np.ndarray:
    return np.asarray(np.where(fit, below, total[:, None]) @ mix.pop)


def fragmentation(mix: WorkloadMix, cpu_free: np.ndarray, mem_free: np.ndarray,
                  gpu_free: np.ndarray, model: np.ndarray) -> np.ndarray:
    """(N,) expected fragmented milli-GPU per node."""
    free = np.clip(gpu_free, 0, None)
    fit = _fits(mix, cpu_free, mem_free, model, free.max(axis=1, initial=0),
                (gpu_free == WHOLE).sum(axis=1))
    return _combine(mix, fit, stranded(mix, gpu_free), free.sum(axis=1))


def fragmentation_after_share(mix: WorkloadMix, cpu_free: np.ndarray, mem_free: np.ndarray,
                              gpu_free: np.ndarray, model: np.ndarray, stranded_now: np.ndarray,
                              gpu: np.ndarray, take: int) -> np.ndarray:
    """(C,) fragmentation of candidate nodes (rows) after `take` milli of GPU slot `gpu[c]`
    is allocated on each; cpu_free/mem_free are already reduced by the job. Only the changed
    GPU is re-evaluated per class, so a candidate costs K, not G x K."""
    rows = np.arange(len(gpu))
    free = np.clip(gpu_free, 0, None)
    old = free[rows, gpu]
    new = old - take
    below = stranded_now - _below(mix, old) + _below(mix, new)
    # the largest free share after: the other GPUs' largest, or the changed one
    others = free.copy()
    others[rows, gpu] = -1
    top = np.maximum(others.max(axis=1, initial=0), new)
    whole = (gpu_free == WHOLE).sum(axis=1) - (old == WHOLE)
    fit = _fits(mix, cpu_free, mem_free, model, top, whole)
    return _combine(mix, fit, below, free.sum(axis=1) - take)


def fragmentation_after_whole(mix: WorkloadMix, cpu_free: np.ndarray, mem_free: np.ndarray,
                              gpu_free: np.ndarray, model: np.ndarray, stranded_now: np.ndarray,
                              count: int) -> np.ndarray:
    """(C,) fragmentation of candidate nodes after `count` untouched GPUs (0: none) are
    allocated on each; cpu_free/mem_free are already reduced by the job. A whole GPU is a
    fragment for no class, so only fit and the total change."""
    free = np.clip(gpu_free, 0, None)
    whole = (gpu_free == WHOLE).sum(axis=1) - count
    partial_top = np.where(gpu_free < WHOLE, free, 0).max(axis=1, initial=0)
    top = np.where(whole > 0, WHOLE, partial_top)
    fit = _fits(mix, cpu_free, mem_free, model, top, whole)
    return _combine(mix, fit, stranded_now, free.sum(axis=1) - count * WHOLE)

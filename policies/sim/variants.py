"""Workload variants of an openb pod list, as the FGD paper builds them (its Sec. 6).

- gpu_spec: a share of the GPU jobs (the paper: about a third in Alibaba's production
  cluster) name the GPU models they accept. Each such job gets one model, drawn by the
  models' share of the cluster's GPUs among those whose nodes have enough GPUs for it; a
  V100 job accepts both V100 memory sizes, as openb's own example (`V100M16|V100M32`).
- multi_gpu: multi-GPU jobs are added (copies of the list's own multi-GPU jobs, drawn
  uniformly) until they ask for a given share of all GPU requests.

Deterministic for a seed; the output is an openb pod list (same columns) that
`vgpu simulate static --jobs` reads.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np

from slurm_vgpu.policies.sim.traces import TraceError, TraceJob, TraceNode

SIBLINGS = {"V100M16": ("V100M16", "V100M32"), "V100M32": ("V100M16", "V100M32")}


def with_gpu_spec(jobs: list[TraceJob], nodes: list[TraceNode], share: float,
                  seed: int) -> list[TraceJob]:
    if not 0 <= share <= 1:
        raise TraceError(f"gpu_spec share {share} must be between 0 and 1")
    rng = np.random.default_rng(seed)
    gpus_of = Counter[str]()
    most = Counter[str]()
    for n in nodes:
        if n.gpus:
            gpus_of[n.model] += n.gpus
            most[n.model] = max(most[n.model], n.gpus)
    models = sorted(gpus_of)
    out = []
    for job in jobs:
        if job.num_gpu and rng.random() < share:
            able = [m for m in models if most[m] >= job.num_gpu]
            weight = np.array([gpus_of[m] for m in able], dtype=np.float64)
            model = able[int(rng.choice(len(able), p=weight / weight.sum()))]
            job = replace(job, gpu_spec=SIBLINGS.get(model, (model,)))
        out.append(job)
    return out


def with_multi_gpu(jobs: list[TraceJob], share: float, seed: int) -> list[TraceJob]:
    if not 0 <= share < 1:
        raise TraceError(f"multi-GPU share {share} must be at least 0 and below 1")
    multi = [j for j in jobs if j.num_gpu > 1]
    if not multi:
        raise TraceError("the job list has no multi-GPU job to draw from")
    rng = np.random.default_rng(seed)
    total = sum(j.gpu_request_milli for j in jobs)
    multi_milli = sum(j.gpu_request_milli for j in multi)
    out = list(jobs)
    n = 0
    while multi_milli < share * total:
        job = multi[int(rng.integers(len(multi)))]
        n += 1
        out.append(replace(job, name=f"{job.name}-m{n}"))
        multi_milli += job.gpu_request_milli
        total += job.gpu_request_milli
    return out


def to_csv(jobs: list[TraceJob]) -> str:
    lines = ["name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec"]
    lines += [f"{j.name},{j.cpu_milli},{j.memory_mib},{j.num_gpu},{j.gpu_milli},"
              f"{'|'.join(j.gpu_spec)}" for j in jobs]
    return "\n".join(lines) + "\n"

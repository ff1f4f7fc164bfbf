"""The fragmentation measure behind the fgd reference policy: hand-computed cases, and the
incremental forms (one changed GPU, whole GPUs taken) against a full recomputation."""

from __future__ import annotations

import numpy as np
import pytest

from slurm_vgpu.policies.decide.fragmentation import (
    Request,
    WorkloadMix,
    fragmentation,
    fragmentation_after_share,
    fragmentation_after_whole,
    popular,
    stranded,
)

MODELS = ["A", "B"]


def arrays(cpu: list[int], gpus: list[list[int]], model: list[int]) -> tuple[np.ndarray, ...]:
    return (np.array(cpu, dtype=np.int64), np.full(len(cpu), 10**6, dtype=np.int64),
            np.array(gpus, dtype=np.int64), np.array(model, dtype=np.int64))


def test_hand_computed() -> None:
    # half the requests want 500 of one GPU, half one whole GPU with 8 CPUs
    mix = WorkloadMix([Request(1000, 1, 1, 500), Request(8000, 1, 1, 1000)], MODELS)
    cpu, mem, gpu, model = arrays([16000, 4000], [[1000, 300, 0], [1000, 300, 0]], [0, 0])
    frag = fragmentation(mix, cpu, mem, gpu, model)
    # node 0: the 300 left on GPU 1 is too little for either class
    # node 1: too few CPUs for the whole-GPU class, so all 1300 free are fragments for it
    assert frag.tolist() == pytest.approx([300.0, 0.5 * 300 + 0.5 * 1300])


def test_models_and_cpu_only_and_absent_slots() -> None:
    mix = WorkloadMix([Request(1000, 1, 1, 200, ("B",)), Request(1000, 1, 0, 0)], MODELS)
    # a model-A node is useless to the B-only class; a CPU-only request uses no GPU, so all
    # free GPU capacity is a fragment to it; -1 marks a slot the node does not have
    cpu, mem, gpu, model = arrays([8000, 8000], [[1000, -1], [150, 1000]], [0, 1])
    assert fragmentation(mix, cpu, mem, gpu, model).tolist() == pytest.approx(
        [1000.0, 0.5 * 150 + 0.5 * 1150])


def test_mix_needs_requests() -> None:
    with pytest.raises(ValueError, match="at least one request"):
        WorkloadMix([], MODELS)


def test_popular_keeps_the_most_frequent_classes_up_to_the_share() -> None:
    a, b, c = Request(1000, 0, 1, 500), Request(2000, 0, 0, 0), Request(4000, 0, 2, 1000)
    requests = [a] * 6 + [b] * 3 + [c]
    # 6 of 10 is under 85 %, 9 of 10 reaches it: the rare class counts for nothing
    assert popular(requests, 0.85) == [a] * 6 + [b] * 3
    assert popular(requests, 0.6) == [a] * 6
    assert popular(requests, 1.0) == requests


def random_state(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    gpu = rng.choice([0, 100, 250, 400, 600, 1000, 1000, 1000], size=(n, 4))
    gpu[rng.random((n, 4)) < 0.15] = -1
    return (rng.integers(0, 32000, n), rng.integers(0, 10**5, n), gpu,
            rng.integers(0, 2, n))


def random_mix(rng: np.random.Generator) -> WorkloadMix:
    reqs = [Request(int(rng.integers(0, 16000)), int(rng.integers(0, 50000)),
                    int(n), 1000 if n != 1 else int(rng.choice([100, 250, 500, 1000])),
                    ("A",) if rng.random() < 0.3 else ())
            for n in rng.choice([0, 1, 1, 1, 2, 4], size=30)]
    return WorkloadMix(reqs, MODELS)


@pytest.mark.parametrize("seed", range(5))
def test_incremental_forms_match_full_recomputation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mix = random_mix(rng)
    cpu, mem, gpu, model = random_state(rng, 200)
    now = stranded(mix, gpu)
    take = 250
    slot = np.array([int(rng.integers(4)) for _ in range(200)])
    ok = gpu[np.arange(200), slot] >= take
    rows = np.flatnonzero(ok)
    after = gpu[rows].copy()
    after[np.arange(len(rows)), slot[rows]] -= take
    expect = fragmentation(mix, cpu[rows] - 500, mem[rows], after, model[rows])
    got = fragmentation_after_share(mix, cpu[rows] - 500, mem[rows], gpu[rows], model[rows],
                                    now[rows], slot[rows], take)
    assert got == pytest.approx(expect)
    for count in (0, 1, 2):
        rows = np.flatnonzero((gpu == 1000).sum(axis=1) >= count)
        after = gpu[rows].copy()
        rank = np.cumsum(after == 1000, axis=1)
        after[(after == 1000) & (rank <= count)] = 0
        expect = fragmentation(mix, cpu[rows], mem[rows], after, model[rows])
        got = fragmentation_after_whole(mix, cpu[rows], mem[rows], gpu[rows], model[rows],
                                        now[rows], count)
        assert got == pytest.approx(expect)

"""Policies as pure functions of snapshots: share, backfill, packing, backstop, planner."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from slurm_vgpu.policies.decide.actions import (
    CancelStep,
    KillProcess,
    RecordViolation,
    RequeueJob,
    SetComputeLimit,
    SetNodeVgpuCount,
    SetNodeWeight,
)
from slurm_vgpu.policies.decide.backfill_policy import plan_backfill
from slurm_vgpu.policies.decide.backstop import plan_backstop
from slurm_vgpu.policies.decide.config import (
    BackfillConfig,
    BackstopConfig,
    PackingConfig,
    PolicyConfig,
    ShareConfig,
)
from slurm_vgpu.policies.decide.packing_policy import plan_weights
from slurm_vgpu.policies.decide.planner import plan_cycle
from slurm_vgpu.policies.decide.share_policy import plan_shares
from slurm_vgpu.policies.decide.snapshot import (
    GpuProcess,
    JobState,
    NodeState,
    SharePolicy,
    Snapshot,
)
from slurm_vgpu.policies.sim.synthetic import GIB, make_job, make_node, synthetic_cluster

SHARE = ShareConfig(idle_after_seconds=10.0)
BACKFILL = BackfillConfig(enabled=True, idle_after_seconds=300.0,
                          preemptible_partitions=("scavenger",), throttle_permille=0)
BURST = SharePolicy.BURST


def snap(node: NodeState, *jobs: JobState, processes: tuple[GpuProcess, ...] = (),
         slurm_ok: bool = True) -> Snapshot:
    return Snapshot(time=1000.0, nodes=(node,), jobs=jobs, processes=processes,
                    slurm_ok=slurm_ok)


def counts(actions: list[SetNodeVgpuCount | RequeueJob]) -> list[int]:
    return [a.count for a in actions if isinstance(a, SetNodeVgpuCount)]


def limits(actions: list[SetComputeLimit]) -> dict[int, int]:
    return {a.job_id: a.permille for a in actions}


# --- share -----------------------------------------------------------------------------------


def test_share_all_active_keeps_guarantees() -> None:
    node = make_node()
    g = node.gpus[0]
    s = snap(node, make_job(1, g, 3, share=BURST), make_job(2, g, 7))
    # 3 + 7 slices fill the GPU: nothing is spare, nothing changes.
    assert plan_shares(s, SHARE) == []


def test_share_idle_owner_lends_to_active_burst_job() -> None:
    node = make_node()
    g = node.gpus[0]
    s = snap(node, make_job(1, g, 3, share=BURST), make_job(2, g, 7, idle_seconds=60))
    assert limits(plan_shares(s, SHARE)) == {1: 1000}


def test_share_guaranteed_job_does_not_borrow() -> None:
    node = make_node()
    g = node.gpus[0]
    s = snap(node, make_job(1, g, 3), make_job(2, g, 7, idle_seconds=60))
    assert plan_shares(s, SHARE) == []


def test_share_comes_back_within_one_cycle() -> None:
    node = make_node()
    g = node.gpus[0]
    # Job 1 was bursting at 1000 while job 2 idled; job 2 is active again this cycle.
    s = snap(node, make_job(1, g, 3, share=BURST, compute_limit_permille=1000),
             make_job(2, g, 7, idle_seconds=0))
    assert limits(plan_shares(s, SHARE)) == {1: 300}


def test_share_unallocated_slices_lent_only_when_configured() -> None:
    node = make_node()
    g = node.gpus[0]
    s = snap(node, make_job(1, g, 2, share=BURST))
    assert limits(plan_shares(s, SHARE)) == {1: 1000}
    no_lend = dataclasses.replace(SHARE, lend_unallocated=False)
    assert plan_shares(s, no_lend) == []


def test_share_split_in_proportion_and_capped() -> None:
    node = make_node()
    g = node.gpus[0]
    s = snap(node, make_job(1, g, 1, share=BURST), make_job(2, g, 3, share=BURST),
             make_job(3, g, 6, idle_seconds=100))
    # 600 spare split 1:3 -> +150 / +450.
    assert limits(plan_shares(s, SHARE)) == {1: 250, 2: 750}
    capped = dataclasses.replace(SHARE, max_burst_permille=200)
    # Job 1 is capped at 200; job 2's guarantee (300) is already above the cap: it keeps it.
    assert limits(plan_shares(s, capped)) == {1: 200}


def test_share_water_filling_gives_what_one_cannot_take_to_others() -> None:
    node = make_node()
    g = node.gpus[0]
    cfg = dataclasses.replace(SHARE, max_burst_permille=500)
    s = snap(node, make_job(1, g, 1, share=BURST), make_job(2, g, 1, share=BURST),
             make_job(3, g, 8, idle_seconds=100))
    assert limits(plan_shares(s, cfg)) == {1: 500, 2: 500}


def test_share_small_raises_skipped_decreases_always_written() -> None:
    node = make_node()
    g = node.gpus[0]
    cfg = dataclasses.replace(SHARE, min_change_permille=50)
    s = snap(node, make_job(1, g, 3, share=BURST, compute_limit_permille=980),
             make_job(2, g, 7, idle_seconds=60))
    assert plan_shares(s, cfg) == []  # 980 -> 1000 is under the threshold
    s = snap(node, make_job(1, g, 3, share=BURST, compute_limit_permille=310),
             make_job(2, g, 7))
    assert limits(plan_shares(s, cfg)) == {1: 300}


def test_share_idle_burst_job_returns_to_guarantee() -> None:
    node = make_node()
    g = node.gpus[0]
    s = snap(node, make_job(1, g, 3, share=BURST, compute_limit_permille=900, idle_seconds=50))
    assert limits(plan_shares(s, SHARE)) == {1: 300}


def test_share_disabled_restores_guarantees() -> None:
    node = make_node()
    g = node.gpus[0]
    s = snap(node, make_job(1, g, 3, share=BURST, compute_limit_permille=900),
             make_job(2, g, 7, idle_seconds=60))
    assert limits(plan_shares(s, dataclasses.replace(SHARE, enabled=False))) == {1: 300}


def test_share_backfilled_job_throttled_while_owner_active() -> None:
    node = make_node()
    g = node.gpus[0]
    s = snap(node, make_job(1, g, 10), make_job(2, g, 3, partition="scavenger", share=BURST))
    assert limits(plan_shares(s, SHARE, backfilled={2}, throttle_permille=10)) == {2: 10}
    # Owner idle: the backfilled job runs at its guarantee and may burst into the idle share.
    s = snap(node, make_job(1, g, 10, idle_seconds=400),
             make_job(2, g, 3, partition="scavenger", share=BURST, compute_limit_permille=10))
    assert limits(plan_shares(s, SHARE, backfilled={2}, throttle_permille=10)) == {2: 1000}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10), st.booleans(), st.booleans(),
                          st.integers(0, 1000)), min_size=1, max_size=6))
def test_share_never_overcommits_active_and_never_below_guarantee(
        spec: list[tuple[int, bool, bool, int]]) -> None:
    node = make_node(slices=10)
    g = node.gpus[0]
    jobs = []
    total = 0
    for i, (slices, burst, idle, current) in enumerate(spec):
        if total + slices > 10:
            break
        total += slices
        jobs.append(make_job(i + 1, g, slices, share=BURST if burst else SharePolicy.GUARANTEED,
                             idle_seconds=100 if idle else 0, compute_limit_permille=current))
    s = snap(node, *jobs)
    cfg = dataclasses.replace(SHARE, min_change_permille=0)
    new = limits(plan_shares(s, cfg))
    final = {j.job_id: new.get(j.job_id, j.gpus[0].compute_limit_permille) for j in jobs}
    active = [j for j in jobs if j.gpus[0].idle_seconds == 0]
    assert sum(final[j.job_id] for j in active) <= 1000
    for j in jobs:
        assert final[j.job_id] >= j.gpus[0].compute_guaranteed_permille
        if j.share == SharePolicy.GUARANTEED or j.gpus[0].idle_seconds:
            assert final[j.job_id] == j.gpus[0].compute_guaranteed_permille


# --- backfill --------------------------------------------------------------------------------


def test_backfill_offers_idle_free_slices() -> None:
    node = make_node(ngpus=2)
    g0 = node.gpus[0]
    # Owner of 6 slices idle 10 min, still holding 1.5 slices' worth of memory -> 4 lendable.
    s = snap(node, make_job(1, g0, 6, idle_seconds=600, memory_used_bytes=12 * GIB),
             make_job(2, g0, 4))
    plan = plan_backfill(s, BACKFILL)
    assert plan.offered == {"n1": 4}
    assert plan.actions == [SetNodeVgpuCount("n1", 24, "lend 4 idle slice(s) to preemptible jobs")]


def test_backfill_not_before_idle_time() -> None:
    node = make_node()
    s = snap(node, make_job(1, node.gpus[0], 6, idle_seconds=200))
    assert plan_backfill(s, BACKFILL).actions == []


def test_backfill_disabled_withdraws_offer() -> None:
    node = make_node(vgpu_current=25)
    s = snap(node, make_job(1, node.gpus[0], 6, idle_seconds=600))
    plan = plan_backfill(s, dataclasses.replace(BACKFILL, enabled=False))
    assert [a.count for a in plan.actions if isinstance(a, SetNodeVgpuCount)] == [20]


def test_backfill_withdrawn_when_owner_active_and_reapplied_after_reset() -> None:
    node = make_node(vgpu_current=26)
    g = node.gpus[0]
    s = snap(node, make_job(1, g, 6, idle_seconds=0))
    assert counts(plan_backfill(s, BACKFILL).actions) == [20]
    # slurmctld restarted and reset the count to slurm.conf's 20 while the owner is idle:
    reset = snap(make_node(vgpu_current=20), make_job(1, g, 6, idle_seconds=900))
    assert counts(plan_backfill(reset, BACKFILL).actions) == [26]


def test_backfill_identifies_preemptible_jobs_beyond_capacity_newest_first() -> None:
    node = make_node(vgpu_current=26)
    g = node.gpus[0]
    s = snap(node, make_job(1, g, 6, idle_seconds=900),
             make_job(2, g, 4),
             make_job(3, g, 2, partition="scavenger", start_time=10.0),
             make_job(4, g, 2, partition="scavenger", start_time=20.0),
             make_job(5, g, 2, partition="scavenger", start_time=5.0))
    plan = plan_backfill(s, BACKFILL)
    # 16 slices on a 10-slice GPU: 6 over, borne by the three scavenger jobs.
    assert plan.backfilled == {3, 4, 5}
    assert plan.backfilled_slices == {"n1": 6}
    assert plan.overcommitted == {}


def test_backfill_non_preemptible_overcommit_reported() -> None:
    node = make_node(vgpu_current=26)
    g = node.gpus[0]
    s = snap(node, make_job(1, g, 6, idle_seconds=900), make_job(2, g, 7))
    plan = plan_backfill(s, BACKFILL)
    assert plan.backfilled == set()
    assert plan.overcommitted == {g.uuid: 3}


def test_backfill_requeues_when_owner_needs_memory_never_takes_guaranteed() -> None:
    node = make_node()
    g = node.gpus[0]
    owner = make_job(1, g, 8, idle_seconds=0, memory_used_bytes=1 * GIB)  # woke up
    bf_old = make_job(2, g, 3, partition="scavenger", start_time=1.0,
                      memory_used_bytes=10 * GIB)
    bf_new = make_job(3, g, 3, partition="scavenger", start_time=2.0,
                      memory_used_bytes=10 * GIB)
    s = snap(node, owner, make_job(4, g, 2), bf_old, bf_new)
    plan = plan_backfill(s, BACKFILL)
    requeued = [a.job_id for a in plan.actions if isinstance(a, RequeueJob)]
    # Demand: active owners' caps 64 + 16, backfilled 20 = 100 GiB > 80: requeue newest first
    # (90 GiB, still too much), then the older one.
    assert requeued == [3, 2]
    # Owners idle holding little memory: no requeue.
    idle_owner = dataclasses.replace(owner, gpus=(dataclasses.replace(
        owner.gpus[0], idle_seconds=900.0),))
    s = snap(node, idle_owner, make_job(4, g, 2, idle_seconds=900), bf_old, bf_new)
    assert not [a for a in plan_backfill(s, BACKFILL).actions if isinstance(a, RequeueJob)]


def test_backfill_throttle_before_requeue() -> None:
    node = make_node()
    g = node.gpus[0]
    # Owner active, backfilled job holds little memory: it stays (throttled by shares).
    s = snap(node, make_job(1, g, 8), make_job(2, g, 4, partition="scavenger",
                                                  memory_used_bytes=1 * GIB))
    plan = plan_cycle(s, PolicyConfig(share=SHARE, backfill=BACKFILL))
    assert plan.backfilled == {2}
    assert not [a for a in plan.actions if isinstance(a, RequeueJob)]
    assert SetComputeLimit(2, g.uuid, 0, "backfilled job throttled: an owner of the GPU is "
                           "active") in plan.actions


def test_backfill_no_slurm_actions_when_slurm_down() -> None:
    node = make_node(vgpu_current=20)
    s = snap(node, make_job(1, node.gpus[0], 6, idle_seconds=900), slurm_ok=False)
    assert plan_backfill(s, BACKFILL).actions == []


def test_backfill_unplaced_jobs_count() -> None:
    node = make_node(vgpu_current=24)
    g = node.gpus[0]
    unplaced = JobState(job_id=9, node="n1", uid=1, partition="scavenger", qos="", share=BURST,
                        start_time=50.0, vgpu_slices=4)
    full = [make_job(i, node.gpus[i % 2], 5) for i in range(1, 5)]
    s = snap(node, *full, unplaced)
    assert plan_backfill(s, BACKFILL).backfilled == {9}
    assert g.uuid


def test_backfill_max_offer() -> None:
    node = make_node()
    s = snap(node, make_job(1, node.gpus[0], 9, idle_seconds=900))
    cfg = dataclasses.replace(BACKFILL, max_offer_slices=2)
    assert counts(plan_backfill(s, cfg).actions) == [22]


def test_backfill_withdrawn_and_held_off_after_a_refused_job() -> None:
    # The plugin requeued a normal job that slurmctld had started on the lent slices at
    # t=990 (lent.refused); the snapshot is at t=1000: the offer is withdrawn ...
    lent_now = dataclasses.replace(make_node(vgpu_current=26), lent_refused_at=990.0)
    owner = make_job(1, lent_now.gpus[0], 6, idle_seconds=900)
    plan = plan_backfill(snap(lent_now, owner), BACKFILL)
    assert counts(plan.actions) == [20]
    assert plan.offered == {"n1": 0} and plan.offered_gpus == {}
    assert plan.held_off == {"n1": 290.0}
    assert "not preemptible was started on lent slices" in plan.actions[0].reason
    # ... nothing is offered again during the hold-off (count already back: no action) ...
    back = dataclasses.replace(lent_now, vgpu_current=20)
    assert plan_backfill(snap(back, owner), BACKFILL).actions == []
    late = Snapshot(time=990.0 + 299.0, nodes=(back,), jobs=(owner,))
    assert plan_backfill(late, BACKFILL).offered == {"n1": 0}
    # ... and again once it is over (configurable)
    after = Snapshot(time=990.0 + 300.0, nodes=(back,), jobs=(owner,))
    assert counts(plan_backfill(after, BACKFILL).actions) == [26]
    short = dataclasses.replace(BACKFILL, holdoff_seconds=5.0)
    assert counts(plan_backfill(snap(back, owner), short).actions) == [26]
    # a marker from the future (clock stepped back) holds off no longer than the hold-off
    future = dataclasses.replace(back, lent_refused_at=10_000.0)
    assert plan_backfill(snap(future, owner), short).held_off == {"n1": 5.0}
    # no marker: lent as before
    assert counts(plan_backfill(snap(make_node(), owner), BACKFILL).actions) == [26]


# --- packing ---------------------------------------------------------------------------------


def test_packing_prefers_partly_used_nodes() -> None:
    cfg = PackingConfig(enabled=True)  # 100 + 1000 x untouched GPUs + 1 x free slices on used
    empty = make_node("a", ngpus=4, weight=1)
    partly = make_node("b", ngpus=4, weight=1)
    fuller = make_node("c", ngpus=4, weight=1)
    s = Snapshot(time=0.0, nodes=(empty, partly, fuller),
                 jobs=(make_job(1, partly.gpus[0], 2), make_job(2, fuller.gpus[0], 7)))
    actions = plan_weights(s, cfg)
    weights = {a.node: a.weight for a in actions}
    assert weights == {"a": 4100, "b": 3108, "c": 3103}
    # among nodes with as many untouched GPUs, the one whose used GPU has least room first
    assert weights["c"] < weights["b"] < weights["a"]
    assert [a.reason for a in actions][2] == "3 whole GPU(s) free, 3 free slice(s) on used ones"


def test_packing_slice_term_can_be_turned_off() -> None:
    cfg = PackingConfig(enabled=True, base_weight=100, free_gpu_weight=10, free_slice_weight=0)
    partly = make_node("b", ngpus=4, weight=1)
    s = Snapshot(time=0.0, nodes=(partly,), jobs=(make_job(1, partly.gpus[0], 2),))
    assert [a.weight for a in plan_weights(s, cfg)] == [130]


def test_packing_only_changes_and_skips_down_nodes() -> None:
    cfg = PackingConfig(enabled=True)
    same = make_node("a", ngpus=2, weight=2100)
    down = make_node("b", ngpus=2, weight=1, state="down*")
    s = Snapshot(time=0.0, nodes=(same, down), jobs=())
    assert plan_weights(s, cfg) == []
    assert plan_weights(s, dataclasses.replace(cfg, enabled=False)) == []


def test_packing_unplaced_jobs_take_free_gpus() -> None:
    cfg = PackingConfig(enabled=True)
    node = make_node("a", ngpus=2, weight=1)
    job = JobState(job_id=1, node="a", uid=1, partition="p", qos="", share=BURST,
                   start_time=0.0, vgpu_slices=3)
    s = Snapshot(time=0.0, nodes=(node,), jobs=(job,))
    assert plan_weights(s, cfg) == [
        SetNodeWeight("a", 1100, "1 whole GPU(s) free, 0 free slice(s) on used ones")]


# --- backstop --------------------------------------------------------------------------------


def test_backstop_records_and_cancels_step_over_cap() -> None:
    node = make_node()
    g = node.gpus[0]
    job = make_job(1, g, 2)  # cap 16 GiB
    procs = (GpuProcess("n1", g.uuid, 100, 10 * GIB, 1, "0"),
             GpuProcess("n1", g.uuid, 101, 10 * GIB, 1, "0"))
    s = snap(node, job, processes=procs)
    record = plan_backstop(s, BackstopConfig(action="record"))
    assert len(record) == 1 and isinstance(record[0], RecordViolation)
    assert (record[0].job_id, record[0].used_bytes, record[0].limit_bytes, record[0].pids) == (
        1, 20 * GIB, 16 * GIB, (100, 101))
    cancel = plan_backstop(s, BackstopConfig(action="cancel_step"))
    assert [a for a in cancel if isinstance(a, CancelStep)] == [
        CancelStep(1, "0", f"over its memory cap on GPU {g.uuid}")]


def test_backstop_within_cap_and_tolerance() -> None:
    node = make_node()
    g = node.gpus[0]
    procs = (GpuProcess("n1", g.uuid, 100, 16 * GIB + 100, 1, "0"),)
    s = snap(node, make_job(1, g, 2), processes=procs)
    assert plan_backstop(s, BackstopConfig(tolerance_bytes=1000)) == []
    assert plan_backstop(s, BackstopConfig(tolerance_bytes_per_process=1000)) == []
    assert len(plan_backstop(s, BackstopConfig(action="record"))) == 1
    # the shipped default stops the step
    assert [type(a) for a in plan_backstop(s, BackstopConfig())] == [RecordViolation,
                                                                     CancelStep]


def test_backstop_kills_processes_of_no_job_step() -> None:
    node = make_node()
    g = node.gpus[0]
    procs = (GpuProcess("n1", g.uuid, 200, 6 * GIB, None, None),
             GpuProcess("n1", g.uuid, 201, 0, None, None))
    s = snap(node, make_job(1, g, 2), processes=procs)
    found = plan_backstop(s, BackstopConfig())
    assert [a.pid for a in found if isinstance(a, KillProcess)] == [200, 201]
    assert not [a for a in plan_backstop(s, BackstopConfig(kill_unattributed=False))
                if isinstance(a, KillProcess)]


def test_backstop_compute_over_share_from_the_device_side() -> None:
    node = make_node()
    g = node.gpus[0]
    job = make_job(1, g, 1)  # guaranteed, limit = its slices' share
    share = job.gpus[0].compute_limit_permille
    over = (GpuProcess("n1", g.uuid, 100, GIB, 1, "0", utilization_permille=share + 400),)
    found = plan_backstop(snap(node, job, processes=over), BackstopConfig())
    assert [(type(a), getattr(a, "kind", "")) for a in found] == [
        (RecordViolation, "compute"), (CancelStep, "")]
    fine = (GpuProcess("n1", g.uuid, 100, GIB, 1, "0", utilization_permille=share + 100),)
    assert plan_backstop(snap(node, job, processes=fine), BackstopConfig()) == []
    assert plan_backstop(snap(node, job, processes=over), BackstopConfig(compute=False)) == []
    # a burst job may use what the others leave idle
    burst = dataclasses.replace(job, share=BURST)
    assert plan_backstop(snap(node, burst, processes=over), BackstopConfig()) == []


def test_backstop_other_gpu_and_unattributed() -> None:
    node = make_node()
    g0, g1 = node.gpus
    procs = (GpuProcess("n1", g1.uuid, 100, 1 * GIB, 1, "batch"),
             GpuProcess("n1", g1.uuid, 200, 1 * GIB, None, None))
    s = snap(node, make_job(1, g0, 2), processes=procs)
    found = plan_backstop(s, BackstopConfig())
    assert {(a.job_id, a.limit_bytes) for a in found if isinstance(a, RecordViolation)} == {
        (1, 0), (None, 0)}
    quiet = plan_backstop(s, BackstopConfig(report_unattributed=False, kill_unattributed=False))
    assert [a.job_id for a in quiet if isinstance(a, RecordViolation)] == [1]


# --- planner ---------------------------------------------------------------------------------


def test_plan_cycle_requeued_jobs_get_no_share_changes() -> None:
    node = make_node()
    g = node.gpus[0]
    s = snap(node, make_job(1, g, 9), make_job(2, g, 4, partition="scavenger",
                                                  memory_used_bytes=30 * GIB, share=BURST))
    plan = plan_cycle(s, PolicyConfig(share=SHARE, backfill=BACKFILL))
    assert [a for a in plan.actions if isinstance(a, RequeueJob)]
    assert not [a for a in plan.actions if isinstance(a, SetComputeLimit) and a.job_id == 2]


def test_plan_cycle_never_touches_memory_and_is_deterministic() -> None:
    s = synthetic_cluster(nodes=20, gpus_per_node=4, jobs=300)
    cfg = PolicyConfig(share=SHARE, backfill=BACKFILL,
                       packing=PackingConfig(enabled=True))
    a = plan_cycle(s, cfg)
    b = plan_cycle(s, cfg)
    assert a.actions == b.actions
    assert a.actions
    assert not any(hasattr(x, "memory_limit_bytes") for x in a.actions)

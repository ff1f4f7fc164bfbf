"""Per-job accounting (policies/accounting/job_tracker.py) on hand-built snapshots, and the summary
writer with a fake command runner: the figures, one write per ended job, retries, refresh
cadence, dry run, restart from AdminComment."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest
from summary_runner import FakeRunner

from slurm_vgpu.policies.accounting import job_tracker
from slurm_vgpu.policies.accounting.job_summary import (
    GpuSlices,
    JobSummary,
    format_summary,
    parse_summary,
    write_summary,
)
from slurm_vgpu.policies.accounting.job_tracker import JobTracker, SummaryWriter
from slurm_vgpu.policies.decide.snapshot import (
    GpuState,
    JobGpuState,
    JobState,
    NodeState,
    SharePolicy,
    Snapshot,
)

GIB = 1 << 30
MIB = 1 << 20
UUID0 = "GPU-00000000-1111-2222-3333-444444444444"
UUID1 = "GPU-11111111-1111-2222-3333-444444444444"
NODE = NodeState("n1", tuple(GpuState("n1", i, u, 10, 8 * GIB, 100, 80 * GIB)
                             for i, u in enumerate((UUID0, UUID1))), 20)


def jgpu(uuid: str = UUID0, slices: int = 3, used: int = 0, mem: int = 0, peak: int = 0
         ) -> JobGpuState:
    return JobGpuState(gpu_uuid=uuid, slices=slices, memory_limit_bytes=slices * 8 * GIB,
                       compute_guaranteed_permille=slices * 100,
                       compute_limit_permille=slices * 100, memory_used_bytes=mem,
                       compute_used_permille=used, memory_peak_bytes=peak)


def job(job_id: int, *gpus: JobGpuState, share: SharePolicy = SharePolicy.GUARANTEED,
        comment: str = "") -> JobState:
    return JobState(job_id=job_id, node="n1", uid=1000, partition="normal", qos="normal",
                    share=share, start_time=0.0, vgpu_slices=sum(g.slices for g in gpus),
                    gpus=tuple(gpus), admin_comment=comment)


def snap(t: float, *jobs: JobState) -> Snapshot:
    return Snapshot(time=t, nodes=(NODE,), jobs=tuple(jobs))


def test_time_weighted_average_peak_memory_and_end() -> None:
    tr = JobTracker()
    assert tr.update(snap(100, job(1, jgpu(used=0)))) == []  # first sighting: no interval
    tr.update(snap(105, job(1, jgpu(used=300, mem=GIB))))      # 30 % for 5 s
    tr.update(snap(115, job(1, jgpu(used=100, mem=GIB // 2, peak=3 * GIB))))  # 10 % for 10 s
    ended = tr.update(snap(120))
    assert [j for j, _ in ended] == [1]
    s = ended[0][1]
    assert s.observed_s == 15
    assert s.avg_compute_pct == pytest.approx((30 * 5 + 10 * 10) / 15, abs=0.05)
    assert s.peak_compute_pct == 30.0
    assert s.peak_memory_mib == 3 * 1024  # the hook's high-water mark wins
    assert (s.slices, s.slices_per_gpu, s.gpus) == (3, 10, (GpuSlices(UUID0, 3),))
    assert (s.borrowed_s, s.backfilled_s, s.backstop_events) == (0, 0, 0)
    assert tr.jobs == {}
    assert tr.update(snap(125)) == []  # reported once


def test_several_gpus_add_up_in_percent_of_one_gpu() -> None:
    tr = JobTracker()
    two = (jgpu(UUID0, 5, mem=GIB), jgpu(UUID1, 5, mem=2 * GIB))
    tr.update(snap(0, job(7, *two)))
    tr.update(snap(10, job(7, jgpu(UUID0, 5, used=500, mem=GIB),
                           jgpu(UUID1, 5, used=400, mem=2 * GIB))))
    (_, s), = tr.update(snap(11))
    assert s.avg_compute_pct == 90.0 and s.peak_compute_pct == 90.0
    assert s.slices == 10 and s.spans == 2
    assert s.peak_memory_mib == 3 * 1024


def test_borrowed_backfilled_and_backstop_events() -> None:
    tr = JobTracker()
    burst = SharePolicy.BURST
    tr.update(snap(0, job(3, jgpu(slices=3), share=burst)))
    # above its 30 % guarantee: borrowing; on lent slices; one backstop event
    tr.update(snap(5, job(3, jgpu(slices=3, used=800), share=burst)), backfilled={3},
              backstop_jobs=[3])
    # at its guarantee (+ jitter): not borrowing; no longer backfilled
    tr.update(snap(10, job(3, jgpu(slices=3, used=305), share=burst)), backstop_jobs=[3, 99])
    # a guaranteed job above its guarantee is not counted as borrowing
    (_, s), = tr.update(snap(12))
    assert (s.observed_s, s.borrowed_s, s.backfilled_s, s.backstop_events) == (10, 5, 5, 2)


def test_unplaced_time_is_not_observed_and_never_placed_jobs_get_no_summary() -> None:
    tr = JobTracker()
    tr.update(snap(0, job(1), job(2)))  # job 1: no limits file yet; job 2: never gets one
    tr.update(snap(5, job(1, jgpu(used=500)), job(2)))  # placed now: the first reading
    tr.update(snap(10, job(1, jgpu(used=500)), job(2)))
    ended = dict(tr.update(snap(11)))
    assert list(ended) == [1]
    assert ended[1].observed_s == 5 and ended[1].avg_compute_pct == 50.0


def test_restart_continues_from_admin_comment() -> None:
    earlier = JobSummary(slices=3, slices_per_gpu=10, gpus=(GpuSlices(UUID0, 3),),
                         observed_s=100, avg_compute_pct=20.0, peak_compute_pct=50.0,
                         peak_memory_mib=2048, borrowed_s=10, backfilled_s=0,
                         backstop_events=1)
    tr = JobTracker()
    text = format_summary(earlier)
    tr.update(snap(1000, job(1, jgpu(used=0), comment=text)))
    tr.update(snap(1100, job(1, jgpu(used=400), comment=text)))  # 40 % for 100 s
    (_, s), = tr.update(snap(1101))
    assert s.observed_s == 200
    assert s.avg_compute_pct == 30.0
    assert (s.peak_compute_pct, s.peak_memory_mib, s.borrowed_s, s.backstop_events) == \
        (50.0, 2048, 10, 1)
    # first seen from the runtime directory (Slurm down: no comment), then from Slurm
    tr = JobTracker()
    tr.update(snap(1000, job(1, jgpu(used=0))))
    tr.update(snap(1010, job(1, jgpu(used=400))))  # 40 % for 10 s
    tr.update(snap(1020, job(1, jgpu(used=400), comment=text)))
    tr.update(snap(1030, job(1, jgpu(used=400), comment=text)))  # not added twice
    (_, s), = tr.update(snap(1031))
    assert s.observed_s == 130
    assert s.avg_compute_pct == pytest.approx((20 * 100 + 40 * 30) / 130, abs=0.05)
    # once this daemon wrote the comment, what slurmctld reports back is its own
    tr = JobTracker()
    tr.update(snap(0, job(1, jgpu())))
    tr.mark_written(1, 0)
    tr.update(snap(10, job(1, jgpu(used=100), comment=text)))
    (_, s), = tr.update(snap(11))
    assert s.observed_s == 10
    # a comment that is not ours, or a broken one, is ignored
    for comment in ("site note", "vgpu1;garbage"):
        tr = JobTracker()
        tr.update(snap(0, job(2, jgpu(), comment=comment)))
        tr.update(snap(10, job(2, jgpu(used=100), comment=comment)))
        (_, s), = tr.update(snap(11))
        assert s.observed_s == 10


def writer(runner: FakeRunner, dry_run: bool = False) -> SummaryWriter:
    return SummaryWriter(lambda j, s, r, c: write_summary(j, s, run=runner, running=r,
                                                              known_comment=c),
                         dry_run=dry_run)


def run_job(tr: JobTracker, w: SummaryWriter, t0: float = 0, interval: float = 0,
            slurm_up: bool = True) -> list[job_tracker.WriteResult]:
    out = []
    for i, used in enumerate((0, 200, 200)):
        s = snap(t0 + 5 * i, job(4, jgpu(used=used)))
        out.append(w.cycle(s.time, tr, tr.update(s), slurm_up, interval, 5.0))
    s = snap(t0 + 15)
    out.append(w.cycle(s.time, tr, tr.update(s), slurm_up, interval, 5.0))
    return out


def test_end_of_job_written_exactly_once_and_parses_back() -> None:
    runner, tr = FakeRunner(), JobTracker()
    w = writer(runner)
    results = run_job(tr, w)
    for t in (20, 25, 30):
        w.cycle(t, tr, tr.update(snap(t)), True, 0, 5.0)
    assert len(runner.calls) == 1 and sum(r.written for r in results) == 1
    argv = runner.calls[0]
    assert argv[:3] == ["scontrol", "update", "job=4"]
    s = parse_summary(argv[3].removeprefix("AdminComment="))
    assert s is not None and s.slices == 3 and s.observed_s == 10 and s.avg_compute_pct == 20


def test_scontrol_refused_falls_back_to_sacctmgr() -> None:
    runner, tr = FakeRunner(), JobTracker()
    runner.fail = {"scontrol"}
    run_job(tr, writer(runner))
    assert [c[0] for c in runner.calls] == ["scontrol", "sacctmgr"]


def test_failed_write_is_retried_then_given_up(caplog: pytest.LogCaptureFixture) -> None:
    runner, tr = FakeRunner(), JobTracker()
    runner.fail = {"scontrol", "sacctmgr"}
    w = writer(runner)
    results = run_job(tr, w)
    assert results[-1].failed == 1 and 4 in w.pending
    t, failed, dropped = 15.0, 1, 0
    while w.pending and t < 1000:
        t += 1
        r = w.cycle(t, tr, tr.update(snap(t)), True, 0, 5.0)
        failed, dropped = failed + r.failed, dropped + r.dropped
    assert failed == job_tracker.WRITE_ATTEMPTS and dropped == 1
    assert len(runner.calls) == 2 * job_tracker.WRITE_ATTEMPTS  # retries spaced, not per cycle
    assert "giving up on its summary" in caplog.text
    # a retry that succeeds stores it once and stops
    runner, tr = FakeRunner(), JobTracker()
    runner.fail = {"scontrol", "sacctmgr"}
    w = writer(runner)
    run_job(tr, w)
    runner.fail = set()
    for t in range(16, 60):
        w.cycle(t, tr, tr.update(snap(t)), True, 0, 5.0)
    assert not w.pending and len(runner.calls) == 3


def test_nothing_written_while_slurm_is_down() -> None:
    runner, tr = FakeRunner(), JobTracker()
    w = writer(runner)
    run_job(tr, w, slurm_up=False)
    assert runner.calls == [] and 4 in w.pending
    w.cycle(16, tr, tr.update(snap(16)), True, 0, 5.0)
    assert len(runner.calls) == 1 and not w.pending


def test_dry_run_writes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="slurm_vgpu.daemon")
    runner, tr = FakeRunner(), JobTracker()
    run_job(tr, writer(runner, dry_run=True), interval=5)
    assert runner.calls == []
    assert "dry run: would write the summary of job 4" in caplog.text


def test_refresh_while_running_uses_scontrol_at_the_interval() -> None:
    runner, tr = FakeRunner(), JobTracker()
    w = writer(runner)
    for t in range(0, 35, 5):
        s = snap(t, job(4, jgpu(used=100)))
        w.cycle(s.time, tr, tr.update(s), True, 10.0, 5.0)
    # seen at 0; refreshed at 10, 20, 30
    assert len(runner.calls) == 3
    assert all(c[0] == "scontrol" for c in runner.calls)
    last = parse_summary(runner.calls[-1][3].removeprefix("AdminComment="))
    assert last is not None and last.observed_s == 30
    runner.fail = {"scontrol"}  # a refused refresh is not retried before the next interval
    w.cycle(40, tr, tr.update(snap(40, job(4, jgpu(used=100)))), True, 10.0, 5.0)
    w.cycle(45, tr, tr.update(snap(45, job(4, jgpu(used=100)))), True, 10.0, 5.0)
    assert len(runner.calls) == 4


def test_budget_defers_writes_to_the_next_cycle() -> None:
    clock = [0.0]

    def slow(argv: Sequence[str]) -> tuple[int, str, str]:
        if argv[0] == "sacct":  # reading the current AdminComment: instant, none
            return 0, "\n", ""
        clock[0] += 3.0  # every write takes 3 s
        calls.append(list(argv))
        return 0, "", ""

    calls: list[list[str]] = []
    tr = JobTracker()
    w = SummaryWriter(lambda j, s, r, c: write_summary(j, s, run=slow, running=r,
                                                           known_comment=c),
                      monotonic=lambda: clock[0])
    jobs = [job(i, jgpu()) for i in range(1, 6)]
    tr.update(snap(0, *jobs))
    ended = tr.update(snap(5))
    assert len(ended) == 5
    r = w.cycle(5, tr, ended, True, 0, 5.0)
    assert r.written == 2 and len(w.pending) == 3  # 0 s, 3 s started; 6 s > budget
    w.cycle(6, tr, [], True, 0, 5.0)
    w.cycle(7, tr, [], True, 0, 5.0)
    assert not w.pending and len(calls) == 5


def test_flush_stores_running_jobs() -> None:
    runner, tr = FakeRunner(), JobTracker()
    w = writer(runner)
    tr.update(snap(0, job(1, jgpu()), job(2)))
    tr.update(snap(5, job(1, jgpu(used=100)), job(2)))
    r = w.flush(tr, 6, 5.0)
    assert r.written == 1 and [c[:3] for c in runner.calls] == [["scontrol", "update", "job=1"]]

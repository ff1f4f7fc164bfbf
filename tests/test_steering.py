"""Placement steering: the pure choice (decide/steering.py), the Slurm reads it parses and the
controller's Steerer against a scripted Slurm (no daemons; test_steering_slurm.py runs the
real thing)."""

from __future__ import annotations

import time
from collections.abc import Collection
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from slurm_vgpu.errors import ConfigError
from slurm_vgpu.policies.decide.config import SteeringConfig, config_from_dict
from slurm_vgpu.policies.decide.fragmentation import Request, WorkloadMix, fragmentation, stranded
from slurm_vgpu.policies.decide.steering import (
    JobRequest,
    MixHistory,
    NodeArrays,
    best_fit_gpu,
    choose,
    cpu_jobs_steered,
)
from slurm_vgpu.policies.service.exchange import (
    GpuTenants,
    NodeReport,
    report_from_dict,
    report_to_bytes,
)
from slurm_vgpu.policies.service.steerer import Steerer
from slurm_vgpu.policies.slurm.slurm_client import SlurmRequestRejected
from slurm_vgpu.policies.slurm.slurm_reader import ReaderTooOld, SlurmReaderError
from slurm_vgpu.policies.slurm.steering_reads import (
    NodeRoom,
    PendingVgpuJob,
    SteeringSlurm,
    memory_mib,
    memory_placed,
    parse_held,
    parse_pending,
    parse_room,
    requested_memory_mib,
)


def arrays(mix: WorkloadMix, gpu_free: list[list[int]], cpu: list[int]) -> NodeArrays:
    g = np.array(gpu_free, dtype=np.int64)
    c = np.array(cpu, dtype=np.int64)
    m = np.full(len(cpu), 10**6, dtype=np.int64)
    model = np.zeros(len(cpu), dtype=np.int64)
    return NodeArrays(c, m, g, model, fragmentation(mix, c, m, g, model), stranded(mix, g))


def test_a_share_goes_where_it_breaks_nothing_a_common_request_needs() -> None:
    # most jobs want half a GPU: a 0.5 share belongs on the GPU that has exactly 0.5 left,
    # not on an untouched one (which would leave 0.5 + a broken whole GPU)
    mix = WorkloadMix([Request(1000, 0, 1, 500)] * 9 + [Request(1000, 0, 1, 1000)], ["any"])
    nodes = arrays(mix, [[1000, 1000], [500, 1000]], [8000, 8000])
    choice = choose(mix, nodes, JobRequest(1000, 0, 1, 500))
    assert choice is not None and (choice.node, choice.gpu) == (1, 0)


def test_ties_go_to_a_node_already_in_use_then_to_node_order() -> None:
    # a 0.3 share leaves every GPU able to serve the mix's 0.3 requests: every node scores
    # the same; the idle node 0 loses to the used ones, and of those the first wins, whatever
    # its free CPUs
    mix = WorkloadMix([Request(1000, 0, 1, 300)], ["any"])
    nodes = arrays(mix, [[1000, 1000], [1000, 900], [1000, 900]], [8000, 8000, 2000])
    choice = choose(mix, nodes, JobRequest(1000, 0, 1, 300))
    assert choice is not None and (choice.node, choice.gpu) == (1, 1)
    # a node lacking GPU slots (-1) is idle when the slots it has are untouched
    nodes = arrays(mix, [[1000, -1], [900, -1]], [8000, 8000])
    assert choose(mix, nodes, JobRequest(1000, 0, 1, 300)).node == 1  # type: ignore[union-attr]


def test_nothing_fits_means_no_choice() -> None:
    mix = WorkloadMix([Request(1000, 0, 1, 300)], ["any"])
    nodes = arrays(mix, [[200, 100]], [8000])
    assert choose(mix, nodes, JobRequest(1000, 0, 1, 300)) is None
    assert choose(mix, arrays(mix, [[1000, 1000]], [500]), JobRequest(1000, 0, 1, 300)) is None
    nodes = arrays(mix, [[1000, 1000]], [8000])
    nodes.eligible = np.array([False])
    assert choose(mix, nodes, JobRequest(1000, 0, 1, 300)) is None


def test_whole_gpu_jobs_need_untouched_gpus() -> None:
    mix = WorkloadMix([Request(1000, 0, 2, 1000)], ["any"])
    nodes = arrays(mix, [[1000, 900], [1000, 1000]], [8000, 8000])
    choice = choose(mix, nodes, JobRequest(1000, 0, 2, 1000))
    assert choice is not None and choice.node == 1 and choice.gpu == -1


def test_best_fit_gpu_is_the_plugins_choice() -> None:
    free = np.array([[1000, 400, 600, -1], [200, 100, -1, -1]])
    assert best_fit_gpu(free, 300).tolist() == [1, -1]


def test_the_mix_is_rebuilt_as_the_history_grows_by_a_tenth() -> None:
    history = MixHistory(window=1000, models=["any"], refresh=100)
    builds = 0
    for i in range(600):
        history.add(JobRequest(1000, 0, 1, 100 * (1 + i % 9)))
        if history.rebuild_due():
            history.rebuild()
            builds += 1
    assert history.mix is not None and 30 < builds < 80
    assert len(history.requests) == 600


# --- Slurm's output ------------------------------------------------------------------------------

def iso(t: float) -> str:
    return datetime.fromtimestamp(t).isoformat(timespec="seconds")


def test_pending_jobs_are_parsed_and_the_held_ones_recognised() -> None:
    now = 1_800_000_000.0
    text = "\n".join([
        f"12|{iso(now)}|{iso(now + 10)}|BeginTime||(null)|1|2|1|cpu=2,mem=1G,node=1|"
        "gres:vgpu:3|gpu,debug",
        f"11|{iso(now)}|{iso(now + 10)}|BeginTime||(null)|1|1|1|cpu=1,mem=512M|gres/vgpu:2|gpu",
        f"13|{iso(now)}|{iso(now + 3600)}|BeginTime||(null)|1|1|1|0|gres:vgpu:1|gpu",  # --begin
        f"14|{iso(now)}|{iso(now + 10)}|BeginTime||big|1|1|1|0|gres:vgpu:1|gpu",  # constraint
        f"15|{iso(now)}|{iso(now + 10)}|BeginTime||(null)|2|1|1|0|gres:vgpu:1|gpu",  # 2 nodes
        f"16|{iso(now)}|{iso(now)}|Resources|n2|(null)|1|1|1|0|gres:vgpu:1|gpu",
        f"17|{iso(now)}|{iso(now + 10)}|BeginTime||(null)|1|4|4|0|(null)|gpu",  # CPU-only
        f"19|{iso(now)}|{iso(now + 10)}|BeginTime||(null)|1|1|1|0|gres:gpu:1|gpu",  # other GRES
        f"20|{iso(now)}|{iso(now + 10)}|BeginTime||(null)|1|1|6|0|gres:vgpu:1|gpu",  # --mincpus
        "18_[1-4]|x|x|x|x|x|x|x|x|x|x|x",
    ])
    # 16: not held, not ours; 19: asks for GRES the steering does not place
    assert [j.job_id for j in parse_pending(text)] == [11, 12, 13, 17, 20]
    assert parse_pending(text)[3].vgpu == 0 and parse_pending(text)[3].cpus == 4
    assert parse_pending(text)[4].cpus == 6  # --mincpus=6: a node with 6 CPUs free
    jobs = parse_pending(text, also={16})
    assert [j.job_id for j in jobs] == [11, 12, 13, 16, 17, 20]
    assert jobs[1] == PendingVgpuJob(12, now, now + 10, "BeginTime", "", ("gpu", "debug"), 2,
                                     1024, 3)
    assert [j.held_for_steering(10) for j in jobs] == [True, True, False, False, True, True]
    assert not jobs[0].held_for_steering(5)


def test_held_jobs_from_the_reader_are_the_same_jobs() -> None:
    """vgpu-slurm-read held prints epochs, and only held jobs and asked ones; the filters
    (other GRES, constraint, several nodes) and the fields are the squeue read's."""
    now = 1_800_000_000
    text = "\n".join([
        "V|2|held|40",
        f"H|12|{now}|{now + 10}|BeginTime|||1|2|1|cpu=2,mem=1G,node=1,billing=2|gres:vgpu:3|"
        "gpu,debug",
        f"H|11|{now}|{now + 10}|BeginTime|||1|1|1|cpu=1,mem=512M|gres/vgpu:2|gpu",
        f"H|14|{now}|{now + 10}|BeginTime||big|1|1|1|0|gres:vgpu:1|gpu",  # constraint
        f"H|15|{now}|{now + 10}|BeginTime|||2|1|1|0|gres:vgpu:1|gpu",  # 2 nodes
        f"H|16|{now}|{now}|-|n2||1|1|1|0|gres:vgpu:1|gpu",  # steered before, asked
        f"H|17|{now}|{now + 10}|BeginTime|||1|4|4|0||gpu",  # CPU-only
        f"H|19|{now}|{now + 10}|BeginTime|||1|1|1|0|gres:gpu:1|gpu",  # other GRES
        f"H|20|{now}|{now + 10}|BeginTime|||1|2|5|0|gres:vgpu:1|gpu",  # -n 2 --mincpus=5
    ])
    jobs = parse_held(text, also={16})
    assert [j.job_id for j in jobs] == [11, 12, 16, 17, 20]
    assert jobs[1] == PendingVgpuJob(12, now, now + 10, "BeginTime", "", ("gpu", "debug"), 2,
                                     1024, 3)
    assert jobs[2].req_nodes == "n2" and jobs[3].vgpu == 0 and jobs[4].cpus == 5
    assert [j.job_id for j in parse_held(text)] == [11, 12, 17, 20]
    with pytest.raises(SlurmReaderError, match="format 2 header"):
        parse_held("V|2|jobs|3\n")
    with pytest.raises(SlurmReaderError, match="cannot read the line"):
        parse_held("V|2|held|3\nH|1|2\n")
    with pytest.raises(SlurmReaderError, match="times are not seconds"):
        parse_held("V|2|held|3\nH|1|x|2|BeginTime|||1|1|1|0||gpu\n")
    # an older program's table (CPUs per node, memory per CPU): the caller goes to squeue
    with pytest.raises(ReaderTooOld, match="format 1"):
        parse_held(f"V|1|held|3\nH|11|{now}|{now + 10}|BeginTime|||1|1|512|gres:vgpu:2|gpu\n")


def test_steering_reads_held_jobs_from_the_reader_and_falls_back_to_squeue() -> None:
    calls: list[tuple[str, ...]] = []
    now = 1_800_000_000

    def run(*argv: str) -> str:
        calls.append(argv)
        return f"21|{iso(now)}|{iso(now + 4)}|BeginTime||(null)|1|1|1|0|gres:vgpu:1|gpu\n"

    def held(max_wait: int, also: Collection[int]) -> str:
        calls.append(("held", str(max_wait), *map(str, sorted(also))))
        return f"V|2|held|9\nH|21|{now}|{now + 4}|BeginTime|||1|1|1|0|gres:vgpu:1|gpu\n"

    reads = SteeringSlurm(run, held)
    assert [j.job_id for j in reads.pending([7], 2.5)] == [21]
    assert calls == [("held", "4", "7")]  # the hold rounded up, plus the lua's second
    assert [j.job_id for j in reads.pending([7])] == [21]  # no hold known: squeue
    assert calls[-1][0] == "squeue"

    def too_old(max_wait: int, also: Collection[int]) -> str:
        raise ReaderTooOld("vgpu-slurm-read has no 'held' table")

    calls.clear()
    reads = SteeringSlurm(run, too_old)
    assert [j.job_id for j in reads.pending((), 4.0)] == [21]
    assert [c[0] for c in calls] == ["squeue"]
    reads.pending((), 4.0)  # no second try of the old program
    assert [c[0] for c in calls] == ["squeue", "squeue"]


def test_node_room_from_scontrol() -> None:
    nodes = "\n".join([
        "NodeName=n1 Arch=x86_64 CoresPerSocket=1 CPUAlloc=2 CPUEfctv=8 CPUTot=10 CPULoad=0.0 "
        "Gres=vgpu:80 OS=Linux 6.1.0 #1 SMP Debian RealMemory=16000 AllocMem=4000 "
        "State=MIXED ThreadsPerCore=1 Partitions=gpu,debug Reason=State=DOWN by admin",
        "NodeName=n2 CPUAlloc=8 CPUTot=8 RealMemory=16000 AllocMem=16000 State=ALLOCATED "
        "Partitions=gpu",
        "NodeName=n3 CPUAlloc=0 CPUTot=4 RealMemory=100 State=IDLE+DRAIN Partitions=debug",
        "NodeName=n4 CPUAlloc=0 CPUTot=4 RealMemory=100 AllocMem=0 State=IDLE "
        "Partitions=(null)",
        "NodeName=n5 CPUAlloc=x CPUTot=4 RealMemory=100 State=IDLE",  # unreadable: skipped
        "not a node line",
    ])
    parts = ("PartitionName=debug AllowGroups=ALL Default=NO State=UP\n"
             "PartitionName=gpu AllowGroups=ALL Default=YES State=UP\n")
    room = parse_room(nodes, parts)
    # 22.05 has no CPUEfctv (specialised cores left out): CPUTot is the total there
    assert room["n1"] == NodeRoom("n1", 6, 12000, "mixed", ("gpu", "debug"), 8, "gpu")
    assert room["n2"].cpus_free == 0 and room["n2"].memory_free_mib == 0
    assert room["n3"] == NodeRoom("n3", 0, 100, "idle+drain", ("debug",), 4, "")
    assert room["n4"].partitions == () and room["n4"].cpus_free == 4
    assert set(room) == {"n1", "n2", "n3", "n4"}
    assert parse_room(nodes)["n1"].default_partition == ""


@pytest.mark.parametrize(("text", "mib"), [("0", 0), ("512M", 512), ("4G", 4096), ("1T", 1 << 20),
                                           ("2048", 2048), ("1.50G", 1536)])
def test_memory_units(text: str, mib: int) -> None:
    assert memory_mib(text) == mib


@pytest.mark.parametrize(("tres", "mib"), [
    ("cpu=4,mem=400M,node=1,billing=4", 400),  # --mem-per-cpu=100 -n 4: multiplied out
    ("cpu=1,mem=1.50G,node=1,billing=1,gres/vgpu=2", 1536),
    ("cpu=1,node=1", 0),  # an AccountingStorageTRES without mem
    ("", 0),
])
def test_requested_memory_is_the_jobs_whole_memory(tres: str, mib: int) -> None:
    assert requested_memory_mib(tres) == mib


# --- the controller's steerer against a scripted Slurm -------------------------------------------

class ScriptedSlurm:
    def __init__(self, pending: list[PendingVgpuJob], room: dict[str, NodeRoom]) -> None:
        self.jobs = pending
        self.rooms = room
        self.steered: list[tuple[int, str]] = []
        self.released: list[int] = []
        self.refuse: set[int] = set()
        self.memory = True  # SelectTypeParameters CR_*_Memory

    def pending(self, also: object = (), hold_seconds: float = 0.0) -> list[PendingVgpuJob]:
        return list(self.jobs)

    def memory_placed(self) -> bool:
        return self.memory

    def room(self) -> dict[str, NodeRoom]:
        return dict(self.rooms)

    def steer(self, job_id: int, node: str) -> None:
        if job_id in self.refuse:
            raise SlurmRequestRejected("Invalid job id specified")
        self.steered.append((job_id, node))

    def release(self, job_id: int) -> None:
        self.released.append(job_id)


def held(job_id: int, vgpu: int, cpus: int = 1, now: float = 1000.0) -> PendingVgpuJob:
    return PendingVgpuJob(job_id, now, now + 10, "BeginTime", "", ("gpu",), cpus, 100, vgpu)


def report(node: str, used: tuple[int, int], jobs: tuple[tuple[int, ...], ...] = ((), ()),
           at: float = 1000.0) -> NodeReport:
    return NodeReport(node, at, 20, gpus=tuple(GpuTenants(10, u, j) for u, j in zip(used, jobs,
                                                                                     strict=True)))


def room(*names: str, cpus: int = 8) -> dict[str, NodeRoom]:
    return {n: NodeRoom(n, cpus, 64000, "idle", ("gpu",)) for n in names}


def steerer(slurm: ScriptedSlurm, tmp_path: Path, clock: list[float]) -> Steerer:
    cfg = SteeringConfig(enabled=True, file=str(tmp_path / "run" / "steering"))
    return Steerer(cfg, 5.0, slurm,  # type: ignore[arg-type]
                   lambda: clock[0], stale_after=30.0)


def test_held_jobs_are_steered_in_order_each_counting_the_ones_before(tmp_path: Path) -> None:
    # n2's GPU 0 has 3 slices free: the first 3-slice job fills it; the second cannot go
    # there any more and takes n2's other GPU... or n1: whichever the policy says, never the
    # same 3 free slices twice
    slurm = ScriptedSlurm([held(5, 3), held(6, 3), held(7, 10)], room("n1", "n2"))
    clock = [1001.0]
    s = steerer(slurm, tmp_path, clock)
    s.cycle({"n1": report("n1", (0, 0)), "n2": report("n2", (7, 0), ((4,), ()))}, {})
    assert [j for j, _ in slurm.steered] == [5, 6, 7]
    assert slurm.steered[0] == (5, "n2")
    placed = dict(slurm.steered)
    # job 5 filled n2's GPU 0; had job 6 then broken n2's GPU 1 too, n2 would have no whole
    # GPU left for job 7: the steerer counts its own claims within the cycle
    assert (placed[6], placed[7]) != ("n2", "n2"), placed
    text = (tmp_path / "run" / "steering").read_text().split()
    assert text == ["1001", "10", "15"]
    assert s.counts["steered"] == 3


@pytest.mark.parametrize("memory", [True, False])
def test_memory_counts_only_where_slurm_places_by_it(tmp_path: Path, memory: bool) -> None:
    """Two jobs that name no memory (the node's whole 64,000 MiB in their requested TRES):
    where memory is a consumable resource the second cannot go where the first went; under
    CR_Core Slurm starts both on one node, and the steering counts no memory either."""
    whole = [PendingVgpuJob(j, 1000.0, 1010.0, "BeginTime", "", ("gpu",), 1, 64000, 3)
             for j in (5, 6)]
    slurm = ScriptedSlurm(whole, room("n1", "n2"))
    slurm.memory = memory
    s = steerer(slurm, tmp_path, [1001.0])
    s.cycle({"n1": report("n1", (0, 0)), "n2": report("n2", (7, 7))}, {})
    nodes = [n for _, n in slurm.steered]
    assert nodes == (["n2", "n1"] if memory else ["n2", "n2"]), nodes


def test_memory_placed_reads_select_type_parameters_every_ten_minutes() -> None:
    config = {"mem": "SelectTypeParameters    = CR_CORE_MEMORY\nSelectType = select/cons_tres\n",
              "core": "SelectType              = select/cons_tres\n"
                      "SelectTypeParameters    = CR_CORE\n"}
    assert memory_placed(config["mem"]) and not memory_placed(config["core"])
    assert memory_placed("")  # unreadable: memory counts
    calls: list[tuple[str, ...]] = []
    which, clock = ["core"], [0.0]

    def run(*argv: str) -> str:
        calls.append(argv)
        return config[which[0]]

    reads = SteeringSlurm(run, clock=lambda: clock[0])
    assert not reads.memory_placed() and not reads.memory_placed()
    assert calls == [("scontrol", "show", "config")]
    which[0], clock[0] = "mem", 601.0
    assert reads.memory_placed() and len(calls) == 2


def test_a_job_that_fits_nowhere_is_released_to_slurm(tmp_path: Path) -> None:
    slurm = ScriptedSlurm([held(5, 10, cpus=4)], room("n1", cpus=2))
    s = steerer(slurm, tmp_path, [1001.0])
    s.cycle({"n1": report("n1", (0, 0))}, {})
    assert slurm.released == [5] and not slurm.steered


def test_a_job_held_while_no_gpu_node_is_usable_is_released(tmp_path: Path) -> None:
    """Every agent silent (or every node drained): no node to count slices on, so the held
    job goes to Slurm (this divided by zero slices before)."""
    slurm = ScriptedSlurm([held(5, 3), held(6, 10)], room("n1"))
    s = steerer(slurm, tmp_path, [1100.0])
    s.cycle({"n1": report("n1", (0, 0))}, {"n1": 1000.0})  # heard 100 s ago
    assert slurm.released == [5, 6] and not slurm.steered


def test_silent_agents_and_drained_nodes_are_never_chosen(tmp_path: Path) -> None:
    rooms = room("n1", "n2", "n3")
    rooms["n3"] = NodeRoom("n3", 8, 64000, "drain", ("gpu",))
    slurm = ScriptedSlurm([held(5, 3)], rooms)
    s = steerer(slurm, tmp_path, [1100.0])
    s.cycle({"n1": report("n1", (0, 0)), "n2": report("n2", (7, 0)),
             "n3": report("n3", (7, 7), at=1100.0)}, {"n1": 1100.0, "n2": 1000.0, "n3": 1100.0})
    assert slurm.steered == [(5, "n1")]  # n2 was last heard 100 s ago, n3 is drained


def steered_to_n2(tmp_path: Path) -> tuple[ScriptedSlurm, Steerer, list[float],
                                            dict[str, NodeReport]]:
    """Job 5 (3 slices) steered to n2, whose GPU 0 carries 7 slices, at t=1001."""
    slurm = ScriptedSlurm([held(5, 3)], room("n1", "n2"))
    clock = [1001.0]
    s = steerer(slurm, tmp_path, clock)
    reports = {"n1": report("n1", (0, 0)), "n2": report("n2", (7, 0))}
    s.cycle(reports, {})
    assert slurm.steered == [(5, "n2")]
    return slurm, s, clock, reports


def test_a_steered_job_still_waiting_is_steered_again(tmp_path: Path) -> None:
    slurm, s, clock, reports = steered_to_n2(tmp_path)
    # slurmctld could not start it there (another job took n2's CPUs meanwhile)
    slurm.jobs = [PendingVgpuJob(5, 1000, 1001, "Resources", "n2", ("gpu",), 1, 100, 3)]
    slurm.rooms = {**room("n1"), "n2": NodeRoom("n2", 0, 64000, "mix", ("gpu",))}
    clock[0] = 1005.0
    s.cycle(reports, {})
    assert slurm.steered == [(5, "n2")]  # not yet: resteer_after_seconds
    clock[0] = 1020.0
    s.cycle({n: NodeReport(n, 1020.0, 20, gpus=r.gpus) for n, r in reports.items()}, {})
    assert slurm.steered[-1] == (5, "n1") and s.counts["resteered"] == 1


def test_a_job_that_did_not_start_where_steered_is_never_steered_back_there(
        tmp_path: Path) -> None:
    """Nothing the steering reads changed, yet the job waits on n2 (a maintenance
    reservation ahead, a partition limit): it goes to the next best node, then, when it does
    not start there either, to Slurm, instead of back to n2 every resteer period."""
    slurm, s, clock, reports = steered_to_n2(tmp_path)
    for node, at in (("n2", 1020.0), ("n1", 1040.0)):
        slurm.jobs = [PendingVgpuJob(5, 1000, 1001, "Resources", node, ("gpu",), 1, 100, 3)]
        clock[0] = at
        s.cycle({n: NodeReport(n, at, 20, gpus=r.gpus) for n, r in reports.items()}, {})
    assert slurm.steered == [(5, "n2"), (5, "n1")] and slurm.released == [5]
    assert 5 not in s.steered and s.counts["resteered"] == 1


def test_a_job_that_waits_for_no_node_is_released_after_three(tmp_path: Path) -> None:
    """A job kept waiting by something no node changes (a QOS limit, a job ahead of it) is
    steered to at most three nodes, then left to Slurm: not one node per period forever."""
    nodes = [f"n{i}" for i in range(1, 7)]
    slurm = ScriptedSlurm([held(5, 3)], room(*nodes))
    clock = [1001.0]
    s = steerer(slurm, tmp_path, clock)
    reports = {n: report(n, (0, 0)) for n in nodes}
    s.cycle(reports, {})
    for k in range(1, 6):
        at = 1001.0 + 20 * k
        slurm.jobs = [PendingVgpuJob(5, 1000, 1001, "QOSMaxCpuPerUserLimit",
                                     slurm.steered[-1][1], ("gpu",), 1, 100, 3)]
        clock[0] = at
        s.cycle({n: NodeReport(n, at, 20, gpus=r.gpus) for n, r in reports.items()}, {})
        if slurm.released:
            break
    assert len(slurm.steered) == 3 and len({n for _, n in slurm.steered}) == 3
    assert slurm.released == [5] and s.counts["resteered"] == 2


def test_a_job_that_ended_meanwhile_is_not_an_error(tmp_path: Path) -> None:
    slurm = ScriptedSlurm([held(5, 3), held(6, 3)], room("n1"))
    slurm.refuse = {5}
    s = steerer(slurm, tmp_path, [1001.0])
    s.cycle({"n1": report("n1", (0, 0))}, {})
    assert slurm.steered == [(6, "n1")] and s.counts["failed"] == 1


def test_cpu_jobs_are_steered_only_while_nearly_all_cpus_and_more_than_gpus_are_used() -> None:
    assert cpu_jobs_steered(95, 100, 50, 100, 0.9)
    assert not cpu_jobs_steered(85, 100, 50, 100, 0.9)  # CPUs left: the weights are fine
    assert not cpu_jobs_steered(95, 100, 98, 100, 0.9)  # the GPUs bind more
    assert not cpu_jobs_steered(100, 100, 0, 100, 1.0)  # 1: never
    assert not cpu_jobs_steered(0, 0, 0, 0, 0.0)


def cpu_held(job_id: int, cpus: int, partitions: tuple[str, ...] = ("gpu",)) -> PendingVgpuJob:
    return PendingVgpuJob(job_id, 1000.0, 1010.0, "BeginTime", "", partitions, cpus, 100, 0)


def test_cpu_only_jobs_are_held_and_steered_while_the_cpus_bind(tmp_path: Path) -> None:
    # n1 and n2 form partition gpu (the default); c1, a CPU node the controller does not
    # manage, is in partition cpu: only partition gpu's CPU-only jobs are the controller's
    rooms = {"n1": NodeRoom("n1", 3, 64000, "mix", ("gpu",), 32, "gpu"),
             "n2": NodeRoom("n2", 0, 64000, "mix", ("gpu",), 32, "gpu"),
             "c1": NodeRoom("c1", 8, 64000, "idle", ("cpu",), 8, "")}
    reports = {"n1": report("n1", (3, 0), ((4,), ())), "n2": report("n2", (10, 10))}
    # a CPU-only job with a short --begin of its own before the file named any partition:
    # the lua did not hold it, so the steerer leaves it alone
    slurm = ScriptedSlurm([cpu_held(3, 1)], rooms)
    clock = [1001.0]
    s = steerer(slurm, tmp_path, clock)
    s.cycle(reports, {})  # 61 of 64 CPUs allocated, 23 of 40 slices: the CPUs bind
    assert s.cpu_jobs_steered and s.cpu_partitions == ("gpu*",)
    assert slurm.steered == [] and slurm.released == []
    clock[0] = 1002.0
    slurm.jobs = [held(4, 2), cpu_held(5, 1), cpu_held(6, 1, ("cpu",))]
    s.cycle(reports, {})
    assert (tmp_path / "run" / "steering").read_text().split() == ["1002", "10", "15", "gpu*"]
    assert slurm.steered[1] == (5, "n1") and len(slurm.steered) == 2  # 6: not ours
    assert slurm.released == []
    # the CPUs no longer bind: the job the lua held meanwhile is released, and the file
    # names no partition any more
    slurm.rooms = {**rooms, "n2": NodeRoom("n2", 32, 64000, "idle", ("gpu",), 32, "gpu")}
    slurm.jobs = [cpu_held(7, 1)]
    clock[0] = 1003.0
    s.cycle(reports, {})
    assert not s.cpu_jobs_steered and slurm.released == [7]
    # one held under that cycle's file (it still named the partition) is released too
    slurm.jobs = [cpu_held(8, 1)]
    clock[0] = 1004.0
    s.cycle(reports, {})
    assert slurm.released == [7, 8]
    slurm.jobs = [cpu_held(9, 1)]  # two files without partitions: a user's own --begin
    clock[0] = 1005.0
    s.cycle(reports, {})
    assert slurm.released == [7, 8]
    s.announce(1004.0)
    assert (tmp_path / "run" / "steering").read_text().split() == ["1004", "10", "15"]


def test_withdraw_removes_the_steering_file(tmp_path: Path) -> None:
    s = steerer(ScriptedSlurm([], {}), tmp_path, [time.time()])
    s.announce(time.time())
    assert (tmp_path / "run" / "steering").exists()
    s.withdraw()
    assert not (tmp_path / "run" / "steering").exists()


def test_the_report_carries_each_gpus_tenants() -> None:
    r = NodeReport("n1", 5.0, 20, gpus=(GpuTenants(10, 3, (4, 5)), GpuTenants(10, 0)),
                   unplaced=((9, 2),))
    import json
    assert report_from_dict(json.loads(report_to_bytes(r)), "x") == r
    old = json.loads(report_to_bytes(NodeReport("n1", 5.0, 20)))
    del old["gpus"], old["unplaced"]
    assert report_from_dict(old, "x").gpus is None


def test_steering_config_is_validated() -> None:
    cfg = config_from_dict({"steering": {"enabled": True, "hold_seconds": 8}})
    assert cfg.steering.enabled and cfg.steering.hold_seconds == 8
    with pytest.raises(ConfigError, match=r"steering\.file"):
        config_from_dict({"steering": {"file": "relative"}})
    with pytest.raises(ConfigError, match=r"steering\.hold_seconds"):
        config_from_dict({"steering": {"hold_seconds": 3600}})
    with pytest.raises(ConfigError, match="steering"):
        config_from_dict({"steering": {"enable": True}})
    assert config_from_dict({}).steering.cpu_jobs_above == 0.9
    with pytest.raises(ConfigError, match=r"steering\.cpu_jobs_above"):
        config_from_dict({"steering": {"cpu_jobs_above": 1.5}})


def test_node_weights_on_arrays_are_the_packing_policys_node_weight() -> None:
    from slurm_vgpu.policies.decide.packing_policy import node_weights
    from slurm_vgpu.policies.sim.placement import PACKING, ClusterState
    from slurm_vgpu.policies.sim.traces import TraceNode

    state = ClusterState([TraceNode(f"n{i}", 8000, 10**6, 4, "sim") for i in range(3)])
    state.gpu_free[0] = [1000, 700, 1000, 0]
    state.gpu_free[1] = [300, 300, 0, 100]
    assert node_weights(state.gpu_free, 10, PACKING).tolist() == \
        [state.packing_weight(i) for i in range(3)]

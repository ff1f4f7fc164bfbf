"""What the controller's placement steering reads from Slurm and writes to it.

Two reads per cycle, both one RPC: the pending jobs (`squeue -t PD`, only the fields the
steering needs) and every node's free CPUs and memory (`sinfo -N`). Two writes per job:
`scontrol update jobid=X ReqNodeList=N StartTime=now` (steer: the job may start only on N,
from now) and `scontrol update jobid=X ReqNodeList= StartTime=now` (release: Slurm places it;
the empty list clears a node the job was steered to before).
`StartTime` is the job's begin time (Slurm 22.05 refuses `BeginTime=` in an update).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from slurm_vgpu.policies.slurm.slurm_client import gres_count

PENDING_FORMAT = ("JobID:|,SubmitTime:|,EligibleTime:|,Reason:|,ReqNodes:|,Feature:|,"
                  "NumNodes:|,MinCpus:|,MinMemory:|,tres-per-node:|,Partition:")
ROOM_FORMAT = "NodeHost:|,CPUsState:|,Memory:|,AllocMem:|,StateCompact:|,Partition:"


@dataclass(frozen=True)
class PendingVgpuJob:
    """A pending single-node vgpu job (or a CPU-only one: vgpu 0) as the steering sees it."""

    job_id: int
    submit_time: float
    eligible_time: float
    reason: str
    req_nodes: str
    partitions: tuple[str, ...]
    cpus: int
    memory_mib: int
    vgpu: int

    def held_for_steering(self, hold_seconds: float) -> bool:
        """Held by job_submit.lua for the controller: waiting for its BeginTime, which is
        the submission plus the hold (the lua sets nothing else; a user's own --begin of the
        same few seconds would look alike and only start sooner)."""
        wait = self.eligible_time - self.submit_time
        return (self.reason == "BeginTime" and not self.req_nodes
                and 0 < wait <= hold_seconds + 1)


@dataclass(frozen=True)
class NodeRoom:
    name: str
    cpus_free: int
    memory_free_mib: int
    state: str
    partitions: tuple[str, ...]
    cpus_total: int = 0
    default_partition: str = ""  # the cluster's default partition where the node is in it


def _time(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()  # squeue prints local time
    except ValueError:
        return 0.0


def _null(text: str) -> str:
    return "" if text in ("(null)", "N/A", "") else text


def memory_mib(text: str) -> int:
    """squeue's MinMemory ("0", "512M", "4G", "1T") in MiB."""
    text = text.strip()
    units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
    if text and text[-1].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(float(text)) if text else 0


def parse_pending(text: str, also: Collection[int] = ()) -> list[PendingVgpuJob]:
    """Pending single-node vgpu jobs and CPU-only jobs (vgpu 0: no GRES at all) without a
    constraint, in job id order (submission): the ones waiting for their BeginTime (held ones
    among them) and the ones in `also` (jobs the controller steered); every other line is
    skipped before it is parsed (20,000 pending jobs are one squeue read per cycle)."""
    out: list[PendingVgpuJob] = []
    counts: dict[str, int | None] = {}
    for line in text.splitlines():
        f = line.split("|")
        if len(f) != 11 or not f[0].isdigit():
            continue  # array meta records and anything unexpected
        job_id, submit, eligible, reason, req, feature, num, cpus, mem, tres, part = f
        if reason != "BeginTime" and int(job_id) not in also:
            continue
        vgpu = 0  # no GRES: CPU-only (held only while the CPUs bind)
        if _null(tres):  # some GRES: vgpu slices, or a job the steering never holds
            count = counts.get(tres, -1)
            if count == -1:
                count = counts[tres] = gres_count(tres)
            if not count:
                continue  # other GRES only (gpu:1, ...): never held
            vgpu = count
        if _null(feature) or num.strip() != "1":
            continue
        try:
            out.append(PendingVgpuJob(int(job_id), _time(submit), _time(eligible), reason,
                                      _null(req), tuple(p for p in part.split(",") if p),
                                      int(cpus or 1), memory_mib(mem), vgpu))
        except ValueError:
            continue
    out.sort(key=lambda j: j.job_id)
    return out


def parse_room(text: str) -> dict[str, NodeRoom]:
    """Free and total CPUs and free memory per node (a node in several partitions is listed
    once each; sinfo marks the default partition with a `*`)."""
    rooms: dict[str, NodeRoom] = {}
    for line in text.splitlines():
        f = line.split("|")
        if len(f) != 6:
            continue
        name, cpus, memory, alloc, state, part = f
        try:
            counts = [int(x) for x in cpus.split("/")]  # allocated/idle/other/total
            free, total = (counts[1], counts[3]) if len(counts) == 4 else (0, 0)
            mem_free = int(memory) - int(alloc or 0)
        except ValueError:
            continue
        known = rooms.get(name)
        parts = (known.partitions if known else ()) + ((part.rstrip("*"),) if part else ())
        default = part.rstrip("*") if part.endswith("*") else \
            (known.default_partition if known else "")
        rooms[name] = NodeRoom(name, free, mem_free, state, parts, total, default)
    return rooms


class SteeringSlurm:
    """The steering's reads and writes through Slurm's commands (`run(tool, *args)` returns
    stdout and raises SlurmUnavailable / SlurmRequestRejected, as CliSlurmClient._run)."""

    def __init__(self, run: Callable[..., str]) -> None:
        self._run = run

    def pending(self, also: Collection[int] = ()) -> list[PendingVgpuJob]:
        return parse_pending(self._run("squeue", "-h", "-t", "PD", "-O", PENDING_FORMAT),
                             also)

    def room(self) -> dict[str, NodeRoom]:
        return parse_room(self._run("sinfo", "-h", "-N", "-O", ROOM_FORMAT))

    def steer(self, job_id: int, node: str) -> None:
        self._run("scontrol", "update", f"jobid={int(job_id)}", f"ReqNodeList={node}",
                  "StartTime=now")

    def release(self, job_id: int) -> None:
        """Eligible now, on any node (an empty ReqNodeList clears one steered before)."""
        self._run("scontrol", "update", f"jobid={int(job_id)}", "ReqNodeList=",
                  "StartTime=now")

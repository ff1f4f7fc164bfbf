"""What the controller's placement steering reads from Slurm and writes to it.

Three reads per cycle, one RPC each: the pending jobs (`vgpu-slurm-read held` where it is
installed, else `squeue -t PD` with only the fields the steering needs), every node's free
CPUs and memory (`scontrol show nodes -o`) and the partitions (which one is the default).
Two writes per job: `scontrol update jobid=X ReqNodeList=N StartTime=now` (steer: the job
may start only on N, from now) and `scontrol update jobid=X ReqNodeList= StartTime=now`
(release: Slurm places it; the empty list clears a node the job was steered to before).
`StartTime` is the job's begin time (Slurm 22.05 refuses `BeginTime=` in an update).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from slurm_vgpu.policies.slurm.slurm_client import gres_count
from slurm_vgpu.policies.slurm.slurm_reader import PROGRAM as READER
from slurm_vgpu.policies.slurm.slurm_reader import ReaderTooOld, SlurmReaderError

log = logging.getLogger(__name__)

PENDING_FORMAT = ("JobID:|,SubmitTime:|,EligibleTime:|,Reason:|,ReqNodes:|,Feature:|,"
                  "NumNodes:|,NumCPUs:|,MinCpus:|,tres-alloc:|,tres-per-node:|,Partition:")
# what sinfo printed for the room before scontrol (kept for bench_scale.py sinfo's comparison)
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
    cpus: int  # all of the job's CPUs (it runs on one node), at least its --mincpus
    memory_mib: int  # all of its memory (--mem-per-cpu multiplied out)
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
    """A Slurm memory figure ("0", "512M", "1.50G", "1T") in MiB."""
    text = text.strip()
    units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
    if text and text[-1].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(float(text)) if text else 0


def requested_memory_mib(tres: str) -> int:
    """The memory of a pending job's requested TRES (squeue's tres-alloc, the reader's
    tres_req_str: `cpu=4,mem=400M,node=1,billing=4`), 0 where it names none. slurmctld has
    multiplied --mem-per-cpu out there and put the node's whole memory for a job that names
    none (what it gives such a job where memory is a consumable resource); squeue's
    MinMemory is the per-CPU figure for --mem-per-cpu and 0 for no --mem, both under-asks
    for a job on one node."""
    for item in tres.split(","):
        key, _, value = item.partition("=")
        if key == "mem":
            return memory_mib(value)
    return 0


def parse_pending(text: str, also: Collection[int] = ()) -> list[PendingVgpuJob]:
    """Pending single-node vgpu jobs and CPU-only jobs (vgpu 0: no GRES at all) without a
    constraint, in job id order (submission): the ones waiting for their BeginTime (held ones
    among them) and the ones in `also` (jobs the controller steered); every other line is
    skipped before it is parsed (20,000 pending jobs are one squeue read per cycle)."""
    out: list[PendingVgpuJob] = []
    counts: dict[str, int | None] = {}
    for line in text.splitlines():
        f = line.split("|")
        if len(f) != 12 or not f[0].isdigit():
            continue  # array meta records and anything unexpected
        job_id, submit, eligible, reason, req, feature, num, cpus, per_node, requested, tres, \
            part = f
        if reason != "BeginTime" and int(job_id) not in also:
            continue
        job = _pending_job(job_id, _time(submit), _time(eligible), reason, req, feature, num,
                           cpus, per_node, requested, tres, part, counts)
        if job is not None:
            out.append(job)
    out.sort(key=lambda j: j.job_id)
    return out


def parse_held(text: str, also: Collection[int] = ()) -> list[PendingVgpuJob]:
    """The same jobs from `vgpu-slurm-read held` (spank/slurm_read.c), which prints only the
    pending jobs held for at most the hold, and the ones in `also`: a few lines, not one per
    pending job. Times are seconds since the epoch."""
    lines = text.splitlines()
    head = lines[0].split("|") if lines else []
    if len(head) == 4 and head[:3] == ["V", "1", "held"]:
        # format 1 printed the per-node CPU minimum and the per-CPU memory of --mem-per-cpu
        raise ReaderTooOld(f"{READER} held prints format 1 (CPUs per node, memory per CPU), "
                           f"not 2: install the {READER} of this slurm-vgpu version")
    if len(head) != 4 or head[:3] != ["V", "2", "held"]:
        raise SlurmReaderError(
            f"{READER} held printed {lines[0][:60] if lines else 'nothing'!r}, not its "
            f"format 2 header: install the {READER} of this slurm-vgpu version")
    out: list[PendingVgpuJob] = []
    counts: dict[str, int | None] = {}
    for line in lines[1:]:
        f = line.split("|")
        if len(f) != 13 or f[0] != "H" or not f[1].isdigit():
            raise SlurmReaderError(f"{READER}: cannot read the line {line[:80]!r} (not an "
                                   f"H line of 13 fields)")
        _, job_id, submit, eligible, reason, req, feature, num, cpus, per_node, requested, \
            tres, part = f
        if reason != "BeginTime" and int(job_id) not in also:
            continue
        try:
            at = (float(submit), float(eligible))
        except ValueError as e:
            raise SlurmReaderError(f"{READER}: cannot read the line {line[:80]!r} (times "
                                   f"are not seconds)") from e
        job = _pending_job(job_id, *at, reason, req, feature, num, cpus, per_node, requested,
                           tres, part, counts)
        if job is not None:
            out.append(job)
    out.sort(key=lambda j: j.job_id)
    return out


def _pending_job(job_id: str, submit: float, eligible: float, reason: str, req: str,
                 feature: str, num: str, cpus: str, per_node: str, requested: str, tres: str,
                 part: str, counts: dict[str, int | None]) -> PendingVgpuJob | None:
    """One pending job as the steering sees it, or None where it never steers it (other GRES
    only, a constraint, several nodes, a field it cannot read); `counts` caches gres_count
    per tres string."""
    vgpu = 0  # no GRES: CPU-only (held only while the CPUs bind)
    if _null(tres):  # some GRES: vgpu slices, or a job the steering never holds
        count = counts.get(tres, -1)
        if count == -1:
            count = counts[tres] = gres_count(tres)
        if not count:
            return None  # other GRES only (gpu:1, ...): never held
        vgpu = count
    if _null(feature) or num.strip() != "1":
        return None
    try:
        return PendingVgpuJob(int(job_id), submit, eligible, reason, _null(req),
                              tuple(p for p in part.split(",") if p),
                              max(int(cpus or 1), int(per_node or 1)),
                              requested_memory_mib(_null(requested)), vgpu)
    except ValueError:
        return None


# node states whose CPUs sinfo counts as "other", not idle: nothing can start there
_CPUS_UNAVAILABLE = ("down", "drain", "fail", "not_responding", "powered_down", "powering")


def _fields(line: str, keys: frozenset[str]) -> dict[str, str]:
    """`Key=value` tokens of one `scontrol show -o` line, the first of each wanted key (free
    text such as OS= or Reason= may hold spaces, never before the keys read here)."""
    out: dict[str, str] = {}
    for token in line.split(" "):
        key, eq, value = token.partition("=")
        if eq and key in keys and key not in out:
            out[key] = value
    return out


_NODE_KEYS = frozenset({"NodeName", "CPUAlloc", "CPUTot", "CPUEfctv", "RealMemory", "AllocMem",
                        "State", "Partitions"})


def parse_room(nodes: str, partitions: str = "") -> dict[str, NodeRoom]:
    """Free and total CPUs and free memory per node from `scontrol show nodes -o`, and the
    cluster's default partition from `scontrol show partitions -o`. sinfo -N gives the same
    but takes time quadratic in the nodes (7 s at 10,000 nodes on 22.05, 0.07 s for this;
    bench_scale.py sinfo --nodes 10000, bench/results/scale-sinfo.json). A node that is
    down, drained or failing has no free CPUs (sinfo's "other")."""
    default = ""
    for line in partitions.splitlines():
        f = _fields(line, frozenset({"PartitionName", "Default"}))
        if f.get("Default", "").upper() == "YES":
            default = f.get("PartitionName", "")
            break
    rooms: dict[str, NodeRoom] = {}
    for line in nodes.splitlines():
        f = _fields(line, _NODE_KEYS)
        name = f.get("NodeName", "")
        try:
            total = int(f.get("CPUEfctv") or f["CPUTot"])  # CPUEfctv: 23.02+, less spec cores
            alloc = int(f["CPUAlloc"])
            mem_free = int(f["RealMemory"]) - int(f.get("AllocMem") or 0)
        except (KeyError, ValueError):
            continue
        if not name:
            continue
        state = f.get("State", "").lower()
        free = 0 if any(s in state for s in _CPUS_UNAVAILABLE) else max(0, total - alloc)
        parts = tuple(p for p in _null(f.get("Partitions", "")).split(",") if p)
        rooms[name] = NodeRoom(name, free, mem_free, state, parts, total,
                               default if default in parts else "")
    return rooms


def memory_placed(config: str) -> bool:
    """`scontrol show config`: SelectTypeParameters names MEMORY (CR_Core_Memory, CR_Memory,
    ...); true where the line is missing (the careful reading: memory then counts)."""
    for line in config.splitlines():
        key, eq, value = line.partition("=")
        if eq and key.strip() == "SelectTypeParameters":
            return "MEMORY" in value.upper()
    return True


class SteeringSlurm:
    """The steering's reads and writes through Slurm's commands (`run(tool, *args)` returns
    stdout and raises SlurmUnavailable / SlurmRequestRejected, as CliSlurmClient._run).
    With `read_held` (ReaderSlurmClient.held_jobs: the installed vgpu-slurm-read) the pending
    jobs come from it instead of squeue: one RPC either way, but a few lines instead of one
    per pending job (bench/bench_scale.py reader)."""

    # SelectTypeParameters changes only with a slurmctld restart; read it again this often
    CONFIG_SECONDS = 600.0

    def __init__(self, run: Callable[..., str],
                 read_held: Callable[[int, Collection[int]], str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._run = run
        self._read_held = read_held
        self._clock = clock
        self._memory_placed: tuple[float, bool] | None = None

    def memory_placed(self) -> bool:
        """Whether slurmctld places jobs by their memory (SelectTypeParameters CR_*_Memory):
        where it does not (CR_Core, CR_CPU), a job's memory decides nothing and the steering
        must not count it, least of all the whole node's memory a job without --mem
        shows."""
        now = self._clock()
        if self._memory_placed is None or now - self._memory_placed[0] > self.CONFIG_SECONDS:
            self._memory_placed = (now, memory_placed(self._run("scontrol", "show", "config")))
        return self._memory_placed[1]

    def pending(self, also: Collection[int] = (), hold_seconds: float = 0.0
                ) -> list[PendingVgpuJob]:
        """The jobs held for at most `hold_seconds` (a begin time that far after submission;
        0: any begin time, as squeue's read) and the ones in `also`."""
        if self._read_held is not None and hold_seconds > 0:
            try:
                return parse_held(self._read_held(math.ceil(hold_seconds) + 1, also), also)
            except ReaderTooOld as e:
                log.warning("vgpu: steering: %s; reading pending jobs with squeue", e)
                self._read_held = None
        return parse_pending(self._run("squeue", "-h", "-t", "PD", "-O", PENDING_FORMAT),
                             also)

    def room(self) -> dict[str, NodeRoom]:
        return parse_room(self._run("scontrol", "show", "nodes", "-o"),
                          self._run("scontrol", "show", "partitions", "-o"))

    def steer(self, job_id: int, node: str) -> None:
        self._run("scontrol", "update", f"jobid={int(job_id)}", f"ReqNodeList={node}",
                  "StartTime=now")

    def release(self, job_id: int) -> None:
        """Eligible now, on any node (an empty ReqNodeList clears one steered before)."""
        self._run("scontrol", "update", f"jobid={int(job_id)}", "ReqNodeList=",
                  "StartTime=now")

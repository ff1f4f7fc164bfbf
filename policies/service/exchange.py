"""The channel between the cluster controller and the node agents: a directory of small JSON
files (docs/daemon.md, "Agents and the controller").

    <exchange.dir>/controller           the controller's heartbeat (every period)
    <exchange.dir>/to-node/<node>.json  what the controller tells one agent (on change)
    <exchange.dir>/from-node/<node>.json what one agent tells the controller (every period)

Why files: no listening socket and no new authentication to get right; Unix ownership is the
authentication. An agent believes only files (and the directories above them) owned by a
trusted writer (root, or the Slurm user the controller may run as) that nobody else can
write; the controller believes only reports owned by root (agents run as root). Either side
can restart and find the other's last word on disk, and a standby controller reads the same
directory. Every file is replaced atomically (write + rename), so readers never see half.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slurm_vgpu.errors import VgpuError
from slurm_vgpu.policies.decide.lent_file import valid_name
from slurm_vgpu.policies.decide.snapshot import PendingJob
from slurm_vgpu.policies.slurm.slurm_client import SlurmJob, SlurmNode

VERSION = 1
HEARTBEAT_NAME = "controller"
TO_NODE = "to-node"
FROM_NODE = "from-node"
# A report or directive larger than this is refused (a node with 40 jobs writes ~10 KiB).
MAX_BYTES = 4 << 20


class ExchangeError(VgpuError):
    """A file of the exchange directory is missing, untrusted or malformed."""


def trusted_uids(names: Iterable[str]) -> frozenset[int]:
    """root plus the named users that exist here (a missing `slurm` user is not an error)."""
    uids = {0}
    for name in names:
        try:
            uids.add(pwd.getpwnam(name).pw_uid)
        except KeyError:
            continue
    return frozenset(uids)


def _check_owner(st: os.stat_result, path: Path, owners: frozenset[int]) -> None:
    if st.st_uid not in owners:
        raise ExchangeError(f"{path}: owned by uid {st.st_uid}, not by a trusted writer "
                            f"(uids {sorted(owners)}); ignored")
    if st.st_mode & 0o022:
        raise ExchangeError(f"{path}: writable by group or others (mode "
                            f"{stat.S_IMODE(st.st_mode):o}); ignored")


def check_dir(path: Path, owners: frozenset[int]) -> None:
    """A directory whose entries could be swapped by someone else is no channel."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError as e:
        raise ExchangeError(f"{path}: {e.strerror or e}") from e
    if not stat.S_ISDIR(st.st_mode):
        raise ExchangeError(f"{path}: not a directory")
    _check_owner(st, path, owners)


def read_trusted_json(path: Path, owners: frozenset[int]) -> dict[str, Any]:
    """The JSON object in `path`, if it is a regular file of a trusted owner nobody else can
    write (checked on the open file, so a swapped path cannot slip in)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise ExchangeError(f"{path}: {e.strerror or e}") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ExchangeError(f"{path}: not a regular file")
        _check_owner(st, path, owners)
        if st.st_size > MAX_BYTES:
            raise ExchangeError(f"{path}: {st.st_size} bytes, more than {MAX_BYTES}")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(fd)
    try:
        doc = json.loads(b"".join(chunks))
    except ValueError as e:
        raise ExchangeError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise ExchangeError(f"{path}: expected a version {VERSION} document")
    return doc


def write_atomic(path: Path, content: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                 mode)
    try:
        os.write(fd, content)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def make_dirs(root: Path) -> None:
    """Create the exchange tree (the caller's files are only trusted if it is root's or the
    Slurm user's, mode 0755)."""
    for d in (root, root / TO_NODE, root / FROM_NODE):
        d.mkdir(mode=0o755, parents=True, exist_ok=True)


def _encode(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


# --- the controller's word ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Directive:
    """What the controller tells one node's agent: the Slurm facts its policies need (its
    running jobs' partition/QOS/start/AdminComment, the node's count, weight, partitions), the
    first job that is not preemptible waiting for the node, and the summaries it stored."""

    node: SlurmNode
    jobs: tuple[SlurmJob, ...] = ()
    waiting: tuple[PendingJob, ...] = ()
    # job id -> the summary token the controller stored in its AdminComment
    summaries_stored: Mapping[int, str] = field(default_factory=dict)


def directive_to_bytes(d: Directive) -> bytes:
    n = d.node
    return _encode({
        "version": VERSION,
        "node": {"name": n.name, "state": n.state, "vgpu_count": n.vgpu_count,
                 "vgpu_used": n.vgpu_used, "weight": n.weight,
                 "partitions": list(n.partitions)},
        "jobs": [{"job_id": j.job_id, "state": j.state, "partition": j.partition, "qos": j.qos,
                  "user_id": j.user_id, "start_time": j.start_time,
                  "vgpu": j.vgpu_per_node.get(n.name, 0), "admin_comment": j.admin_comment}
                 for j in d.jobs],
        "waiting": [{"job_id": p.job_id, "partitions": list(p.partitions), "qos": p.qos,
                     "vgpu_per_node": p.vgpu_per_node} for p in d.waiting],
        "summaries_stored": {str(k): v for k, v in sorted(d.summaries_stored.items())},
    })


def _opt_int(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def directive_from_dict(doc: Mapping[str, Any], where: str) -> Directive:
    try:
        nd = doc["node"]
        node = SlurmNode(name=str(nd["name"]), state=str(nd["state"]),
                         vgpu_count=_opt_int(nd["vgpu_count"]),
                         vgpu_used=_opt_int(nd["vgpu_used"]), weight=_opt_int(nd["weight"]),
                         partitions=tuple(str(p) for p in nd["partitions"]))
        jobs = tuple(
            SlurmJob(job_id=int(j["job_id"]), state=str(j["state"]),
                     partition=str(j["partition"]), qos=str(j["qos"]),
                     user_id=int(j["user_id"]), start_time=float(j["start_time"]),
                     vgpu_per_node={node.name: int(j["vgpu"])},
                     admin_comment=str(j["admin_comment"]))
            for j in doc["jobs"])
        waiting = tuple(PendingJob(int(p["job_id"]), tuple(str(x) for x in p["partitions"]),
                                   str(p["qos"]), int(p["vgpu_per_node"]))
                        for p in doc["waiting"])
        stored = {int(k): str(v) for k, v in doc["summaries_stored"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ExchangeError(f"{where}: malformed directive ({type(e).__name__}: {e})") from e
    return Directive(node=node, jobs=jobs, waiting=waiting, summaries_stored=stored)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    time: float
    slurm_ok: bool
    slurm_error: str = ""


def heartbeat_to_bytes(h: Heartbeat) -> bytes:
    return _encode({"version": VERSION, "time": h.time, "slurm_ok": h.slurm_ok,
                    "slurm_error": h.slurm_error})


def heartbeat_from_dict(doc: Mapping[str, Any], where: str) -> Heartbeat:
    t, ok = doc.get("time"), doc.get("slurm_ok")
    if not isinstance(t, int | float) or not isinstance(ok, bool):
        raise ExchangeError(f"{where}: malformed heartbeat (time, slurm_ok)")
    return Heartbeat(float(t), ok, str(doc.get("slurm_error") or ""))


# --- the agent's word -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SummaryRequest:
    """A job summary the agent wants stored in the job's AdminComment (docs/accounting.md).
    running: True while the job runs (scontrol only), None at its end (scontrol, then
    sacctmgr)."""

    job_id: int
    token: str
    running: bool | None
    # the job's AdminComment as the agent last heard it (kept around the token when the job
    # has left slurmctld and accounting does not have it yet)
    known_comment: str = ""


@dataclass(frozen=True, slots=True)
class GpuTenants:
    """One sliced GPU as its agent sees it: its slices, the slices allocated on it and the
    jobs holding them (the controller's placement steering reads it; steering.py)."""

    slices: int
    used: int
    jobs: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeReport:
    """What an agent tells the controller each period: that it is alive, what its policies
    want slurmctld to know (the node's vgpu count and weight) and summaries to store."""

    node: str
    time: float
    vgpu_configured: int
    vgpu_wanted: int | None = None
    weight_wanted: int | None = None
    summaries: tuple[SummaryRequest, ...] = ()
    # jobs the plugin placed on this node that the agent's directive does not list yet (the
    # controller reads the job table for them; job_table.py)
    just_started: tuple[int, ...] = ()
    # the node's sliced GPUs in index order (None: an agent of an earlier version)
    gpus: tuple[GpuTenants, ...] | None = None
    # jobs Slurm started here whose GPU the plugin's limits file does not name yet: (job, slices)
    unplaced: tuple[tuple[int, int], ...] = ()


def report_to_bytes(r: NodeReport) -> bytes:
    return _encode({
        "version": VERSION, "node": r.node, "time": r.time,
        "vgpu_configured": r.vgpu_configured, "vgpu_wanted": r.vgpu_wanted,
        "weight_wanted": r.weight_wanted,
        "summaries": [{"job_id": s.job_id, "token": s.token, "running": s.running,
                       "known_comment": s.known_comment} for s in r.summaries],
        "just_started": list(r.just_started),
        "gpus": None if r.gpus is None else [[g.slices, g.used, list(g.jobs)] for g in r.gpus],
        "unplaced": [list(u) for u in r.unplaced],
    })


def _gpus(doc: Any) -> tuple[GpuTenants, ...] | None:
    if doc is None:
        return None
    gpus = []
    for slices, used, jobs in doc:
        if int(slices) < 1 or not int(used) >= 0:
            raise ValueError("a GPU needs slices >= 1 and used >= 0")
        gpus.append(GpuTenants(int(slices), int(used), tuple(int(j) for j in jobs)))
    return tuple(gpus)


def report_from_dict(doc: Mapping[str, Any], where: str) -> NodeReport:
    try:
        summaries = []
        for s in doc["summaries"]:
            running = s["running"]
            if running is not None and not isinstance(running, bool):
                raise ValueError("running must be true, false or null")
            summaries.append(SummaryRequest(int(s["job_id"]), str(s["token"]), running,
                                            str(s.get("known_comment") or "")))
        return NodeReport(node=str(doc["node"]), time=float(doc["time"]),
                          vgpu_configured=int(doc["vgpu_configured"]),
                          vgpu_wanted=_opt_int(doc["vgpu_wanted"]),
                          weight_wanted=_opt_int(doc["weight_wanted"]),
                          summaries=tuple(summaries),
                          # absent from an agent of an earlier version
                          just_started=tuple(int(j) for j in doc.get("just_started", ())),
                          gpus=_gpus(doc.get("gpus")),
                          unplaced=tuple((int(j), int(n)) for j, n in doc.get("unplaced", ())))
    except (KeyError, TypeError, ValueError) as e:
        raise ExchangeError(f"{where}: malformed node report ({type(e).__name__}: {e})") from e


@dataclass(slots=True)
class ExchangeDir:
    """Paths of one exchange directory."""

    root: Path

    @property
    def heartbeat(self) -> Path:
        return self.root / HEARTBEAT_NAME

    def directive(self, node: str) -> Path:
        return self.root / TO_NODE / f"{_file_name(node)}.json"

    def report(self, node: str) -> Path:
        return self.root / FROM_NODE / f"{_file_name(node)}.json"


def _file_name(node: str) -> str:
    if not valid_name(node) or node.startswith("."):
        raise ExchangeError(f"node name {node!r} cannot name a file of the exchange directory")
    return node

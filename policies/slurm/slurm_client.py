"""The daemon's narrow view of Slurm, and its implementation over Slurm's JSON CLIs (22.05 to
26.05: data_parser v0.0.38 to v0.0.45, parsed by the same functions, tested on real output).

Per control period the daemon needs two reads, whatever the number of jobs: `squeue --json`
(every job; 22.05 ignores squeue's filters with --json, so we filter here) and one node listing
(every node: gres count, weight, state): 22.05's `sinfo --json`, or from 23.02 on
`scontrol show nodes --json` (sinfo --json groups nodes there). Writes happen only when a policy
changes something: `scontrol update nodename=X gres=vgpu:N|weight=N`, `scontrol requeue`,
`scancel JOB.STEP`.

`make_slurm_client("auto")` picks pyslurm when a pyslurm built for the installed Slurm imports
(see slurm_pyslurm.py), else these CLIs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from slurm_vgpu.errors import VgpuError
from slurm_vgpu.policies.decide.snapshot import PendingJob

GRES_NAME = "vgpu"


class SlurmUnavailable(VgpuError):
    """Slurm could not be reached (or timed out); the daemon retries with backoff."""


class SlurmRequestRejected(VgpuError):
    """Slurm answered but refused one request (e.g. a job that just ended): that action
    failed, Slurm itself is fine."""


# stderr of the client tools when slurmctld cannot be reached (not a refused request)
_UNREACHABLE = re.compile(
    r"Unable to contact slurm controller|Socket timed out|Connection refused|"
    r"Zero Bytes were transmitted|Communication connection failure|Unable to establish",
    re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SlurmJob:
    """A running job as slurmctld reports it (only what the policies need)."""

    job_id: int
    state: str
    partition: str
    qos: str
    user_id: int
    start_time: float
    # node name -> vgpu slices allocated on it (nodes without vgpu are left out)
    vgpu_per_node: Mapping[str, int]
    # AdminComment (where the daemon keeps the job's utilization summary); "" if none
    admin_comment: str = ""


@dataclass(frozen=True, slots=True)
class SlurmNode:
    name: str
    state: str
    vgpu_count: int | None
    vgpu_used: int | None
    weight: int | None
    partitions: tuple[str, ...] = ()


class SlurmClient(Protocol):
    """What the daemon asks of Slurm. Every method raises SlurmUnavailable on failure."""

    def running_jobs(self, nodes: Sequence[str] | None = None) -> list[SlurmJob]:
        """Running vgpu jobs (on `nodes` only, if given)."""
        ...

    def pending_jobs(self) -> list[PendingJob]:
        """vgpu jobs waiting to start, from the last running_jobs() read (no RPC of its own)."""
        ...

    def nodes(self, names: Sequence[str] | None = None) -> list[SlurmNode]:
        """Nodes named (all of the cluster with None: the cluster controller)."""
        ...

    def set_node_vgpu_count(self, node: str, count: int) -> None: ...

    def set_node_weight(self, node: str, weight: int) -> None: ...

    def requeue_job(self, job_id: int) -> None: ...

    def cancel_step(self, job_id: int, step: str) -> None: ...

    # Writes raise SlurmRequestRejected when Slurm refuses that one request.


# ---------------------------------------------------------------------------------------------
# Parsing helpers (pure; unit-tested against real 22.05, 24.11 and 26.05 output in
# tests/data/slurm-<release>/).

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def _split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside brackets/parentheses: 'a[1-2],b' -> ['a[1-2]', 'b']."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in (s.strip() for s in parts) if p]


def expand_hostlist(expr: str) -> list[str]:
    """Expand a Slurm hostlist ('n[01-03,7],gpu5') into node names, keeping zero padding."""
    if "[" not in expr and "," not in expr:  # the common single-node job
        return [expr.strip()] if expr.strip() else []
    names: list[str] = []
    for item in _split_top_level(expr):
        m = re.match(r"^([^\[]*)\[([^\]]+)\](.*)$", item)
        if not m:
            names.append(item)
            continue
        prefix, ranges, suffix = m.groups()
        for rng in ranges.split(","):
            r = _RANGE.match(rng.strip())
            if not r:
                raise ValueError(f"bad hostlist range {rng!r} in {expr!r}")
            lo, hi = r.group(1), r.group(2) or r.group(1)
            width = len(lo)
            for n in range(int(lo), int(hi) + 1):
                for tail in expand_hostlist(suffix) if "[" in suffix else [suffix]:
                    names.append(f"{prefix}{n:0{width}d}{tail}")
    return names


def gres_count(spec: str, name: str = GRES_NAME) -> int | None:
    """Count of GRES `name` in a Slurm GRES string, or None when absent.

    Handles the forms slurmctld prints: 'vgpu:20', 'vgpu:g0:10', 'vgpu(CNT:3)',
    'vgpu:3(IDX:0-2)', 'gpu:1(IDX:0),vgpu(CNT:3)', 'gres:vgpu:3' (22.05's tres_per_node),
    'gres/vgpu:3' (tres_per_node from 23.02 on),
    'vgpu:0(IDX:N/A)'. Several typed entries add up."""
    if spec.startswith(f"{name}(CNT:") and spec.endswith(")") and "," not in spec:
        digits = spec[len(name) + 5:-1]  # the common 'vgpu(CNT:3)'
        if digits.isdigit():
            return int(digits)
    total: int | None = None
    for item in _split_top_level(spec):
        head, _, paren = item.partition("(")
        fields = head.split(":")
        if fields and fields[0] == "gres":
            fields = fields[1:]
        elif fields and fields[0].startswith("gres/"):  # 23.02+ tres_per_node: 'gres/vgpu:3'
            fields[0] = fields[0][5:]
        if not fields or fields[0] != name:
            continue
        count: int | None = None
        cnt = re.search(r"CNT:(\d+)", paren)
        if cnt:
            count = int(cnt.group(1))
        elif len(fields) > 1 and fields[-1].isdigit():
            count = int(fields[-1])
        elif len(fields) == 1:
            count = 1
        if count is not None:
            total = (total or 0) + count
    return total


def _int(value: Any) -> int | None:
    """22.05 prints numbers plainly; later versions wrap some as {"set":..,"number":..}."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, dict) and value.get("set") and isinstance(value.get("number"), int):
        return int(value["number"])
    return None


def _state(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value or "")


def parse_squeue_json(doc: Mapping[str, Any], nodes: Collection[str] | None = None
                      ) -> list[SlurmJob]:
    """Running jobs holding vgpu, from `squeue --json` (only those on `nodes` if given: 22.05
    prints every job of the cluster, so a node's daemon skips the others cheaply)."""
    wanted = set(nodes) if nodes is not None else None
    jobs: list[SlurmJob] = []
    for raw in doc.get("jobs") or []:
        expr = raw.get("nodes")
        if wanted is not None and isinstance(expr, str) and "[" not in expr \
                and "," not in expr and expr not in wanted:
            continue
        state = _state(raw.get("job_state"))
        if "RUNNING" not in state.upper():
            continue
        job_id = _int(raw.get("job_id"))
        if job_id is None:
            continue
        nodes = expand_hostlist(str(raw.get("nodes") or ""))
        details = raw.get("gres_detail") or []
        per_node: dict[str, int] = {}
        if isinstance(details, list) and len(details) == len(nodes):
            for node, detail in zip(nodes, details, strict=True):
                count = gres_count(str(detail))
                if count:
                    per_node[node] = count
        else:
            count = gres_count(str(raw.get("tres_per_node") or ""))
            if count:
                per_node = dict.fromkeys(nodes, count)
        if wanted is not None:
            per_node = {n: c for n, c in per_node.items() if n in wanted}
        if not per_node:
            continue
        jobs.append(SlurmJob(
            job_id=job_id, state=state, partition=str(raw.get("partition") or ""),
            qos=str(raw.get("qos") or ""), user_id=_int(raw.get("user_id")) or 0,
            start_time=float(_int(raw.get("start_time")) or 0), vgpu_per_node=per_node,
            admin_comment=str(raw.get("admin_comment") or ""),
        ))
    return jobs


# Pending jobs that will not start whatever the capacity (held, waiting on a dependency) do not
# count as demand for lent slices.
_NOT_WAITING_FOR_CAPACITY = re.compile(r"^(JobHeld|Dependency|DependencyNeverSatisfied|"
                                       r"BadConstraints|InvalidQOS|InvalidAccount)")


def waits_for_capacity(state_reason: str) -> bool:
    """Would this pending job start if capacity were there (not held, no dependency)?"""
    return not _NOT_WAITING_FOR_CAPACITY.match(state_reason)


def parse_pending_json(doc: Mapping[str, Any]) -> list[PendingJob]:
    """vgpu jobs waiting for resources, from `squeue --json` (the whole cluster's)."""
    pending: list[PendingJob] = []
    for raw in doc.get("jobs") or []:
        if "PENDING" not in _state(raw.get("job_state")).upper():
            continue
        if not waits_for_capacity(str(raw.get("state_reason") or "")):
            continue
        job_id = _int(raw.get("job_id"))
        count = gres_count(str(raw.get("tres_per_node") or ""))
        if job_id is None or not count:
            continue
        partitions = tuple(p for p in str(raw.get("partition") or "").split(",") if p)
        pending.append(PendingJob(job_id, partitions, str(raw.get("qos") or ""), count))
    return pending


def parse_sinfo_json(doc: Mapping[str, Any], names: Iterable[str] | None = None
                     ) -> list[SlurmNode]:
    """Nodes (all, or those named) from a node listing: 22.05's `sinfo --json` or, from 23.02
    on, `scontrol show nodes --json` (one record per node under "nodes" in both). Later
    releases' `sinfo --json` (records per node group and partition under "sinfo") is read
    too, but the client does not ask for it: a group's GRES use is not one node's."""
    if "nodes" not in doc and isinstance(doc.get("sinfo"), list):
        return _parse_sinfo_groups(doc["sinfo"], names)
    wanted = set(names) if names is not None else None
    nodes: list[SlurmNode] = []
    for raw in doc.get("nodes") or []:
        name = str(raw.get("name") or "")
        if not name or (wanted is not None and name not in wanted):
            continue
        state = _state(raw.get("state"))
        flags = raw.get("state_flags")
        if isinstance(flags, list) and flags:
            state = state + "+" + "+".join(str(f) for f in flags)
        nodes.append(SlurmNode(
            name=name, state=state.lower(),
            vgpu_count=gres_count(str(raw.get("gres") or "")),
            vgpu_used=gres_count(str(raw.get("gres_used") or "")),
            weight=_int(raw.get("weight")),
            partitions=tuple(str(p) for p in raw.get("partitions") or () if p),
        ))
    return nodes


def _parse_sinfo_groups(groups: Sequence[Any], names: Iterable[str] | None) -> list[SlurmNode]:
    """`sinfo --json` from 23.02 on: one record per (node group, partition)."""
    wanted = set(names) if names is not None else None
    found: dict[str, SlurmNode] = {}
    for group in groups:
        members = (group.get("nodes") or {}).get("nodes") or []
        state = _state((group.get("node") or {}).get("state")).lower()
        gres = group.get("gres") or {}
        weight = group.get("weight") or {}
        partition = str((group.get("partition") or {}).get("name") or "")
        for name in members:
            if wanted is not None and name not in wanted:
                continue
            known = found.get(name)
            parts = (known.partitions if known else ()) + ((partition,) if partition else ())
            found[name] = SlurmNode(
                name=name, state=state.replace(",", "+"),
                vgpu_count=gres_count(str(gres.get("total") or "")),
                vgpu_used=gres_count(str(gres.get("used") or "")) if len(members) == 1 else None,
                weight=_int(weight.get("minimum")) if weight.get("minimum") == weight.get(
                    "maximum") else None,
                partitions=parts)
    return list(found.values())


def slurm_release(version_line: str) -> tuple[int, int] | None:
    """(24, 11) from `scontrol -V` output ('slurm 24.11.5', 'slurm-wlm 22.05.8')."""
    m = re.search(r"(\d+)\.(\d+)\.\d+", version_line)
    return (int(m.group(1)), int(m.group(2))) if m else None


# ---------------------------------------------------------------------------------------------


class CliSlurmClient:
    """SlurmClient over squeue/sinfo/scontrol/scancel. Inherits SLURM_CONF and friends from the
    environment; `bin_dir` points at a non-PATH Slurm install."""

    def __init__(self, bin_dir: str | None = None, timeout: float = 10.0,
                 env: Mapping[str, str] | None = None) -> None:
        self.bin_dir = bin_dir
        self.timeout = timeout
        self.env = dict(os.environ if env is None else env)
        self.calls = 0  # RPC-issuing commands run (for tests and the benchmark)
        self._pending: list[PendingJob] = []
        self._node_argv: tuple[str, ...] | None = None

    def _path(self, tool: str) -> str:
        if self.bin_dir:
            return os.path.join(self.bin_dir, tool)
        return shutil.which(tool) or tool

    def _run(self, tool: str, *args: str) -> str:
        argv = [self._path(tool), *args]
        self.calls += 1
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout,
                                  env=self.env, check=False)
        except FileNotFoundError as e:
            raise SlurmUnavailable(f"{argv[0]} not found: install the Slurm client tools "
                                   "or set slurm.bin_dir") from e
        except subprocess.TimeoutExpired as e:
            raise SlurmUnavailable(f"{' '.join(argv)} timed out after {self.timeout:g}s") from e
        if done.returncode != 0:
            text = (done.stderr or done.stdout).strip()
            lines = text.splitlines()
            message = (f"{' '.join(argv)} failed (exit {done.returncode}): "
                       f"{lines[-1] if lines else 'no message'}")
            if _UNREACHABLE.search(text) or tool in ("squeue", "sinfo") or args[:1] == ("show",):
                raise SlurmUnavailable(message)
            raise SlurmRequestRejected(message)
        return done.stdout

    def _json(self, tool: str, *args: str) -> Mapping[str, Any]:
        out = self._run(tool, *args)
        try:
            doc = json.loads(out)
        except json.JSONDecodeError as e:
            raise SlurmUnavailable(f"{tool} --json printed invalid JSON: {e}") from e
        if not isinstance(doc, dict):
            raise SlurmUnavailable(f"{tool} --json printed {type(doc).__name__}, not an object")
        errors = doc.get("errors")
        if errors:
            raise SlurmUnavailable(f"{tool} --json reported errors: {errors}")
        return doc

    def running_jobs(self, nodes: Sequence[str] | None = None) -> list[SlurmJob]:
        doc = self._json("squeue", "--json")
        self._pending = parse_pending_json(doc)
        return parse_squeue_json(doc, nodes)

    def pending_jobs(self) -> list[PendingJob]:
        return list(self._pending)

    def _node_listing(self) -> tuple[str, ...]:
        """The per-node JSON read of this Slurm: `scontrol show nodes --json` from 23.02 on
        (sinfo --json groups nodes there), 22.05's `sinfo --json` before. Asked once; `-V`
        is answered locally, without an RPC."""
        if self._node_argv is None:
            try:
                done = subprocess.run([self._path("scontrol"), "-V"], capture_output=True,
                                      text=True, timeout=self.timeout, env=self.env,
                                      check=False)
                release = slurm_release(done.stdout)
            except (OSError, subprocess.TimeoutExpired):
                release = None
            self._node_argv = (("scontrol", "show", "nodes", "--json")
                               if release is not None and release >= (23, 2)
                               else ("sinfo", "--json"))
        return self._node_argv

    def nodes(self, names: Sequence[str] | None = None) -> list[SlurmNode]:
        return parse_sinfo_json(self._json(*self._node_listing()), names)

    def set_node_vgpu_count(self, node: str, count: int) -> None:
        self._run("scontrol", "update", f"nodename={node}", f"gres={GRES_NAME}:{int(count)}")

    def set_node_weight(self, node: str, weight: int) -> None:
        self._run("scontrol", "update", f"nodename={node}", f"weight={int(weight)}")

    def requeue_job(self, job_id: int) -> None:
        self._run("scontrol", "requeue", str(int(job_id)))

    def cancel_step(self, job_id: int, step: str) -> None:
        """Cancel one step; the batch step is the job's script, so it means the job (22.05's
        scancel does not take JOB.batch)."""
        if step == "batch":
            self._run("scancel", str(int(job_id)))
        elif re.fullmatch(r"\d+(\+\d+)?", step):
            self._run("scancel", f"{int(job_id)}.{step}")
        else:
            raise ValueError(f"refusing to cancel step {step!r} of job {job_id}")


def command_runner(bin_dir: str | None = None, timeout: float = 10.0,
                   env: Mapping[str, str] | None = None
                   ) -> Callable[[Sequence[str]], tuple[int, str, str]]:
    """A runner for `job_summary.write_summary`: argv[0] resolved like the client's tools
    (`bin_dir`, else PATH), the client's timeout; returns (exit code, stdout, stderr)."""

    def run(argv: Sequence[str]) -> tuple[int, str, str]:
        tool = argv[0]
        path = os.path.join(bin_dir, tool) if bin_dir else (shutil.which(tool) or tool)
        try:
            done = subprocess.run([path, *argv[1:]], capture_output=True, text=True,
                                  timeout=timeout, env=None if env is None else dict(env),
                                  check=False)
        except subprocess.TimeoutExpired:
            return 124, "", f"{tool} did not finish within {timeout:g}s"
        except OSError as e:
            return 127, "", f"{path}: {e.strerror or e}"
        return done.returncode, done.stdout, done.stderr

    return run


def make_slurm_client(kind: str = "auto", bin_dir: str | None = None,
                      timeout: float = 10.0) -> SlurmClient:
    """`cli`, `pyslurm`, or `auto` (pyslurm only if one matching the installed Slurm imports)."""
    if kind in ("auto", "pyslurm"):
        from slurm_vgpu.policies.slurm.slurm_pyslurm import PyslurmUnusable, make_pyslurm_client

        try:
            return make_pyslurm_client(bin_dir=bin_dir)
        except PyslurmUnusable as e:
            if kind == "pyslurm":
                raise SlurmUnavailable(f"slurm.client is pyslurm but {e}") from e
    return CliSlurmClient(bin_dir=bin_dir, timeout=timeout)

"""SlurmClient over pyslurm, used only when a pyslurm built for the installed Slurm imports.

Honest status: PyPI carries pyslurm only for Slurm 25.11 (and ancient 17/18), and building it
against Slurm 22.05 fails ("Slurm version mismatch"), so on the project's 22.05 test cluster
this class is never selected and is not exercised by the integration tests. It follows the
pyslurm >= 23 object API (Jobs.load, Nodes.load, Node.modify, Job.requeue, JobStep.cancel) and
stays deliberately thin: anything it cannot map raises SlurmUnavailable, and `slurm.client:
cli` forces the CLI client.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from slurm_vgpu.policies.decide.snapshot import PendingJob
from slurm_vgpu.policies.slurm.slurm_client import (
    GRES_NAME,
    SlurmJob,
    SlurmNode,
    SlurmUnavailable,
    expand_hostlist,
    gres_count,
    waits_for_capacity,
)


class PyslurmUnusable(Exception):
    """pyslurm is absent or built for another Slurm release."""


def installed_slurm_version(bin_dir: str | None = None) -> str | None:
    """'22.05' from `sinfo --version` ('slurm 22.05.8'; needs a readable slurm.conf in 22.05)
    or else `slurmd -V` (on compute nodes, needs no config); None when neither answers."""
    candidates = [f"{bin_dir}/sinfo" if bin_dir else shutil.which("sinfo"),
                  shutil.which("slurmd") or "/usr/sbin/slurmd"]
    for tool, flag in zip(candidates, ("--version", "-V"), strict=True):
        if not tool:
            continue
        try:
            done = subprocess.run([tool, flag], capture_output=True, text=True, timeout=5,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        m = re.search(r"(\d+)\.(\d+)\.\d+", done.stdout) if done.returncode == 0 else None
        if m:
            return f"{int(m.group(1))}.{int(m.group(2)):02d}"
    return None


def make_pyslurm_client(bin_dir: str | None = None) -> PyslurmClient:
    try:
        pyslurm = importlib.import_module("pyslurm")
    except ImportError as e:
        raise PyslurmUnusable("pyslurm is not installed") from e
    version = str(getattr(pyslurm, "__version__", ""))
    m = re.match(r"(\d+)\.(\d+)", version)
    theirs = f"{int(m.group(1))}.{int(m.group(2)):02d}" if m else None
    ours = installed_slurm_version(bin_dir)
    if theirs is None or ours is None or theirs != ours:
        raise PyslurmUnusable(
            f"pyslurm {version or '?'} does not match the installed Slurm {ours or '?'}")
    return PyslurmClient(pyslurm)


def _gres_text(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items())
    return str(value or "")


class PyslurmClient:
    def __init__(self, module: Any) -> None:
        self.pyslurm = module
        self._pending: list[PendingJob] = []

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as e:  # pyslurm raises RPCError and friends; all mean "retry later"
            raise SlurmUnavailable(f"pyslurm {what} failed: {e}") from e

    def running_jobs(self, nodes: Sequence[str] | None = None) -> list[SlurmJob]:
        jobs = self._call("Jobs.load", self.pyslurm.Jobs.load)
        result: list[SlurmJob] = []
        self._pending = []
        for job in jobs.values():
            if str(job.state).upper() == "PENDING":
                count = gres_count(_gres_text(getattr(job, "gres_per_node", "")))
                reason = str(getattr(job, "state_reason", "") or "")
                if count and waits_for_capacity(reason):
                    self._pending.append(PendingJob(
                        int(job.id), tuple(p for p in str(job.partition or "").split(",") if p),
                        str(job.qos or ""), count))
                continue
            if str(job.state).upper() != "RUNNING":
                continue
            per_node_count = gres_count(_gres_text(getattr(job, "gres_per_node", "")))
            if not per_node_count:
                continue
            on = expand_hostlist(str(job.allocated_nodes or ""))
            if nodes is not None:
                on = [n for n in on if n in nodes]
            if not on:
                continue
            result.append(SlurmJob(
                job_id=int(job.id), state="RUNNING", partition=str(job.partition or ""),
                qos=str(job.qos or ""), user_id=int(job.user_id or 0),
                start_time=float(job.start_time or 0),
                vgpu_per_node=dict.fromkeys(on, per_node_count),
                admin_comment=str(getattr(job, "admin_comment", "") or ""),
            ))
        return result

    def pending_jobs(self) -> list[PendingJob]:
        return list(self._pending)

    def nodes(self, names: Sequence[str] | None = None) -> list[SlurmNode]:
        loaded = self._call("Nodes.load", self.pyslurm.Nodes.load)
        wanted = set(names) if names is not None else None
        return [
            SlurmNode(
                name=str(node.name), state=str(node.state).lower(),
                vgpu_count=gres_count(_gres_text(node.configured_gres)),
                vgpu_used=gres_count(_gres_text(node.allocated_gres)),
                weight=node.weight,
                partitions=tuple(str(p) for p in getattr(node, "partitions", ()) or ()),
            )
            for node in loaded.values() if wanted is None or node.name in wanted
        ]

    def _modify(self, node: str, **changes: Any) -> None:
        target = self.pyslurm.Node(node)
        self._call("Node.modify", target.modify, self.pyslurm.Node(**changes))

    def set_node_vgpu_count(self, node: str, count: int) -> None:
        self._modify(node, configured_gres={GRES_NAME: int(count)})

    def set_node_weight(self, node: str, weight: int) -> None:
        self._modify(node, weight=int(weight))

    def requeue_job(self, job_id: int) -> None:
        self._call("Job.requeue", self.pyslurm.Job(int(job_id)).requeue)

    def cancel_step(self, job_id: int, step: str) -> None:
        self._call("JobStep.cancel", self.pyslurm.JobStep(int(job_id), step).cancel)

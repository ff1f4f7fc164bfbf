"""What the policies decide: plain, immutable actions that the daemon applies (or the simulator
replays). A policy never performs I/O; it returns these."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SetComputeLimit:
    """Rewrite a job's compute target on one GPU in its limits file (permille of the device)."""

    job_id: int
    gpu_uuid: str
    permille: int
    reason: str


@dataclass(frozen=True, slots=True)
class SetNodeVgpuCount:
    """`scontrol update nodename=NODE gres=vgpu:COUNT` (backfill offer or withdrawal)."""

    node: str
    count: int
    reason: str


@dataclass(frozen=True, slots=True)
class SetNodeWeight:
    """`scontrol update nodename=NODE weight=WEIGHT` (packing)."""

    node: str
    weight: int
    reason: str


@dataclass(frozen=True, slots=True)
class RequeueJob:
    """`scontrol requeue JOB`: a backfilled job gives its borrowed memory back."""

    job_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class CancelStep:
    """`scancel JOB.STEP`: the backstop's answer to a step over its memory cap."""

    job_id: int
    step: str
    reason: str


@dataclass(frozen=True, slots=True)
class KillProcess:
    """SIGKILL a process on a sliced GPU that belongs to no live job step (escaped by setsid or
    a double fork, or left after its job ended). Applied only if, re-checked just before the
    kill, the pid is still not root's and still belongs to no job step."""

    node: str
    gpu_uuid: str
    pid: int
    reason: str


@dataclass(frozen=True, slots=True)
class RecordViolation:
    """The backstop found device memory over a cap (or unattributed): log, count, alert.

    job_id is None for memory held on a sliced GPU by processes of no known job."""

    node: str
    gpu_uuid: str
    job_id: int | None
    used_bytes: int
    limit_bytes: int
    pids: tuple[int, ...]
    reason: str
    # "memory" (over the cap or unattributed) or "compute" (device time over the share)
    kind: str = "memory"


Action = (
    SetComputeLimit | SetNodeVgpuCount | SetNodeWeight | RequeueJob | CancelStep | KillProcess
    | RecordViolation
)


def action_kind(action: Action) -> str:
    """Stable snake_case name of an action's type, for logs and the metrics' `action` label."""
    return _KINDS[type(action)]


_KINDS: dict[type, str] = {
    SetComputeLimit: "set_compute_limit",
    SetNodeVgpuCount: "set_node_vgpu_count",
    SetNodeWeight: "set_node_weight",
    RequeueJob: "requeue_job",
    CancelStep: "cancel_step",
    KillProcess: "kill_process",
    RecordViolation: "record_violation",
}

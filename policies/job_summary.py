"""The per-job utilization summary stored in Slurm's AdminComment (format: docs/accounting.md).

    vgpu1;sl:3;spg:10;g:GPU-8f2c41d0-...*3;obs:3600;avg:21.5;pk:30.0;mem:2048;bor:120;bf:0;bs:1

Writer: while the job runs `scontrol update job=ID AdminComment=...`; after it ended
`sacctmgr -i modify job jobid=ID set AdminComment=...` (scontrol refuses finished jobs).
sacctmgr stores the text lowercased, so the format is case-insensitive (the parser restores
the GPU-/MIG- prefix of UUIDs). Bounded to MAX_CHARS: GPU UUIDs are shortened first, then the
per-GPU list is cut (its totals stay in sl:), so the scalar figures always survive.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from slurm_vgpu.errors import VgpuError

VERSION = "vgpu1"
MAX_CHARS = 480
SHORT_UUID = 12  # "GPU-" + 8 hex digits

# A runner takes argv and returns (exit code, stdout, stderr); tests inject their own.
Runner = Callable[[Sequence[str]], tuple[int, str, str]]


class SummaryError(VgpuError):
    """A summary could not be written or parsed."""


@dataclass(frozen=True)
class GpuSlices:
    uuid: str
    slices: int


@dataclass(frozen=True)
class JobSummary:
    slices: int  # total slices allocated to the job
    slices_per_gpu: int  # the node's slice size: slices in one whole GPU
    gpus: tuple[GpuSlices, ...] = ()
    observed_s: int = 0  # seconds the daemon watched the job
    avg_compute_pct: float = 0.0  # average compute used, % of one whole GPU
    peak_compute_pct: float = 0.0
    peak_memory_mib: int = 0
    borrowed_s: int = 0  # seconds it ran above its share on idle capacity
    backfilled_s: int = 0  # seconds it ran as a backfill (lent slices) job
    backstop_events: int = 0
    gpus_dropped: int = 0  # per-GPU entries cut by the size bound (parser side)
    extra: dict[str, str] = field(default_factory=dict)  # unknown keys of a newer writer

    @property
    def spans(self) -> int:
        """How many GPUs the job's slices span."""
        return len(self.gpus) + self.gpus_dropped

    @property
    def allocated_gpu_fraction(self) -> float:
        return self.slices / self.slices_per_gpu if self.slices_per_gpu else 0.0

    @property
    def used_gpu_fraction(self) -> float:
        return self.avg_compute_pct / 100.0

    @property
    def efficiency_pct(self) -> float:
        """Average compute used over compute allocated."""
        alloc = self.allocated_gpu_fraction
        return 100.0 * self.used_gpu_fraction / alloc if alloc else 0.0


_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


def _num(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _gpu_list(gpus: Sequence[GpuSlices], short: bool) -> str:
    return "+".join(f"{g.uuid[:SHORT_UUID] if short else g.uuid}*{g.slices}" for g in gpus)


def format_summary(s: JobSummary, max_chars: int = MAX_CHARS) -> str:
    """Encode; at most max_chars characters, dropping detail in the documented order."""
    for g in s.gpus:
        if not _SAFE.match(g.uuid):
            raise SummaryError(f"GPU UUID {g.uuid!r} has characters outside [A-Za-z0-9._-]")
    head = f"{VERSION};sl:{s.slices};spg:{s.slices_per_gpu}"
    tail = (f";obs:{int(s.observed_s)};avg:{_num(s.avg_compute_pct)};"
            f"pk:{_num(s.peak_compute_pct)};mem:{int(s.peak_memory_mib)};"
            f"bor:{int(s.borrowed_s)};bf:{int(s.backfilled_s)};bs:{int(s.backstop_events)}")
    for short in (False, True):
        text = f"{head};g:{_gpu_list(s.gpus, short)}{tail}" if s.gpus else head + tail
        if len(text) <= max_chars:
            return text
    # cut the per-GPU list, keeping a count of what was dropped
    for keep in range(len(s.gpus) - 1, -1, -1):
        dropped = len(s.gpus) - keep
        listed = _gpu_list(s.gpus[:keep], True)
        text = f"{head};g:{listed};gx:{dropped}{tail}" if keep else f"{head};gx:{dropped}{tail}"
        if len(text) <= max_chars:
            return text
    raise SummaryError(f"summary does not fit in {max_chars} characters")


def _restore_case(uuid: str) -> str:
    # sacctmgr lowercases what it stores; NVIDIA UUIDs are GPU-/MIG- + lowercase hex
    for prefix in ("GPU-", "MIG-"):
        if uuid.lower().startswith(prefix.lower()):
            return prefix + uuid[len(prefix):].lower()
    return uuid


def parse_summary(text: str | None) -> JobSummary | None:
    """Decode an AdminComment; None when it holds no vgpu summary (or an unknown version)."""
    if not text:
        return None
    text = text.strip()
    parts = text.split(";")
    if parts[0] != VERSION:
        return None
    fields: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition(":")
        if not sep:
            raise SummaryError(f"summary field {part!r} is not key:value in {text!r}")
        fields[key] = value
    try:
        gpus: list[GpuSlices] = []
        if fields.get("g"):
            for item in fields["g"].split("+"):
                uuid, _, n = item.rpartition("*")
                gpus.append(GpuSlices(_restore_case(uuid), int(n)))
        known = {"sl", "spg", "g", "gx", "obs", "avg", "pk", "mem", "bor", "bf", "bs"}
        return JobSummary(
            slices=int(fields["sl"]), slices_per_gpu=int(fields["spg"]), gpus=tuple(gpus),
            observed_s=int(fields.get("obs", "0")),
            avg_compute_pct=float(fields.get("avg", "0")),
            peak_compute_pct=float(fields.get("pk", "0")),
            peak_memory_mib=int(fields.get("mem", "0")),
            borrowed_s=int(fields.get("bor", "0")), backfilled_s=int(fields.get("bf", "0")),
            backstop_events=int(fields.get("bs", "0")), gpus_dropped=int(fields.get("gx", "0")),
            extra={k: v for k, v in fields.items() if k not in known})
    except (KeyError, ValueError) as e:
        raise SummaryError(f"malformed vgpu summary {text!r}: {e}") from e


def subprocess_runner(argv: Sequence[str]) -> tuple[int, str, str]:
    """The default runner: the command with a 30 s timeout."""
    try:
        p = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]} did not finish within 30 s"
    except OSError as e:
        return 127, "", f"{argv[0]}: {e.strerror}"
    return p.returncode, p.stdout, p.stderr


def write_summary(job_id: str | int, summary: JobSummary, run: Runner = subprocess_runner,
                  running: bool | None = None) -> str:
    """Store the summary in the job's AdminComment and return the text written.

    running=True: scontrol only; False: sacctmgr only; None (job end, state unknown):
    scontrol first, sacctmgr when slurmctld refuses (the job already finished)."""
    jid = str(job_id)
    if not jid.replace("_", "").isdigit():
        raise SummaryError(f"job id {jid!r} is not a Slurm job id")
    text = format_summary(summary)
    errors = []
    if running is not False:
        rc, _, err = run(["scontrol", "update", f"job={jid}", f"AdminComment={text}"])
        if rc == 0:
            return text
        errors.append(f"scontrol: {err.strip()}")
    if running is not True:
        rc, out, err = run(["sacctmgr", "-i", "modify", "job", f"jobid={jid}", "set",
                            f"AdminComment={text}"])
        # sacctmgr exits 0 also when no job matched; it then says "Nothing modified"
        if rc == 0 and "nothing" not in (out + err).lower():
            return text
        errors.append(f"sacctmgr: {(err or out).strip() or f'exit {rc}'}")
    raise SummaryError(f"vgpu: could not store the summary of job {jid}: " + "; ".join(errors))

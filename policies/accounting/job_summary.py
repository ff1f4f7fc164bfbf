"""The per-job utilization summary stored in Slurm's AdminComment (format: docs/accounting.md).

    vgpu1;n:gpu01;sl:3;spg:10;g:GPU-8f2c41d0-...*3;obs:3600;avg:21.5;pk:30.0;mem:2048;bor:120;bf:0;bs:1

AdminComment is shared: the SPANK plugin records placements there (`vgpu:<node>=gpu0:3`), a
site may keep its own notes, and every node of a multi-node job has its own summary token
(`n:` names the node or nodes its daemon covers). Tokens are separated by spaces; a writer
replaces only its own summary token and keeps every other one. `parse_summary` combines the
summary tokens of all nodes into one job summary.

Writer: while the job runs `scontrol update job=ID AdminComment=...`; after it ended
`sacctmgr -i modify job jobid=ID set AdminComment=...` (scontrol refuses finished jobs).
sacctmgr stores the text lowercased, so the format is case-insensitive (the parser restores
the GPU-/MIG- prefix of UUIDs). Bounded to MAX_CHARS: GPU UUIDs are shortened first, then the
per-GPU list is cut (its totals stay in sl:), so the scalar figures always survive.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from slurm_vgpu.errors import VgpuError

VERSION = "vgpu1"
MAX_CHARS = 480
SHORT_UUID = 12  # "GPU-" + 8 hex digits

# A runner takes argv and returns (exit code, stdout, stderr); tests inject their own.
Runner = Callable[[Sequence[str]], tuple[int, str, str]]


class SummaryError(VgpuError):
    """A summary could not be written or parsed."""


DEFAULT_VENDOR = "nvidia"  # a summary without v: (older writers, NVIDIA-only jobs)


@dataclass(frozen=True)
class GpuSlices:
    uuid: str
    slices: int
    vendor: str = DEFAULT_VENDOR


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
    node: str = ""  # the node(s) the writing daemon covers, "+"-separated ("" = unknown)
    extra: dict[str, str] = field(default_factory=dict)  # unknown keys of a newer writer

    @property
    def vendor(self) -> str:
        """The vendor(s) of the job's GPUs: "nvidia", "amd", or "amd+nvidia" for a job on
        both (sorted); "nvidia" when no GPU is listed (older summaries knew no other)."""
        return "+".join(sorted({g.vendor for g in self.gpus})) or DEFAULT_VENDOR

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
_VERSION_TAG = re.compile(r"^vgpu[0-9]+;", re.IGNORECASE)


def _num(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _gpu_list(gpus: Sequence[GpuSlices], short: bool) -> str:
    return "+".join(f"{g.uuid[:SHORT_UUID] if short else g.uuid}*{g.slices}" for g in gpus)


def _vendors(gpus: Sequence[GpuSlices]) -> str:
    """The `v:` field of the listed GPUs: "" when all are NVIDIA (the field is left out, so
    NVIDIA-only summaries read as before), one vendor when all share it, else one per GPU in
    g: order."""
    vendors = [g.vendor for g in gpus]
    if all(v == DEFAULT_VENDOR for v in vendors):
        return ""
    if len(set(vendors)) == 1:
        return f";v:{vendors[0]}"
    return ";v:" + "+".join(vendors)


def format_summary(s: JobSummary, max_chars: int = MAX_CHARS) -> str:
    """Encode; at most max_chars characters, dropping detail in the documented order."""
    for g in s.gpus:
        if not _SAFE.match(g.uuid):
            raise SummaryError(f"GPU UUID {g.uuid!r} has characters outside [A-Za-z0-9._-]")
        if not _SAFE.match(g.vendor) or "+" in g.vendor:
            raise SummaryError(f"GPU vendor {g.vendor!r} has characters outside [A-Za-z0-9._-]")
    if s.node and not all(_SAFE.match(n) for n in s.node.split("+")):
        raise SummaryError(f"node name {s.node!r} has characters outside [A-Za-z0-9._-]")
    node = f";n:{s.node}" if s.node else ""
    head = f"{VERSION}{node};sl:{s.slices};spg:{s.slices_per_gpu}"
    tail = (f";obs:{int(s.observed_s)};avg:{_num(s.avg_compute_pct)};"
            f"pk:{_num(s.peak_compute_pct)};mem:{int(s.peak_memory_mib)};"
            f"bor:{int(s.borrowed_s)};bf:{int(s.backfilled_s)};bs:{int(s.backstop_events)}")
    for short in (False, True):
        text = (f"{head};g:{_gpu_list(s.gpus, short)}{_vendors(s.gpus)}{tail}" if s.gpus
                else head + tail)
        if len(text) <= max_chars:
            return text
    # cut the per-GPU list, keeping a count of what was dropped
    for keep in range(len(s.gpus) - 1, -1, -1):
        dropped = len(s.gpus) - keep
        listed = _gpu_list(s.gpus[:keep], True)
        text = (f"{head};g:{listed}{_vendors(s.gpus[:keep])};gx:{dropped}{tail}" if keep
                else f"{head};gx:{dropped}{tail}")
        if len(text) <= max_chars:
            return text
    raise SummaryError(f"summary does not fit in {max_chars} characters")


def _restore_case(uuid: str) -> str:
    # sacctmgr lowercases what it stores; NVIDIA UUIDs are GPU-/MIG- + lowercase hex
    for prefix in ("GPU-", "MIG-"):
        if uuid.lower().startswith(prefix.lower()):
            return prefix + uuid[len(prefix):].lower()
    return uuid


def summary_tokens(comment: str | None) -> list[str]:
    """The vgpu summary tokens of an AdminComment (any version), in order."""
    return [t for t in (comment or "").split() if _VERSION_TAG.match(t)]


def _token_nodes(token: str) -> set[str]:
    for part in token.split(";")[1:]:
        key, _, value = part.partition(":")
        if key.lower() == "n":
            return {n.lower() for n in value.split("+") if n}
    return set()


def _parse_token(text: str) -> JobSummary:
    parts = text.split(";")
    fields: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition(":")
        if not sep:
            raise SummaryError(f"summary field {part!r} is not key:value in {text!r}")
        fields[key.lower()] = value
    try:
        gpus: list[GpuSlices] = []
        if fields.get("g"):
            items = fields["g"].split("+")
            # v: one vendor for every GPU, or one per GPU; absent: NVIDIA (older summaries)
            vendors = [v.lower() for v in fields.get("v", "").split("+") if v]
            if len(vendors) == 1:
                vendors *= len(items)
            if vendors and len(vendors) != len(items):
                raise ValueError(f"v: names {len(vendors)} vendors for {len(items)} GPUs")
            for i, item in enumerate(items):
                uuid, _, n = item.rpartition("*")
                gpus.append(GpuSlices(_restore_case(uuid), int(n),
                                      vendors[i] if vendors else DEFAULT_VENDOR))
        known = {"n", "sl", "spg", "g", "v", "gx", "obs", "avg", "pk", "mem", "bor", "bf",
                 "bs"}
        return JobSummary(
            slices=int(fields["sl"]), slices_per_gpu=int(fields["spg"]), gpus=tuple(gpus),
            observed_s=int(fields.get("obs", "0")),
            avg_compute_pct=float(fields.get("avg", "0")),
            peak_compute_pct=float(fields.get("pk", "0")),
            peak_memory_mib=int(fields.get("mem", "0")),
            borrowed_s=int(fields.get("bor", "0")), backfilled_s=int(fields.get("bf", "0")),
            backstop_events=int(fields.get("bs", "0")), gpus_dropped=int(fields.get("gx", "0")),
            node=fields.get("n", ""),
            extra={k: v for k, v in fields.items() if k not in known})
    except (KeyError, ValueError) as e:
        raise SummaryError(f"malformed vgpu summary {text!r}: {e}") from e


def combine_summaries(parts: Sequence[JobSummary]) -> JobSummary:
    """One job summary from its nodes' summaries. Slices, GPUs, compute (% of one GPU),
    memory and backstop events add up; observed, borrowed and backfilled seconds are the
    longest of any node; the peak is the sum of the nodes' peaks (an upper bound: they need
    not have coincided)."""
    if len(parts) == 1:
        return parts[0]
    extra: dict[str, str] = {}
    for p in parts:
        extra.update(p.extra)
    return JobSummary(
        slices=sum(p.slices for p in parts),
        slices_per_gpu=max(p.slices_per_gpu for p in parts),
        gpus=tuple(g for p in parts for g in p.gpus),
        observed_s=max(p.observed_s for p in parts),
        avg_compute_pct=round(sum(p.avg_compute_pct for p in parts), 1),
        peak_compute_pct=round(sum(p.peak_compute_pct for p in parts), 1),
        peak_memory_mib=sum(p.peak_memory_mib for p in parts),
        borrowed_s=max(p.borrowed_s for p in parts),
        backfilled_s=max(p.backfilled_s for p in parts),
        backstop_events=sum(p.backstop_events for p in parts),
        gpus_dropped=sum(p.gpus_dropped for p in parts),
        node="+".join(p.node for p in parts if p.node),
        extra=extra)


def parse_summary(text: str | None, nodes: Collection[str] | None = None
                  ) -> JobSummary | None:
    """Decode the vgpu summary of an AdminComment: every `vgpu1;...` token in it (one per
    node of a multi-node job), combined. None when it holds none of this version. `nodes`:
    only the tokens written for these nodes (a restarted daemon continuing its own figures;
    a token without `n:` counts as theirs when it is the only one)."""
    tokens = [t for t in summary_tokens(text) if t.split(";")[0].lower() == VERSION]
    if nodes is not None:
        wanted = {n.lower() for n in nodes}
        tokens = [t for t in tokens
                  if (_token_nodes(t) & wanted) or (not _token_nodes(t) and len(tokens) == 1)]
    if not tokens:
        return None
    return combine_summaries([_parse_token(t) for t in tokens])


def merge_comment(current: str, token: str) -> str:
    """`current` with `token` in place of the summary token(s) of the same node(s) (or of no
    node), every other token kept in order; the token goes last."""
    mine = _token_nodes(token)
    kept = []
    for t in (current or "").split():
        if _VERSION_TAG.match(t):
            theirs = _token_nodes(t)
            if (theirs & mine) or not theirs:
                continue
        kept.append(t)
    return " ".join([*kept, token])


def union_comments(first: str | None, second: str | None) -> str:
    """Tokens of `first`, then those of `second` it lacks (compared without case: sacctmgr
    lowercases). Summary tokens of a node come from `first` when both have one."""
    tokens = (first or "").split()
    seen = {t.lower() for t in tokens}
    nodes_seen = set().union(*(_token_nodes(t) for t in tokens if _VERSION_TAG.match(t)))
    for t in (second or "").split():
        if t.lower() in seen:
            continue
        if _VERSION_TAG.match(t) and _token_nodes(t) & nodes_seen:
            continue
        tokens.append(t)
        seen.add(t.lower())
    return " ".join(tokens)


def subprocess_runner(argv: Sequence[str]) -> tuple[int, str, str]:
    """The default runner: the command with a 30 s timeout."""
    try:
        p = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]} did not finish within 30 s"
    except OSError as e:
        return 127, "", f"{argv[0]}: {e.strerror}"
    return p.returncode, p.stdout, p.stderr


def read_admin_comment(job_id: str | int, run: Runner = subprocess_runner) -> str | None:
    """The job's AdminComment as slurmdbd has it (`sacct`), or None when it cannot tell."""
    rc, out, _ = run(["sacct", "-X", "-n", "-P", "-j", str(job_id), "-o", "AdminComment"])
    if rc != 0:
        return None
    lines = out.splitlines()
    return lines[0].strip() if lines else None


def write_summary(job_id: str | int, summary: JobSummary, run: Runner = subprocess_runner,
                  running: bool | None = None, known_comment: str = "") -> str:
    """Put the summary into the job's AdminComment, keeping every other token of it (the
    plugin's placement records, other nodes' summaries, a site's notes), and return the
    AdminComment written.

    While the job runs (running=True, scontrol only) `known_comment`, what slurmctld reported
    in this control period, is the current AdminComment. At or after its end (None: scontrol
    first, sacctmgr when slurmctld refuses; False: sacctmgr only) other nodes' daemons may
    have written since, so the accounting copy (`sacct`, one command) is united with it.
    Reading the database only then keeps periodic refreshes off slurmdbd."""
    return write_summary_token(job_id, format_summary(summary), run, running, known_comment)


def write_summary_token(job_id: str | int, token: str, run: Runner = subprocess_runner,
                        running: bool | None = None, known_comment: str = "") -> str:
    """`write_summary` of an already formatted summary token (the cluster controller stores
    the tokens its node agents send)."""
    jid = str(job_id)
    if not jid.replace("_", "").isdigit():
        raise SummaryError(f"job id {jid!r} is not a Slurm job id")
    if not _VERSION_TAG.match(token) or any(c.isspace() for c in token):
        raise SummaryError(f"job {jid}: {token[:40]!r} is not a summary token")
    current = known_comment if running else union_comments(read_admin_comment(jid, run),
                                                           known_comment)
    text = merge_comment(current, token)
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

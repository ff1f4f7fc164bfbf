"""Slice utilization from Slurm accounting (`sacct --json`) and the job summaries.

Allocated slice-hours = vgpu slices (AllocTRES gres/vgpu) x elapsed hours. Used slice-hours =
the summary's average compute (% of a whole GPU) x slices per GPU x elapsed hours.
Efficiency = used / allocated, over jobs that have a summary only; jobs without one are
counted and reported apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from slurm_vgpu.errors import VgpuError
from slurm_vgpu.policies.accounting.job_summary import JobSummary, SummaryError, parse_summary

SacctRunner = Callable[[Sequence[str]], str]  # argv -> stdout of `sacct --json`


class ReportError(VgpuError):
    """sacct failed or printed something that is not its JSON."""


@dataclass
class JobRecord:
    job_id: str
    user: str
    account: str
    partition: str
    state: str
    elapsed_s: int
    slices: int
    summary: JobSummary | None
    summary_error: str = ""

    @property
    def alloc_slice_h(self) -> float:
        return self.slices * self.elapsed_s / 3600.0

    @property
    def vendor(self) -> str:
        """The vendor(s) of the job's GPUs from its summary ("nvidia", "amd", "amd+nvidia";
        summaries of older writers read as nvidia); "unknown" without a summary."""
        return self.summary.vendor if self.summary is not None else "unknown"

    @property
    def used_slice_h(self) -> float:
        if self.summary is None:
            return 0.0
        used_slices = self.summary.avg_compute_pct / 100.0 * self.summary.slices_per_gpu
        return used_slices * self.elapsed_s / 3600.0


@dataclass
class Group:
    key: str
    jobs: int = 0
    jobs_with_summary: int = 0
    alloc_slice_h: float = 0.0  # all vgpu jobs
    summarized_alloc_slice_h: float = 0.0  # jobs with a summary
    used_slice_h: float = 0.0

    @property
    def efficiency_pct(self) -> float | None:
        if self.summarized_alloc_slice_h <= 0:
            return None
        return 100.0 * self.used_slice_h / self.summarized_alloc_slice_h

    def add(self, job: JobRecord) -> None:
        self.jobs += 1
        self.alloc_slice_h += job.alloc_slice_h
        if job.summary is not None:
            self.jobs_with_summary += 1
            self.summarized_alloc_slice_h += job.alloc_slice_h
            self.used_slice_h += job.used_slice_h


def _vgpu_slices(job: dict[str, Any]) -> int:
    tres = job.get("tres") or {}
    for item in tres.get("allocated") or []:
        if item.get("type") == "gres" and item.get("name") == "vgpu":
            return int(item.get("count") or 0)
    return 0


def _admin_comment(job: dict[str, Any]) -> str:
    comment = job.get("comment")
    if isinstance(comment, dict):
        return str(comment.get("administrator") or "")
    return str(job.get("admin_comment") or "")


def parse_sacct_json(text: str) -> list[JobRecord]:
    """Jobs with vgpu slices from `sacct --json` output (Slurm 22.05 layout)."""
    try:
        doc = json.loads(text)
        raw_jobs = doc["jobs"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ReportError(f"sacct --json printed something unexpected: {e}") from e
    records = []
    for job in raw_jobs:
        slices = _vgpu_slices(job)
        if slices <= 0:
            continue
        comment = _admin_comment(job)
        summary: JobSummary | None = None
        error = ""
        try:
            summary = parse_summary(comment)
        except SummaryError as e:
            error = str(e)
        time = job.get("time") or {}
        state = job.get("state") or {}
        records.append(JobRecord(
            job_id=str(job.get("job_id", "?")), user=str(job.get("user") or "?"),
            account=str(job.get("account") or "?"), partition=str(job.get("partition") or "?"),
            state=str(state.get("current", "?") if isinstance(state, dict) else state),
            elapsed_s=int(time.get("elapsed") or 0), slices=slices, summary=summary,
            summary_error=error))
    return records


def sacct_argv(start: str | None, end: str | None, job: str | None) -> list[str]:
    argv = ["sacct", "--json", "-X", "--allusers"]
    if job is not None:
        argv += ["-j", job]
    else:
        argv += ["-S", start or "now-1days", "-E", end or "now"]
    return argv


@dataclass
class Report:
    start: str
    end: str
    jobs: int
    jobs_without_summary: int
    total: Group
    by_user: list[Group]
    by_account: list[Group]
    by_partition: list[Group]
    worst_jobs: list[JobRecord]
    by_vendor: list[Group] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def group(g: Group) -> dict[str, Any]:
            d = asdict(g)
            d["efficiency_pct"] = None if g.efficiency_pct is None else round(g.efficiency_pct, 2)
            for k in ("alloc_slice_h", "summarized_alloc_slice_h", "used_slice_h"):
                d[k] = round(d[k], 3)
            return d
        return {
            "start": self.start, "end": self.end, "jobs": self.jobs,
            "jobs_without_summary": self.jobs_without_summary, "total": group(self.total),
            "by_user": [group(g) for g in self.by_user],
            "by_account": [group(g) for g in self.by_account],
            "by_partition": [group(g) for g in self.by_partition],
            "by_vendor": [group(g) for g in self.by_vendor],
            "worst_jobs": [{"job_id": j.job_id, "user": j.user, "account": j.account,
                            "partition": j.partition, "vendor": j.vendor, "slices": j.slices,
                            "elapsed_s": j.elapsed_s,
                            "alloc_slice_h": round(j.alloc_slice_h, 3),
                            "used_slice_h": round(j.used_slice_h, 3),
                            "efficiency_pct": round(j.summary.efficiency_pct, 2)
                            if j.summary else None} for j in self.worst_jobs],
        }


def _grouped(records: list[JobRecord], key: Callable[[JobRecord], str]) -> list[Group]:
    groups: dict[str, Group] = {}
    for r in records:
        k = key(r)
        g = groups.get(k)
        if g is None:
            g = groups[k] = Group(k)
        g.add(r)
    return sorted(groups.values(), key=lambda g: (-g.alloc_slice_h, g.key))


def build_report(records: list[JobRecord], start: str, end: str, worst: int = 10) -> Report:
    total = Group("all")
    for r in records:
        total.add(r)
    # worst: the least efficient jobs among those holding at least 0.1 slice-hour
    candidates = [r for r in records if r.summary is not None and r.alloc_slice_h >= 0.1]
    candidates.sort(key=lambda r: (r.used_slice_h / r.alloc_slice_h, -r.alloc_slice_h,
                                   r.job_id))
    return Report(start, end, len(records), sum(1 for r in records if r.summary is None),
                  total, _grouped(records, lambda r: r.user),
                  _grouped(records, lambda r: r.account),
                  _grouped(records, lambda r: r.partition), candidates[:worst],
                  _grouped(records, lambda r: r.vendor))


def _eff(g: Group) -> str:
    e = g.efficiency_pct
    return "-" if e is None else f"{e:.1f}%"


def format_table(rep: Report) -> str:
    lines = [f"vGPU slice utilization {rep.start} .. {rep.end}: {rep.jobs} jobs with slices"]
    if rep.jobs_without_summary:
        lines.append(f"note: {rep.jobs_without_summary} of them have no vgpu summary "
                     "(no policy daemon, or it was down at job end); they count in "
                     "allocated slice-hours but not in efficiency")
    t = rep.total
    lines.append(f"total: allocated {t.alloc_slice_h:.1f} slice-h, used {t.used_slice_h:.1f} "
                 f"slice-h, efficiency {_eff(t)}")
    for title, groups in (("user", rep.by_user), ("account", rep.by_account),
                          ("partition", rep.by_partition), ("vendor", rep.by_vendor)):
        lines.append("")
        lines.append(f"{title.upper():<16} {'JOBS':>7} {'NO-SUM':>7} {'ALLOC-SH':>10} "
                     f"{'USED-SH':>10} {'EFFIC':>7}")
        for g in groups:
            lines.append(f"{g.key[:16]:<16} {g.jobs:>7} {g.jobs - g.jobs_with_summary:>7} "
                         f"{g.alloc_slice_h:>10.1f} {g.used_slice_h:>10.1f} {_eff(g):>7}")
    if rep.worst_jobs:
        lines.append("")
        lines.append(f"{'WORST JOBS':<12} {'USER':<12} {'SLICES':>6} {'ALLOC-SH':>10} "
                     f"{'USED-SH':>10} {'EFFIC':>7} VENDOR")
        for j in rep.worst_jobs:
            eff = j.summary.efficiency_pct if j.summary else 0.0
            lines.append(f"{j.job_id:<12} {j.user[:12]:<12} {j.slices:>6} "
                         f"{j.alloc_slice_h:>10.2f} {j.used_slice_h:>10.2f} {eff:>6.1f}% "
                         f"{j.vendor}")
    return "\n".join(lines)


def _hms(seconds: int) -> str:
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h:d}:{m:02d}:{s:02d}"


def format_job(r: JobRecord) -> str:
    """One job, human readable (in the spirit of jobstats)."""
    lines = [f"Job {r.job_id}  user {r.user}  account {r.account}  partition {r.partition}",
             f"  state {r.state}, ran {_hms(r.elapsed_s)}, {r.slices} vgpu slices"]
    s = r.summary
    if s is None:
        why = r.summary_error or "no vgpu summary in AdminComment (policy daemon not running?)"
        lines.append(f"  {why}")
        return "\n".join(lines)
    pct = 100.0 / s.slices_per_gpu if s.slices_per_gpu else 0.0
    lines.append(f"  slices: {s.slices} of {s.slices_per_gpu} per GPU ({pct:.0f}% of a GPU "
                 f"each), spanning {s.spans} GPU(s) ({s.vendor})")
    for g in s.gpus:
        lines.append(f"    {g.uuid}: {g.slices} slices, {g.vendor}")
    if s.gpus_dropped:
        lines.append(f"    ... {s.gpus_dropped} more GPU(s) (cut by the summary size bound)")
    alloc = s.allocated_gpu_fraction * 100
    lines.append(f"  compute: average {s.avg_compute_pct:.1f}% of a GPU, peak "
                 f"{s.peak_compute_pct:.1f}% (allocated {alloc:.0f}%): efficiency "
                 f"{s.efficiency_pct:.1f}%")
    lines.append(f"  memory: peak {s.peak_memory_mib} MiB")
    lines.append(f"  observed {_hms(s.observed_s)}; borrowed idle capacity {_hms(s.borrowed_s)}; "
                 f"backfilled {_hms(s.backfilled_s)}; backstop events {s.backstop_events}")
    if s.efficiency_pct < 25 and s.observed_s > 0:
        lines.append("  hint: this job used under a quarter of its slices; ask for fewer")
    return "\n".join(lines)


def plot_report(rep: Report, path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ReportError("--png needs matplotlib: pip install matplotlib "
                          "(or the project's dev extra)") from e
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (title, groups) in zip(axes, (("user", rep.by_user[:15]),
                                          ("account", rep.by_account[:15])), strict=True):
        keys = [g.key for g in groups]
        ax.bar(keys, [g.alloc_slice_h for g in groups], label="allocated", color="#bbbbbb")
        ax.bar(keys, [g.used_slice_h for g in groups], label="used", color="#1f77b4")
        ax.set_title(f"slice-hours by {title}")
        ax.set_ylabel("slice-hours")
        ax.tick_params(axis="x", rotation=45)
        ax.legend()
    fig.suptitle(f"vGPU utilization {rep.start} .. {rep.end}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)

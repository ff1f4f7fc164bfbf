"""The cluster controller's job read: `squeue`'s formatted output instead of `--json`.

On Slurm 22.05, `squeue --json` of 68,000 jobs printed 215 MB and took 10.4 s; the same jobs
with only the fields below took 0.64 s and 4.6 MB (bench/results/scale-capture.json). Both are
one REQUEST_JOB_INFO to slurmctld; the difference is all in the client. The formatted output
has no AdminComment (22.05's `-O` does not know it), so this client says so
(`reports_admin_comment`) and the controller keeps the comments it wrote itself and reads the
accounting copy the first time it stores a job's summary (controller.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from slurm_vgpu.policies.decide.snapshot import PendingJob
from slurm_vgpu.policies.slurm.slurm_client import (
    CliSlurmClient,
    SlurmJob,
    expand_hostlist,
    gres_count,
    waits_for_capacity,
)

# One line per job; "|" appears in none of these fields (Slurm names cannot hold it). A field
# with a suffix is printed in full (no width, no truncation).
SQUEUE_FORMAT = ("JobID:|,StateCompact:|,Partition:|,QOS:|,UserID:|,StartTime:|,NodeList:|,"
                 "tres-per-node:|,Reason:")
_FIELDS = 9


def _start_time(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()  # squeue prints local time
    except ValueError:
        return 0.0  # N/A, Unknown


def _null(text: str) -> str:
    return "" if text in ("(null)", "N/A") else text


def parse_squeue_formatted(text: str) -> tuple[list[SlurmJob], list[PendingJob]]:
    """Running vgpu jobs and vgpu jobs waiting for capacity, from `squeue -h -O SQUEUE_FORMAT`
    (lines that do not have the fields are skipped)."""
    running: list[SlurmJob] = []
    pending: list[PendingJob] = []
    # 100,000 jobs hold a few dozen distinct requests and reasons: parse each once
    counts: dict[str, int | None] = {}
    waiting: dict[str, bool] = {}
    for line in text.splitlines():
        f = line.split("|")
        if len(f) != _FIELDS or not f[0].isdigit():
            continue  # array meta records (123_[1-9]) and anything unexpected
        job_id, state, partition, qos, uid, start, nodes, tres, reason = f
        count = counts.get(tres, -1)
        if count == -1:
            count = counts[tres] = gres_count(tres)
        if not count:
            continue
        if state == "R":
            running.append(SlurmJob(
                job_id=int(job_id), state="RUNNING", partition=partition, qos=_null(qos),
                user_id=int(uid) if uid.isdigit() else 0, start_time=_start_time(start),
                vgpu_per_node=dict.fromkeys(expand_hostlist(nodes), count)))
        elif state == "PD" and waiting.setdefault(reason, waits_for_capacity(reason)):
            pending.append(PendingJob(int(job_id), tuple(p for p in partition.split(",") if p),
                                      _null(qos), count))
    return running, pending


class FormattedSlurmClient(CliSlurmClient):
    """The CLI client with the job table read from squeue's formatted output (the cluster
    controller's choice; the node-side daemon keeps `--json`)."""

    reports_admin_comment = False

    def running_jobs(self, nodes: Sequence[str] | None = None) -> list[SlurmJob]:
        out = self._run("squeue", "-h", "-a", "-t", "PENDING,RUNNING", "-O", SQUEUE_FORMAT)
        running, self._pending = parse_squeue_formatted(out)
        if nodes is not None:
            wanted = set(nodes)
            running = [j for j in running if wanted & set(j.vgpu_per_node)]
        return running

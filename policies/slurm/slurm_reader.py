"""The cluster controller's reads of slurmctld through `vgpu-slurm-read` (spank/slurm_read.c).

The program makes the RPCs that `squeue` and `sinfo` make, through libslurm, and prints only
what the controller uses: running vgpu jobs in full, waiting ones folded by (partitions, QOS,
request) in scheduling order, and one short line per node. At 140,000 jobs and 10,000 nodes
that is about 2 MB of lines instead of squeue's sorted, formatted 9 MB and sinfo's 12 MB of
JSON (bench/results/scale-controller.json). Most lines are the same from one period to the
next (running jobs, nodes), so each distinct line is parsed once and its record reused.
Without the program (a host with only the Python package) the controller reads squeue's
formatted output and sinfo's JSON: the same answers, slower.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from slurm_vgpu.policies.decide.snapshot import PendingJob
from slurm_vgpu.policies.slurm.slurm_client import (
    SlurmJob,
    SlurmNode,
    SlurmUnavailable,
    expand_hostlist,
    gres_count,
)
from slurm_vgpu.policies.slurm.squeue_formatted import FormattedSlurmClient

PROGRAM = "vgpu-slurm-read"
# Where `make install` (PREFIX=/usr/local) and the .deb (PREFIX=/usr) put it.
INSTALLED = (Path("/usr/lib/slurm-vgpu") / PROGRAM, Path("/usr/local/lib/slurm-vgpu") / PROGRAM)
FORMAT_VERSION = "1"


# `vgpu-slurm-read states` on a Slurm older than 24.05 (no REQUEST_JOB_STATE)
NOT_IN_THIS_RELEASE = 3


class SlurmReaderError(SlurmUnavailable):
    """The program's output is not what this version of the controller reads."""


class _NotInThisRelease(Exception):
    pass


class ReaderTooOld(SlurmUnavailable):
    """The installed program predates a table this controller reads (it answers with its
    usage); the caller falls back to Slurm's commands for that read."""


# what the program exits with on a usage error, a table it does not know among them
USAGE = 2


def find_slurm_reader(setting: str) -> str | None:
    """`slurm.reader`: "cli" (never the program), an absolute path (that program), or "auto"
    (the installed program if there is one)."""
    if setting == "cli":
        return None
    if setting != "auto":
        return setting
    for path in INSTALLED:
        if os.access(path, os.X_OK):
            return str(path)
    return None


def _check_header(lines: list[str], table: str) -> None:
    head = lines[0].split("|") if lines else []
    if len(head) != 4 or head[:3] != ["V", FORMAT_VERSION, table]:
        raise SlurmReaderError(
            f"{PROGRAM} {table} printed {lines[0][:60] if lines else 'nothing'!r}, not its "
            f"format {FORMAT_VERSION} header: install the {PROGRAM} of this slurm-vgpu version")


def _bad_line(line: str, why: str) -> SlurmReaderError:
    return SlurmReaderError(f"{PROGRAM}: cannot read the line {line[:80]!r} ({why})")


class ReaderParser:
    """Parses the program's output, keeping each distinct running-job and node line's record
    for the next read (records are frozen, so sharing them is safe)."""

    def __init__(self) -> None:
        self._jobs: dict[str, SlurmJob | None] = {}
        self._nodes: dict[str, SlurmNode] = {}

    def jobs(self, text: str) -> tuple[list[SlurmJob], list[PendingJob]]:
        """Running vgpu jobs and the first waiting job of each (partitions, QOS, request)."""
        running, groups = self.job_groups(text)
        return running, [p for p, _ in groups]

    def job_groups(self, text: str
                   ) -> tuple[list[SlurmJob], list[tuple[PendingJob, tuple[int, ...]]]]:
        """Running vgpu jobs, and each (partitions, QOS, request)'s first waiting job with the
        ids of all its waiting jobs in scheduling order (only the first where the program
        does not print them: that one alone)."""
        lines = text.splitlines()
        _check_header(lines, "jobs")
        cache = self._jobs
        seen: dict[str, SlurmJob | None] = {}
        running: list[SlurmJob] = []
        pending: list[tuple[PendingJob, tuple[int, ...]]] = []
        for line in lines[1:]:
            if line in cache:
                job = seen[line] = cache[line]
                if job is not None:
                    running.append(job)
                continue
            f = line.split("|")
            try:
                if f[0] == "R" and len(f) == 8:
                    count = gres_count(f[7])
                    job = SlurmJob(
                        job_id=int(f[1]), state="RUNNING", partition=f[2], qos=f[3],
                        user_id=int(f[4]), start_time=float(f[5]),
                        vgpu_per_node=dict.fromkeys(expand_hostlist(f[6]), count)
                    ) if count else None
                    seen[line] = job
                    if job is not None:
                        running.append(job)
                elif f[0] == "P" and len(f) in (6, 7):
                    count = gres_count(f[4])
                    if count:
                        first = int(f[1])
                        ids = tuple(map(int, f[6].split(","))) if len(f) == 7 else (first,)
                        if not ids or ids[0] != first:
                            raise ValueError("its job ids do not start with its first job")
                        pending.append((PendingJob(first, tuple(p for p in f[2].split(",")
                                                                if p), f[3], count), ids))
                else:
                    raise ValueError("not an R or P record")
            except ValueError as e:
                raise _bad_line(line, str(e)) from e
        self._jobs = seen  # jobs that ended are forgotten
        return running, pending

    def states(self, text: str) -> dict[int, str]:
        """Job id -> "R" (running), "P" (pending) or "-" (neither) for the asked jobs whose
        state is not the one the controller believed."""
        lines = text.splitlines()
        _check_header(lines, "states")
        states: dict[int, str] = {}
        for line in lines[1:]:
            f = line.split("|")
            if len(f) != 3 or f[0] != "S" or f[2] not in ("R", "P", "-"):
                raise _bad_line(line, "not an S record")
            try:
                states[int(f[1])] = f[2]
            except ValueError as e:
                raise _bad_line(line, str(e)) from e
        return states

    def nodes(self, text: str, names: Sequence[str] | None = None) -> list[SlurmNode]:
        lines = text.splitlines()
        _check_header(lines, "nodes")
        wanted = set(names) if names is not None else None
        cache = self._nodes
        seen: dict[str, SlurmNode] = {}
        nodes: list[SlurmNode] = []
        for line in lines[1:]:
            node = cache.get(line)
            if node is None:
                f = line.split("|")
                try:
                    if f[0] != "N" or len(f) != 7:
                        raise ValueError("not an N record")
                    node = SlurmNode(name=f[1], state=f[2], vgpu_count=gres_count(f[3]),
                                     vgpu_used=gres_count(f[4]), weight=int(f[5]),
                                     partitions=tuple(p for p in f[6].split(",") if p))
                except ValueError as e:
                    raise _bad_line(line, str(e)) from e
            seen[line] = node
            if wanted is None or node.name in wanted:
                nodes.append(node)
        self._nodes = seen
        return nodes


class ReaderSlurmClient(FormattedSlurmClient):
    """The CLI client with the job and node tables read by `vgpu-slurm-read` (at `program`);
    writes (scontrol update, requeue, scancel) stay the CLI's."""

    def __init__(self, program: str, bin_dir: str | None = None, timeout: float = 10.0) -> None:
        super().__init__(bin_dir, timeout)
        self.program = program
        self.parser = ReaderParser()
        # None until the first `states` read says whether this Slurm has REQUEST_JOB_STATE
        self.has_job_states: bool | None = None

    def job_groups(self) -> tuple[list[SlurmJob], list[tuple[PendingJob, tuple[int, ...]]]]:
        """One read of the whole job table (REQUEST_JOB_INFO): running vgpu jobs, and the
        waiting ones by (partitions, QOS, request) with all their ids."""
        return self.parser.job_groups(self._read("jobs"))

    def job_states(self, believed: Mapping[int, str]) -> dict[int, str] | None:
        """The jobs whose state is no longer the believed one ("R" running, "P" pending), with
        their state now ("R", "P", or "-": neither), in one REQUEST_JOB_STATE (ids and states
        only); None where Slurm is older than 24.05 and has no such RPC."""
        if self.has_job_states is False:
            return None
        try:
            text = self._read("states", " ".join([f"{i}{s}" for i, s in believed.items()]))
        except _NotInThisRelease:
            self.has_job_states = False
            return None
        self.has_job_states = True
        return self.parser.states(text)

    def held_jobs(self, max_wait_seconds: int, also: Collection[int] = ()) -> str:
        """`vgpu-slurm-read held`: the pending jobs waiting for a begin time at most
        `max_wait_seconds` after their submission (as job_submit.lua holds them for the
        steering) and the jobs in `also`; parsed by steering_reads.parse_held."""
        try:
            return self._read("held", " ".join(str(int(i)) for i in also),
                              str(int(max_wait_seconds)))
        except _NotInThisRelease as e:
            raise ReaderTooOld(f"{self.program} has no 'held' table ({e}): install the "
                               f"{PROGRAM} of this slurm-vgpu version") from e

    def running_jobs(self, nodes: Sequence[str] | None = None) -> list[SlurmJob]:
        running, self._pending = self.parser.jobs(self._read("jobs"))
        if nodes is not None:
            wanted = set(nodes)
            running = [j for j in running if wanted & set(j.vgpu_per_node)]
        return running

    def nodes(self, names: Sequence[str] | None = None) -> list[SlurmNode]:
        return self.parser.nodes(self._read("nodes"), names)

    def _read(self, table: str, stdin: str = "", *args: str) -> str:
        self.calls += 1
        argv = [self.program, table, *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout,
                                  env=self.env, check=False, input=stdin)
        except OSError as e:
            raise SlurmUnavailable(f"{self.program}: {e.strerror or e} (slurm.reader: the "
                                   f"installed {PROGRAM}, or cli)") from e
        except subprocess.TimeoutExpired as e:
            raise SlurmUnavailable(f"{' '.join(argv)} timed out after {self.timeout:g}s") from e
        if (done.returncode == NOT_IN_THIS_RELEASE and table == "states") or \
                (done.returncode == USAGE and table == "held" and "usage" in done.stderr):
            raise _NotInThisRelease(done.stderr.strip())
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise SlurmUnavailable(f"{' '.join(argv)} failed (exit {done.returncode}): "
                                   f"{lines[-1] if lines else 'no message'}")
        return done.stdout

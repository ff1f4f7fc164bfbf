"""`<runtime_dir>/lent`: the slices the daemon lends on this node, GPU by GPU, and which jobs
may use them, for the SPANK plugin (docs/contracts.md). Raising the node's vgpu count lets
slurmctld start a preemptible job on lent slices; this file tells the plugin on which GPU those
slices are, and which partitions/QOS count as preemptible, so it can place such a job there
although the GPU is fully booked by idle owners (and refuse lent slices to any other job).

Format (like the node inventory: line-oriented, `#` comments, key=value tokens):

    # slurm-vgpu lent slices (written by vgpu daemon; do not edit)
    version=2
    node=n1
    preemptible partitions=scavenger,other qos=scavenger
    gpu index=0 uuid=GPU-... slices=4

Version 2 added the `preemptible` record (always written, lists may be empty); the plugin
reads only version 2. Written atomically (temp file + rename), root-owned 0644, only when its
content changes. An absent file or no `gpu` line means nothing is lent.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from slurm_vgpu.policies.decide.snapshot import GpuState

HEADER = "# slurm-vgpu lent slices (written by vgpu daemon; do not edit)"
VERSION = 2
# A partition or QOS name the plugin accepts: printable ASCII without space, ',', '=' or '#'
# (the file's separators and comment mark). Slurm's own names are a subset.
NAME_RE = re.compile(r"[!-~]+")
_NAME_FORBIDDEN = set(",=#")


def valid_name(name: str) -> bool:
    return bool(NAME_RE.fullmatch(name)) and not _NAME_FORBIDDEN & set(name)


@dataclass(frozen=True, slots=True)
class LentFile:
    node: str = ""
    gpus: dict[int, int] = field(default_factory=dict)  # gpu index -> lent slices
    partitions: tuple[str, ...] = ()
    qos: tuple[str, ...] = ()


def format_lent(node: str, gpus: Sequence[GpuState], lent: Mapping[str, int],
                partitions: Sequence[str] = (), qos: Sequence[str] = ()) -> str:
    bad = [n for n in (*partitions, *qos) if not valid_name(n)]
    if bad:
        raise ValueError(f"partition/QOS name {bad[0]!r} cannot be written to the lent file "
                         "(no spaces, ',', '=' or '#')")
    lines = [HEADER, f"version={VERSION}", f"node={node}",
             f"preemptible partitions={','.join(partitions)} qos={','.join(qos)}"]
    for gpu in gpus:
        n = lent.get(gpu.uuid, 0)
        if n > 0:
            lines.append(f"gpu index={gpu.index} uuid={gpu.uuid} slices={n}")
    return "\n".join(lines) + "\n"


def _fields(line: str) -> dict[str, str]:
    return dict(tok.split("=", 1) for tok in line.split()[1:] if "=" in tok)


def _names(value: str) -> tuple[str, ...]:
    return tuple(n for n in value.split(",") if n)


def parse_lent_file(text: str) -> LentFile:
    """The whole file (for tests and `vgpu status`); raises ValueError/KeyError on bad lines."""
    node, gpus = "", {}
    partitions: tuple[str, ...] = ()
    qos: tuple[str, ...] = ()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("node="):
            node = line[5:]
        elif line.startswith("preemptible ") or line == "preemptible":
            fields = _fields(line)
            partitions = _names(fields.get("partitions", ""))
            qos = _names(fields.get("qos", ""))
        elif line.startswith("gpu "):
            fields = _fields(line)
            gpus[int(fields["index"])] = int(fields["slices"])
    return LentFile(node, gpus, partitions, qos)


def parse_lent(text: str) -> dict[int, int]:
    """gpu index -> lent slices (for tests and `vgpu status`)."""
    return parse_lent_file(text).gpus


def write_lent(path: Path, content: str) -> bool:
    """Replace the file atomically if its content differs; returns whether it was written."""
    try:
        if path.read_text() == content:
            return False
    except OSError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                 0o644)
    try:
        os.write(fd, content.encode())
        os.fchmod(fd, 0o644)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return True


REFUSED_NAME = "lent.refused"


def read_lent_refused(path: Path) -> float | None:
    """`<runtime_dir>/lent.refused`, written by the SPANK plugin when it requeued a job that is
    not preemptible because slurmctld started it on lent slices (docs/contracts.md): one line
    `time=<unix seconds> job=<id> slices=<n>`. Returns that time, or None when the file is
    absent or not root's own regular file (anyone else's would let a user stop backfill). A
    root-owned file whose time cannot be read counts from its modification time."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
            return None
        text = os.read(fd, 4096).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    for tok in text.split():
        if tok.startswith("time="):
            try:
                return float(int(tok[5:]))
            except ValueError:
                break
    return float(st.st_mtime)

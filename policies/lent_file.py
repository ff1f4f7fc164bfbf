"""`<runtime_dir>/lent`: the slices the daemon lends on this node, GPU by GPU, for the SPANK
plugin (proposed contract; see docs/daemon.md). Raising the node's vgpu count lets slurmctld
start a preemptible job on lent slices; this file tells the plugin on which GPU those slices
are, so it can place the job there although the GPU is fully booked by idle owners.

Format (like the node inventory: line-oriented, `#` comments, key=value tokens):

    # slurm-vgpu lent slices (written by vgpu daemon; do not edit)
    version=1
    node=n1
    gpu index=0 uuid=GPU-... slices=4

Written atomically (temp file + rename), root-owned 0644, only when its content changes.
An absent file or no `gpu` line means nothing is lent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from slurm_vgpu.policies.snapshot import GpuState

HEADER = "# slurm-vgpu lent slices (written by vgpu daemon; do not edit)"


def format_lent(node: str, gpus: Sequence[GpuState], lent: Mapping[str, int]) -> str:
    lines = [HEADER, "version=1", f"node={node}"]
    for gpu in gpus:
        n = lent.get(gpu.uuid, 0)
        if n > 0:
            lines.append(f"gpu index={gpu.index} uuid={gpu.uuid} slices={n}")
    return "\n".join(lines) + "\n"


def parse_lent(text: str) -> dict[int, int]:
    """gpu index -> lent slices (for tests and `vgpu status`)."""
    lent: dict[int, int] = {}
    for line in text.splitlines():
        if not line.startswith("gpu "):
            continue
        fields = dict(tok.split("=", 1) for tok in line.split()[1:] if "=" in tok)
        lent[int(fields["index"])] = int(fields["slices"])
    return lent


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

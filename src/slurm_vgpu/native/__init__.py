"""Python binding of the hook's files (cffi, ABI mode: no compiler at install time).

For the SPANK plugin's tests, the policy daemon and the hook's tests:

    from slurm_vgpu.native import GpuLimit, JobLimits, write_limits_file, update_limits
    write_limits_file(job_dir / "limits", JobLimits(job_id=7, uid=1000, gpus=(GpuLimit(...),)))
    update_limits(job_dir / "limits", 0, compute_limit_permille=500)   # live, seqlock
    usage = read_usage(job_dir / "state", ngpus=1)                     # JobUsage
    reclaim_dead(job_dir / "state")                                    # pids given back

`hook_library_path()` says where libvgpu.so is (the build tree, or the installed copy).
"""

from __future__ import annotations

import os
from pathlib import Path

from slurm_vgpu.native.limits import (
    LIMITS_SIZE,
    GpuLimit,
    JobLimits,
    LimitsFileError,
    SharePolicy,
    encode_limits,
    read_limits_file,
    update_limits,
    write_limits_file,
)
from slurm_vgpu.native.usage import (
    STATE_SIZE,
    GpuUsage,
    JobUsage,
    ProcessUsage,
    StateFileError,
    process_alive,
    read_usage,
    reclaim_dead,
)

INSTALLED_HOOK = Path("/usr/local/lib/slurm-vgpu/libvgpu.so")


def hook_library_path() -> Path:
    """libvgpu.so: $VGPU_HOOK_LIBRARY if set, else the source tree's build/native/, else the
    installed copy (`make install`, PREFIX=/usr/local)."""
    env = os.environ.get("VGPU_HOOK_LIBRARY")
    if env:
        return Path(env)
    built = Path(__file__).resolve().parents[3] / "build" / "native" / "libvgpu.so"
    return built if built.exists() else INSTALLED_HOOK


__all__ = [
    "INSTALLED_HOOK",
    "LIMITS_SIZE",
    "STATE_SIZE",
    "GpuLimit",
    "GpuUsage",
    "JobLimits",
    "JobUsage",
    "LimitsFileError",
    "ProcessUsage",
    "SharePolicy",
    "StateFileError",
    "encode_limits",
    "hook_library_path",
    "process_alive",
    "read_limits_file",
    "read_usage",
    "reclaim_dead",
    "update_limits",
    "write_limits_file",
]

"""The per-job shared usage state (struct vgpu_state): what a job uses, and dead processes.

The hook keeps this file; the daemon reads it (as root) and may reclaim what dead processes
held. The file is writable by the job's user, so everything read from it is bounds-checked
and treated as a claim, not a fact.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slurm_vgpu.errors import VgpuError
from slurm_vgpu.native._ffi import (
    VGPU_MAX_GPUS,
    VGPU_MAX_PROCS,
    VGPU_STATE_MAGIC,
    VGPU_STATE_VERSION,
    ffi,
    libc,
)

STATE_SIZE: int = ffi.sizeof("struct vgpu_state")
_CLOCK_REALTIME = 0
_LOCK_TIMEOUT_S = 2


class StateFileError(VgpuError):
    """A state file is corrupt, of another version, or its mutex cannot be taken."""


@dataclass(frozen=True)
class GpuUsage:
    """The job's use of one of its GPUs (index = position in the limits file)."""

    index: int
    used_bytes: int
    peak_bytes: int
    busy_ns: int
    throttled_ns: int
    oom_denials: int
    tokens_ns: int
    effective_permille: int
    gate_closed: bool
    sampler_pid: int


@dataclass(frozen=True)
class ProcessUsage:
    """One process of the job that uses the GPU through the hook."""

    pid: int
    start_time: int
    used_bytes: tuple[int, ...]
    busy_ns: tuple[int, ...]


@dataclass(frozen=True)
class JobUsage:
    """A snapshot of a job's state file. `initialized` is False while no hook has used it."""

    initialized: bool
    gpus: tuple[GpuUsage, ...]
    processes: tuple[ProcessUsage, ...]
    repairs: int


def _check(state: Any, path: str | os.PathLike[str]) -> None:
    if state.magic != VGPU_STATE_MAGIC or state.version != VGPU_STATE_VERSION:
        raise StateFileError(f"{path}: not a version {VGPU_STATE_VERSION} slurm-vgpu state file")
    if (
        state.size != STATE_SIZE
        or state.ngpus != VGPU_MAX_GPUS
        or state.nprocs != VGPU_MAX_PROCS
    ):
        raise StateFileError(f"{path}: layout does not match this binding (size {state.size})")


@contextlib.contextmanager
def _mapped(path: str | os.PathLike[str], writable: bool) -> Iterator[Any]:
    """Yields the mapped struct vgpu_state, or None when the file is still empty."""
    flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise StateFileError(f"{path}: cannot open: {e.strerror}") from e
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            yield None
            return
        if size != STATE_SIZE:
            raise StateFileError(f"{path}: {size} bytes, expected 0 or {STATE_SIZE}")
        access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
        mm = mmap.mmap(fd, STATE_SIZE, mmap.MAP_SHARED, access=access)
        try:
            state: Any = ffi.from_buffer("struct vgpu_state *", mm, require_writable=writable)
            try:
                _check(state, path)
                yield state
            finally:
                ffi.release(state)
        finally:
            mm.close()
    finally:
        os.close(fd)


def _gpu_usage(state: Any, index: int) -> GpuUsage:
    g = state.gpu[index]
    return GpuUsage(
        index=index,
        used_bytes=g.used_bytes,
        peak_bytes=g.peak_bytes,
        busy_ns=g.busy_ns,
        throttled_ns=g.throttled_ns,
        oom_denials=g.oom_denials,
        tokens_ns=g.tokens_ns,
        effective_permille=g.effective_permille,
        gate_closed=bool(state.gate_mask & (1 << index)),
        sampler_pid=g.sampler_pid,
    )


def read_usage(state_path: str | os.PathLike[str], ngpus: int = VGPU_MAX_GPUS) -> JobUsage:
    """Snapshot of a job's usage: per GPU (the first `ngpus`, usually the limits file's count)
    and per process. Lock-free: counters are read as they are, each one atomically."""
    ngpus = max(0, min(ngpus, VGPU_MAX_GPUS))
    with _mapped(state_path, writable=False) as state:
        if state is None:
            return JobUsage(initialized=False, gpus=(), processes=(), repairs=0)
        gpus = tuple(_gpu_usage(state, i) for i in range(ngpus))
        procs = []
        for i in range(VGPU_MAX_PROCS):
            p = state.proc[i]
            if p.pid > 0:
                procs.append(
                    ProcessUsage(
                        pid=p.pid,
                        start_time=p.start_time,
                        used_bytes=tuple(p.used_bytes[g] for g in range(ngpus)),
                        busy_ns=tuple(p.busy_ns[g] for g in range(ngpus)),
                    )
                )
        return JobUsage(initialized=True, gpus=gpus, processes=tuple(procs), repairs=state.repairs)


def process_alive(pid: int, start_time: int, proc_root: str | os.PathLike[str] = "/proc") -> bool:
    """Is `pid` the same live process the state recorded (not exited, not a reused pid)?"""
    try:
        raw = (Path(proc_root) / str(pid) / "stat").read_text(errors="replace")
    except OSError:
        return False
    close = raw.rfind(")")
    fields = raw[close + 2 :].split()
    if close < 0 or len(fields) < 20:
        return False
    if fields[0] in ("Z", "X"):
        return False
    return start_time == 0 or int(fields[19]) == start_time


@contextlib.contextmanager
def _locked(state: Any, path: str | os.PathLike[str]) -> Iterator[None]:
    lib = libc()
    ts: Any = ffi.new("struct timespec *")
    lib.clock_gettime(_CLOCK_REALTIME, ts)
    ts.tv_sec += _LOCK_TIMEOUT_S
    mutex = ffi.addressof(state, "lock")
    rc = lib.pthread_mutex_timedlock(mutex, ts)
    if rc == errno.EOWNERDEAD:
        _repair(state)
        lib.pthread_mutex_consistent(mutex)
    elif rc != 0:
        raise StateFileError(f"{path}: state mutex not acquired: {os.strerror(rc)}")
    try:
        yield
    finally:
        lib.pthread_mutex_unlock(mutex)


def _repair(state: Any) -> None:
    """A process died holding the mutex: recompute the totals from the process slots."""
    for g in range(VGPU_MAX_GPUS):
        state.gpu[g].used_bytes = sum(
            state.proc[i].used_bytes[g] for i in range(VGPU_MAX_PROCS) if state.proc[i].pid
        )
    state.repairs += 1


def reclaim_dead(
    state_path: str | os.PathLike[str], proc_root: str | os.PathLike[str] = "/proc"
) -> list[int]:
    """Give back what dead processes of the job held; returns their pids. The hook does the
    same on its own (within 1 s while any process of the job runs); the daemon calls this for
    jobs whose processes all died."""
    reclaimed: list[int] = []
    with _mapped(state_path, writable=True) as state:
        if state is None:
            return reclaimed
        with _locked(state, state_path):
            for i in range(VGPU_MAX_PROCS):
                p = state.proc[i]
                if p.pid <= 0 or process_alive(p.pid, p.start_time, proc_root):
                    continue
                for g in range(VGPU_MAX_GPUS):
                    held = p.used_bytes[g]
                    used = state.gpu[g].used_bytes
                    state.gpu[g].used_bytes = used - held if used > held else 0
                    p.used_bytes[g] = 0
                    p.busy_ns[g] = 0
                reclaimed.append(p.pid)
                p.start_time = 0
                p.pid = 0
            state.last_reclaim_ns = time.monotonic_ns()
    return reclaimed

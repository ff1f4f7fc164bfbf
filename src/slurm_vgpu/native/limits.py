"""The per-job limits file (struct vgpu_limits): create it, read it, change it live.

Writers follow the seqlock of vgpu_abi.h: generation becomes odd, the fields are stored, the
generation becomes even again. Each step is its own pwrite(2), so the stores reach the page
cache in that order, and the hook (which maps the file) never acts on a half-written entry.
Concurrent writers are serialized with flock(2) on the file.
"""

from __future__ import annotations

import enum
import fcntl
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slurm_vgpu.errors import VgpuError
from slurm_vgpu.native._ffi import (
    VGPU_LIMITS_MAGIC,
    VGPU_LIMITS_VERSION,
    VGPU_MAX_GPUS,
    VGPU_UUID_LEN,
    ffi,
)

LIMITS_SIZE: int = ffi.sizeof("struct vgpu_limits")
_GEN_OFFSET: int = ffi.offsetof("struct vgpu_limits", "generation")
_POLICY_OFFSET: int = ffi.offsetof("struct vgpu_limits", "share_policy")
_GPU_OFFSET: int = ffi.offsetof("struct vgpu_limits", "gpu")
_GPU_SIZE: int = ffi.sizeof("struct vgpu_gpu_limit")
_MEM_OFFSET: int = ffi.offsetof("struct vgpu_gpu_limit", "memory_limit_bytes")
_COMPUTE_OFFSET: int = ffi.offsetof("struct vgpu_gpu_limit", "compute_limit_permille")
_READ_TRIES = 1000


class LimitsFileError(VgpuError):
    """A limits file is missing, truncated, of another version, or a request is out of range."""


class SharePolicy(enum.IntEnum):
    """enum vgpu_share_policy: may the job use compute its co-tenants leave idle?"""

    GUARANTEED = 0
    BURST = 1


@dataclass(frozen=True)
class GpuLimit:
    """One GPU of a job: which card, how many slices, and the caps the hook enforces."""

    uuid: str
    physical_index: int
    slices: int
    memory_limit_bytes: int
    compute_guaranteed_permille: int
    compute_limit_permille: int


@dataclass(frozen=True)
class JobLimits:
    """The whole limits file of one job."""

    job_id: int
    uid: int
    gpus: tuple[GpuLimit, ...]
    share_policy: SharePolicy = SharePolicy.GUARANTEED
    generation: int = field(default=0, compare=False)


def _u32(name: str, value: int) -> int:
    if not 0 <= value < 2**32:
        raise LimitsFileError(f"{name}={value} is out of range (0..{2**32 - 1})")
    return value


def _u64(name: str, value: int) -> int:
    if not 0 <= value < 2**64:
        raise LimitsFileError(f"{name}={value} is out of range (0..2**64-1)")
    return value


def _permille(name: str, value: int) -> int:
    if not 0 <= value <= 1000:
        raise LimitsFileError(f"{name}={value} must be within 0..1000 (per mille of the GPU)")
    return value


def encode_limits(limits: JobLimits, generation: int = 0) -> bytes:
    """The file's bytes for `limits` (little-endian, fixed layout)."""
    if len(limits.gpus) > VGPU_MAX_GPUS:
        raise LimitsFileError(f"{len(limits.gpus)} GPUs; a job holds at most {VGPU_MAX_GPUS}")
    buf: Any = ffi.new("struct vgpu_limits *")
    buf.magic = VGPU_LIMITS_MAGIC
    buf.version = VGPU_LIMITS_VERSION
    buf.size = LIMITS_SIZE
    buf.generation = _u64("generation", generation)
    buf.job_id = _u64("job_id", limits.job_id)
    buf.uid = _u32("uid", limits.uid)
    buf.share_policy = int(SharePolicy(limits.share_policy))
    buf.ngpus = len(limits.gpus)
    for i, gpu in enumerate(limits.gpus):
        uuid = gpu.uuid.encode()
        if len(uuid) >= VGPU_UUID_LEN:
            raise LimitsFileError(f"GPU uuid {gpu.uuid!r} is longer than {VGPU_UUID_LEN - 1}")
        entry = buf.gpu[i]
        entry.uuid = uuid
        entry.physical_index = _u32("physical_index", gpu.physical_index)
        entry.slices = _u32("slices", gpu.slices)
        entry.memory_limit_bytes = _u64("memory_limit_bytes", gpu.memory_limit_bytes)
        entry.compute_guaranteed_permille = _permille(
            "compute_guaranteed_permille", gpu.compute_guaranteed_permille
        )
        entry.compute_limit_permille = _permille(
            "compute_limit_permille", gpu.compute_limit_permille
        )
    return bytes(ffi.buffer(buf))


def write_limits_file(path: str | os.PathLike[str], limits: JobLimits, mode: int = 0o644) -> None:
    """Create (or atomically replace) a limits file: temp file in the same directory, fsync,
    rename. The hook accepts it only if root owns it and nobody else can write it, so call
    this as root (the SPANK plugin, the daemon, the tests). Running processes notice a
    replaced file within 100 ms, but live changes should use update_limits (in place)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    data = encode_limits(limits)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)


def _decode(raw: bytes, path: str | os.PathLike[str]) -> JobLimits:
    if len(raw) != LIMITS_SIZE:
        raise LimitsFileError(f"{path}: {len(raw)} bytes, expected {LIMITS_SIZE} (truncated?)")
    buf: Any = ffi.from_buffer("struct vgpu_limits *", raw)
    if buf.magic != VGPU_LIMITS_MAGIC:
        raise LimitsFileError(f"{path}: bad magic, not a slurm-vgpu limits file")
    if buf.version != VGPU_LIMITS_VERSION or buf.size != LIMITS_SIZE:
        raise LimitsFileError(
            f"{path}: version {buf.version} size {buf.size}; expected version "
            f"{VGPU_LIMITS_VERSION} size {LIMITS_SIZE}"
        )
    if buf.ngpus > VGPU_MAX_GPUS:
        raise LimitsFileError(f"{path}: ngpus {buf.ngpus} exceeds {VGPU_MAX_GPUS}")
    gpus = tuple(
        GpuLimit(
            uuid=ffi.string(buf.gpu[i].uuid, VGPU_UUID_LEN).decode(errors="replace"),
            physical_index=buf.gpu[i].physical_index,
            slices=buf.gpu[i].slices,
            memory_limit_bytes=buf.gpu[i].memory_limit_bytes,
            compute_guaranteed_permille=buf.gpu[i].compute_guaranteed_permille,
            compute_limit_permille=buf.gpu[i].compute_limit_permille,
        )
        for i in range(buf.ngpus)
    )
    policy = buf.share_policy
    return JobLimits(
        job_id=buf.job_id,
        uid=buf.uid,
        gpus=gpus,
        share_policy=SharePolicy(policy) if policy in (0, 1) else SharePolicy.GUARANTEED,
        generation=buf.generation,
    )


def read_limits_file(path: str | os.PathLike[str]) -> JobLimits:
    """A consistent snapshot of a limits file (retries while a writer is mid-update)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise LimitsFileError(f"{path}: cannot open: {e.strerror}") from e
    try:
        raw = b""
        for _ in range(_READ_TRIES):
            raw = os.pread(fd, LIMITS_SIZE + 1, 0)
            if len(raw) != LIMITS_SIZE:
                break
            gen = int.from_bytes(raw[_GEN_OFFSET : _GEN_OFFSET + 8], "little")
            again = int.from_bytes(os.pread(fd, 8, _GEN_OFFSET), "little")
            if gen % 2 == 0 and gen == again:
                break
            time.sleep(0.0001)
        return _decode(raw, path)
    finally:
        os.close(fd)


def update_limits(
    path: str | os.PathLike[str],
    gpu: int,
    *,
    memory_limit_bytes: int | None = None,
    compute_limit_permille: int | None = None,
    share_policy: SharePolicy | None = None,
) -> int:
    """Change one GPU's caps of a running job in place; returns the new (even) generation.

    The hook applies memory changes at the next allocation and compute changes within one
    sampler tick (10 ms). Lowering memory below current usage makes new allocations fail
    until usage falls below the new cap; nothing already allocated is taken away.
    """
    current = read_limits_file(path)
    if not 0 <= gpu < len(current.gpus):
        raise LimitsFileError(f"{path}: no GPU {gpu}; the job has {len(current.gpus)}")
    writes: list[tuple[int, bytes]] = []
    base = _GPU_OFFSET + gpu * _GPU_SIZE
    if memory_limit_bytes is not None:
        value = _u64("memory_limit_bytes", memory_limit_bytes)
        writes.append((base + _MEM_OFFSET, value.to_bytes(8, "little")))
    if compute_limit_permille is not None:
        value = _permille("compute_limit_permille", compute_limit_permille)
        writes.append((base + _COMPUTE_OFFSET, value.to_bytes(4, "little")))
    if share_policy is not None:
        writes.append((_POLICY_OFFSET, int(SharePolicy(share_policy)).to_bytes(4, "little")))
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            gen = int.from_bytes(os.pread(fd, 8, _GEN_OFFSET), "little")
            odd = gen if gen % 2 else gen + 1  # an odd one was left by a writer that died
            os.pwrite(fd, odd.to_bytes(8, "little"), _GEN_OFFSET)
            for offset, data in writes:
                os.pwrite(fd, data, offset)
            os.pwrite(fd, (odd + 1).to_bytes(8, "little"), _GEN_OFFSET)
            return odd + 1
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

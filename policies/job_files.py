"""The per-job files under <runtime_dir>/jobs/<jobid>/ (docs/contracts.md), from the daemon's side:

- `limits` (root-owned, struct vgpu_limits of native/include/vgpu_abi.h): read to learn a job's
  placement and caps; compute targets rewritten in place under the ABI's seqlock.
- `state` (owned by the job's user, struct vgpu_state of native/include/vgpu_state.h): read
  for usage. It is user-writable, so everything from it is bounds-checked and it can only ever
  misinform decisions about its own job (report itself idle or busy).

The layouts are mirrored with `struct` here; tests/test_daemon_files.py compiles the C headers
and compares sizes and offsets, so drift fails a test rather than corrupting a file.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from slurm_vgpu.errors import VgpuError

LIMITS_MAGIC = 0x314D494C55504756
LIMITS_VERSION = 1
MAX_GPUS = 16
UUID_LEN = 48

# magic version size generation job_id uid share_policy ngpus flags
_LIMITS_HEADER = struct.Struct("<QIIQQIIII")
_LIMITS_GPU = struct.Struct(f"<{UUID_LEN}sIIQII")  # uuid index slices mem guaranteed limit
LIMITS_SIZE = _LIMITS_HEADER.size + MAX_GPUS * _LIMITS_GPU.size
GENERATION_OFFSET = 16
GPU_COMPUTE_LIMIT_OFFSET = UUID_LEN + 4 + 4 + 8 + 4  # within one gpu entry
GPU_MEMORY_LIMIT_OFFSET = UUID_LEN + 4 + 4

STATE_MAGIC = 0x3154535550475655
STATE_VERSION = 1
# magic version size ngpus nprocs gate_mask reserved0 last_reclaim_ns repairs
_STATE_HEADER = struct.Struct("<QIIIIIIQQ")
STATE_MUTEX_SPACE = 64
# used peak busy throttled tokens oom sampler_pid effective beat seen others_busy reserved[6]
_STATE_GPU = struct.Struct("<QQQQqQiIQQQ6Q")
STATE_GPU_OFFSET = _STATE_HEADER.size + STATE_MUTEX_SPACE

SEQLOCK_RETRIES = 100


class JobFileError(VgpuError):
    """A per-job file is missing, malformed or not safely owned."""


class MemoryCapViolation(VgpuError):
    """A write would have raised a job's memory cap above its allocation (a policy bug)."""


@dataclass(frozen=True, slots=True)
class GpuLimit:
    uuid: str
    physical_index: int
    slices: int
    memory_limit_bytes: int
    compute_guaranteed_permille: int
    compute_limit_permille: int


@dataclass(frozen=True, slots=True)
class JobLimits:
    job_id: int
    uid: int
    share_policy: int
    generation: int
    gpus: tuple[GpuLimit, ...]


@dataclass(frozen=True, slots=True)
class GpuUsage:
    """Counters of one job GPU from the hook's state (index = the limits file's gpu index)."""

    used_bytes: int
    busy_ns: int
    throttled_ns: int
    effective_permille: int


def parse_limits(data: bytes) -> JobLimits:
    if len(data) < LIMITS_SIZE:
        raise JobFileError(f"limits file is {len(data)} bytes, expected {LIMITS_SIZE}")
    magic, version, size, generation, job_id, uid, share, ngpus, _flags = (
        _LIMITS_HEADER.unpack_from(data, 0))
    if magic != LIMITS_MAGIC or version != LIMITS_VERSION or size != LIMITS_SIZE:
        raise JobFileError(
            f"limits file has magic {magic:#x} version {version} size {size}; expected "
            f"{LIMITS_MAGIC:#x} version {LIMITS_VERSION} size {LIMITS_SIZE}")
    if ngpus > MAX_GPUS:
        raise JobFileError(f"limits file names {ngpus} GPUs (at most {MAX_GPUS})")
    gpus = []
    for i in range(ngpus):
        raw_uuid, index, slices, mem, guaranteed, limit = _LIMITS_GPU.unpack_from(
            data, _LIMITS_HEADER.size + i * _LIMITS_GPU.size)
        uuid = raw_uuid.split(b"\0", 1)[0].decode("ascii", "replace")
        gpus.append(GpuLimit(uuid, index, slices, mem, guaranteed, limit))
    return JobLimits(job_id, uid, share, generation, tuple(gpus))


def pack_limits(limits: JobLimits) -> bytes:
    """Serialize (for tests and tools; the SPANK plugin writes the real ones)."""
    out = bytearray(LIMITS_SIZE)
    _LIMITS_HEADER.pack_into(out, 0, LIMITS_MAGIC, LIMITS_VERSION, LIMITS_SIZE,
                             limits.generation, limits.job_id, limits.uid,
                             limits.share_policy, len(limits.gpus), 0)
    for i, g in enumerate(limits.gpus):
        _LIMITS_GPU.pack_into(out, _LIMITS_HEADER.size + i * _LIMITS_GPU.size,
                              g.uuid.encode("ascii")[: UUID_LEN - 1], g.physical_index, g.slices,
                              g.memory_limit_bytes, g.compute_guaranteed_permille,
                              g.compute_limit_permille)
    return bytes(out)


def parse_state(data: bytes, ngpus: int) -> list[GpuUsage] | None:
    """Usage of the first `ngpus` GPUs, or None while the hook has not initialized the file."""
    if len(data) < _STATE_HEADER.size:
        return None
    magic, version, size, n, _nprocs, _gate, _res, _reclaim, _repairs = (
        _STATE_HEADER.unpack_from(data, 0))
    if magic != STATE_MAGIC or version != STATE_VERSION or n > MAX_GPUS:
        return None
    if size < STATE_GPU_OFFSET + MAX_GPUS * _STATE_GPU.size or len(data) < (
            STATE_GPU_OFFSET + MAX_GPUS * _STATE_GPU.size):
        return None
    usage = []
    for i in range(min(ngpus, n)):
        fields = _STATE_GPU.unpack_from(data, STATE_GPU_OFFSET + i * _STATE_GPU.size)
        used, _peak, busy, throttled, _tokens, _oom, _pid, eff = fields[:8]
        usage.append(GpuUsage(used, busy, throttled, min(eff, 1000)))
    return usage


def _open_regular(path: Path, flags: int) -> int:
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise JobFileError(f"{path}: not a regular file")
    return fd


class JobFiles(Protocol):
    """Per-job files as the daemon needs them; a fake implements this in unit tests."""

    def job_ids(self) -> list[int]: ...

    def read_limits(self, job_id: int) -> JobLimits | None: ...

    def read_usage(self, job_id: int, ngpus: int) -> list[GpuUsage] | None: ...

    def set_compute_limit(self, job_id: int, gpu_uuid: str, permille: int) -> None: ...


class RuntimeDirJobFiles:
    """JobFiles over <runtime_dir>/jobs/<jobid>/{limits,state}."""

    def __init__(self, runtime_dir: str | os.PathLike[str], require_root_owner: bool = True
                 ) -> None:
        self.jobs_dir = Path(runtime_dir) / "jobs"
        self.require_root_owner = require_root_owner

    def job_ids(self) -> list[int]:
        try:
            names = os.listdir(self.jobs_dir)
        except FileNotFoundError:
            return []
        return sorted(int(n) for n in names if n.isdigit())

    def _check_limits_owner(self, path: Path, st: os.stat_result) -> None:
        if self.require_root_owner and (st.st_uid != 0 or st.st_mode & 0o022):
            raise JobFileError(f"{path}: must be owned by root and not group/other-writable")

    def read_limits(self, job_id: int) -> JobLimits | None:
        path = self.jobs_dir / str(int(job_id)) / "limits"
        try:
            fd = _open_regular(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            self._check_limits_owner(path, os.fstat(fd))
            for _ in range(SEQLOCK_RETRIES):
                data = os.pread(fd, LIMITS_SIZE, 0)
                before = parse_limits(data)
                if before.generation % 2:
                    continue
                (after,) = struct.unpack_from("<Q", os.pread(fd, 8, GENERATION_OFFSET))
                if after == before.generation:
                    return before
            raise JobFileError(f"{path}: still being written after {SEQLOCK_RETRIES} reads")
        finally:
            os.close(fd)

    def read_usage(self, job_id: int, ngpus: int) -> list[GpuUsage] | None:
        path = self.jobs_dir / str(int(job_id)) / "state"
        try:
            fd = _open_regular(path, os.O_RDONLY)
        except (FileNotFoundError, JobFileError):
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                return None
            raise
        try:
            return parse_state(os.pread(fd, STATE_GPU_OFFSET + MAX_GPUS * _STATE_GPU.size, 0),
                               ngpus)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _mapped_limits(self, job_id: int) -> Iterator[mmap.mmap]:
        path = self.jobs_dir / str(int(job_id)) / "limits"
        fd = _open_regular(path, os.O_RDWR)
        try:
            self._check_limits_owner(path, os.fstat(fd))
            if os.fstat(fd).st_size < LIMITS_SIZE:
                raise JobFileError(f"{path}: truncated")
            with mmap.mmap(fd, LIMITS_SIZE, mmap.MAP_SHARED,
                           mmap.PROT_READ | mmap.PROT_WRITE) as m:
                yield m
        finally:
            os.close(fd)

    def write_gpu_limit(self, job_id: int, gpu_uuid: str, *, compute_permille: int | None = None,
                        memory_limit_bytes: int | None = None,
                        memory_ceiling_bytes: int | None = None) -> None:
        """Rewrite one GPU entry under the seqlock. A memory limit above the allocation
        (`memory_ceiling_bytes`, default slices x the slice size implied by the current entry)
        is refused with MemoryCapViolation before anything is written."""
        with self._mapped_limits(job_id) as m:
            limits = parse_limits(bytes(m[:LIMITS_SIZE]))
            index = next((i for i, g in enumerate(limits.gpus) if g.uuid == gpu_uuid), None)
            if index is None:
                raise JobFileError(f"job {job_id} holds no slices of GPU {gpu_uuid}")
            entry = limits.gpus[index]
            if memory_limit_bytes is not None:
                ceiling = entry.memory_limit_bytes if memory_ceiling_bytes is None \
                    else memory_ceiling_bytes
                if memory_limit_bytes > ceiling:
                    raise MemoryCapViolation(
                        f"refusing to raise job {job_id}'s memory cap on {gpu_uuid} to "
                        f"{memory_limit_bytes} bytes, above its allocation of {ceiling}")
            if compute_permille is not None and not 0 <= compute_permille <= 1000:
                raise ValueError(f"compute share {compute_permille} outside 0..1000 permille")
            base = _LIMITS_HEADER.size + index * _LIMITS_GPU.size
            # Seqlock: odd generation while the fields change (the hook retries meanwhile).
            # Aligned 8-byte stores from struct.pack_into are single memcpy's of a mapped page;
            # the generation is read back by the hook, which also validates the values.
            (gen,) = struct.unpack_from("<Q", m, GENERATION_OFFSET)
            if gen % 2:
                gen += 1  # a writer died mid-update: finish its cycle
            struct.pack_into("<Q", m, GENERATION_OFFSET, gen + 1)
            if compute_permille is not None:
                struct.pack_into("<I", m, base + GPU_COMPUTE_LIMIT_OFFSET, compute_permille)
            if memory_limit_bytes is not None:
                struct.pack_into("<Q", m, base + GPU_MEMORY_LIMIT_OFFSET, memory_limit_bytes)
            struct.pack_into("<Q", m, GENERATION_OFFSET, gen + 2)

    def set_compute_limit(self, job_id: int, gpu_uuid: str, permille: int) -> None:
        self.write_gpu_limit(job_id, gpu_uuid, compute_permille=permille)

"""cffi declarations (ABI mode: no compiler needed) mirroring native/include/vgpu_abi.h and
native/include/vgpu_state.h. tests/test_hook_binding.py checks every size and offset here
against the C headers, so the two cannot drift apart silently."""

from __future__ import annotations

from typing import Any

from cffi import FFI

VGPU_LIMITS_MAGIC = 0x314D494C55504756
VGPU_LIMITS_VERSION = 1
VGPU_STATE_MAGIC = 0x3154535550475655
VGPU_STATE_VERSION = 1
VGPU_MAX_GPUS = 16
VGPU_MAX_PROCS = 256
VGPU_UUID_LEN = 48

CDEF = """
struct vgpu_gpu_limit {
    char uuid[48];
    uint32_t physical_index;
    uint32_t slices;
    uint64_t memory_limit_bytes;
    uint32_t compute_guaranteed_permille;
    uint32_t compute_limit_permille;
};

struct vgpu_limits {
    uint64_t magic;
    uint32_t version;
    uint32_t size;
    uint64_t generation;
    uint64_t job_id;
    uint32_t uid;
    uint32_t share_policy;
    uint32_t ngpus;
    uint32_t flags;
    struct vgpu_gpu_limit gpu[16];
};

struct vgpu_state_gpu {
    uint64_t used_bytes;
    uint64_t peak_bytes;
    uint64_t busy_ns;
    uint64_t throttled_ns;
    int64_t tokens_ns;
    uint64_t oom_denials;
    int32_t sampler_pid;
    uint32_t effective_permille;
    uint64_t sampler_beat_ns;
    uint64_t sampler_seen_us;
    uint64_t others_busy_ns;
    uint64_t ctx_bytes;
    int32_t ctx_measurer;
    uint32_t reserved1;
    uint64_t reserved[4];
};

struct vgpu_state_proc {
    int32_t pid;
    uint32_t flags;
    uint64_t start_time;
    uint64_t used_bytes[16];
    uint64_t busy_ns[16];
};

struct vgpu_state {
    uint64_t magic;
    uint32_t version;
    uint32_t size;
    uint32_t ngpus;
    uint32_t nprocs;
    uint32_t gate_mask;
    uint32_t reserved0;
    uint64_t last_reclaim_ns;
    uint64_t repairs;
    union { unsigned char space[64]; } lock;
    struct vgpu_state_gpu gpu[16];
    struct vgpu_state_proc proc[256];
};

struct timespec { long tv_sec; long tv_nsec; };
int pthread_mutex_timedlock(void *mutex, const struct timespec *abstime);
int pthread_mutex_unlock(void *mutex);
int pthread_mutex_consistent(void *mutex);
int clock_gettime(int clock_id, struct timespec *ts);
"""

ffi = FFI()
ffi.cdef(CDEF)
_libc: Any = None


def libc() -> Any:
    """The C library (pthread mutex calls on the state file's robust mutex), loaded once."""
    global _libc
    if _libc is None:
        _libc = ffi.dlopen(None)
    return _libc

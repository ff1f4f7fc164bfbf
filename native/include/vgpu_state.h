/*
 * slurm-vgpu: the per-job shared usage state, <runtime_dir>/jobs/<jobid>/state.
 *
 * The SPANK plugin creates the file EMPTY, owned by the job's user, mode 0600. The first hook
 * instance that opens it (under flock) sizes it, zeroes it, initializes the robust mutex and
 * stores `magic` last. Every process of the job maps it MAP_SHARED; the policy daemon reads it
 * (and reclaims dead processes) through the Python binding, src/slurm_vgpu/native/.
 *
 * Memory accounting: gpu[g].used_bytes is the job's reserved device memory on GPU g. Every
 * change of used_bytes and of a process slot happens with `mutex` held, in one short critical
 * section that updates the process slot and the job total together, so that:
 *   - a reservation checks and raises the total before the driver is called (no window in
 *     which two processes both pass the check);
 *   - a process killed with -9 leaves its usage in its slot, and whoever finds the slot dead
 *     (pid gone or reused: start time differs) subtracts it;
 *   - a process killed inside the critical section leaves the mutex EOWNERDEAD, and the next
 *     owner recomputes every total from the slots (the slots are authoritative).
 * The counters are _Atomic so that readers (cuMemGetInfo, the daemon) never need the mutex.
 *
 * Compute: one process of the job per GPU (the sampler, elected by compare-and-swap on
 * sampler_pid with a heartbeat) measures the job's device time, keeps the token bucket and
 * opens or closes the gate. Launches only read `gate_mask` (one load) unless it is non-zero.
 *
 * The file is writable by the job's user: readers bounds-check everything taken from it.
 * Fixed layout, little-endian, naturally aligned; the Python binding mirrors it (its test
 * compares the offsets with this header).
 */
#ifndef VGPU_STATE_H
#define VGPU_STATE_H

#include <stdint.h>
#include <pthread.h>

#include "vgpu_abi.h"

#define VGPU_STATE_MAGIC 0x3154535550475655ULL /* "UVGPUST1" as little-endian bytes */
#define VGPU_STATE_VERSION 1u
#define VGPU_MAX_PROCS 256u
#define VGPU_MUTEX_SPACE 64u /* bytes reserved for pthread_mutex_t on every ABI */

#ifndef __cplusplus
#include <stdatomic.h>
#define VGPU_ATOMIC(t) _Atomic t
#else
#define VGPU_ATOMIC(t) t
#endif

/* One per job GPU, at the same index as the limits file's gpu[]. */
struct vgpu_state_gpu {
	VGPU_ATOMIC(uint64_t) used_bytes;    /* reserved by live processes of the job */
	VGPU_ATOMIC(uint64_t) peak_bytes;    /* highest used_bytes seen */
	VGPU_ATOMIC(uint64_t) busy_ns;       /* measured device time of the job's processes */
	VGPU_ATOMIC(uint64_t) throttled_ns;  /* time launches spent waiting at the gate */
	VGPU_ATOMIC(int64_t) tokens_ns;      /* token bucket: device time the job may still use */
	VGPU_ATOMIC(uint64_t) oom_denials;   /* allocations refused by the cap */
	VGPU_ATOMIC(int32_t) sampler_pid;    /* process measuring this gpu, 0: none */
	VGPU_ATOMIC(uint32_t) effective_permille; /* share the sampler enforces now */
	VGPU_ATOMIC(uint64_t) sampler_beat_ns;    /* CLOCK_MONOTONIC of the sampler's last tick */
	uint64_t sampler_seen_us;            /* NVML lastSeenTimeStamp, carried across samplers */
	VGPU_ATOMIC(uint64_t) others_busy_ns;  /* measured device time of other jobs (burst) */
	VGPU_ATOMIC(uint64_t) ctx_bytes;     /* device memory a context of the job takes, + 1;
						0: not measured yet */
	VGPU_ATOMIC(int32_t) ctx_measurer;   /* pid measuring the job's first context, 0: none */
	uint32_t reserved1;
	uint64_t reserved[4];
};

struct vgpu_state_proc {
	VGPU_ATOMIC(int32_t) pid;            /* 0: free */
	uint32_t flags;                      /* reserved, 0 */
	uint64_t start_time;                 /* /proc/<pid>/stat field 22: tells a reused pid apart */
	uint64_t used_bytes[VGPU_MAX_GPUS];  /* what this process reserved, per job gpu */
	uint64_t busy_ns[VGPU_MAX_GPUS];     /* measured device time, per job gpu */
};

struct vgpu_state {
	uint64_t magic;                      /* VGPU_STATE_MAGIC, stored last at initialization */
	uint32_t version;                    /* VGPU_STATE_VERSION */
	uint32_t size;                       /* sizeof(struct vgpu_state) */
	uint32_t ngpus;                      /* VGPU_MAX_GPUS: entries in gpu[] (index = limits index) */
	uint32_t nprocs;                     /* VGPU_MAX_PROCS */
	VGPU_ATOMIC(uint32_t) gate_mask;     /* bit g set: launches on job gpu g must wait */
	uint32_t reserved0;
	VGPU_ATOMIC(uint64_t) last_reclaim_ns; /* CLOCK_MONOTONIC of the last dead-slot sweep */
	VGPU_ATOMIC(uint64_t) repairs;       /* EOWNERDEAD recoveries */
	union {
		pthread_mutex_t mutex;       /* robust, process-shared */
		unsigned char space[VGPU_MUTEX_SPACE];
	} lock;
	struct vgpu_state_gpu gpu[VGPU_MAX_GPUS];
	struct vgpu_state_proc proc[VGPU_MAX_PROCS];
};

#endif /* VGPU_STATE_H */

/* Internal interface between the hook's files. Nothing here is exported (libvgpu.map). */
#ifndef VGPU_HOOK_H
#define VGPU_HOOK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "cuda_min.h"
#include "hip_min.h"
#include "hook_hip_list.h"
#include "hook_list.h"
#include "vgpu_abi.h"
#include "vgpu_state.h"

#define VGPU_HIDDEN __attribute__((visibility("hidden")))
#define VGPU_EXPORT __attribute__((visibility("default")))
#define VGPU_LIKELY(x) __builtin_expect(!!(x), 1)
#define VGPU_UNLIKELY(x) __builtin_expect(!!(x), 0)

#define VGPU_RET_CU CUresult
#define VGPU_RET_NVML nvmlReturn_t
#define VGPU_RET_HIP hipError_t
#define VGPU_LIB_CU 0
#define VGPU_LIB_NVML 1
#define VGPU_LIB_HIP 2
#define VGPU_LIB_RSMI 3
#define VGPU_LIB_COUNT 4

/* Every hooked function: the CUDA/NVML list (hook_list.h) and the HIP list (hook_hip_list.h),
 * the HIP entries in the CUDA list's shape (no cuGetProcAddress name, version or _ptsz). */
#define VGPU_HIP_AS_HOOK(lib, name, params) X(lib, name, name, 0, 0, params)
#define VGPU_ALL_HOOKS(X) VGPU_HOOKS(X) VGPU_HIP_HOOKS(VGPU_HIP_AS_HOOK)

enum vgpu_hook_id {
#define X(lib, name, base, ver, pt, params) VGPU_HOOK_##name,
	VGPU_ALL_HOOKS(X)
#undef X
	VGPU_HOOK_COUNT
};

#define X(lib, name, base, ver, pt, params) typedef VGPU_RET_##lib(*vgpu_fn_##name) params;
VGPU_ALL_HOOKS(X)
#undef X

#define X(lib, name, base, ver, pt, params) VGPU_EXPORT VGPU_RET_##lib name params;
VGPU_ALL_HOOKS(X)
#undef X

/* Real function pointers, filled by dlsym/cuGetProcAddress interception or on first use. */
VGPU_HIDDEN extern void *vgpu_real[VGPU_HOOK_COUNT];
VGPU_HIDDEN void *vgpu_resolve(enum vgpu_hook_id id);
static inline void *vgpu_real_fn(enum vgpu_hook_id id)
{
	void *p = __atomic_load_n(&vgpu_real[id], __ATOMIC_RELAXED);
	if (VGPU_UNLIKELY(p == NULL))
		p = vgpu_resolve(id);
	return p;
}
#define VGPU_REAL(name) ((vgpu_fn_##name)vgpu_real_fn(VGPU_HOOK_##name))

/* A driver function the hook calls but does not hook (cuCtxGetDevice, ...). */
VGPU_HIDDEN void *vgpu_driver_sym(int lib, const char *name);

/*
 * A front: one vendor's API (CUDA driver + NVML, HIP runtime + ROCm SMI) as the core sees it.
 * The core (limits, state, reservations, token bucket, sampler) knows devices only as
 * ordinals of the front's API and limits-file uuids; the front maps its API's types and
 * errors to and from the core's.
 */
struct vgpu_front {
	const char *name; /* "CUDA", "HIP": for messages */
	int id;           /* 0 CUDA, 1 HIP: index of per-front tables */
	/* The calling thread's current device ordinal: returns 0, or the API's own error. */
	int (*current)(int *ordinal);
	/* The device's uuid as the limits file writes it ("GPU-..."): 0, or -1. */
	int (*uuid)(int ordinal, char *out, size_t len);
	const struct vgpu_telemetry *telemetry; /* where device time and process memory come from */
};
#define VGPU_FRONTS 2
VGPU_HIDDEN extern const struct vgpu_front vgpu_cuda_front; /* hook_cuda.c */
VGPU_HIDDEN extern const struct vgpu_front vgpu_hip_front;  /* hook_hip.c */

/*
 * What the sampler measures with (hook_compute.c: NVML; hook_rsmi.c: ROCm SMI). Job gpu g is
 * the index into the limits file's gpu[].
 */
struct vgpu_telemetry {
	const char *name;
	int (*open)(void); /* 0: usable in this process */
	/* What the device says this process holds on job gpu g: 0, or -1 when it cannot tell. */
	int (*process_used)(uint32_t g, uint64_t *bytes);
	/* Device time of the job's processes and of others since the previous call, and the
	 * time others had work waiting: 1 new figures, 0 none yet, -1 cannot measure. */
	int (*measure)(uint32_t g, uint64_t now, uint64_t *job_ns, uint64_t *others_ns,
		       uint64_t *others_queued_ns);
	/* Device-level busy percent over the last period: 0, or -1. */
	int (*busy_percent)(uint32_t g, unsigned int *pct);
	/* The monitor's sleep until the next tick (CLOCK_MONOTONIC); NULL: clock_nanosleep. */
	void (*wait_until)(const struct timespec *next);
};
VGPU_HIDDEN extern const struct vgpu_telemetry vgpu_nvml_telemetry; /* hook_compute.c */
VGPU_HIDDEN extern const struct vgpu_telemetry vgpu_rsmi_telemetry; /* hook_rsmi.c */

/* The core's results; fronts map them to their API's errors. */
enum vgpu_status {
	VGPU_OK = 0,
	VGPU_ENOMEM = 1, /* over the cap, a device the job holds no slice of, or denied */
};

enum vgpu_mode {
	VGPU_MODE_UNSET = 0,
	VGPU_MODE_OFF,       /* no VGPU_LIMITS: not a vgpu job, pass everything through */
	VGPU_MODE_ENFORCE,   /* limits and state valid */
	VGPU_MODE_DENY,      /* bad limits/state, on_error=deny: device allocations fail */
	VGPU_MODE_UNLIMITED, /* bad limits/state, on_error=unlimited: pass through */
};

struct vgpu_runtime {
	int mode;
	const struct vgpu_limits *limits; /* PROT_READ mapping of the root-owned limits file */
	struct vgpu_state *state;         /* MAP_SHARED mapping of the job's state file */
	uint32_t ngpus;                   /* limits->ngpus at load, <= VGPU_MAX_GPUS */
	uint32_t share_policy;
	pid_t pid;                        /* getpid() of this process (reset after fork) */
	uint64_t start_time;
	int slot;                         /* index in state->proc[], -1 until registered */
};
VGPU_HIDDEN extern struct vgpu_runtime vgpu_rt;

/* Launch gate: points at state->gate_mask for enforced jobs, at a constant zero otherwise. */
VGPU_HIDDEN extern _Atomic uint32_t *vgpu_gate;

/* hook.c */
VGPU_HIDDEN void vgpu_ensure_init(void);
/* hook_hip.c: register the process and start the monitor on the first HIP use. */
VGPU_HIDDEN void vgpu_hip_start(void);

/* hook_config.c: admin settings, the limits file, the state file. */
VGPU_HIDDEN void vgpu_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
VGPU_HIDDEN int vgpu_load(struct vgpu_runtime *rt);
/* Device allocations are charged rounded up to this (hook.conf alloc_granularity). */
VGPU_HIDDEN extern uint64_t vgpu_alloc_granularity;
/* Consistent copy of one GPU's limits (seqlock). Returns 0, or -1 when it stayed unstable. */
VGPU_HIDDEN int vgpu_limits_read(uint32_t gpu, struct vgpu_gpu_limit *out, uint32_t *policy);
VGPU_HIDDEN uint64_t vgpu_limits_generation(void);
VGPU_HIDDEN void vgpu_limits_refresh(void);
static inline const struct vgpu_limits *vgpu_limits(void)
{
	return __atomic_load_n(&vgpu_rt.limits, __ATOMIC_ACQUIRE);
}
VGPU_HIDDEN uint64_t vgpu_now_ns(void);
VGPU_HIDDEN uint64_t vgpu_proc_start_time(pid_t pid);
VGPU_HIDDEN int vgpu_proc_alive(pid_t pid, uint64_t start_time);

/* hook_device.c: which job GPU a front's device ordinal or a limits uuid is. -1: not the job's. */
VGPU_HIDDEN int vgpu_gpu_of_ordinal(const struct vgpu_front *f, int ordinal);
/* The calling thread's current device: its job gpu, or -1 with *api_err the front's error
 * (0 when the device is fine but not the job's). */
VGPU_HIDDEN int vgpu_gpu_of_current(const struct vgpu_front *f, int *api_err);
VGPU_HIDDEN int vgpu_gpu_of_uuid(const char *uuid);
VGPU_HIDDEN void vgpu_device_reset(void);

/* hook_mem.c: the job's memory accounting in the shared state (the core of every front's
 * allocation wrappers; no vendor types). */
enum vgpu_alloc_kind { VGPU_KIND_PTR = 1, VGPU_KIND_VMM, VGPU_KIND_ARRAY, VGPU_KIND_MIPMAP };
VGPU_HIDDEN int vgpu_state_lock(struct vgpu_state *s);
VGPU_HIDDEN void vgpu_state_unlock(struct vgpu_state *s);
VGPU_HIDDEN int vgpu_register_process(void);
VGPU_HIDDEN void vgpu_reclaim_dead(int force);
VGPU_HIDDEN void vgpu_mem_atfork_prepare(void);
VGPU_HIDDEN void vgpu_mem_atfork_parent(void);
VGPU_HIDDEN void vgpu_mem_atfork_child(void);
/* Should a front account this call? VGPU_OK with *account 0: pass through (not a vgpu job,
 * or on_error=unlimited); VGPU_ENOMEM: deny; VGPU_OK with *account 1: enforce. */
VGPU_HIDDEN int vgpu_mem_mode(int *account);
/* Before the driver: reserve bytes on job gpu g (charged rounded up to the granularity).
 * VGPU_OK: *reserved = g; VGPU_ENOMEM: refused, *reserved = -1. Pooled: from what this
 * process's pools keep first. Every VGPU_OK is followed by vgpu_mem_settle. */
VGPU_HIDDEN int vgpu_mem_reserve(int g, uint64_t bytes, int *reserved);
VGPU_HIDDEN int vgpu_mem_reserve_pooled(int g, uint64_t bytes, int *reserved);
/* After the driver: ok = the call succeeded; remembers key -> bytes, or gives them back. */
VGPU_HIDDEN void vgpu_mem_settle(int ok, int reserved, int kind, uint64_t key, uint64_t bytes);
/* Pitch-like calls: change what `reserved` holds from `charged` to `needed` bytes (both
 * before rounding). VGPU_ENOMEM when the growth does not fit (the old charge stays). */
VGPU_HIDDEN int vgpu_mem_resize(int reserved, uint64_t charged, uint64_t needed);
/* Give back a whole reservation of a call that will not be settled (op ends too). */
VGPU_HIDDEN void vgpu_mem_abandon(int reserved, uint64_t bytes);
/* Frees: around the driver call. vgpu_mem_freed returns what key held once the driver freed
 * it (ok); _pooled keeps it charged as pool memory when the pool keeps freed memory. */
VGPU_HIDDEN void vgpu_mem_free_begin(void);
VGPU_HIDDEN void vgpu_mem_freed(int ok, int kind, uint64_t key);
VGPU_HIDDEN void vgpu_mem_freed_pooled(int ok, uint64_t key, int keeps);
/* A front's per-process runtime setup on job gpu g (a CUDA primary context, HIP's implicit
 * one) costs device memory when the driver makes it: before the call that makes it,
 * vgpu_ctx_begin reserves what the job's first one measured (VGPU_ENOMEM: it does not fit)
 * or makes this process the one that measures; vgpu_ctx_end after the call (made: it
 * exists now). *token carries the state between them. */
struct vgpu_ctx_token {
	int g;
	int measurer;
	uint64_t reserved;
};
VGPU_HIDDEN int vgpu_ctx_needed(int g);
VGPU_HIDDEN int vgpu_ctx_begin(int g, struct vgpu_ctx_token *t);
VGPU_HIDDEN void vgpu_ctx_end(struct vgpu_ctx_token *t, int made);
/* The slice as the job sees it: cap and the job's usage of job gpu g (0, 0 when g < 0). */
VGPU_HIDDEN void vgpu_slice_view(int g, uint64_t *cap, uint64_t *used);
/* Is the process enforcing or denying (then the slice is reported instead of the card)? */
VGPU_HIDDEN int vgpu_mem_reporting(void);
VGPU_HIDDEN uint64_t vgpu_array_bytes(size_t w, size_t h, size_t d, int format,
				      unsigned channels, unsigned levels, int depth_shrinks);

/* hook_compute.c: measured device time, token buckets, the gate. */
/* Start the monitor thread; the first front that starts it chooses the telemetry. */
VGPU_HIDDEN void vgpu_monitor_start(const struct vgpu_front *f);
VGPU_HIDDEN void vgpu_monitor_atfork_child(void);
VGPU_HIDDEN void vgpu_throttle_wait(const struct vgpu_front *f);
/* Is this process the sampler of job gpu g (ROCm SMI polls only there)? */
VGPU_HIDDEN int vgpu_sampler_leads(uint32_t g);
/* What the device says this process holds on job gpu g (bytes); -1 when it cannot tell. */
VGPU_HIDDEN int vgpu_process_used(uint32_t g, uint64_t *bytes);
/* Charge what this process holds beyond its allocations (context, pools), per gpu. */
VGPU_HIDDEN void vgpu_mem_reconcile(void);

#define VGPU_GATE(front)                                                           \
	do {                                                                       \
		if (VGPU_UNLIKELY(atomic_load_explicit(vgpu_gate, memory_order_relaxed))) \
			vgpu_throttle_wait(front);                                 \
	} while (0)

/*
 * A launch wrapper (every front's). The unthrottled path is one load of the real pointer, one
 * of the gate word and a tail call that leaves every argument where the caller put it.
 * Waiting at the gate, first-use resolution (and the front's start) happen out of line, in a
 * call that takes no arguments and returns the function to jump to.
 */
#define VGPU_LAUNCH_WRAPPER(ret, front, missing_err, name, params, ...)                  \
	_Pragma("GCC diagnostic push")                                                    \
	_Pragma("GCC diagnostic ignored \"-Wunused-parameter\"")                          \
	static ret missing_##name params                                                  \
	{                                                                                 \
		return missing_err;                                                       \
	}                                                                                 \
	_Pragma("GCC diagnostic pop")                                                     \
	static __attribute__((noinline, cold)) vgpu_fn_##name slow_##name(void)          \
	{                                                                                 \
		VGPU_LAUNCH_SLOW_HOOK(front);                                             \
		VGPU_GATE(front);                                                         \
		vgpu_fn_##name real_ = VGPU_REAL(name);                                   \
		return real_ ? real_ : missing_##name;                                    \
	}                                                                                 \
	ret name params                                                                   \
	{                                                                                 \
		vgpu_fn_##name real_ = (vgpu_fn_##name)__atomic_load_n(                   \
			&vgpu_real[VGPU_HOOK_##name], __ATOMIC_RELAXED);                  \
		if (VGPU_UNLIKELY(real_ == NULL ||                                        \
				  atomic_load_explicit(vgpu_gate, memory_order_relaxed))) \
			real_ = slow_##name();                                            \
		return real_(__VA_ARGS__);                                                \
	}
/* What a front does on a launch's slow path before the gate (HIP: start on first use). */
#ifndef VGPU_LAUNCH_SLOW_HOOK
#define VGPU_LAUNCH_SLOW_HOOK(front) ((void)0)
#endif

#endif /* VGPU_HOOK_H */

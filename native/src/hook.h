/* Internal interface between the hook's files. Nothing here is exported (libvgpu.map). */
#ifndef VGPU_HOOK_H
#define VGPU_HOOK_H

#include <stdint.h>
#include <sys/types.h>

#include "cuda_min.h"
#include "hook_list.h"
#include "vgpu_abi.h"
#include "vgpu_state.h"

#define VGPU_HIDDEN __attribute__((visibility("hidden")))
#define VGPU_EXPORT __attribute__((visibility("default")))
#define VGPU_LIKELY(x) __builtin_expect(!!(x), 1)
#define VGPU_UNLIKELY(x) __builtin_expect(!!(x), 0)

#define VGPU_RET_CU CUresult
#define VGPU_RET_NVML nvmlReturn_t
#define VGPU_LIB_CU 0
#define VGPU_LIB_NVML 1

enum vgpu_hook_id {
#define X(lib, name, base, ver, pt, params) VGPU_HOOK_##name,
	VGPU_HOOKS(X)
#undef X
	VGPU_HOOK_COUNT
};

#define X(lib, name, base, ver, pt, params) typedef VGPU_RET_##lib(*vgpu_fn_##name) params;
VGPU_HOOKS(X)
#undef X

#define X(lib, name, base, ver, pt, params) VGPU_EXPORT VGPU_RET_##lib name params;
VGPU_HOOKS(X)
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

/* hook_device.c: which job GPU a device ordinal or an NVML handle is. -1: not the job's. */
VGPU_HIDDEN int vgpu_gpu_of_ordinal(CUdevice ordinal);
VGPU_HIDDEN int vgpu_gpu_of_current_context(CUresult *err);
VGPU_HIDDEN int vgpu_gpu_of_nvml(nvmlDevice_t device);
VGPU_HIDDEN void vgpu_device_reset(void);

/* hook_mem.c: the job's memory accounting in the shared state. */
VGPU_HIDDEN int vgpu_state_lock(struct vgpu_state *s);
VGPU_HIDDEN void vgpu_state_unlock(struct vgpu_state *s);
VGPU_HIDDEN int vgpu_register_process(void);
VGPU_HIDDEN void vgpu_reclaim_dead(int force);
VGPU_HIDDEN void vgpu_mem_atfork_prepare(void);
VGPU_HIDDEN void vgpu_mem_atfork_parent(void);
VGPU_HIDDEN void vgpu_mem_atfork_child(void);

/* hook_compute.c: measured device time, token buckets, the gate. */
VGPU_HIDDEN void vgpu_monitor_start(void);
VGPU_HIDDEN void vgpu_monitor_atfork_child(void);
VGPU_HIDDEN void vgpu_throttle_wait(void);
/* What NVML says this process holds on job gpu g (bytes); -1 when NVML cannot tell. */
VGPU_HIDDEN int vgpu_nvml_process_used(uint32_t g, uint64_t *bytes);
/* Charge what this process holds beyond its allocations (context, pools), per gpu. */
VGPU_HIDDEN void vgpu_mem_reconcile(void);

#define VGPU_GATE()                                                                \
	do {                                                                       \
		if (VGPU_UNLIKELY(atomic_load_explicit(vgpu_gate, memory_order_relaxed))) \
			vgpu_throttle_wait();                                      \
	} while (0)

#endif /* VGPU_HOOK_H */

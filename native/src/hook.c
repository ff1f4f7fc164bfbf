/*
 * Interception: how the application's calls reach the wrappers, on every lookup path.
 *   1. linked -lcuda / -lnvidia-ml / -lamdhip64: the wrappers are exported, LD_PRELOAD puts
 *      them first;
 *   2. dlopen + dlsym: dlsym() is interposed and hands out the wrapper for a hooked name
 *      (cu*, nvml*, hip*);
 *   3. cuGetProcAddress (what cudart 12/13 uses, _ptsz included): the wrapper asks the real
 *      one, then swaps a returned pointer that is (by address, or by name and version) a
 *      hooked function for the wrapper.
 * Also: one-time initialization, fork handlers, and the launch wrappers (the hot path).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "hook.h"

void *vgpu_real[VGPU_HOOK_COUNT];
struct vgpu_runtime vgpu_rt = {.slot = -1};
static _Atomic uint32_t gate_never_closed;
_Atomic uint32_t *vgpu_gate = &gate_never_closed;

struct hook_info {
	const char *name;
	const char *base;
	int lib;
	int min_version;
	int per_thread;
	void *wrapper;
};

static const struct hook_info hooks[VGPU_HOOK_COUNT] = {
#define X(lib, name, base, ver, pt, params) {#name, #base, VGPU_LIB_##lib, ver, pt, (void *)name},
	VGPU_ALL_HOOKS(X)
#undef X
};

static void *(*real_dlsym)(void *, const char *);
static void *lib_handles[VGPU_LIB_COUNT];
static void *driver_exports[VGPU_HOOK_COUNT]; /* the driver's own address of each name */
static pthread_once_t exports_once = PTHREAD_ONCE_INIT;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void find_real_dlsym(void)
{
	void *p = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
	if (!p)
		p = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
	__atomic_store_n((void **)&real_dlsym, p, __ATOMIC_RELEASE);
}

static void *lib_handle(int lib)
{
	void *h = __atomic_load_n(&lib_handles[lib], __ATOMIC_ACQUIRE);
	if (h)
		return h;
	static const char *const names[VGPU_LIB_COUNT] = {
		[VGPU_LIB_CU] = "libcuda.so.1",
		[VGPU_LIB_NVML] = "libnvidia-ml.so.1",
		[VGPU_LIB_HIP] = "libamdhip64.so.5",
		[VGPU_LIB_RSMI] = "librocm_smi64.so.1",
	};
	if (lib < 0 || lib >= VGPU_LIB_COUNT)
		return NULL;
	h = dlopen(names[lib], RTLD_NOW | RTLD_LOCAL);
	if (h)
		__atomic_store_n(&lib_handles[lib], h, __ATOMIC_RELEASE);
	return h;
}

static int is_wrapper(const void *p)
{
	for (int i = 0; i < VGPU_HOOK_COUNT; i++)
		if (hooks[i].wrapper == p)
			return 1;
	return 0;
}

/* Remember the driver's function behind hook id; never one of our own wrappers. */
static void set_real(int id, void *p)
{
	if (!p || is_wrapper(p))
		return;
	void *expected = NULL;
	__atomic_compare_exchange_n(&vgpu_real[id], &expected, p, 0, __ATOMIC_RELEASE,
				    __ATOMIC_RELAXED);
}

void *vgpu_driver_sym(int lib, const char *name)
{
	if (!real_dlsym)
		find_real_dlsym();
	void *h = lib_handle(lib);
	return h && real_dlsym ? real_dlsym(h, name) : NULL;
}

void *vgpu_resolve(enum vgpu_hook_id id)
{
	if (!real_dlsym)
		find_real_dlsym();
	if (!real_dlsym)
		return NULL;
	void *p = real_dlsym(RTLD_NEXT, hooks[id].name);
	if (!p || is_wrapper(p))
		p = vgpu_driver_sym(hooks[id].lib, hooks[id].name);
	set_real(id, p);
	return __atomic_load_n(&vgpu_real[id], __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------------ initialization, fork */

static void atfork_prepare(void)
{
	vgpu_mem_atfork_prepare();
}

static void atfork_parent(void)
{
	vgpu_mem_atfork_parent();
}

static void atfork_child(void)
{
	vgpu_mem_atfork_child();
	vgpu_rt.pid = getpid();
	vgpu_rt.start_time = vgpu_proc_start_time(vgpu_rt.pid);
	vgpu_rt.slot = -1; /* the child registers its own slot; the parent's stays the parent's */
	vgpu_monitor_atfork_child();
}

static void init(void)
{
	struct vgpu_runtime rt = {.slot = -1};
	rt.pid = getpid();
	vgpu_load(&rt);
	if (rt.mode == VGPU_MODE_ENFORCE)
		rt.start_time = vgpu_proc_start_time(rt.pid);
	vgpu_rt.limits = rt.limits;
	vgpu_rt.state = rt.state;
	vgpu_rt.ngpus = rt.ngpus;
	vgpu_rt.share_policy = rt.share_policy;
	vgpu_rt.pid = rt.pid;
	vgpu_rt.start_time = rt.start_time;
	vgpu_rt.slot = -1;
	if (rt.mode == VGPU_MODE_ENFORCE) {
		pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
		vgpu_gate = &rt.state->gate_mask;
	}
	__atomic_store_n(&vgpu_rt.mode, rt.mode, __ATOMIC_RELEASE);
}

void vgpu_ensure_init(void)
{
	if (VGPU_UNLIKELY(__atomic_load_n(&vgpu_rt.mode, __ATOMIC_ACQUIRE) == VGPU_MODE_UNSET))
		pthread_once(&init_once, init);
}

/* ------------------------------------------------------------------ dlsym */

static void *hooked_dlsym(void *handle, const char *symbol)
{
	void *p = real_dlsym(handle, symbol);
	for (int i = 0; i < VGPU_HOOK_COUNT; i++) {
		if (strcmp(hooks[i].name, symbol) != 0)
			continue;
		if (!p)
			return NULL;
		set_real(i, p);
		vgpu_ensure_init();
		if (hooks[i].lib == VGPU_LIB_HIP)
			vgpu_hip_start(); /* HIP has no cuInit: the front starts on first use */
		return hooks[i].wrapper;
	}
	return p;
}

VGPU_EXPORT void *dlsym(void *handle, const char *symbol)
{
	if (VGPU_UNLIKELY(!real_dlsym)) {
		find_real_dlsym();
		if (!real_dlsym)
			return NULL;
	}
	/* glibc declares symbol nonnull, yet callers pass NULL: hide it from the optimizer. */
	const char *name = symbol;
	__asm__("" : "+r"(name));
	if (name && ((name[0] == 'c' && name[1] == 'u') ||
		     (name[0] == 'h' && name[1] == 'i' && name[2] == 'p') ||
		     (name[0] == 'n' && name[1] == 'v' && name[2] == 'm' && name[3] == 'l')))
		return hooked_dlsym(handle, name);
	/* A tail call: glibc's dlsym sees the caller's return address, so RTLD_NEXT keeps its
	 * meaning for other interposers (checked by tests/test_hook_intercept.py). */
	return real_dlsym(handle, symbol);
}

/* ------------------------------------------------------------------ cuGetProcAddress */

static void find_driver_exports(void)
{
	for (int i = 0; i < VGPU_HOOK_COUNT; i++)
		if (hooks[i].lib == VGPU_LIB_CU)
			driver_exports[i] = vgpu_driver_sym(VGPU_LIB_CU, hooks[i].name);
}

static void *substitute(const char *symbol, int version, cuuint64_t flags, void *real)
{
	if (!real || !symbol || is_wrapper(real))
		return real;
	pthread_once(&exports_once, find_driver_exports);
	for (int i = 0; i < VGPU_HOOK_COUNT; i++) {
		if (hooks[i].lib == VGPU_LIB_CU && driver_exports[i] == real) {
			set_real(i, real);
			return hooks[i].wrapper;
		}
	}
	/* The driver handed out an address it does not export under a hooked name (e.g. a
	 * _ptsz variant): decide by name, version and the per-thread flag. */
	int per_thread = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
	int best = -1;
	for (int i = 0; i < VGPU_HOOK_COUNT; i++) {
		const struct hook_info *h = &hooks[i];
		if (h->lib != VGPU_LIB_CU || h->min_version > version || strcmp(h->base, symbol))
			continue;
		if (h->per_thread && !per_thread)
			continue;
		if (best < 0 || h->min_version > hooks[best].min_version ||
		    (h->min_version == hooks[best].min_version && h->per_thread == per_thread))
			best = i;
	}
	if (best < 0)
		return real;
	set_real(best, real);
	return hooks[best].wrapper;
}

CUresult cuGetProcAddress_v2 VGPU_GPA2_PARAMS
{
	vgpu_ensure_init();
	vgpu_fn_cuGetProcAddress_v2 real = VGPU_REAL(cuGetProcAddress_v2);
	if (!real)
		return CUDA_ERROR_NOT_INITIALIZED;
	CUresult r = real(symbol, pfn, version, flags, status);
	if (r == CUDA_SUCCESS && pfn)
		*pfn = substitute(symbol, version, flags, *pfn);
	return r;
}

CUresult cuGetProcAddress VGPU_GPA1_PARAMS
{
	vgpu_ensure_init();
	vgpu_fn_cuGetProcAddress real = VGPU_REAL(cuGetProcAddress);
	if (!real)
		return CUDA_ERROR_NOT_INITIALIZED;
	CUresult r = real(symbol, pfn, version, flags);
	if (r == CUDA_SUCCESS && pfn)
		*pfn = substitute(symbol, version, flags, *pfn);
	return r;
}

CUresult cuInit(unsigned int flags)
{
	vgpu_ensure_init();
	vgpu_fn_cuInit real = VGPU_REAL(cuInit);
	if (!real)
		return CUDA_ERROR_NOT_INITIALIZED;
	CUresult r = real(flags);
	if (r == CUDA_SUCCESS && vgpu_rt.mode == VGPU_MODE_ENFORCE) {
		vgpu_register_process();
		vgpu_monitor_start(&vgpu_cuda_front);
	}
	return r;
}

/* ------------------------------------------------------------------ launches (hot path) */

#define VGPU_CU_LAUNCH(name, params, ...) \
	VGPU_LAUNCH_WRAPPER(CUresult, &vgpu_cuda_front, CUDA_ERROR_NOT_FOUND, name, params, __VA_ARGS__)

VGPU_CU_LAUNCH(cuLaunchKernel, VGPU_LAUNCH_PARAMS, f, gx, gy, gz, bx, by, bz, shmem, stream,
		    params, extra)
VGPU_CU_LAUNCH(cuLaunchKernel_ptsz, VGPU_LAUNCH_PARAMS, f, gx, gy, gz, bx, by, bz, shmem,
		    stream, params, extra)
VGPU_CU_LAUNCH(cuLaunchKernelEx, VGPU_LAUNCH_EX_PARAMS, config, f, params, extra)
VGPU_CU_LAUNCH(cuLaunchKernelEx_ptsz, VGPU_LAUNCH_EX_PARAMS, config, f, params, extra)
VGPU_CU_LAUNCH(cuLaunchCooperativeKernel, VGPU_COOP_PARAMS, f, gx, gy, gz, bx, by, bz,
		    shmem, stream, params)
VGPU_CU_LAUNCH(cuLaunchCooperativeKernel_ptsz, VGPU_COOP_PARAMS, f, gx, gy, gz, bx, by, bz,
		    shmem, stream, params)
VGPU_CU_LAUNCH(cuGraphLaunch, (CUgraphExec graph, CUstream stream), graph, stream)
VGPU_CU_LAUNCH(cuGraphLaunch_ptsz, (CUgraphExec graph, CUstream stream), graph, stream)

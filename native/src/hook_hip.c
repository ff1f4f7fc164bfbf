/*
 * The HIP front: the HIP runtime's (libamdhip64.so.5, HIP 5.2) memory and launch entry points
 * mapped onto the core (hook_mem.c, hook_compute.c), and how the core sees HIP devices.
 *
 * A hipcc-built program calls the runtime directly (symbols of version hip_4.2 .. hip_5.2;
 * HIP 5.2 has no hipGetProcAddress), so the exported, unversioned wrappers (LD_PRELOAD) and the
 * interposed dlsym are every lookup path (docs/hook.md, "HIP").
 *
 * Devices: the uuid in the limits file is "GPU-" and the 16 hex digits of ROCm SMI's unique id;
 * hipDeviceGetUuid returns those 16 characters (the HSA agent's UUID after "GPU-").
 * Contexts: HIP makes its per-device runtime state (queues, pools: device memory) implicitly
 * at the first call that works on a device; the first hooked call on a job gpu reserves what
 * the job's first one measured, as cuDevicePrimaryCtxRetain does for CUDA.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "hook.h"

#define PITCH_ALIGN 512u
#define hipMemPoolAttrReleaseThreshold 4

typedef hipError_t (*get_device_fn)(int *);
typedef hipError_t (*get_uuid_fn)(hipUUID *, hipDevice_t);
typedef hipError_t (*default_pool_fn)(hipMemPool_t *, int);
typedef hipError_t (*pool_attr_fn)(hipMemPool_t, int, void *);

/* ------------------------------------------------------------------ devices */

static int hip_current(int *ordinal)
{
	static get_device_fn get_device;
	if (!get_device)
		get_device = (get_device_fn)vgpu_driver_sym(VGPU_LIB_HIP, "hipGetDevice");
	int dev = -1;
	hipError_t r = get_device ? get_device(&dev) : hipErrorNotInitialized;
	*ordinal = dev;
	return r;
}

static int hip_uuid(int ordinal, char *out, size_t len)
{
	static get_uuid_fn get_uuid;
	if (!get_uuid)
		get_uuid = (get_uuid_fn)vgpu_driver_sym(VGPU_LIB_HIP, "hipDeviceGetUuid");
	hipUUID u;
	if (!get_uuid || get_uuid(&u, ordinal) != hipSuccess || len < 21)
		return -1;
	/* The agent's UUID characters ("GPU-" + 16 hex digits of the unique id): anything else
	 * (a GPU without a unique id reports "GPU-XX") matches no uuid. */
	memcpy(out, "GPU-", 4);
	for (int i = 0; i < 16; i++) {
		unsigned char c = (unsigned char)u.bytes[i];
		if (!isxdigit(c))
			return -1;
		out[4 + i] = (char)tolower(c);
	}
	out[20] = '\0';
	return 0;
}

const struct vgpu_front vgpu_hip_front = {
	.name = "HIP",
	.id = 1,
	.current = hip_current,
	.uuid = hip_uuid,
	.telemetry = &vgpu_rsmi_telemetry,
};

static int32_t started_pid;

void vgpu_hip_start(void)
{
	vgpu_ensure_init();
	if (__atomic_load_n(&started_pid, __ATOMIC_ACQUIRE) == (int32_t)vgpu_rt.pid)
		return;
	__atomic_store_n(&started_pid, (int32_t)vgpu_rt.pid, __ATOMIC_RELEASE);
	if (vgpu_rt.mode != VGPU_MODE_ENFORCE)
		return;
	vgpu_register_process();
	vgpu_monitor_start(&vgpu_hip_front);
}

/* ------------------------------------------------------------------ one accounted call */

struct call {
	int g;        /* job gpu reserved on, -1: pass through */
	uint64_t bytes;
	struct vgpu_ctx_token ctx;
};

/*
 * Before the runtime: on job gpu g (from the current device unless ordinal >= 0), make room
 * for the runtime's per-device state if this process has none there yet, then reserve bytes
 * (pooled: from what the pools keep first). hipSuccess with c->g -1: pass through.
 */
static hipError_t call_begin(struct call *c, int ordinal, uint64_t bytes, int pooled)
{
	int account, err = 0, reserved;
	c->g = -1;
	c->bytes = bytes;
	c->ctx.g = -1;
	vgpu_hip_start();
	if (vgpu_mem_mode(&account) != VGPU_OK)
		return hipErrorOutOfMemory;
	if (!account)
		return hipSuccess;
	int g = ordinal >= 0 ? vgpu_gpu_of_ordinal(&vgpu_hip_front, ordinal)
			     : vgpu_gpu_of_current(&vgpu_hip_front, &err);
	if (g < 0)
		return err ? err : hipErrorOutOfMemory; /* a device the job holds no slice of */
	if (vgpu_ctx_begin(g, &c->ctx) != VGPU_OK)
		return hipErrorOutOfMemory;
	int st = pooled ? vgpu_mem_reserve_pooled(g, bytes, &reserved)
			: vgpu_mem_reserve(g, bytes, &reserved);
	if (st != VGPU_OK) {
		vgpu_ctx_end(&c->ctx, 0);
		return hipErrorOutOfMemory;
	}
	c->g = reserved;
	return hipSuccess;
}

/* After the runtime: settle the reservation; the device has the runtime's state now. */
static hipError_t call_end(struct call *c, hipError_t r, int kind, uint64_t key)
{
	vgpu_mem_settle(r == hipSuccess, c->g, kind, key, c->bytes);
	vgpu_ctx_end(&c->ctx, 1);
	return r;
}

#define HIP_ALLOC(pooled, name, kind, keyexpr, bytes, ...)                              \
	do {                                                                            \
		struct call c_;                                                         \
		hipError_t r_ = call_begin(&c_, -1, (bytes), (pooled));                 \
		if (r_ != hipSuccess)                                                   \
			return r_;                                                      \
		vgpu_fn_##name real_ = VGPU_REAL(name);                                 \
		r_ = real_ ? real_(__VA_ARGS__) : hipErrorNotFound;                    \
		return call_end(&c_, r_, (kind), r_ ? 0 : (uint64_t)(uintptr_t)(keyexpr)); \
	} while (0)

#define HIP_FREE(pooled_keeps, name, kind, key, ...)                                   \
	do {                                                                            \
		vgpu_hip_start();                                                       \
		int keeps_ = (pooled_keeps);                                            \
		vgpu_mem_free_begin();                                                  \
		vgpu_fn_##name real_ = VGPU_REAL(name);                                 \
		hipError_t r_ = real_ ? real_(__VA_ARGS__) : hipErrorNotFound;         \
		if (keeps_ >= 0)                                                        \
			vgpu_mem_freed_pooled(r_ == hipSuccess, (key), keeps_);         \
		else                                                                    \
			vgpu_mem_freed(r_ == hipSuccess, (kind), (key));                \
		return r_;                                                              \
	} while (0)

/* ------------------------------------------------------------------ allocations and frees */

hipError_t hipMalloc(void **ptr, size_t bytes)
{
	HIP_ALLOC(0, hipMalloc, VGPU_KIND_PTR, *ptr, bytes, ptr, bytes);
}

hipError_t hipExtMallocWithFlags(void **ptr, size_t bytes, unsigned int flags)
{
	HIP_ALLOC(0, hipExtMallocWithFlags, VGPU_KIND_PTR, *ptr, bytes, ptr, bytes, flags);
}

hipError_t hipMallocManaged(void **ptr, size_t bytes, unsigned int flags)
{
	HIP_ALLOC(0, hipMallocManaged, VGPU_KIND_PTR, *ptr, bytes, ptr, bytes, flags);
}

hipError_t hipMallocAsync(void **ptr, size_t bytes, hipStream_t stream)
{
	HIP_ALLOC(1, hipMallocAsync, VGPU_KIND_PTR, *ptr, bytes, ptr, bytes, stream);
}

hipError_t hipMallocFromPoolAsync(void **ptr, size_t bytes, hipMemPool_t pool, hipStream_t stream)
{
	HIP_ALLOC(1, hipMallocFromPoolAsync, VGPU_KIND_PTR, *ptr, bytes, ptr, bytes, pool, stream);
}

/* Does the current device's default pool keep freed memory (release threshold > 0)? Pools
 * made with hipMemPoolCreate are not asked: 1 (kept charged until ROCm SMI says) when the
 * runtime cannot tell. */
static int pool_keeps(void)
{
	static default_pool_fn default_pool;
	static pool_attr_fn pool_attr;
	hipMemPool_t pool = NULL;
	uint64_t threshold = 0;
	int dev;
	if (vgpu_rt.mode != VGPU_MODE_ENFORCE)
		return 0;
	if (!default_pool)
		default_pool = (default_pool_fn)vgpu_driver_sym(VGPU_LIB_HIP,
								"hipDeviceGetDefaultMemPool");
	if (!pool_attr)
		pool_attr = (pool_attr_fn)vgpu_driver_sym(VGPU_LIB_HIP, "hipMemPoolGetAttribute");
	if (!default_pool || !pool_attr || hip_current(&dev) != hipSuccess ||
	    default_pool(&pool, dev) != hipSuccess || !pool ||
	    pool_attr(pool, hipMemPoolAttrReleaseThreshold, &threshold) != hipSuccess)
		return 1;
	return threshold > 0;
}

hipError_t hipFree(void *ptr)
{
	HIP_FREE(-1, hipFree, VGPU_KIND_PTR, (uint64_t)(uintptr_t)ptr, ptr);
}

hipError_t hipFreeAsync(void *ptr, hipStream_t stream)
{
	HIP_FREE(pool_keeps(), hipFreeAsync, VGPU_KIND_PTR, (uint64_t)(uintptr_t)ptr, ptr, stream);
}

/* The pitch is known only afterwards: reserve an upper bound, then settle exactly. */
static uint64_t pitch_estimate(size_t width, size_t height)
{
	uint64_t w = ((uint64_t)width + PITCH_ALIGN - 1) / PITCH_ALIGN * PITCH_ALIGN, bytes;
	if (w < width || __builtin_mul_overflow(w, (uint64_t)height, &bytes))
		return UINT64_MAX;
	return bytes;
}

static hipError_t pitch_end(struct call *c, hipError_t r, void *ptr, size_t pitch,
			    size_t height)
{
	if (c->g >= 0 && r == hipSuccess &&
	    vgpu_mem_resize(c->g, c->bytes, (uint64_t)pitch * height) != VGPU_OK) {
		vgpu_fn_hipFree real_free = VGPU_REAL(hipFree);
		if (real_free)
			real_free(ptr);
		vgpu_mem_abandon(c->g, c->bytes);
		vgpu_ctx_end(&c->ctx, 1);
		return hipErrorOutOfMemory;
	}
	if (r == hipSuccess)
		c->bytes = (uint64_t)pitch * height;
	return call_end(c, r, VGPU_KIND_PTR, r == hipSuccess ? (uint64_t)(uintptr_t)ptr : 0);
}

hipError_t hipMallocPitch(void **ptr, size_t *pitch, size_t width, size_t height)
{
	struct call c;
	hipError_t r = call_begin(&c, -1, pitch_estimate(width, height), 0);
	if (r != hipSuccess)
		return r;
	vgpu_fn_hipMallocPitch real = VGPU_REAL(hipMallocPitch);
	r = real ? real(ptr, pitch, width, height) : hipErrorNotFound;
	return pitch_end(&c, r, r == hipSuccess ? *ptr : NULL, r == hipSuccess ? *pitch : 0,
			 height);
}

hipError_t hipMemAllocPitch(hipDeviceptr_t *ptr, size_t *pitch, size_t width, size_t height,
			    unsigned int elem)
{
	struct call c;
	hipError_t r = call_begin(&c, -1, pitch_estimate(width, height), 0);
	if (r != hipSuccess)
		return r;
	vgpu_fn_hipMemAllocPitch real = VGPU_REAL(hipMemAllocPitch);
	r = real ? real(ptr, pitch, width, height, elem) : hipErrorNotFound;
	return pitch_end(&c, r, r == hipSuccess ? *ptr : NULL, r == hipSuccess ? *pitch : 0,
			 height);
}

/* Bytes of an array of a channel format: element bytes (the channels' bits) per texel,
 * summed over mip levels (depth shrinks with the level). */
static uint64_t channel_array_bytes(const hipChannelFormatDesc *desc, size_t w, size_t h,
				    size_t d, unsigned int levels)
{
	uint64_t bits = 0;
	if (desc)
		bits = (uint64_t)(desc->x > 0 ? desc->x : 0) + (uint64_t)(desc->y > 0 ? desc->y : 0) +
		       (uint64_t)(desc->z > 0 ? desc->z : 0) + (uint64_t)(desc->w > 0 ? desc->w : 0);
	uint64_t per = (bits + 7) / 8;
	if (per > 1024)
		return UINT64_MAX;
	/* format 0x01 is one byte per channel: per "channels" of a byte each */
	return vgpu_array_bytes(w, h, d, 0x01, (unsigned int)(per ? per : 1), levels, 1);
}

hipError_t hipMallocArray(hipArray_t *array, const hipChannelFormatDesc *desc, size_t width,
			  size_t height, unsigned int flags)
{
	uint64_t bytes = channel_array_bytes(desc, width, height, 1, 1);
	HIP_ALLOC(0, hipMallocArray, VGPU_KIND_ARRAY, *array, bytes, array, desc, width, height,
		  flags);
}

hipError_t hipMalloc3DArray(hipArray_t *array, const hipChannelFormatDesc *desc, hipExtent extent,
			    unsigned int flags)
{
	uint64_t bytes = channel_array_bytes(desc, extent.width, extent.height, extent.depth, 1);
	HIP_ALLOC(0, hipMalloc3DArray, VGPU_KIND_ARRAY, *array, bytes, array, desc, extent, flags);
}

hipError_t hipArray3DCreate(hipArray_t *array, const HIP_ARRAY3D_DESCRIPTOR *desc)
{
	uint64_t bytes = desc ? vgpu_array_bytes(desc->Width, desc->Height, desc->Depth,
						 desc->Format, desc->NumChannels, 1, 0)
			      : 0;
	HIP_ALLOC(0, hipArray3DCreate, VGPU_KIND_ARRAY, *array, bytes, array, desc);
}

hipError_t hipMallocMipmappedArray(hipMipmappedArray_t *array, const hipChannelFormatDesc *desc,
				   hipExtent extent, unsigned int levels, unsigned int flags)
{
	uint64_t bytes = channel_array_bytes(desc, extent.width, extent.height, extent.depth, levels);
	HIP_ALLOC(0, hipMallocMipmappedArray, VGPU_KIND_MIPMAP, *array, bytes, array, desc, extent,
		  levels, flags);
}

hipError_t hipMipmappedArrayCreate(hipMipmappedArray_t *array, HIP_ARRAY3D_DESCRIPTOR *desc,
				   unsigned int levels)
{
	/* Layered and cubemap arrays keep their layer count at every level (as CUDA's). */
	uint64_t bytes = desc ? vgpu_array_bytes(desc->Width, desc->Height, desc->Depth,
						 desc->Format, desc->NumChannels, levels,
						 !(desc->Flags & 0x05))
			      : 0;
	HIP_ALLOC(0, hipMipmappedArrayCreate, VGPU_KIND_MIPMAP, *array, bytes, array, desc, levels);
}

hipError_t hipFreeMipmappedArray(hipMipmappedArray_t array)
{
	HIP_FREE(-1, hipFreeMipmappedArray, VGPU_KIND_MIPMAP, (uint64_t)(uintptr_t)array, array);
}

hipError_t hipMipmappedArrayDestroy(hipMipmappedArray_t array)
{
	HIP_FREE(-1, hipMipmappedArrayDestroy, VGPU_KIND_MIPMAP, (uint64_t)(uintptr_t)array, array);
}

/* hipMalloc3D: a pitched allocation of extent.width bytes x height x depth. */
hipError_t hipMalloc3D(hipPitchedPtr *pitched, hipExtent extent)
{
	struct call c;
	uint64_t rows, estimate;
	if (__builtin_mul_overflow((uint64_t)(extent.height ? extent.height : 1),
				   (uint64_t)(extent.depth ? extent.depth : 1), &rows))
		rows = UINT64_MAX;
	estimate = pitch_estimate(extent.width, rows > SIZE_MAX ? SIZE_MAX : (size_t)rows);
	hipError_t r = call_begin(&c, -1, estimate, 0);
	if (r != hipSuccess)
		return r;
	vgpu_fn_hipMalloc3D real = VGPU_REAL(hipMalloc3D);
	r = real ? real(pitched, extent) : hipErrorNotFound;
	int ok = r == hipSuccess && pitched;
	return pitch_end(&c, ok ? r : (r ? r : hipErrorInvalidValue), ok ? pitched->ptr : NULL,
			 ok ? pitched->pitch : 0, (size_t)rows);
}

hipError_t hipArrayCreate(hipArray_t *array, const HIP_ARRAY_DESCRIPTOR *desc)
{
	uint64_t bytes = desc ? vgpu_array_bytes(desc->Width, desc->Height, 1, desc->Format,
						 desc->NumChannels, 1, 0)
			      : 0;
	HIP_ALLOC(0, hipArrayCreate, VGPU_KIND_ARRAY, *array, bytes, array, desc);
}

hipError_t hipFreeArray(hipArray_t array)
{
	HIP_FREE(-1, hipFreeArray, VGPU_KIND_ARRAY, (uint64_t)(uintptr_t)array, array);
}

hipError_t hipArrayDestroy(hipArray_t array)
{
	HIP_FREE(-1, hipArrayDestroy, VGPU_KIND_ARRAY, (uint64_t)(uintptr_t)array, array);
}

hipError_t hipMemCreate(hipMemGenericAllocationHandle_t *handle, size_t bytes,
			const hipMemAllocationProp *prop, unsigned long long flags)
{
	struct call c = {.g = -1, .ctx = {.g = -1}};
	hipError_t r;
	if (prop && prop->location.type == hipMemLocationTypeDevice) {
		r = call_begin(&c, prop->location.id >= 0 ? prop->location.id : 64, bytes, 0);
		if (r != hipSuccess)
			return r;
	}
	vgpu_fn_hipMemCreate real = VGPU_REAL(hipMemCreate);
	r = real ? real(handle, bytes, prop, flags) : hipErrorNotFound;
	return call_end(&c, r, VGPU_KIND_VMM, r ? 0 : (uint64_t)*handle);
}

hipError_t hipMemRelease(hipMemGenericAllocationHandle_t handle)
{
	HIP_FREE(-1, hipMemRelease, VGPU_KIND_VMM, (uint64_t)handle, handle);
}

/* ------------------------------------------------------------------ what the job is told */

hipError_t hipMemGetInfo(size_t *free_bytes, size_t *total)
{
	/* Memory info sets the device up too: reserve the runtime state first (when it does not
	 * fit, the call still answers, with what is left of the slice). */
	struct vgpu_ctx_token t = {.g = -1};
	int account = 0, err = 0;
	vgpu_hip_start();
	if (vgpu_mem_mode(&account) == VGPU_OK && account) {
		int g = vgpu_gpu_of_current(&vgpu_hip_front, &err);
		if (g >= 0)
			vgpu_ctx_begin(g, &t); /* t.g stays -1 when it does not fit */
	}
	vgpu_fn_hipMemGetInfo real = VGPU_REAL(hipMemGetInfo);
	hipError_t r = real ? real(free_bytes, total) : hipErrorNotFound;
	vgpu_ctx_end(&t, 1);
	if (r != hipSuccess || !vgpu_mem_reporting() || !free_bytes || !total)
		return r;
	uint64_t cap = 0, used = 0;
	if (vgpu_rt.mode == VGPU_MODE_ENFORCE)
		vgpu_slice_view(vgpu_gpu_of_current(&vgpu_hip_front, &err), &cap, &used);
	uint64_t real_free = *free_bytes;
	if (cap < *total)
		*total = cap;
	uint64_t avail = cap > used ? cap - used : 0;
	*free_bytes = avail < real_free ? avail : real_free;
	return r;
}

hipError_t hipDeviceTotalMem(size_t *bytes, hipDevice_t dev)
{
	vgpu_ensure_init();
	vgpu_fn_hipDeviceTotalMem real = VGPU_REAL(hipDeviceTotalMem);
	hipError_t r = real ? real(bytes, dev) : hipErrorNotFound;
	if (r != hipSuccess || !vgpu_mem_reporting() || !bytes)
		return r;
	uint64_t cap = 0, used = 0;
	if (vgpu_rt.mode == VGPU_MODE_ENFORCE)
		vgpu_slice_view(vgpu_gpu_of_ordinal(&vgpu_hip_front, dev), &cap, &used);
	if (cap < *bytes)
		*bytes = cap;
	return r;
}

/* ------------------------------------------------------------------ launches (hot path) */

#undef VGPU_LAUNCH_SLOW_HOOK
#define VGPU_LAUNCH_SLOW_HOOK(front) vgpu_hip_start()
#define VGPU_HIP_LAUNCH(name, params, ...) \
	VGPU_LAUNCH_WRAPPER(hipError_t, &vgpu_hip_front, hipErrorNotFound, name, params, __VA_ARGS__)

VGPU_HIP_LAUNCH(hipLaunchKernel, VGPU_HIP_LAUNCH_PARAMS, f, grid, block, args, shmem, stream)
VGPU_HIP_LAUNCH(hipLaunchKernel_spt, VGPU_HIP_LAUNCH_PARAMS, f, grid, block, args, shmem, stream)
VGPU_HIP_LAUNCH(hipExtLaunchKernel, VGPU_HIP_EXT_LAUNCH_PARAMS, f, grid, block, args, shmem,
		stream, start, stop, flags)
VGPU_HIP_LAUNCH(hipLaunchCooperativeKernel, VGPU_HIP_COOP_PARAMS, f, grid, block, args, shmem,
		stream)
VGPU_HIP_LAUNCH(hipLaunchCooperativeKernel_spt, VGPU_HIP_COOP_PARAMS, f, grid, block, args,
		shmem, stream)
VGPU_HIP_LAUNCH(hipModuleLaunchKernel, VGPU_HIP_MODULE_LAUNCH_PARAMS, f, gx, gy, gz, bx, by, bz,
		shmem, stream, params, extra)
VGPU_HIP_LAUNCH(hipGraphLaunch, (hipGraphExec_t graph, hipStream_t stream), graph, stream)

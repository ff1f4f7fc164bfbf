/*
 * The CUDA front: the CUDA driver API's and NVML's memory entry points mapped onto the core
 * (hook_mem.c), and how the core sees CUDA devices (struct vgpu_front). Interception itself
 * (dlsym, cuGetProcAddress) and the launch wrappers are in hook.c.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "hook.h"

#define PITCH_ALIGN 512u

typedef CUresult (*ctx_get_device_fn)(CUdevice *);
typedef CUresult (*device_get_uuid_fn)(CUuuid *, CUdevice);
typedef nvmlReturn_t (*nvml_get_uuid_fn)(nvmlDevice_t, char *, unsigned int);

/* ------------------------------------------------------------------ devices */

static int cuda_current(int *ordinal)
{
	static ctx_get_device_fn get_device;
	if (!get_device)
		get_device = (ctx_get_device_fn)vgpu_driver_sym(VGPU_LIB_CU, "cuCtxGetDevice");
	CUdevice dev = -1;
	CUresult r = get_device ? get_device(&dev) : CUDA_ERROR_NOT_INITIALIZED;
	*ordinal = dev;
	return r;
}

static int cuda_uuid(int ordinal, char *out, size_t len)
{
	static device_get_uuid_fn get_uuid;
	if (!get_uuid)
		get_uuid = (device_get_uuid_fn)vgpu_driver_sym(VGPU_LIB_CU, "cuDeviceGetUuid_v2");
	if (!get_uuid)
		get_uuid = (device_get_uuid_fn)vgpu_driver_sym(VGPU_LIB_CU, "cuDeviceGetUuid");
	CUuuid u;
	if (!get_uuid || get_uuid(&u, ordinal) != CUDA_SUCCESS)
		return -1;
	const unsigned char *b = (const unsigned char *)u.bytes;
	snprintf(out, len,
		 "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
		 b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
		 b[14], b[15]);
	return 0;
}

const struct vgpu_front vgpu_cuda_front = {
	.name = "CUDA",
	.id = 0,
	.current = cuda_current,
	.uuid = cuda_uuid,
	.telemetry = &vgpu_nvml_telemetry,
};

static int gpu_of_nvml(nvmlDevice_t device)
{
	static nvml_get_uuid_fn get_uuid;
	if (!get_uuid)
		get_uuid = (nvml_get_uuid_fn)vgpu_driver_sym(VGPU_LIB_NVML, "nvmlDeviceGetUUID");
	char uuid[96];
	if (!get_uuid || get_uuid(device, uuid, sizeof uuid) != NVML_SUCCESS)
		return -1;
	uuid[sizeof uuid - 1] = '\0';
	return vgpu_gpu_of_uuid(uuid);
}

/* ------------------------------------------------------------------ contexts */

CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
	vgpu_ensure_init();
	vgpu_fn_cuDevicePrimaryCtxRetain real = VGPU_REAL(cuDevicePrimaryCtxRetain);
	if (!real)
		return CUDA_ERROR_NOT_FOUND;
	int g = vgpu_rt.mode == VGPU_MODE_ENFORCE && vgpu_rt.state
			? vgpu_gpu_of_ordinal(&vgpu_cuda_front, dev)
			: -1;
	if (!vgpu_ctx_needed(g))
		return real(pctx, dev);
	struct vgpu_ctx_token t;
	if (vgpu_ctx_begin(g, &t) != VGPU_OK)
		return CUDA_ERROR_OUT_OF_MEMORY;
	CUresult r = real(pctx, dev);
	vgpu_ctx_end(&t, r == CUDA_SUCCESS);
	return r;
}

/* ------------------------------------------------------------------ allocation wrappers */

/* Which job gpu the current context is; also says whether to account at all. */
static CUresult accounting_gpu(int *gpu, int *account)
{
	*gpu = -1;
	if (vgpu_mem_mode(account) != VGPU_OK)
		return CUDA_ERROR_OUT_OF_MEMORY;
	if (!*account)
		return CUDA_SUCCESS;
	int err = 0;
	*gpu = vgpu_gpu_of_current(&vgpu_cuda_front, &err);
	if (*gpu < 0)
		return err ? err : CUDA_ERROR_OUT_OF_MEMORY; /* a device the job holds no slice of */
	return CUDA_SUCCESS;
}

/* Does the pool of a stream-ordered allocation keep freed memory (release threshold > 0)?
 * Asked before the free, while the pointer is valid. */
static int pool_keeps(CUdeviceptr ptr)
{
	typedef CUresult (*ptr_attr_fn)(void *, int, CUdeviceptr);
	typedef CUresult (*pool_attr_fn)(CUmemoryPool, int, void *);
	static ptr_attr_fn ptr_attr;
	static pool_attr_fn pool_attr;
	CUmemoryPool pool = NULL;
	uint64_t threshold = 0;
	if (vgpu_rt.mode != VGPU_MODE_ENFORCE)
		return 0;
	if (!ptr_attr)
		ptr_attr = (ptr_attr_fn)vgpu_driver_sym(VGPU_LIB_CU, "cuPointerGetAttribute");
	if (!pool_attr)
		pool_attr = (pool_attr_fn)vgpu_driver_sym(VGPU_LIB_CU, "cuMemPoolGetAttribute");
	if (!ptr_attr || !pool_attr)
		return 1; /* cannot tell: keep it charged until NVML says */
	if (ptr_attr(&pool, CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE, ptr) != CUDA_SUCCESS || !pool)
		return 1;
	if (pool_attr(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &threshold) != CUDA_SUCCESS)
		return 1;
	return threshold > 0;
}

/* The usual shape: account on the current context's gpu, call, settle. */
#define ALLOC_ON_CURRENT(reserve_fn, name, kind, keyexpr, bytes, ...)              \
	do {                                                                       \
		int gpu_, account_, reserved_ = -1;                                \
		CUresult r_ = accounting_gpu(&gpu_, &account_);                   \
		if (r_ != CUDA_SUCCESS)                                            \
			return r_;                                                 \
		if (account_ && reserve_fn(gpu_, (bytes), &reserved_) != VGPU_OK) \
			return CUDA_ERROR_OUT_OF_MEMORY;                           \
		vgpu_fn_##name real_ = VGPU_REAL(name);                            \
		r_ = real_ ? real_(__VA_ARGS__) : CUDA_ERROR_NOT_FOUND;      \
		vgpu_mem_settle(r_ == CUDA_SUCCESS, reserved_, (kind),             \
				r_ ? 0 : (uint64_t)(keyexpr), (bytes));            \
		return r_;                                                         \
	} while (0)
#define ALLOC_PLAIN(...) ALLOC_ON_CURRENT(vgpu_mem_reserve, __VA_ARGS__)
/* Stream-ordered allocations: from what the pools keep first. */
#define ALLOC_POOLED(name, keyexpr, bytes, ...) \
	ALLOC_ON_CURRENT(vgpu_mem_reserve_pooled, name, VGPU_KIND_PTR, keyexpr, bytes, __VA_ARGS__)

#define FREE_POOLED(name, key, ...)                                                \
	do {                                                                       \
		vgpu_ensure_init();                                                \
		int keeps_ = pool_keeps(key);                                      \
		vgpu_mem_free_begin();                                             \
		vgpu_fn_##name real_ = VGPU_REAL(name);                            \
		CUresult r_ = real_ ? real_(__VA_ARGS__) : CUDA_ERROR_NOT_FOUND; \
		vgpu_mem_freed_pooled(r_ == CUDA_SUCCESS, (key), keeps_);          \
		return r_;                                                         \
	} while (0)

#define FREE_FORWARD(name, kind, key, ...)                                         \
	do {                                                                       \
		vgpu_mem_free_begin();                                             \
		vgpu_fn_##name real_ = VGPU_REAL(name);                            \
		CUresult r_ = real_ ? real_(__VA_ARGS__) : CUDA_ERROR_NOT_FOUND; \
		vgpu_mem_freed(r_ == CUDA_SUCCESS, (kind), (key));                 \
		return r_;                                                         \
	} while (0)

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytes)
{
	ALLOC_PLAIN(cuMemAlloc_v2, VGPU_KIND_PTR, *dptr, bytes, dptr, bytes);
}

CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytes, unsigned int flags)
{
	ALLOC_PLAIN(cuMemAllocManaged, VGPU_KIND_PTR, *dptr, bytes, dptr, bytes, flags);
}

CUresult cuMemAllocAsync VGPU_ALLOC_ASYNC_PARAMS
{
	ALLOC_POOLED(cuMemAllocAsync, *dptr, bytes, dptr, bytes, stream);
}

CUresult cuMemAllocAsync_ptsz VGPU_ALLOC_ASYNC_PARAMS
{
	ALLOC_POOLED(cuMemAllocAsync_ptsz, *dptr, bytes, dptr, bytes, stream);
}

CUresult cuMemAllocFromPoolAsync VGPU_ALLOC_POOL_PARAMS
{
	ALLOC_POOLED(cuMemAllocFromPoolAsync, *dptr, bytes, dptr, bytes, pool, stream);
}

CUresult cuMemAllocFromPoolAsync_ptsz VGPU_ALLOC_POOL_PARAMS
{
	ALLOC_POOLED(cuMemAllocFromPoolAsync_ptsz, *dptr, bytes, dptr, bytes, pool, stream);
}

CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width, size_t height,
			    unsigned int elem)
{
	/* The pitch is known only afterwards: reserve an upper bound, then settle exactly. */
	uint64_t estimate, w = ((uint64_t)width + PITCH_ALIGN - 1) / PITCH_ALIGN * PITCH_ALIGN;
	if (w < width || __builtin_mul_overflow(w, (uint64_t)height, &estimate))
		estimate = UINT64_MAX;
	int gpu, account, reserved = -1;
	CUresult r = accounting_gpu(&gpu, &account);
	if (r != CUDA_SUCCESS)
		return r;
	if (account && vgpu_mem_reserve(gpu, estimate, &reserved) != VGPU_OK)
		return CUDA_ERROR_OUT_OF_MEMORY;
	vgpu_fn_cuMemAllocPitch_v2 real = VGPU_REAL(cuMemAllocPitch_v2);
	r = real ? real(dptr, pitch, width, height, elem) : CUDA_ERROR_NOT_FOUND;
	if (reserved < 0 || r != CUDA_SUCCESS) {
		vgpu_mem_settle(0, reserved, VGPU_KIND_PTR, 0, estimate);
		return r;
	}
	uint64_t actual = (uint64_t)*pitch * height;
	if (vgpu_mem_resize(reserved, estimate, actual) != VGPU_OK) {
		vgpu_fn_cuMemFree_v2 real_free = VGPU_REAL(cuMemFree_v2);
		if (real_free)
			real_free(*dptr);
		vgpu_mem_abandon(reserved, estimate);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	vgpu_mem_settle(1, reserved, VGPU_KIND_PTR, *dptr, actual);
	return r;
}

CUresult cuMemFree_v2(CUdeviceptr dptr)
{
	FREE_FORWARD(cuMemFree_v2, VGPU_KIND_PTR, dptr, dptr);
}

CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream stream)
{
	FREE_POOLED(cuMemFreeAsync, dptr, dptr, stream);
}

CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream stream)
{
	FREE_POOLED(cuMemFreeAsync_ptsz, dptr, dptr, stream);
}

CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t bytes,
		     const CUmemAllocationProp *prop, unsigned long long flags)
{
	int account, reserved = -1;
	int on_device = prop && prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE;
	int st = vgpu_mem_mode(&account);
	if (on_device && st != VGPU_OK)
		return CUDA_ERROR_OUT_OF_MEMORY;
	if (on_device && account &&
	    vgpu_mem_reserve(vgpu_gpu_of_ordinal(&vgpu_cuda_front, prop->location.id), bytes,
			     &reserved) != VGPU_OK)
		return CUDA_ERROR_OUT_OF_MEMORY;
	vgpu_fn_cuMemCreate real = VGPU_REAL(cuMemCreate);
	CUresult r = real ? real(handle, bytes, prop, flags) : CUDA_ERROR_NOT_FOUND;
	vgpu_mem_settle(r == CUDA_SUCCESS, reserved, VGPU_KIND_VMM, r ? 0 : *handle, bytes);
	return r;
}

CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
	FREE_FORWARD(cuMemRelease, VGPU_KIND_VMM, handle, handle);
}

/* ------------------------------------------------------------------ arrays */

CUresult cuArrayCreate_v2(CUarray *array, const CUDA_ARRAY_DESCRIPTOR *desc)
{
	uint64_t bytes = desc ? vgpu_array_bytes(desc->Width, desc->Height, 1, desc->Format,
						 desc->NumChannels, 1, 0)
			      : 0;
	ALLOC_PLAIN(cuArrayCreate_v2, VGPU_KIND_ARRAY, (uintptr_t)*array, bytes, array, desc);
}

CUresult cuArray3DCreate_v2(CUarray *array, const CUDA_ARRAY3D_DESCRIPTOR *desc)
{
	uint64_t bytes = desc ? vgpu_array_bytes(desc->Width, desc->Height, desc->Depth,
						 desc->Format, desc->NumChannels, 1, 0)
			      : 0;
	ALLOC_PLAIN(cuArray3DCreate_v2, VGPU_KIND_ARRAY, (uintptr_t)*array, bytes, array, desc);
}

CUresult cuMipmappedArrayCreate(CUmipmappedArray *array, const CUDA_ARRAY3D_DESCRIPTOR *desc,
				unsigned int levels)
{
	/* Layered and cubemap arrays keep their layer count at every level. */
	uint64_t bytes = desc ? vgpu_array_bytes(desc->Width, desc->Height, desc->Depth,
						 desc->Format, desc->NumChannels, levels,
						 !(desc->Flags & 0x05))
			      : 0;
	ALLOC_PLAIN(cuMipmappedArrayCreate, VGPU_KIND_MIPMAP, (uintptr_t)*array, bytes, array,
		    desc, levels);
}

CUresult cuArrayDestroy(CUarray array)
{
	FREE_FORWARD(cuArrayDestroy, VGPU_KIND_ARRAY, (uint64_t)(uintptr_t)array, array);
}

CUresult cuMipmappedArrayDestroy(CUmipmappedArray array)
{
	FREE_FORWARD(cuMipmappedArrayDestroy, VGPU_KIND_MIPMAP, (uint64_t)(uintptr_t)array, array);
}

/* ------------------------------------------------------------------ what the job is told */

CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total)
{
	vgpu_fn_cuMemGetInfo_v2 real = VGPU_REAL(cuMemGetInfo_v2);
	CUresult r = real ? real(free_bytes, total) : CUDA_ERROR_NOT_FOUND;
	if (r != CUDA_SUCCESS || !vgpu_mem_reporting() || !free_bytes || !total)
		return r;
	int err;
	uint64_t cap = 0, used = 0;
	if (vgpu_rt.mode == VGPU_MODE_ENFORCE)
		vgpu_slice_view(vgpu_gpu_of_current(&vgpu_cuda_front, &err), &cap, &used);
	uint64_t real_free = *free_bytes;
	if (cap < *total)
		*total = cap;
	uint64_t avail = cap > used ? cap - used : 0;
	*free_bytes = avail < real_free ? avail : real_free;
	return r;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
	vgpu_fn_cuDeviceTotalMem_v2 real = VGPU_REAL(cuDeviceTotalMem_v2);
	CUresult r = real ? real(bytes, dev) : CUDA_ERROR_NOT_FOUND;
	if (r != CUDA_SUCCESS || !vgpu_mem_reporting() || !bytes)
		return r;
	uint64_t cap = 0, used = 0;
	if (vgpu_rt.mode == VGPU_MODE_ENFORCE)
		vgpu_slice_view(vgpu_gpu_of_ordinal(&vgpu_cuda_front, dev), &cap, &used);
	if (cap < *bytes)
		*bytes = cap;
	return r;
}

static void nvml_view(nvmlDevice_t device, unsigned long long *total,
		      unsigned long long *free_bytes, unsigned long long *used)
{
	int g = vgpu_rt.mode == VGPU_MODE_ENFORCE ? gpu_of_nvml(device) : -1;
	if (vgpu_rt.mode == VGPU_MODE_ENFORCE && g < 0)
		return; /* a GPU of the node that is not the job's: the truth */
	uint64_t cap = 0, mine = 0;
	vgpu_slice_view(g, &cap, &mine);
	if (cap < *total)
		*total = cap;
	*used = mine;
	uint64_t avail = *total > mine ? *total - mine : 0;
	if (avail < *free_bytes)
		*free_bytes = avail;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
	vgpu_fn_nvmlDeviceGetMemoryInfo real = VGPU_REAL(nvmlDeviceGetMemoryInfo);
	nvmlReturn_t r = real ? real(device, memory) : NVML_ERROR_NOT_FOUND;
	if (r == NVML_SUCCESS && memory && vgpu_mem_reporting())
		nvml_view(device, &memory->total, &memory->free, &memory->used);
	return r;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
	vgpu_fn_nvmlDeviceGetMemoryInfo_v2 real = VGPU_REAL(nvmlDeviceGetMemoryInfo_v2);
	nvmlReturn_t r = real ? real(device, memory) : NVML_ERROR_NOT_FOUND;
	if (r == NVML_SUCCESS && memory && vgpu_mem_reporting()) {
		nvml_view(device, &memory->total, &memory->free, &memory->used);
		if (memory->reserved > memory->total)
			memory->reserved = 0;
	}
	return r;
}

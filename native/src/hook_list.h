/*
 * THE list of hooked functions. Everything else is generated from it: the hook ids, the
 * names, the function-pointer types of the real functions, the table of real pointers, the
 * wrapper table that dlsym() and cuGetProcAddress() hand out, and the exported prototypes
 * (libvgpu.map exports exactly these names plus dlsym).
 *
 * X(lib, name, base, min_version, per_thread, params)
 *   lib          CU (libcuda.so.1) or NVML (libnvidia-ml.so.1)
 *   name         the exported symbol, which is also the wrapper's name
 *   base         the name cuGetProcAddress is asked for
 *   min_version  the lowest CUDA version for which cuGetProcAddress(base) means `name`
 *   per_thread   1 for the _ptsz variant (CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM)
 *   params       the parameter list
 */
#ifndef VGPU_HOOK_LIST_H
#define VGPU_HOOK_LIST_H

#define VGPU_LAUNCH_PARAMS                                                                     \
	(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,     \
	 unsigned int by, unsigned int bz, unsigned int shmem, CUstream stream, void **params, \
	 void **extra)
#define VGPU_COOP_PARAMS                                                                       \
	(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,     \
	 unsigned int by, unsigned int bz, unsigned int shmem, CUstream stream, void **params)
#define VGPU_LAUNCH_EX_PARAMS \
	(const CUlaunchConfig *config, CUfunction f, void **params, void **extra)
#define VGPU_ALLOC_ASYNC_PARAMS (CUdeviceptr *dptr, size_t bytes, CUstream stream)
#define VGPU_ALLOC_POOL_PARAMS \
	(CUdeviceptr *dptr, size_t bytes, CUmemoryPool pool, CUstream stream)
#define VGPU_GPA1_PARAMS (const char *symbol, void **pfn, int version, cuuint64_t flags)
#define VGPU_GPA2_PARAMS                                                    \
	(const char *symbol, void **pfn, int version, cuuint64_t flags, \
	 CUdriverProcAddressQueryResult *status)

#define VGPU_HOOKS(X)                                                                          \
	X(CU, cuInit, cuInit, 2000, 0, (unsigned int flags))                                   \
	X(CU, cuGetProcAddress, cuGetProcAddress, 11030, 0, VGPU_GPA1_PARAMS)                  \
	X(CU, cuGetProcAddress_v2, cuGetProcAddress, 12000, 0, VGPU_GPA2_PARAMS)               \
	X(CU, cuDevicePrimaryCtxRetain, cuDevicePrimaryCtxRetain, 7000, 0,                     \
	  (CUcontext * pctx, CUdevice dev))                                                    \
	X(CU, cuMemGetInfo_v2, cuMemGetInfo, 3020, 0, (size_t *free_bytes, size_t *total))    \
	X(CU, cuDeviceTotalMem_v2, cuDeviceTotalMem, 3020, 0, (size_t *bytes, CUdevice dev))   \
	X(CU, cuMemAlloc_v2, cuMemAlloc, 3020, 0, (CUdeviceptr *dptr, size_t bytes))           \
	X(CU, cuMemAllocPitch_v2, cuMemAllocPitch, 3020, 0,                                    \
	  (CUdeviceptr *dptr, size_t *pitch, size_t width, size_t height, unsigned int elem))  \
	X(CU, cuMemAllocManaged, cuMemAllocManaged, 6000, 0,                                   \
	  (CUdeviceptr *dptr, size_t bytes, unsigned int flags))                               \
	X(CU, cuMemAllocAsync, cuMemAllocAsync, 11020, 0, VGPU_ALLOC_ASYNC_PARAMS)             \
	X(CU, cuMemAllocAsync_ptsz, cuMemAllocAsync, 11020, 1, VGPU_ALLOC_ASYNC_PARAMS)        \
	X(CU, cuMemAllocFromPoolAsync, cuMemAllocFromPoolAsync, 11020, 0,                      \
	  VGPU_ALLOC_POOL_PARAMS)                                                              \
	X(CU, cuMemAllocFromPoolAsync_ptsz, cuMemAllocFromPoolAsync, 11020, 1,                 \
	  VGPU_ALLOC_POOL_PARAMS)                                                              \
	X(CU, cuMemFree_v2, cuMemFree, 3020, 0, (CUdeviceptr dptr))                            \
	X(CU, cuMemFreeAsync, cuMemFreeAsync, 11020, 0, (CUdeviceptr dptr, CUstream stream))   \
	X(CU, cuMemFreeAsync_ptsz, cuMemFreeAsync, 11020, 1,                                   \
	  (CUdeviceptr dptr, CUstream stream))                                                 \
	X(CU, cuMemCreate, cuMemCreate, 10020, 0,                                              \
	  (CUmemGenericAllocationHandle * handle, size_t bytes,                                \
	   const CUmemAllocationProp *prop, unsigned long long flags))                         \
	X(CU, cuMemRelease, cuMemRelease, 10020, 0, (CUmemGenericAllocationHandle handle))     \
	X(CU, cuArrayCreate_v2, cuArrayCreate, 3020, 0,                                        \
	  (CUarray * array, const CUDA_ARRAY_DESCRIPTOR *desc))                                \
	X(CU, cuArray3DCreate_v2, cuArray3DCreate, 3020, 0,                                    \
	  (CUarray * array, const CUDA_ARRAY3D_DESCRIPTOR *desc))                              \
	X(CU, cuArrayDestroy, cuArrayDestroy, 2000, 0, (CUarray array))                        \
	X(CU, cuMipmappedArrayCreate, cuMipmappedArrayCreate, 5000, 0,                         \
	  (CUmipmappedArray * array, const CUDA_ARRAY3D_DESCRIPTOR *desc,                      \
	   unsigned int levels))                                                               \
	X(CU, cuMipmappedArrayDestroy, cuMipmappedArrayDestroy, 5000, 0,                       \
	  (CUmipmappedArray array))                                                            \
	X(CU, cuLaunchKernel, cuLaunchKernel, 4000, 0, VGPU_LAUNCH_PARAMS)                     \
	X(CU, cuLaunchKernel_ptsz, cuLaunchKernel, 4000, 1, VGPU_LAUNCH_PARAMS)                \
	X(CU, cuLaunchKernelEx, cuLaunchKernelEx, 11060, 0, VGPU_LAUNCH_EX_PARAMS)             \
	X(CU, cuLaunchKernelEx_ptsz, cuLaunchKernelEx, 11060, 1, VGPU_LAUNCH_EX_PARAMS)        \
	X(CU, cuLaunchCooperativeKernel, cuLaunchCooperativeKernel, 9000, 0, VGPU_COOP_PARAMS) \
	X(CU, cuLaunchCooperativeKernel_ptsz, cuLaunchCooperativeKernel, 9000, 1,              \
	  VGPU_COOP_PARAMS)                                                                    \
	X(CU, cuGraphLaunch, cuGraphLaunch, 10000, 0, (CUgraphExec graph, CUstream stream))    \
	X(CU, cuGraphLaunch_ptsz, cuGraphLaunch, 10000, 1, (CUgraphExec graph, CUstream stream)) \
	X(NVML, nvmlDeviceGetMemoryInfo, nvmlDeviceGetMemoryInfo, 0, 0,                        \
	  (nvmlDevice_t device, nvmlMemory_t *memory))                                         \
	X(NVML, nvmlDeviceGetMemoryInfo_v2, nvmlDeviceGetMemoryInfo_v2, 0, 0,                  \
	  (nvmlDevice_t device, nvmlMemory_v2_t *memory))

#endif /* VGPU_HOOK_LIST_H */

/*
 * THE list of hooked HIP runtime functions (libamdhip64.so.5, HIP 5.2). As for hook_list.h,
 * everything is generated from it: hook ids, names, the real-pointer table, the wrapper table
 * dlsym() hands out, prototypes and the version script's exports (unversioned: see
 * docs/hook.md, "HIP"). The comment after each entry is the symbol version the real library
 * defines it in (nm -D --with-symbol-versions), which hipcc-built programs ask for.
 *
 * X(lib, name, params)   lib is HIP
 */
#ifndef VGPU_HOOK_HIP_LIST_H
#define VGPU_HOOK_HIP_LIST_H

#define VGPU_HIP_LAUNCH_PARAMS \
	(const void *f, hipDim3 grid, hipDim3 block, void **args, size_t shmem, hipStream_t stream)
#define VGPU_HIP_COOP_PARAMS                                                                  \
	(const void *f, hipDim3 grid, hipDim3 block, void **args, unsigned int shmem,         \
	 hipStream_t stream)
#define VGPU_HIP_EXT_LAUNCH_PARAMS                                                            \
	(const void *f, hipDim3 grid, hipDim3 block, void **args, size_t shmem,               \
	 hipStream_t stream, hipEvent_t start, hipEvent_t stop, int flags)
#define VGPU_HIP_MODULE_LAUNCH_PARAMS                                                         \
	(hipFunction_t f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, \
	 unsigned int by, unsigned int bz, unsigned int shmem, hipStream_t stream,            \
	 void **params, void **extra)

#define VGPU_HIP_HOOKS(X)                                                                    \
	X(HIP, hipMalloc, (void **ptr, size_t bytes))                          /* hip_4.2 */ \
	X(HIP, hipExtMallocWithFlags, (void **ptr, size_t bytes, unsigned int flags)) /* 4.2 */ \
	X(HIP, hipMallocManaged, (void **ptr, size_t bytes, unsigned int flags)) /* hip_4.2 */ \
	X(HIP, hipMallocPitch, (void **ptr, size_t *pitch, size_t width, size_t height))      \
	X(HIP, hipMemAllocPitch,                                               /* hip_4.2 */ \
	  (hipDeviceptr_t * ptr, size_t *pitch, size_t width, size_t height, unsigned int elem)) \
	X(HIP, hipMallocAsync, (void **ptr, size_t bytes, hipStream_t stream)) /* hip_5.1 */ \
	X(HIP, hipMallocFromPoolAsync,                                         /* hip_5.1 */ \
	  (void **ptr, size_t bytes, hipMemPool_t pool, hipStream_t stream))                  \
	X(HIP, hipFree, (void *ptr))                                           /* hip_4.2 */ \
	X(HIP, hipFreeAsync, (void *ptr, hipStream_t stream))                  /* hip_5.1 */ \
	X(HIP, hipMallocArray,                                                 /* hip_4.2 */ \
	  (hipArray_t * array, const hipChannelFormatDesc *desc, size_t width, size_t height, \
	   unsigned int flags))                                                               \
	X(HIP, hipArrayCreate, (hipArray_t * array, const HIP_ARRAY_DESCRIPTOR *desc)) /* 4.2 */ \
	X(HIP, hipFreeArray, (hipArray_t array))                               /* hip_4.2 */ \
	X(HIP, hipArrayDestroy, (hipArray_t array))                            /* hip_4.3 */ \
	X(HIP, hipMalloc3D, (hipPitchedPtr * pitched, hipExtent extent))       /* hip_4.2 */ \
	X(HIP, hipMalloc3DArray,                                               /* hip_4.2 */ \
	  (hipArray_t * array, const hipChannelFormatDesc *desc, hipExtent extent,             \
	   unsigned int flags))                                                               \
	X(HIP, hipArray3DCreate, (hipArray_t * array, const HIP_ARRAY3D_DESCRIPTOR *desc)) /* 4.2 */ \
	X(HIP, hipMallocMipmappedArray,                                        /* hip_4.2 */ \
	  (hipMipmappedArray_t * array, const hipChannelFormatDesc *desc, hipExtent extent,   \
	   unsigned int levels, unsigned int flags))                                          \
	X(HIP, hipMipmappedArrayCreate,                                        /* hip_4.2 */ \
	  (hipMipmappedArray_t * array, HIP_ARRAY3D_DESCRIPTOR * desc, unsigned int levels))  \
	X(HIP, hipFreeMipmappedArray, (hipMipmappedArray_t array))             /* hip_4.2 */ \
	X(HIP, hipMipmappedArrayDestroy, (hipMipmappedArray_t array))          /* hip_4.2 */ \
	X(HIP, hipMemCreate,                                                   /* hip_5.1 */ \
	  (hipMemGenericAllocationHandle_t * handle, size_t bytes,                            \
	   const hipMemAllocationProp *prop, unsigned long long flags))                       \
	X(HIP, hipMemRelease, (hipMemGenericAllocationHandle_t handle))        /* hip_5.1 */ \
	X(HIP, hipMemGetInfo, (size_t *free_bytes, size_t *total))             /* hip_4.2 */ \
	X(HIP, hipDeviceTotalMem, (size_t *bytes, hipDevice_t dev))            /* hip_4.2 */ \
	X(HIP, hipLaunchKernel, VGPU_HIP_LAUNCH_PARAMS)                        /* hip_4.2 */ \
	X(HIP, hipLaunchKernel_spt, VGPU_HIP_LAUNCH_PARAMS)                    /* hip_5.2 */ \
	X(HIP, hipExtLaunchKernel, VGPU_HIP_EXT_LAUNCH_PARAMS)                 /* hip_4.2 */ \
	X(HIP, hipLaunchCooperativeKernel, VGPU_HIP_COOP_PARAMS)               /* hip_4.2 */ \
	X(HIP, hipLaunchCooperativeKernel_spt, VGPU_HIP_COOP_PARAMS)           /* hip_5.2 */ \
	X(HIP, hipModuleLaunchKernel, VGPU_HIP_MODULE_LAUNCH_PARAMS)           /* hip_4.2 */ \
	X(HIP, hipGraphLaunch, (hipGraphExec_t graph, hipStream_t stream))     /* hip_4.3 */

#endif /* VGPU_HOOK_HIP_LIST_H */

/* A HIP runtime that does nothing (build/native/tests/nullhip/libamdhip64.so.5): one device of
 * 16 GiB, allocations that always succeed. It has the entry points the simulated GPU lacks
 * (3D and mipmapped arrays, hipMalloc3D), so tests/test_hook_hip.py can check that the hook
 * charges and returns them (hip_null_probe.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hip_min.h"

#define EXPORT __attribute__((visibility("default")))

static uintptr_t next_handle = 0x10000;

static void *handle(void)
{
	next_handle += 0x1000;
	return (void *)next_handle;
}

EXPORT hipError_t hipGetDevice(int *dev)
{
	*dev = 0;
	return hipSuccess;
}

EXPORT hipError_t hipDeviceGetUuid(hipUUID *u, hipDevice_t dev)
{
	if (dev != 0)
		return 101;
	memcpy(u->bytes, "00000000000000aa", 16);
	return hipSuccess;
}

EXPORT hipError_t hipMemGetInfo(size_t *free_bytes, size_t *total)
{
	*free_bytes = *total = (size_t)16 << 30;
	return hipSuccess;
}

EXPORT hipError_t hipFree(void *p)
{
	(void)p;
	return hipSuccess;
}

EXPORT hipError_t hipMalloc3D(hipPitchedPtr *p, hipExtent e)
{
	p->ptr = handle();
	p->pitch = (e.width + 255) / 256 * 256;
	p->xsize = e.width;
	p->ysize = e.height;
	return hipSuccess;
}

EXPORT hipError_t hipMalloc3DArray(hipArray_t *a, const hipChannelFormatDesc *d, hipExtent e,
				   unsigned int flags)
{
	(void)d, (void)e, (void)flags;
	*a = handle();
	return hipSuccess;
}

EXPORT hipError_t hipArray3DCreate(hipArray_t *a, const HIP_ARRAY3D_DESCRIPTOR *d)
{
	(void)d;
	*a = handle();
	return hipSuccess;
}

EXPORT hipError_t hipMallocMipmappedArray(hipMipmappedArray_t *a, const hipChannelFormatDesc *d,
					  hipExtent e, unsigned int levels, unsigned int flags)
{
	(void)d, (void)e, (void)levels, (void)flags;
	*a = handle();
	return hipSuccess;
}

EXPORT hipError_t hipMipmappedArrayCreate(hipMipmappedArray_t *a, HIP_ARRAY3D_DESCRIPTOR *d,
					  unsigned int levels)
{
	(void)d, (void)levels;
	*a = handle();
	return hipSuccess;
}

EXPORT hipError_t hipFreeArray(hipArray_t a)
{
	(void)a;
	return hipSuccess;
}

EXPORT hipError_t hipArrayDestroy(hipArray_t a)
{
	(void)a;
	return hipSuccess;
}

EXPORT hipError_t hipFreeMipmappedArray(hipMipmappedArray_t a)
{
	(void)a;
	return hipSuccess;
}

EXPORT hipError_t hipMipmappedArrayDestroy(hipMipmappedArray_t a)
{
	(void)a;
	return hipSuccess;
}

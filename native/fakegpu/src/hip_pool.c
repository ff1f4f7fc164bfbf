/*
 * fakegpu libamdhip64: stream-ordered allocation with each device's default memory pool.
 * The default pool's release threshold is 0, so freed memory goes back to the device at once
 * (the real runtime gives it back at the next synchronization); allocation happens when it is
 * called. Pools other than the default ones (hipMemPoolCreate) are not simulated.
 */
#include "hip_internal.h"

#include <string.h>

struct pool {
	uint32_t tag;
	int dev;
};

static struct pool pools[FG_MAX_DEVICES];
static pthread_once_t pools_once = PTHREAD_ONCE_INIT;

static void pools_init(void)
{
	for (int i = 0; i < (int)FG_MAX_DEVICES; i++) {
		pools[i].tag = FG_HIP_TAG_POOL;
		pools[i].dev = i;
	}
}

static struct pool *pool_of(hipMemPool_t p)
{
	uintptr_t a = (uintptr_t)p, base = (uintptr_t)pools;

	pthread_once(&pools_once, pools_init);
	if (a < base || a >= base + sizeof(pools) || (a - base) % sizeof(pools[0]))
		return NULL;
	return (struct pool *)p;
}

hipError_t hipDeviceGetDefaultMemPool(hipMemPool_t *mem_pool, int device)
{
	hipError_t r = fg_hip_init();

	if (r)
		return fg_hip_err(r);
	if (!mem_pool)
		return fg_hip_err(hipErrorInvalidValue);
	if (device < 0 || device >= fg_hip_count())
		return fg_hip_err(hipErrorInvalidDevice);
	pthread_once(&pools_once, pools_init);
	*mem_pool = (hipMemPool_t)&pools[device];
	return hipSuccess;
}

hipError_t hipDeviceGetMemPool(hipMemPool_t *mem_pool, int device)
{
	return hipDeviceGetDefaultMemPool(mem_pool, device);
}

hipError_t hipMallocFromPoolAsync(void **dev_ptr, size_t size, hipMemPool_t mem_pool,
				  hipStream_t stream)
{
	struct pool *p = pool_of(mem_pool);
	int dev;
	hipError_t r = fg_hip_init();

	if (r)
		return fg_hip_err(r);
	if (!p || p->dev >= fg_hip_count())
		return fg_hip_err(hipErrorInvalidValue);
	if (fg_hip_stream(stream, NULL, &dev))
		return fg_hip_err(hipErrorInvalidHandle);
	return fg_hip_err(fg_hip_alloc(dev_ptr, size, FG_HIP_ASYNC, p->dev));
}

hipError_t hipMallocAsync(void **dev_ptr, size_t size, hipStream_t stream)
{
	int dev;
	hipError_t r = fg_hip_init();

	if (r)
		return fg_hip_err(r);
	if (fg_hip_stream(stream, NULL, &dev))
		return fg_hip_err(hipErrorInvalidHandle);
	return fg_hip_err(fg_hip_alloc(dev_ptr, size, FG_HIP_ASYNC, dev));
}

hipError_t hipFreeAsync(void *dev_ptr, hipStream_t stream)
{
	int dev;
	hipError_t r = fg_hip_init();

	if (r)
		return fg_hip_err(r);
	if (fg_hip_stream(stream, NULL, &dev))
		return fg_hip_err(hipErrorInvalidHandle);
	return fg_hip_err(fg_hip_free(dev_ptr, 0));
}

hipError_t hipMemPoolTrimTo(hipMemPool_t mem_pool, size_t min_bytes_to_hold)
{
	(void)min_bytes_to_hold;
	return fg_hip_err(pool_of(mem_pool) ? hipSuccess : hipErrorInvalidValue);
}

hipError_t hipMemPoolGetAttribute(hipMemPool_t mem_pool, hipMemPoolAttr attr, void *value)
{
	if (!pool_of(mem_pool) || !value)
		return fg_hip_err(hipErrorInvalidValue);
	switch (attr) {
	case hipMemPoolAttrReleaseThreshold:
	case hipMemPoolAttrReservedMemCurrent:
	case hipMemPoolAttrReservedMemHigh:
	case hipMemPoolAttrUsedMemCurrent:
	case hipMemPoolAttrUsedMemHigh:
		memset(value, 0, sizeof(uint64_t));
		return hipSuccess;
	default:
		*(int *)value = 0;
		return hipSuccess;
	}
}

hipError_t hipMemPoolSetAttribute(hipMemPool_t mem_pool, hipMemPoolAttr attr, void *value)
{
	(void)attr;
	if (!pool_of(mem_pool) || !value)
		return fg_hip_err(hipErrorInvalidValue);
	return hipSuccess; /* accepted; the simulated pool keeps nothing */
}

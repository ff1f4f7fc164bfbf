/*
 * fakegpu libcuda: stream-ordered allocation (cuMemAllocAsync, cuMemFreeAsync) and memory
 * pools. As the real driver's, a pool keeps freed memory on the device (charged to the
 * process) up to its release threshold (default 0: nothing kept) and serves later
 * allocations from it; cuMemPoolTrimTo and destroying the pool give it back. The real driver
 * releases above the threshold at the next synchronization; here at the free (simpler, and
 * what a program that synchronizes sees).
 */
#include "cuda_internal.h"

#include <stdlib.h>
#include <string.h>

struct fg_pool {
	uint32_t tag;
	int dev;
	uint64_t used, used_high, threshold;
	uint64_t cached;         /* freed memory the pool keeps on the device (accounted bytes) */
	int reuse[3];
};

static struct fg_pool default_pool[FG_MAX_DEVICES];
static struct fg_pool *current_pool[FG_MAX_DEVICES];
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;

static struct fg_pool *pool_default(int dev)
{
	struct fg_pool *p = &default_pool[dev];

	pthread_mutex_lock(&pool_mu);
	if (!p->tag) {
		p->tag = FG_TAG_POOL;
		p->dev = dev;
		fg_handle_add(p, FG_TAG_POOL);
	}
	pthread_mutex_unlock(&pool_mu);
	return p;
}

static void pool_release(struct fg_pool *p, uint64_t keep);

static struct fg_pool *pool_get(CUmemoryPool h)
{
	return fg_handle_is(h, FG_TAG_POOL) ? (struct fg_pool *)h : NULL;
}

static struct fg_pool *pool_current(int dev)
{
	struct fg_pool *p;

	pthread_mutex_lock(&pool_mu);
	p = current_pool[dev];
	pthread_mutex_unlock(&pool_mu);
	return p ? p : pool_default(dev);
}

CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *pool_out, CUdevice dev)
{
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!pool_out)
		return CUDA_ERROR_INVALID_VALUE;
	if (!fg_valid_dev(dev))
		return CUDA_ERROR_INVALID_DEVICE;
	*pool_out = (CUmemoryPool)pool_default(dev);
	return CUDA_SUCCESS;
}

CUresult cuDeviceGetMemPool(CUmemoryPool *pool, CUdevice dev)
{
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!pool)
		return CUDA_ERROR_INVALID_VALUE;
	if (!fg_valid_dev(dev))
		return CUDA_ERROR_INVALID_DEVICE;
	*pool = (CUmemoryPool)pool_current(dev);
	return CUDA_SUCCESS;
}

CUresult cuDeviceSetMemPool(CUdevice dev, CUmemoryPool pool)
{
	struct fg_pool *p = pool_get(pool);
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!fg_valid_dev(dev))
		return CUDA_ERROR_INVALID_DEVICE;
	if (!p || p->dev != dev)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&pool_mu);
	current_pool[dev] = p;
	pthread_mutex_unlock(&pool_mu);
	return CUDA_SUCCESS;
}

CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *props)
{
	struct fg_pool *p;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!pool || !props || props->allocType != CU_MEM_ALLOCATION_TYPE_PINNED ||
	    props->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
		return CUDA_ERROR_INVALID_VALUE;
	if (!fg_valid_dev(props->location.id))
		return CUDA_ERROR_INVALID_DEVICE;
	p = calloc(1, sizeof(*p));
	if (!p)
		return CUDA_ERROR_OUT_OF_MEMORY;
	p->tag = FG_TAG_POOL;
	p->dev = props->location.id;
	if (fg_handle_add(p, FG_TAG_POOL)) {
		free(p);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	*pool = (CUmemoryPool)p;
	return CUDA_SUCCESS;
}

CUresult cuMemPoolDestroy(CUmemoryPool pool)
{
	struct fg_pool *p = pool_get(pool);

	if (!p || p == &default_pool[p->dev])
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&pool_mu);
	if (current_pool[p->dev] == p)
		current_pool[p->dev] = NULL;
	pthread_mutex_unlock(&pool_mu);
	/* Allocations still out keep pointing at it; keep it allocated, just unregistered. */
	pool_release(p, 0);
	fg_handle_del(p, FG_TAG_POOL);
	return CUDA_SUCCESS;
}

CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t minBytesToKeep)
{
	struct fg_pool *p = pool_get(pool);

	if (!p)
		return CUDA_ERROR_INVALID_VALUE;
	pool_release(p, minBytesToKeep);
	return CUDA_SUCCESS;
}

CUresult cuMemPoolSetAttribute(CUmemoryPool pool, CUmemPool_attribute attr, void *value)
{
	struct fg_pool *p = pool_get(pool);

	if (!p || !value)
		return CUDA_ERROR_INVALID_VALUE;
	switch (attr) {
	case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
	case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
	case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
		p->reuse[attr - CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES] = *(int *)value;
		return CUDA_SUCCESS;
	case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD:
		p->threshold = *(cuuint64_t *)value;
		pool_release(p, p->threshold);
		return CUDA_SUCCESS;
	case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH:
	case CU_MEMPOOL_ATTR_USED_MEM_HIGH:
		if (*(cuuint64_t *)value)
			return CUDA_ERROR_INVALID_VALUE; /* may only be reset to 0 */
		p->used_high = p->used;
		return CUDA_SUCCESS;
	default:
		return CUDA_ERROR_INVALID_VALUE;
	}
}

CUresult cuMemPoolGetAttribute(CUmemoryPool pool, CUmemPool_attribute attr, void *value)
{
	struct fg_pool *p = pool_get(pool);

	if (!p || !value)
		return CUDA_ERROR_INVALID_VALUE;
	switch (attr) {
	case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
	case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
	case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
		*(int *)value = p->reuse[attr - CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES];
		return CUDA_SUCCESS;
	case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD:
		*(cuuint64_t *)value = p->threshold;
		return CUDA_SUCCESS;
	case CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT:
		*(cuuint64_t *)value = p->used + p->cached;
		return CUDA_SUCCESS;
	case CU_MEMPOOL_ATTR_USED_MEM_CURRENT:
		*(cuuint64_t *)value = p->used;
		return CUDA_SUCCESS;
	case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH:
	case CU_MEMPOOL_ATTR_USED_MEM_HIGH:
		*(cuuint64_t *)value = p->used_high;
		return CUDA_SUCCESS;
	default:
		return CUDA_ERROR_INVALID_VALUE;
	}
}

CUresult cuMemPoolSetAccess(CUmemoryPool pool, const CUmemAccessDesc *map, size_t count)
{
	if (!pool_get(pool) || (count && !map))
		return CUDA_ERROR_INVALID_VALUE;
	return CUDA_SUCCESS;
}

CUresult cuMemPoolGetAccess(CUmemAccess_flags *flags, CUmemoryPool memPool,
			    CUmemLocation *location)
{
	struct fg_pool *p = pool_get(memPool);

	if (!p || !flags || !location)
		return CUDA_ERROR_INVALID_VALUE;
	*flags = location->id == p->dev ? CU_MEM_ACCESS_FLAGS_PROT_READWRITE :
					  CU_MEM_ACCESS_FLAGS_PROT_NONE;
	return CUDA_SUCCESS;
}

static uint64_t round_up_gran(uint64_t bytes)
{
	uint64_t g = fg_shm()->alloc_granularity ? fg_shm()->alloc_granularity : 1;

	return (bytes + g - 1) / g * g;
}

/* Give back what the pool keeps beyond `keep` bytes of reserved memory. */
static void pool_release(struct fg_pool *p, uint64_t keep)
{
	uint64_t give = 0;

	pthread_mutex_lock(&pool_mu);
	if (p->used + p->cached > keep) {
		give = p->used + p->cached - keep;
		if (give > p->cached)
			give = p->cached;
		p->cached -= give;
	}
	pthread_mutex_unlock(&pool_mu);
	if (give)
		fg_mem_usage(fg_phys(p->dev), -(int64_t)give);
}

static CUresult alloc_from(CUdeviceptr *dptr, size_t bytesize, struct fg_pool *p, CUstream s)
{
	CUresult r;

	if (fg_stream_bad(s))
		return CUDA_ERROR_INVALID_HANDLE;
	/* served from what the pool keeps: that memory is already charged to the device */
	uint64_t acc = round_up_gran(bytesize), from_cache = 0;

	pthread_mutex_lock(&pool_mu);
	if (p->cached >= acc) {
		p->cached -= acc;
		from_cache = acc;
	}
	pthread_mutex_unlock(&pool_mu);
	if (from_cache)
		fg_mem_usage(fg_phys(p->dev), -(int64_t)from_cache);
	r = fg_alloc(dptr, bytesize, FG_ALLOC_ASYNC, p->dev, p);
	if (r)
		return r;
	pthread_mutex_lock(&pool_mu);
	p->used += bytesize;
	if (p->used > p->used_high)
		p->used_high = p->used;
	pthread_mutex_unlock(&pool_mu);
	return CUDA_SUCCESS;
}

CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
	struct fg_stream *s = fg_stream_get(hStream);
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	if (s)
		c = s->ctx;
	return alloc_from(dptr, bytesize, pool_current(c->dev), hStream);
}

CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
				 CUstream hStream)
{
	struct fg_pool *p = pool_get(pool);
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	if (!p)
		return CUDA_ERROR_INVALID_VALUE;
	return alloc_from(dptr, bytesize, p, hStream);
}

CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream)
{
	struct fg_pool *p = NULL;
	size_t size = 0;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (fg_stream_bad(hStream))
		return CUDA_ERROR_INVALID_HANDLE;
	fg_ptr_lookup((uintptr_t)dptr, NULL, &size, NULL, NULL, (void **)&p);
	r = fg_free(dptr, 0);
	if (!r && p) {
		uint64_t acc = round_up_gran(size), keep = 0;

		pthread_mutex_lock(&pool_mu);
		p->used = p->used > size ? p->used - size : 0;
		if (p->used + p->cached + acc <= p->threshold)
			keep = acc;
		pthread_mutex_unlock(&pool_mu);
		/* the pool keeps it: charged to the device again (it never left, really) */
		if (keep && fg_mem_usage(fg_phys(p->dev), (int64_t)keep) == CUDA_SUCCESS) {
			pthread_mutex_lock(&pool_mu);
			p->cached += keep;
			pthread_mutex_unlock(&pool_mu);
		}
	}
	return r;
}

/* CUDA 13's location-based pool lookups; only device locations have pools here. */
static int device_location(const CUmemLocation *loc, CUmemAllocationType type)
{
	return loc && type == CU_MEM_ALLOCATION_TYPE_PINNED &&
	       loc->type == CU_MEM_LOCATION_TYPE_DEVICE;
}

CUresult cuMemGetDefaultMemPool(CUmemoryPool *pool_out, CUmemLocation *location,
				CUmemAllocationType type)
{
	if (!pool_out || !location)
		return CUDA_ERROR_INVALID_VALUE;
	if (!device_location(location, type))
		return CUDA_ERROR_NOT_SUPPORTED;
	return cuDeviceGetDefaultMemPool(pool_out, location->id);
}

CUresult cuMemGetMemPool(CUmemoryPool *pool, CUmemLocation *location, CUmemAllocationType type)
{
	if (!pool || !location)
		return CUDA_ERROR_INVALID_VALUE;
	if (!device_location(location, type))
		return CUDA_ERROR_NOT_SUPPORTED;
	return cuDeviceGetMemPool(pool, location->id);
}

CUresult cuMemSetMemPool(CUmemLocation *location, CUmemAllocationType type, CUmemoryPool pool)
{
	if (!location)
		return CUDA_ERROR_INVALID_VALUE;
	if (!device_location(location, type))
		return CUDA_ERROR_NOT_SUPPORTED;
	return cuDeviceSetMemPool(location->id, pool);
}

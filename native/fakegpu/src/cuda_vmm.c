/*
 * fakegpu libcuda: virtual memory management (cuMemCreate, cuMemAddressReserve, cuMemMap...).
 *
 * A physical allocation is a memfd (charged to the device at cuMemCreate); a reservation is
 * a PROT_NONE mapping; cuMemMap maps the memfd into the reservation MAP_SHARED, so the same
 * physical memory mapped twice shows the same bytes, as on a GPU. Memory goes back to the
 * device when the handle is released and no mapping uses it any more.
 */
#include "cuda_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GRANULARITY ((size_t)2 << 20)
#define FG_TAG_PHYS 0x31535950u

int fg_table_add_foreign(uintptr_t base, size_t size, int kind, int dev);
int fg_table_remove_foreign(uintptr_t base);

struct phys {
	uint32_t tag;
	size_t size;
	int dev;
	int fd;
	int refs;     /* the handle itself (until released) plus each mapping */
	CUmemAllocationProp prop;
};

struct mapping {
	uintptr_t base;
	size_t size;
	struct phys *phys;
	struct mapping *next;
};

struct reservation {
	uintptr_t base;
	size_t size;
	struct reservation *next;
};

static pthread_mutex_t vmm_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mapping *mappings;
static struct reservation *reservations;

static struct phys *phys_get(CUmemGenericAllocationHandle h)
{
	void *p = (void *)(uintptr_t)h;

	return fg_handle_is(p, FG_TAG_PHYS) ? p : NULL;
}

static void phys_unref(struct phys *p) /* vmm_mu held */
{
	if (--p->refs > 0)
		return;
	fg_handle_del(p, FG_TAG_PHYS);
	close(p->fd);
	fg_mem_usage(fg_phys(p->dev), -(int64_t)p->size);
	free(p);
}

static int prop_ok(const CUmemAllocationProp *prop)
{
	return prop && prop->type == CU_MEM_ALLOCATION_TYPE_PINNED &&
	       prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE;
}

CUresult cuMemGetAllocationGranularity(size_t *granularity, const CUmemAllocationProp *prop,
				       CUmemAllocationGranularity_flags option)
{
	CUresult r = fg_ready();

	(void)option;
	if (r)
		return r;
	if (!granularity || !prop_ok(prop))
		return CUDA_ERROR_INVALID_VALUE;
	if (!fg_valid_dev(prop->location.id))
		return CUDA_ERROR_INVALID_DEVICE;
	*granularity = GRANULARITY;
	return CUDA_SUCCESS;
}

CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
		     const CUmemAllocationProp *prop, unsigned long long flags)
{
	struct phys *p;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!handle || !prop_ok(prop) || flags || !size || size % GRANULARITY)
		return CUDA_ERROR_INVALID_VALUE;
	if (!fg_valid_dev(prop->location.id))
		return CUDA_ERROR_INVALID_DEVICE;
	p = calloc(1, sizeof(*p));
	if (!p)
		return CUDA_ERROR_OUT_OF_MEMORY;
	p->fd = memfd_create("fakegpu-vmm", MFD_CLOEXEC);
	if (p->fd < 0 || ftruncate(p->fd, (off_t)size) != 0) {
		if (p->fd >= 0)
			close(p->fd);
		free(p);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	p->size = size;
	p->dev = prop->location.id;
	p->refs = 1;
	p->prop = *prop;
	r = fg_mem_usage(fg_phys(p->dev), (int64_t)size);
	if (!r && fg_handle_add(p, FG_TAG_PHYS)) {
		fg_mem_usage(fg_phys(p->dev), -(int64_t)size);
		r = CUDA_ERROR_OUT_OF_MEMORY;
	}
	if (r) {
		close(p->fd);
		free(p);
		return r;
	}
	p->tag = FG_TAG_PHYS;
	*handle = (CUmemGenericAllocationHandle)(uintptr_t)p;
	FG_TRACE("cuMemCreate %zu bytes on %d", size, p->dev);
	return CUDA_SUCCESS;
}

CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
	struct phys *p = phys_get(handle);
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!p)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&vmm_mu);
	phys_unref(p);
	pthread_mutex_unlock(&vmm_mu);
	return CUDA_SUCCESS;
}

CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment, CUdeviceptr addr,
			     unsigned long long flags)
{
	struct reservation *res;
	void *p;
	CUresult r = fg_ready();

	(void)alignment;
	if (r)
		return r;
	if (!ptr || !size || size % GRANULARITY || flags)
		return CUDA_ERROR_INVALID_VALUE;
	res = calloc(1, sizeof(*res));
	if (!res)
		return CUDA_ERROR_OUT_OF_MEMORY;
	p = mmap((void *)addr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		free(res);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	res->base = (uintptr_t)p;
	res->size = size;
	pthread_mutex_lock(&vmm_mu);
	res->next = reservations;
	reservations = res;
	pthread_mutex_unlock(&vmm_mu);
	*ptr = (CUdeviceptr)p;
	return CUDA_SUCCESS;
}

CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
	CUresult r = fg_ready();

	if (r)
		return r;
	pthread_mutex_lock(&vmm_mu);
	for (struct reservation **pp = &reservations; *pp; pp = &(*pp)->next) {
		struct reservation *x = *pp;

		if (x->base == (uintptr_t)ptr && x->size == size) {
			*pp = x->next;
			pthread_mutex_unlock(&vmm_mu);
			munmap((void *)x->base, x->size);
			free(x);
			return CUDA_SUCCESS;
		}
	}
	pthread_mutex_unlock(&vmm_mu);
	return CUDA_ERROR_INVALID_VALUE;
}

static int reserved(uintptr_t p, size_t n) /* vmm_mu held */
{
	for (struct reservation *x = reservations; x; x = x->next)
		if (p >= x->base && n <= x->size && p - x->base <= x->size - n)
			return 1;
	return 0;
}

CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
		  unsigned long long flags)
{
	struct phys *p = phys_get(handle);
	struct mapping *m;
	void *got;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!p || flags || !size || size % GRANULARITY || offset % GRANULARITY ||
	    offset + size > p->size)
		return CUDA_ERROR_INVALID_VALUE;
	m = calloc(1, sizeof(*m));
	if (!m)
		return CUDA_ERROR_OUT_OF_MEMORY;
	pthread_mutex_lock(&vmm_mu);
	if (!reserved((uintptr_t)ptr, size)) {
		pthread_mutex_unlock(&vmm_mu);
		free(m);
		return CUDA_ERROR_INVALID_VALUE;
	}
	for (struct mapping *x = mappings; x; x = x->next) {
		if ((uintptr_t)ptr < x->base + x->size && x->base < (uintptr_t)ptr + size) {
			pthread_mutex_unlock(&vmm_mu);
			free(m);
			return CUDA_ERROR_ALREADY_MAPPED;
		}
	}
	got = mmap((void *)ptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, p->fd,
		   (off_t)offset);
	if (got == MAP_FAILED) {
		pthread_mutex_unlock(&vmm_mu);
		free(m);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	m->base = (uintptr_t)ptr;
	m->size = size;
	m->phys = p;
	m->next = mappings;
	mappings = m;
	p->refs++;
	pthread_mutex_unlock(&vmm_mu);
	fg_table_add_foreign((uintptr_t)ptr, size, FG_ALLOC_VMM, p->dev);
	return CUDA_SUCCESS;
}

CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
	CUresult r = fg_ready();

	if (r)
		return r;
	pthread_mutex_lock(&vmm_mu);
	for (struct mapping **pp = &mappings; *pp; pp = &(*pp)->next) {
		struct mapping *m = *pp;

		if (m->base == (uintptr_t)ptr && m->size == size) {
			*pp = m->next;
			mmap((void *)m->base, m->size, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
			phys_unref(m->phys);
			pthread_mutex_unlock(&vmm_mu);
			fg_table_remove_foreign(m->base);
			free(m);
			return CUDA_SUCCESS;
		}
	}
	pthread_mutex_unlock(&vmm_mu);
	return CUDA_ERROR_INVALID_VALUE;
}

CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc, size_t count)
{
	int found = 0;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!desc || !count)
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t i = 0; i < count; i++)
		if (desc[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE ||
		    !fg_valid_dev(desc[i].location.id))
			return CUDA_ERROR_INVALID_DEVICE;
	pthread_mutex_lock(&vmm_mu);
	for (struct mapping *m = mappings; m; m = m->next)
		if ((uintptr_t)ptr >= m->base && (uintptr_t)ptr + size <= m->base + m->size)
			found = 1;
	if (!found) /* a range covering several mappings */
		found = reserved((uintptr_t)ptr, size);
	pthread_mutex_unlock(&vmm_mu);
	return found ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuMemGetAccess(unsigned long long *flags, const CUmemLocation *location, CUdeviceptr ptr)
{
	int found = 0;

	if (!flags || !location)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&vmm_mu);
	for (struct mapping *m = mappings; m; m = m->next)
		if ((uintptr_t)ptr >= m->base && (uintptr_t)ptr < m->base + m->size)
			found = 1;
	pthread_mutex_unlock(&vmm_mu);
	if (!found)
		return CUDA_ERROR_INVALID_VALUE;
	*flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
	return CUDA_SUCCESS;
}

CUresult cuMemRetainAllocationHandle(CUmemGenericAllocationHandle *handle, void *addr)
{
	CUresult r = CUDA_ERROR_INVALID_VALUE;

	if (!handle)
		return r;
	pthread_mutex_lock(&vmm_mu);
	for (struct mapping *m = mappings; m; m = m->next) {
		if ((uintptr_t)addr >= m->base && (uintptr_t)addr < m->base + m->size) {
			m->phys->refs++;
			*handle = (CUmemGenericAllocationHandle)(uintptr_t)m->phys;
			r = CUDA_SUCCESS;
			break;
		}
	}
	pthread_mutex_unlock(&vmm_mu);
	return r;
}

CUresult cuMemGetAllocationPropertiesFromHandle(CUmemAllocationProp *prop,
						CUmemGenericAllocationHandle handle)
{
	struct phys *p = phys_get(handle);

	if (!p || !prop)
		return CUDA_ERROR_INVALID_VALUE;
	*prop = p->prop;
	return CUDA_SUCCESS;
}

CUresult cuMemExportToShareableHandle(void *shareableHandle, CUmemGenericAllocationHandle handle,
				      CUmemAllocationHandleType handleType,
				      unsigned long long flags)
{
	(void)shareableHandle;
	(void)handleType;
	(void)flags;
	return phys_get(handle) ? CUDA_ERROR_NOT_SUPPORTED : CUDA_ERROR_INVALID_VALUE;
}

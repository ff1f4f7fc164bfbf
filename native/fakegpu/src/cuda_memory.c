/*
 * fakegpu libcuda: the allocation table and the allocation entry points (device, pitch,
 * managed, host, registered host memory), memory info and pointer attributes.
 *
 * Device memory is a MAP_NORESERVE anonymous mapping: addresses are real host addresses, so
 * copies really move data, and untouched pages cost no RAM. Usage is accounted in the state
 * file per physical device and per process, rounded up to the state's alloc_granularity.
 */
#include "cuda_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct alloc {
	uintptr_t base;
	size_t size;      /* requested bytes: the addressable range */
	size_t mapped;    /* bytes of the host mapping we own (0: not ours) */
	size_t accounted; /* bytes charged to the device */
	int kind;
	int dev;          /* visible ordinal; -1 for host memory */
	struct fg_ctx *ctx;
	void *pool;
};

static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static struct alloc *table; /* sorted by base */
static size_t table_len, table_cap;

static size_t find_index(uintptr_t p) /* first entry with base > p */
{
	size_t lo = 0, hi = table_len;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (table[mid].base <= p)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct alloc *containing(uintptr_t p) /* table_mu held */
{
	size_t i = find_index(p);
	struct alloc *a;

	if (!i)
		return NULL;
	a = &table[i - 1];
	return p < a->base + (a->size ? a->size : 1) ? a : NULL;
}

static int table_insert(const struct alloc *a)
{
	size_t i;

	pthread_mutex_lock(&table_mu);
	if (table_len == table_cap) {
		size_t cap = table_cap ? table_cap * 2 : 256;
		struct alloc *t = realloc(table, cap * sizeof(*t));

		if (!t) {
			pthread_mutex_unlock(&table_mu);
			return -1;
		}
		table = t;
		table_cap = cap;
	}
	i = find_index(a->base);
	memmove(&table[i + 1], &table[i], (table_len - i) * sizeof(*table));
	table[i] = *a;
	table_len++;
	pthread_mutex_unlock(&table_mu);
	return 0;
}

/* Remove the entry starting exactly at base (optionally of host kinds only). */
static int table_remove(uintptr_t base, int want_host, struct alloc *out)
{
	size_t i;
	int rv = -1;

	pthread_mutex_lock(&table_mu);
	i = find_index(base);
	if (i && table[i - 1].base == base) {
		struct alloc *a = &table[i - 1];
		int is_host = a->kind == FG_ALLOC_HOST;

		if (want_host < 0 || want_host == is_host) {
			*out = *a;
			memmove(a, a + 1, (table_len - i) * sizeof(*table));
			table_len--;
			rv = 0;
		}
	}
	pthread_mutex_unlock(&table_mu);
	return rv;
}

int fg_ptr_lookup(uintptr_t p, uintptr_t *base, size_t *size, int *kind, int *dev, void **pool)
{
	struct alloc *a;
	int rv = -1;

	pthread_mutex_lock(&table_mu);
	a = containing(p);
	if (a) {
		if (base)
			*base = a->base;
		if (size)
			*size = a->size;
		if (kind)
			*kind = a->kind;
		if (dev)
			*dev = a->dev;
		if (pool)
			*pool = a->pool;
		rv = 0;
	}
	pthread_mutex_unlock(&table_mu);
	return rv;
}

CUresult fg_mem_usage(uint32_t phys, int64_t delta)
{
	struct fg_state *s = fg_shm();
	int r;

	if (fg_lock(s))
		return CUDA_ERROR_UNKNOWN;
	r = fg_mem_account(s, getpid(), phys, delta);
	fg_unlock(s);
	return r ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
}

static size_t round_up(size_t n, size_t g)
{
	return g ? (n + g - 1) / g * g : n;
}

static void *map_backing(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Allocate device-accounted (dev >= 0) or host (dev < 0) memory in the current context. */
CUresult fg_alloc(CUdeviceptr *dp, size_t bytes, int kind, int dev, void *pool)
{
	struct alloc a = {0};
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);
	long page = sysconf(_SC_PAGESIZE);

	if (r)
		return r;
	if (!dp || !bytes)
		return CUDA_ERROR_INVALID_VALUE;
	if (bytes > ((size_t)1 << 46))
		return CUDA_ERROR_OUT_OF_MEMORY;
	a.size = bytes;
	a.kind = kind;
	a.dev = dev;
	a.ctx = c;
	a.pool = pool;
	a.mapped = round_up(bytes, (size_t)page);
	if (dev >= 0) {
		a.accounted = round_up(bytes, fg_shm()->alloc_granularity);
		r = fg_mem_usage(fg_phys(dev), (int64_t)a.accounted);
		if (r) {
			FG_TRACE("alloc %zu on %d -> out of memory", bytes, dev);
			return r;
		}
	}
	a.base = (uintptr_t)map_backing(a.mapped);
	if (!a.base || table_insert(&a)) {
		if (a.base)
			munmap((void *)a.base, a.mapped);
		if (a.accounted)
			fg_mem_usage(fg_phys(dev), -(int64_t)a.accounted);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	*dp = (CUdeviceptr)a.base;
	FG_TRACE("alloc kind=%d %zu bytes on %d -> 0x%llx", kind, bytes, dev, (unsigned long long)*dp);
	return CUDA_SUCCESS;
}

static void release(const struct alloc *a)
{
	if (a->mapped)
		munmap((void *)a->base, a->mapped);
	if (a->accounted && a->dev >= 0)
		fg_mem_usage(fg_phys(a->dev), -(int64_t)a->accounted);
}

/* expect_host: 1 only host allocations, 0 only device-side ones, -1 any. */
CUresult fg_free(CUdeviceptr dp, int expect_host)
{
	struct alloc a;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!dp)
		return CUDA_ERROR_INVALID_VALUE;
	if (table_remove((uintptr_t)dp, expect_host, &a))
		return CUDA_ERROR_INVALID_VALUE;
	if (a.kind == FG_ALLOC_REGISTERED || a.kind == FG_ALLOC_VMM) {
		table_insert(&a); /* not freed through this path */
		return CUDA_ERROR_INVALID_VALUE;
	}
	release(&a);
	FG_TRACE("free 0x%llx (%zu bytes)", (unsigned long long)dp, a.size);
	return CUDA_SUCCESS;
}

/* A destroyed or reset context takes its allocations with it. */
void fg_free_ctx_allocs(struct fg_ctx *c)
{
	for (;;) {
		struct alloc a;
		int found = 0;

		pthread_mutex_lock(&table_mu);
		for (size_t i = 0; i < table_len; i++) {
			if (table[i].ctx == c && table[i].kind != FG_ALLOC_REGISTERED &&
			    table[i].kind != FG_ALLOC_VMM) {
				a = table[i];
				memmove(&table[i], &table[i + 1], (table_len - i - 1) * sizeof(*table));
				table_len--;
				found = 1;
				break;
			}
		}
		pthread_mutex_unlock(&table_mu);
		if (!found)
			return;
		release(&a);
	}
}

/* Register a range that is not ours to unmap (VMM mappings are tracked for lookups). */
int fg_table_add_foreign(uintptr_t base, size_t size, int kind, int dev)
{
	struct alloc a = {0};

	a.base = base;
	a.size = size;
	a.kind = kind;
	a.dev = dev;
	a.ctx = fg_current_ctx();
	return table_insert(&a);
}

int fg_table_remove_foreign(uintptr_t base)
{
	struct alloc a;

	return table_remove(base, -1, &a);
}

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	return fg_alloc(dptr, bytesize, FG_ALLOC_DEVICE, c->dev, NULL);
}

CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	if (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST)
		return CUDA_ERROR_INVALID_VALUE;
	return fg_alloc(dptr, bytesize, FG_ALLOC_MANAGED, c->dev, NULL);
}

CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t widthInBytes,
			    size_t height, unsigned int elementSizeBytes)
{
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);
	size_t pitch;

	if (r)
		return r;
	if (!pPitch || !widthInBytes || !height ||
	    (elementSizeBytes != 4 && elementSizeBytes != 8 && elementSizeBytes != 16))
		return CUDA_ERROR_INVALID_VALUE;
	pitch = round_up(widthInBytes, 512);
	r = fg_alloc(dptr, pitch * height, FG_ALLOC_PITCH, c->dev, NULL);
	if (!r)
		*pPitch = pitch;
	return r;
}

CUresult cuMemFree_v2(CUdeviceptr dptr)
{
	if (!dptr) { /* like the real driver (and free(NULL)): nothing to do */
		struct fg_ctx *c;

		return fg_need_ctx(&c);
	}
	return fg_free(dptr, 0);
}

CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total)
{
	struct fg_ctx *c;
	const struct fg_state *s;
	uint64_t used, cap;
	uint32_t phys;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	if (!free_bytes || !total)
		return CUDA_ERROR_INVALID_VALUE;
	s = fg_shm();
	phys = fg_phys(c->dev);
	used = __atomic_load_n(&s->dev[phys].used_bytes, __ATOMIC_RELAXED);
	cap = s->config[phys].memory_bytes;
	*total = cap;
	*free_bytes = used < cap ? cap - used : 0;
	return CUDA_SUCCESS;
}

CUresult cuMemGetAddressRange_v2(CUdeviceptr *pbase, size_t *psize, CUdeviceptr dptr)
{
	uintptr_t base;
	size_t size;
	int kind;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (fg_ptr_lookup((uintptr_t)dptr, &base, &size, &kind, NULL, NULL) ||
	    kind == FG_ALLOC_HOST || kind == FG_ALLOC_REGISTERED)
		return CUDA_ERROR_NOT_FOUND;
	if (pbase)
		*pbase = (CUdeviceptr)base;
	if (psize)
		*psize = size;
	return CUDA_SUCCESS;
}

CUresult cuMemHostAlloc(void **pp, size_t bytesize, unsigned int flags)
{
	CUdeviceptr p;
	CUresult r;

	if (!pp || flags & ~0x7u)
		return CUDA_ERROR_INVALID_VALUE;
	r = fg_alloc(&p, bytesize, FG_ALLOC_HOST, -1, NULL);
	if (!r)
		*pp = (void *)(uintptr_t)p;
	return r;
}

CUresult cuMemAllocHost_v2(void **pp, size_t bytesize)
{
	return cuMemHostAlloc(pp, bytesize, 0);
}

CUresult cuMemFreeHost(void *p)
{
	return fg_free((CUdeviceptr)(uintptr_t)p, 1);
}

CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *pdptr, void *p, unsigned int flags)
{
	int kind;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!pdptr || flags)
		return CUDA_ERROR_INVALID_VALUE;
	if (fg_ptr_lookup((uintptr_t)p, NULL, NULL, &kind, NULL, NULL) ||
	    (kind != FG_ALLOC_HOST && kind != FG_ALLOC_REGISTERED))
		return CUDA_ERROR_INVALID_VALUE;
	*pdptr = (CUdeviceptr)(uintptr_t)p;
	return CUDA_SUCCESS;
}

CUresult cuMemHostGetFlags(unsigned int *pFlags, void *p)
{
	int kind;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!pFlags || fg_ptr_lookup((uintptr_t)p, NULL, NULL, &kind, NULL, NULL) ||
	    kind != FG_ALLOC_HOST)
		return CUDA_ERROR_INVALID_VALUE;
	*pFlags = 0;
	return CUDA_SUCCESS;
}

CUresult cuMemHostRegister_v2(void *p, size_t bytesize, unsigned int flags)
{
	uintptr_t b = (uintptr_t)p;
	struct alloc a = {0};
	CUresult r = fg_ready();
	int overlap;

	(void)flags;
	if (r)
		return r;
	if (!p || !bytesize)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&table_mu);
	overlap = containing(b) || containing(b + bytesize - 1) ||
		  (find_index(b + bytesize - 1) != find_index(b));
	pthread_mutex_unlock(&table_mu);
	if (overlap)
		return CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
	a.base = b;
	a.size = bytesize;
	a.kind = FG_ALLOC_REGISTERED;
	a.dev = -1;
	a.ctx = fg_current_ctx();
	return table_insert(&a) ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
}

CUresult cuMemHostUnregister(void *p)
{
	struct alloc a;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (table_remove((uintptr_t)p, 0, &a))
		return CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
	if (a.kind != FG_ALLOC_REGISTERED) {
		table_insert(&a);
		return CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
	}
	return CUDA_SUCCESS;
}

static int memory_type(int kind)
{
	switch (kind) {
	case FG_ALLOC_HOST:
	case FG_ALLOC_REGISTERED: return CU_MEMORYTYPE_HOST;
	case FG_ALLOC_ARRAY: return CU_MEMORYTYPE_ARRAY;
	case FG_ALLOC_MANAGED: return CU_MEMORYTYPE_UNIFIED;
	default: return CU_MEMORYTYPE_DEVICE;
	}
}

static CUresult pointer_attribute(void *data, CUpointer_attribute attr, CUdeviceptr ptr, int strict)
{
	uintptr_t base = 0;
	size_t size = 0;
	int kind = 0, dev = -1, known;
	void *pool = NULL;
	struct alloc *a;
	struct fg_ctx *ctx = NULL;

	pthread_mutex_lock(&table_mu);
	a = containing((uintptr_t)ptr);
	known = a != NULL;
	if (a) {
		base = a->base;
		size = a->size;
		kind = a->kind;
		dev = a->dev;
		pool = a->pool;
		ctx = a->ctx;
	}
	pthread_mutex_unlock(&table_mu);
	if (!known && strict)
		return CUDA_ERROR_INVALID_VALUE;
	switch (attr) {
	case CU_POINTER_ATTRIBUTE_CONTEXT:
		*(CUcontext *)data = known ? (CUcontext)ctx : NULL;
		break;
	case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
		*(unsigned *)data = known ? (unsigned)memory_type(kind) : 0;
		break;
	case CU_POINTER_ATTRIBUTE_DEVICE_POINTER:
		*(CUdeviceptr *)data = known ? ptr : 0;
		break;
	case CU_POINTER_ATTRIBUTE_HOST_POINTER:
		if (strict && kind != FG_ALLOC_HOST && kind != FG_ALLOC_REGISTERED &&
		    kind != FG_ALLOC_MANAGED)
			return CUDA_ERROR_INVALID_VALUE;
		*(void **)data = known ? (void *)(uintptr_t)ptr : NULL;
		break;
	case CU_POINTER_ATTRIBUTE_IS_MANAGED:
		*(int *)data = known && kind == FG_ALLOC_MANAGED;
		break;
	case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
		*(int *)data = known ? (dev >= 0 ? dev : (ctx ? ctx->dev : 0)) : -2;
		break;
	case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
		*(CUdeviceptr *)data = (CUdeviceptr)base;
		break;
	case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
		*(size_t *)data = size;
		break;
	case CU_POINTER_ATTRIBUTE_MAPPED:
		*(int *)data = known;
		break;
	case CU_POINTER_ATTRIBUTE_BUFFER_ID:
		*(unsigned long long *)data = (unsigned long long)base;
		break;
	case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS:
	case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE:
	case CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE:
		*(int *)data = 0;
		break;
	case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES:
		*(unsigned long long *)data = 0;
		break;
	case CU_POINTER_ATTRIBUTE_ACCESS_FLAGS:
		*(unsigned *)data = known ? CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE : 0;
		break;
	case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE:
		*(CUmemoryPool *)data = (CUmemoryPool)pool;
		break;
	default:
		return CUDA_ERROR_INVALID_VALUE;
	}
	return CUDA_SUCCESS;
}

CUresult cuPointerGetAttribute(void *data, CUpointer_attribute attribute, CUdeviceptr ptr)
{
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!data)
		return CUDA_ERROR_INVALID_VALUE;
	return pointer_attribute(data, attribute, ptr, 1);
}

CUresult cuPointerGetAttributes(unsigned int numAttributes, CUpointer_attribute *attributes,
				void **data, CUdeviceptr ptr)
{
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!attributes || !data)
		return CUDA_ERROR_INVALID_VALUE;
	for (unsigned i = 0; i < numAttributes; i++) {
		if (!data[i])
			continue;
		r = pointer_attribute(data[i], attributes[i], ptr, 0);
		if (r)
			return r;
	}
	return CUDA_SUCCESS;
}

CUresult cuPointerSetAttribute(const void *value, CUpointer_attribute attribute, CUdeviceptr ptr)
{
	CUresult r = fg_ready();

	(void)value;
	if (r)
		return r;
	if (attribute != CU_POINTER_ATTRIBUTE_SYNC_MEMOPS ||
	    fg_ptr_lookup((uintptr_t)ptr, NULL, NULL, NULL, NULL, NULL))
		return CUDA_ERROR_INVALID_VALUE;
	return CUDA_SUCCESS;
}

static CUresult managed_range(CUdeviceptr p, size_t count)
{
	uintptr_t base;
	size_t size;
	int kind;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (fg_ptr_lookup((uintptr_t)p, &base, &size, &kind, NULL, NULL) ||
	    kind != FG_ALLOC_MANAGED || (uintptr_t)p + count > base + size)
		return CUDA_ERROR_INVALID_VALUE;
	return CUDA_SUCCESS;
}

CUresult cuMemPrefetchAsync_v2(CUdeviceptr devPtr, size_t count, CUmemLocation location,
			       unsigned int flags, CUstream hStream)
{
	(void)location;
	(void)flags;
	if (fg_stream_bad(hStream))
		return CUDA_ERROR_INVALID_HANDLE;
	return managed_range(devPtr, count);
}

CUresult cuMemAdvise_v2(CUdeviceptr devPtr, size_t count, CUmem_advise advice,
			CUmemLocation location)
{
	(void)advice;
	(void)location;
	return managed_range(devPtr, count);
}

CUresult cuMemRangeGetAttribute(void *data, size_t dataSize, CUmem_range_attribute attribute,
				CUdeviceptr devPtr, size_t count)
{
	CUresult r = managed_range(devPtr, count);

	(void)attribute;
	if (r)
		return r;
	if (!data || !dataSize)
		return CUDA_ERROR_INVALID_VALUE;
	memset(data, 0, dataSize);
	return CUDA_SUCCESS;
}

/* The CUDA 8..12.1 forms, with a device ordinal instead of a location. */
CUresult cuMemPrefetchAsync(CUdeviceptr devPtr, size_t count, CUdevice dstDevice, CUstream s)
{
	if (fg_stream_bad(s))
		return CUDA_ERROR_INVALID_HANDLE;
	if (dstDevice != CU_DEVICE_CPU && !fg_valid_dev(dstDevice))
		return CUDA_ERROR_INVALID_DEVICE;
	return managed_range(devPtr, count);
}

CUresult cuMemAdvise(CUdeviceptr devPtr, size_t count, CUmem_advise advice, CUdevice device)
{
	(void)advice;
	(void)device;
	return managed_range(devPtr, count);
}

CUresult cuMemRangeGetAttributes(void **data, size_t *dataSizes, CUmem_range_attribute *attributes,
				 size_t numAttributes, CUdeviceptr devPtr, size_t count)
{
	CUresult r = managed_range(devPtr, count);

	if (r)
		return r;
	if (!data || !dataSizes || !attributes)
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t i = 0; i < numAttributes; i++) {
		r = cuMemRangeGetAttribute(data[i], dataSizes[i], attributes[i], devPtr, count);
		if (r)
			return r;
	}
	return CUDA_SUCCESS;
}

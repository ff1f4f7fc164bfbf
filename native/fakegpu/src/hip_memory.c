/*
 * fakegpu libamdhip64: the allocation table and the allocation entry points (device, managed,
 * fine-grained, pitch, arrays, pinned host memory, host registration), memory info, pointer
 * queries.
 *
 * Device memory is a MAP_NORESERVE anonymous mapping, so addresses are real host addresses
 * (copies move data) and untouched pages cost no RAM. Each allocation is charged to its
 * physical device and to this process in the state file, rounded up to alloc_granularity; an
 * allocation that does not fit in what is free returns hipErrorOutOfMemory.
 */
#include "hip_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct alloc {
	uintptr_t base;
	size_t size;      /* addressable bytes */
	size_t mapped;    /* bytes of our own mapping (0: not ours, e.g. registered memory) */
	uint64_t charged; /* bytes charged to the device */
	int kind;
	int dev;          /* visible ordinal; -1 for host memory */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct alloc *tab; /* sorted by base */
static size_t len, cap;

static size_t upper(uintptr_t p) /* first entry with base > p; mu held */
{
	size_t lo = 0, hi = len;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (tab[mid].base <= p)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int insert(const struct alloc *a)
{
	size_t i;

	pthread_mutex_lock(&mu);
	if (len == cap) {
		size_t n = cap ? cap * 2 : 256;
		struct alloc *t = realloc(tab, n * sizeof(*t));

		if (!t) {
			pthread_mutex_unlock(&mu);
			return -1;
		}
		tab = t;
		cap = n;
	}
	i = upper(a->base);
	memmove(&tab[i + 1], &tab[i], (len - i) * sizeof(*tab));
	tab[i] = *a;
	len++;
	pthread_mutex_unlock(&mu);
	return 0;
}

/* Take out the entry starting at base; want_host: 1 host kinds only, 0 device kinds only,
 * -1 any. */
static int take(uintptr_t base, int want_host, struct alloc *out)
{
	size_t i;
	int rv = -1;

	pthread_mutex_lock(&mu);
	i = upper(base);
	if (i && tab[i - 1].base == base) {
		struct alloc *a = &tab[i - 1];
		int host = a->kind == FG_HIP_HOST || a->kind == FG_HIP_REGISTERED;

		if (want_host < 0 || want_host == host) {
			*out = *a;
			memmove(a, a + 1, (len - i) * sizeof(*tab));
			len--;
			rv = 0;
		}
	}
	pthread_mutex_unlock(&mu);
	return rv;
}

int fg_hip_lookup(uintptr_t p, uintptr_t *base, size_t *size, int *kind, int *dev)
{
	size_t i;
	int rv = -1;

	pthread_mutex_lock(&mu);
	i = upper(p);
	if (i) {
		const struct alloc *a = &tab[i - 1];

		if (p < a->base + (a->size ? a->size : 1)) {
			if (base)
				*base = a->base;
			if (size)
				*size = a->size;
			if (kind)
				*kind = a->kind;
			if (dev)
				*dev = a->dev;
			rv = 0;
		}
	}
	pthread_mutex_unlock(&mu);
	return rv;
}

uint64_t fg_hip_rounded(size_t bytes)
{
	uint64_t g = fg_hip_state()->alloc_granularity;

	if (!g)
		g = 1;
	return ((uint64_t)bytes + g - 1) / g * g;
}

hipError_t fg_hip_charge(int dev, int64_t delta)
{
	struct fg_state *s = fg_hip_state();
	int r;

	if (!delta)
		return hipSuccess;
	if (fg_lock(s))
		return hipErrorUnknown;
	r = fg_mem_account(s, getpid(), fg_hip_phys(dev), delta);
	fg_unlock(s);
	return r ? hipErrorOutOfMemory : hipSuccess;
}

hipError_t fg_hip_alloc(void **p, size_t bytes, int kind, int dev)
{
	struct alloc a = { 0 };
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	int device_mem = kind != FG_HIP_HOST;
	void *m;
	hipError_t r;

	if (!p)
		return hipErrorInvalidValue;
	if (device_mem) {
		r = fg_hip_device_ready(dev);
		if (r)
			return r;
	} else {
		r = fg_hip_init();
		if (r)
			return r;
	}
	if (!bytes) {
		*p = NULL;
		return hipSuccess;
	}
	if (bytes > (1ULL << 46))
		return device_mem ? hipErrorOutOfMemory : hipErrorMemoryAllocation;
	a.size = bytes;
	a.mapped = (bytes + page - 1) / page * page;
	a.kind = kind;
	a.dev = device_mem ? dev : -1;
	if (device_mem && kind != FG_HIP_VMM_RESERVE) {
		a.charged = fg_hip_rounded(bytes);
		r = fg_hip_charge(dev, (int64_t)a.charged);
		if (r)
			return r;
	}
	m = mmap(NULL, a.mapped, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED) {
		if (a.charged)
			fg_hip_charge(dev, -(int64_t)a.charged);
		return hipErrorOutOfMemory;
	}
	a.base = (uintptr_t)m;
	if (insert(&a)) {
		munmap(m, a.mapped);
		if (a.charged)
			fg_hip_charge(dev, -(int64_t)a.charged);
		return hipErrorOutOfMemory;
	}
	*p = m;
	FG_TRACE("hip alloc kind=%d dev=%d %zu bytes at %p", kind, dev, bytes, m);
	return hipSuccess;
}

hipError_t fg_hip_free(void *p, int want_host)
{
	struct alloc a;

	if (!p)
		return hipSuccess;
	if (take((uintptr_t)p, want_host, &a))
		return want_host == 1 ? hipErrorInvalidValue : hipErrorInvalidDevicePointer;
	if (a.mapped)
		munmap((void *)a.base, a.mapped);
	if (a.charged)
		fg_hip_charge(a.dev, -(int64_t)a.charged);
	return hipSuccess;
}

void fg_hip_free_device(int dev)
{
	for (;;) {
		uintptr_t base = 0;
		int found = 0;

		pthread_mutex_lock(&mu);
		for (size_t i = 0; i < len; i++) {
			if (tab[i].dev == dev && tab[i].kind != FG_HIP_REGISTERED) {
				base = tab[i].base;
				found = 1;
				break;
			}
		}
		pthread_mutex_unlock(&mu);
		if (!found)
			break;
		fg_hip_free((void *)base, -1);
	}
}

hipError_t hipMalloc(void **ptr, size_t size)
{
	return fg_hip_err(fg_hip_alloc(ptr, size, FG_HIP_DEVICE, fg_hip_current()));
}

hipError_t hipExtMallocWithFlags(void **ptr, size_t size, unsigned int flags)
{
	if (flags & ~(unsigned)(hipDeviceMallocFinegrained | hipMallocSignalMemory))
		return fg_hip_err(hipErrorInvalidValue);
	return fg_hip_err(fg_hip_alloc(ptr, size, FG_HIP_DEVICE, fg_hip_current()));
}

hipError_t hipMallocManaged(void **ptr, size_t size, unsigned int flags)
{
	if (flags && flags != hipMemAttachGlobal && flags != hipMemAttachHost)
		return fg_hip_err(hipErrorInvalidValue);
	return fg_hip_err(fg_hip_alloc(ptr, size, FG_HIP_MANAGED, fg_hip_current()));
}

hipError_t hipMallocPitch(void **ptr, size_t *pitch, size_t width, size_t height)
{
	size_t p;
	hipError_t r;

	if (!pitch)
		return fg_hip_err(hipErrorInvalidValue);
	p = (width + 511) / 512 * 512; /* rows aligned to 512 bytes */
	if (height && p > SIZE_MAX / height)
		return fg_hip_err(hipErrorOutOfMemory);
	r = fg_hip_alloc(ptr, p * height, FG_HIP_PITCH, fg_hip_current());
	if (!r)
		*pitch = p;
	return fg_hip_err(r);
}

hipError_t hipMemAllocPitch(hipDeviceptr_t *dptr, size_t *pitch, size_t widthInBytes,
			    size_t height, unsigned int elementSizeBytes)
{
	(void)elementSizeBytes;
	return hipMallocPitch((void **)dptr, pitch, widthInBytes, height);
}

hipError_t hipFree(void *ptr)
{
	hipError_t r = fg_hip_init();

	if (r)
		return fg_hip_err(r);
	/* hipFree synchronizes the device, as the real one does */
	fg_hip_wait(fg_hip_dev_last(fg_hip_current()));
	return fg_hip_err(fg_hip_free(ptr, 0));
}

hipError_t hipHostMalloc(void **ptr, size_t size, unsigned int flags)
{
	(void)flags;
	return fg_hip_err(fg_hip_alloc(ptr, size, FG_HIP_HOST, -1));
}

hipError_t hipHostAlloc(void **ptr, size_t size, unsigned int flags)
{
	return hipHostMalloc(ptr, size, flags);
}

hipError_t hipMallocHost(void **ptr, size_t size)
{
	return hipHostMalloc(ptr, size, 0);
}

hipError_t hipMemAllocHost(void **ptr, size_t size)
{
	return hipHostMalloc(ptr, size, 0);
}

hipError_t hipHostFree(void *ptr)
{
	return fg_hip_err(fg_hip_free(ptr, 1));
}

hipError_t hipFreeHost(void *ptr)
{
	return hipHostFree(ptr);
}

hipError_t hipHostRegister(void *hostPtr, size_t sizeBytes, unsigned int flags)
{
	struct alloc a = { 0 };

	(void)flags;
	if (!hostPtr || !sizeBytes)
		return fg_hip_err(hipErrorInvalidValue);
	if (!fg_hip_lookup((uintptr_t)hostPtr, NULL, NULL, NULL, NULL))
		return fg_hip_err(hipErrorHostMemoryAlreadyRegistered);
	a.base = (uintptr_t)hostPtr;
	a.size = sizeBytes;
	a.kind = FG_HIP_REGISTERED;
	a.dev = -1;
	return fg_hip_err(insert(&a) ? hipErrorOutOfMemory : hipSuccess);
}

hipError_t hipHostUnregister(void *hostPtr)
{
	struct alloc a;

	if (take((uintptr_t)hostPtr, 1, &a))
		return fg_hip_err(hipErrorHostMemoryNotRegistered);
	return hipSuccess;
}

hipError_t hipHostGetDevicePointer(void **devPtr, void *hstPtr, unsigned int flags)
{
	int kind;

	if (!devPtr || flags || fg_hip_lookup((uintptr_t)hstPtr, NULL, NULL, &kind, NULL) ||
	    (kind != FG_HIP_HOST && kind != FG_HIP_REGISTERED))
		return fg_hip_err(hipErrorInvalidValue);
	*devPtr = hstPtr;
	return hipSuccess;
}

hipError_t hipHostGetFlags(unsigned int *flagsPtr, void *hostPtr)
{
	int kind;

	if (!flagsPtr || fg_hip_lookup((uintptr_t)hostPtr, NULL, NULL, &kind, NULL) ||
	    (kind != FG_HIP_HOST && kind != FG_HIP_REGISTERED))
		return fg_hip_err(hipErrorInvalidValue);
	*flagsPtr = 0;
	return hipSuccess;
}

hipError_t hipMemGetInfo(size_t *free_bytes, size_t *total)
{
	int dev = fg_hip_current();
	const struct fg_state *s;
	uint64_t tot, used;
	hipError_t r = fg_hip_device_ready(dev);

	if (r)
		return fg_hip_err(r);
	if (!free_bytes || !total)
		return fg_hip_err(hipErrorInvalidValue);
	s = fg_hip_state();
	/* a plain read of the shared counters, like the CUDA fake's cuMemGetInfo */
	tot = s->config[fg_hip_phys(dev)].memory_bytes;
	used = __atomic_load_n(&s->dev[fg_hip_phys(dev)].used_bytes, __ATOMIC_RELAXED);
	*total = (size_t)tot;
	*free_bytes = (size_t)(used < tot ? tot - used : 0);
	return hipSuccess;
}

hipError_t hipMemPtrGetInfo(void *ptr, size_t *size)
{
	if (!size || fg_hip_lookup((uintptr_t)ptr, NULL, size, NULL, NULL))
		return fg_hip_err(hipErrorInvalidValue);
	return hipSuccess;
}

hipError_t hipMemGetAddressRange(hipDeviceptr_t *pbase, size_t *psize, hipDeviceptr_t dptr)
{
	uintptr_t base;
	size_t size;

	if (fg_hip_lookup((uintptr_t)dptr, &base, &size, NULL, NULL))
		return fg_hip_err(hipErrorNotFound);
	if (pbase)
		*pbase = (hipDeviceptr_t)base;
	if (psize)
		*psize = size;
	return hipSuccess;
}

hipError_t hipPointerGetAttributes(hipPointerAttribute_t *attr, const void *ptr)
{
	uintptr_t base;
	int kind, dev;

	if (!attr || !ptr)
		return fg_hip_err(hipErrorInvalidValue);
	memset(attr, 0, sizeof(*attr));
	if (fg_hip_lookup((uintptr_t)ptr, &base, NULL, &kind, &dev))
		return fg_hip_err(hipErrorInvalidValue); /* HIP 5.2: unknown memory */
	attr->memoryType = kind == FG_HIP_HOST || kind == FG_HIP_REGISTERED ? hipMemoryTypeHost :
			   kind == FG_HIP_ARRAY ? hipMemoryTypeArray : hipMemoryTypeDevice;
	attr->device = dev >= 0 ? dev : fg_hip_current();
	attr->devicePointer = (void *)ptr;
	attr->hostPointer = kind == FG_HIP_DEVICE || kind == FG_HIP_PITCH ? NULL : (void *)ptr;
	attr->isManaged = kind == FG_HIP_MANAGED;
	return hipSuccess;
}

/* ---- arrays ---- */

static size_t format_bytes(enum hipArray_Format f)
{
	switch (f) {
	case HIP_AD_FORMAT_UNSIGNED_INT8: case HIP_AD_FORMAT_SIGNED_INT8: return 1;
	case HIP_AD_FORMAT_UNSIGNED_INT16: case HIP_AD_FORMAT_SIGNED_INT16:
	case HIP_AD_FORMAT_HALF: return 2;
	case HIP_AD_FORMAT_UNSIGNED_INT32: case HIP_AD_FORMAT_SIGNED_INT32:
	case HIP_AD_FORMAT_FLOAT: return 4;
	default: return 0;
	}
}

static hipError_t array_new(hipArray **out, size_t elem, size_t w, size_t h)
{
	hipArray *a;
	void *data;
	hipError_t r;

	if (!out || !elem || !w || w > (1u << 30) || h > (1u << 30))
		return hipErrorInvalidValue;
	a = calloc(1, sizeof(*a));
	if (!a)
		return hipErrorOutOfMemory;
	r = fg_hip_alloc(&data, elem * w * (h ? h : 1), FG_HIP_ARRAY, fg_hip_current());
	if (r) {
		free(a);
		return r;
	}
	a->data = data;
	a->width = (unsigned)w;
	a->height = (unsigned)h;
	a->depth = 0;
	if (fg_hip_handle_add(a, FG_HIP_TAG_ARRAY)) {
		fg_hip_free(data, 0);
		free(a);
		return hipErrorOutOfMemory;
	}
	*out = a;
	return hipSuccess;
}

hipError_t hipMallocArray(hipArray **array, const hipChannelFormatDesc *desc, size_t width,
			  size_t height, unsigned int flags)
{
	size_t bits;
	hipError_t r;

	(void)flags;
	if (!desc)
		return fg_hip_err(hipErrorInvalidValue);
	bits = (size_t)(desc->x > 0 ? desc->x : 0) + (size_t)(desc->y > 0 ? desc->y : 0) +
	       (size_t)(desc->z > 0 ? desc->z : 0) + (size_t)(desc->w > 0 ? desc->w : 0);
	r = array_new(array, (bits + 7) / 8, width, height);
	if (!r)
		(*array)->desc = *desc;
	return fg_hip_err(r);
}

hipError_t hipArrayCreate(hipArray **pHandle, const HIP_ARRAY_DESCRIPTOR *d)
{
	hipError_t r;

	if (!d)
		return fg_hip_err(hipErrorInvalidValue);
	r = array_new(pHandle, format_bytes(d->Format) * d->NumChannels, d->Width, d->Height);
	if (!r) {
		(*pHandle)->Format = d->Format;
		(*pHandle)->NumChannels = d->NumChannels;
		(*pHandle)->isDrv = 1;
	}
	return fg_hip_err(r);
}

hipError_t hipFreeArray(hipArray *array)
{
	if (!array || fg_hip_handle_del(array, FG_HIP_TAG_ARRAY))
		return fg_hip_err(hipErrorInvalidValue);
	fg_hip_free(array->data, 0);
	free(array);
	return hipSuccess;
}

hipError_t hipArrayDestroy(hipArray *array)
{
	return hipFreeArray(array);
}

hipChannelFormatDesc hipCreateChannelDesc(int x, int y, int z, int w, hipChannelFormatKind f)
{
	hipChannelFormatDesc d;

	d.x = x;
	d.y = y;
	d.z = z;
	d.w = w;
	d.f = f;
	return d;
}

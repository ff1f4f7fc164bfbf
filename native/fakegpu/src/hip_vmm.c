/*
 * fakegpu libamdhip64: virtual memory management (HIP 5.1+). hipMemCreate charges the device
 * and backs the handle with a memory file; hipMemAddressReserve reserves addresses (no
 * memory); hipMemMap maps the handle's bytes there (mappings of one handle share bytes);
 * memory returns to the device when the handle is released and no longer mapped.
 * Granularity: 4 KiB (assumed: the page size of the real runtime's coarse-grained pool).
 */
#include "hip_internal.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define GRANULARITY 4096u

struct handle {
	uint32_t tag;
	int dev;
	int fd;
	int released;
	unsigned maps;
	size_t size;
	uint64_t charged;
};

struct mapping {
	uintptr_t addr;
	size_t size;
	struct handle *h;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct mapping maps[4096];
static size_t nmaps;

#define TAG_VMM 0x56504948u

static void maybe_drop(struct handle *h) /* mu held */
{
	if (!h->released || h->maps)
		return;
	fg_hip_charge(h->dev, -(int64_t)h->charged);
	close(h->fd);
	fg_hip_handle_del(h, TAG_VMM);
	free(h);
}

hipError_t hipMemGetAllocationGranularity(size_t *granularity, const hipMemAllocationProp *prop,
					  hipMemAllocationGranularity_flags option)
{
	(void)option;
	if (!granularity || !prop)
		return fg_hip_err(hipErrorInvalidValue);
	*granularity = GRANULARITY;
	return hipSuccess;
}

hipError_t hipMemCreate(hipMemGenericAllocationHandle_t *handle, size_t size,
			const hipMemAllocationProp *prop, unsigned long long flags)
{
	struct handle *h;
	int dev;
	hipError_t r = fg_hip_init();

	if (r)
		return fg_hip_err(r);
	if (!handle || !prop || flags || !size || size % GRANULARITY ||
	    prop->location.type != hipMemLocationTypeDevice)
		return fg_hip_err(hipErrorInvalidValue);
	dev = prop->location.id;
	r = fg_hip_device_ready(dev);
	if (r)
		return fg_hip_err(r);
	h = calloc(1, sizeof(*h));
	if (!h)
		return fg_hip_err(hipErrorOutOfMemory);
	h->tag = TAG_VMM;
	h->dev = dev;
	h->size = size;
	h->charged = fg_hip_rounded(size);
	r = fg_hip_charge(dev, (int64_t)h->charged);
	if (r) {
		free(h);
		return fg_hip_err(r);
	}
	h->fd = memfd_create("fakegpu-hip-vmm", MFD_CLOEXEC);
	if (h->fd < 0 || ftruncate(h->fd, (off_t)size) || fg_hip_handle_add(h, TAG_VMM)) {
		if (h->fd >= 0)
			close(h->fd);
		fg_hip_charge(dev, -(int64_t)h->charged);
		free(h);
		return fg_hip_err(hipErrorOutOfMemory);
	}
	*handle = (hipMemGenericAllocationHandle_t)h;
	return hipSuccess;
}

hipError_t hipMemRelease(hipMemGenericAllocationHandle_t handle)
{
	struct handle *h = (struct handle *)handle;

	pthread_mutex_lock(&mu);
	if (!fg_hip_handle_is(h, TAG_VMM) || h->released) {
		pthread_mutex_unlock(&mu);
		return fg_hip_err(hipErrorInvalidValue);
	}
	h->released = 1;
	maybe_drop(h);
	pthread_mutex_unlock(&mu);
	return hipSuccess;
}

hipError_t hipMemAddressReserve(void **ptr, size_t size, size_t alignment, void *addr,
				unsigned long long flags)
{
	(void)alignment; (void)addr;
	if (!ptr || !size || flags || size % GRANULARITY)
		return fg_hip_err(hipErrorInvalidValue);
	return fg_hip_err(fg_hip_alloc(ptr, size, FG_HIP_VMM_RESERVE, fg_hip_current()));
}

hipError_t hipMemAddressFree(void *devPtr, size_t size)
{
	int kind;
	size_t have;

	if (fg_hip_lookup((uintptr_t)devPtr, NULL, &have, &kind, NULL) ||
	    kind != FG_HIP_VMM_RESERVE || size != have)
		return fg_hip_err(hipErrorInvalidValue);
	return fg_hip_err(fg_hip_free(devPtr, 0));
}

hipError_t hipMemMap(void *ptr, size_t size, size_t offset,
		     hipMemGenericAllocationHandle_t handle, unsigned long long flags)
{
	struct handle *h = (struct handle *)handle;
	uintptr_t base;
	size_t have;
	int kind;
	hipError_t r = hipSuccess;

	if (flags || !size || size % GRANULARITY || offset % GRANULARITY)
		return fg_hip_err(hipErrorInvalidValue);
	if (fg_hip_lookup((uintptr_t)ptr, &base, &have, &kind, NULL) ||
	    kind != FG_HIP_VMM_RESERVE || (uintptr_t)ptr + size > base + have)
		return fg_hip_err(hipErrorInvalidValue);
	pthread_mutex_lock(&mu);
	if (!fg_hip_handle_is(h, TAG_VMM) || h->released || offset + size > h->size ||
	    nmaps == sizeof(maps) / sizeof(maps[0])) {
		r = hipErrorInvalidValue;
	} else if (mmap(ptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, h->fd,
			(off_t)offset) == MAP_FAILED) {
		r = hipErrorOutOfMemory;
	} else {
		maps[nmaps].addr = (uintptr_t)ptr;
		maps[nmaps].size = size;
		maps[nmaps].h = h;
		nmaps++;
		h->maps++;
	}
	pthread_mutex_unlock(&mu);
	return fg_hip_err(r);
}

hipError_t hipMemUnmap(void *ptr, size_t size)
{
	hipError_t r = hipErrorInvalidValue;

	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < nmaps; i++) {
		struct handle *h = maps[i].h;

		if (maps[i].addr != (uintptr_t)ptr || maps[i].size != size)
			continue;
		/* back to a plain reservation */
		mmap(ptr, size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
		maps[i] = maps[--nmaps];
		h->maps--;
		maybe_drop(h);
		r = hipSuccess;
		break;
	}
	pthread_mutex_unlock(&mu);
	return fg_hip_err(r);
}

hipError_t hipMemSetAccess(void *ptr, size_t size, const hipMemAccessDesc *desc, size_t count)
{
	if (!ptr || !size || (!desc && count))
		return fg_hip_err(hipErrorInvalidValue);
	for (size_t i = 0; i < count; i++)
		if (desc[i].location.type != hipMemLocationTypeDevice ||
		    desc[i].location.id < 0 || desc[i].location.id >= fg_hip_count())
			return fg_hip_err(hipErrorInvalidValue);
	return hipSuccess;
}

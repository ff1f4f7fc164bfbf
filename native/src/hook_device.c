/*
 * Which of the job's GPUs (index into the limits file's gpu[]) a front's device ordinal is.
 * Matched by UUID, so CUDA_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES
 * renumbering does not matter. A limits entry with an empty UUID matches the device ordinal
 * equal to its index. Vendor-neutral: each front says how to get an ordinal's uuid
 * (struct vgpu_front).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "hook.h"

#define MAX_ORDINALS 64

/* Per front; 0: not looked up yet; otherwise job gpu + 2 (1 = not the job's). */
static int ordinal_cache[VGPU_FRONTS][MAX_ORDINALS];

static int match_uuid(const char *uuid, int ordinal)
{
	const struct vgpu_limits *l = vgpu_limits();
	if (!l)
		return -1;
	for (uint32_t i = 0; i < vgpu_rt.ngpus; i++) {
		char want[VGPU_UUID_LEN + 1];
		memcpy(want, l->gpu[i].uuid, VGPU_UUID_LEN);
		want[VGPU_UUID_LEN] = '\0';
		if (want[0] == '\0') {
			if (ordinal >= 0 && (uint32_t)ordinal == i)
				return (int)i;
			continue;
		}
		if (uuid && strcasecmp(want, uuid) == 0)
			return (int)i;
	}
	return -1;
}

int vgpu_gpu_of_uuid(const char *uuid)
{
	return match_uuid(uuid, -1);
}

int vgpu_gpu_of_ordinal(const struct vgpu_front *f, int ordinal)
{
	if (ordinal < 0 || ordinal >= MAX_ORDINALS || f->id < 0 || f->id >= VGPU_FRONTS)
		return -1;
	int *cache = &ordinal_cache[f->id][ordinal];
	int cached = __atomic_load_n(cache, __ATOMIC_RELAXED);
	if (cached)
		return cached - 2;
	char text[VGPU_UUID_LEN + 16];
	const char *uuid = f->uuid(ordinal, text, sizeof text) == 0 ? text : NULL;
	int gpu = match_uuid(uuid, ordinal);
	if (uuid) /* cache only a definite answer */
		__atomic_store_n(cache, gpu + 2, __ATOMIC_RELAXED);
	return gpu;
}

int vgpu_gpu_of_current(const struct vgpu_front *f, int *api_err)
{
	int dev = -1;
	int r = f->current(&dev);
	*api_err = r;
	if (r != 0)
		return -1;
	return vgpu_gpu_of_ordinal(f, dev); /* -1 with *api_err 0: a device the job has no slice of */
}

void vgpu_device_reset(void)
{
	memset(ordinal_cache, 0, sizeof ordinal_cache);
}

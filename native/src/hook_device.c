/*
 * Which of the job's GPUs (index into the limits file's gpu[]) a CUDA device ordinal or an
 * NVML handle is. Matched by UUID, so CUDA_VISIBLE_DEVICES renumbering does not matter. A
 * limits entry with an empty UUID matches the device ordinal equal to its index.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "hook.h"

#define MAX_ORDINALS 64

/* 0: not looked up yet; otherwise job gpu + 2 (1 = not the job's). */
static int ordinal_cache[MAX_ORDINALS];

typedef CUresult (*ctx_get_device_fn)(CUdevice *);
typedef CUresult (*device_get_uuid_fn)(CUuuid *, CUdevice);
typedef nvmlReturn_t (*nvml_get_uuid_fn)(nvmlDevice_t, char *, unsigned int);

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

int vgpu_gpu_of_ordinal(CUdevice ordinal)
{
	if (ordinal < 0 || ordinal >= MAX_ORDINALS)
		return -1;
	int cached = __atomic_load_n(&ordinal_cache[ordinal], __ATOMIC_RELAXED);
	if (cached)
		return cached - 2;
	device_get_uuid_fn get_uuid =
		(device_get_uuid_fn)vgpu_driver_sym(VGPU_LIB_CU, "cuDeviceGetUuid_v2");
	if (!get_uuid)
		get_uuid = (device_get_uuid_fn)vgpu_driver_sym(VGPU_LIB_CU, "cuDeviceGetUuid");
	CUuuid u;
	char text[64];
	const char *uuid = NULL;
	if (get_uuid && get_uuid(&u, ordinal) == CUDA_SUCCESS) {
		const unsigned char *b = (const unsigned char *)u.bytes;
		snprintf(text, sizeof text,
			 "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
			 b[12], b[13], b[14], b[15]);
		uuid = text;
	}
	int gpu = match_uuid(uuid, ordinal);
	if (uuid) /* cache only a definite answer */
		__atomic_store_n(&ordinal_cache[ordinal], gpu + 2, __ATOMIC_RELAXED);
	return gpu;
}

int vgpu_gpu_of_current_context(CUresult *err)
{
	static ctx_get_device_fn get_device;
	if (!get_device)
		get_device = (ctx_get_device_fn)vgpu_driver_sym(VGPU_LIB_CU, "cuCtxGetDevice");
	CUdevice dev = -1;
	CUresult r = get_device ? get_device(&dev) : CUDA_ERROR_NOT_INITIALIZED;
	if (r != CUDA_SUCCESS) {
		*err = r;
		return -1;
	}
	int gpu = vgpu_gpu_of_ordinal(dev);
	if (gpu < 0)
		*err = CUDA_ERROR_OUT_OF_MEMORY; /* a device the job holds no slice of */
	return gpu;
}

int vgpu_gpu_of_nvml(nvmlDevice_t device)
{
	static nvml_get_uuid_fn get_uuid;
	if (!get_uuid)
		get_uuid = (nvml_get_uuid_fn)vgpu_driver_sym(VGPU_LIB_NVML, "nvmlDeviceGetUUID");
	char uuid[96];
	if (!get_uuid || get_uuid(device, uuid, sizeof uuid) != NVML_SUCCESS)
		return -1;
	uuid[sizeof uuid - 1] = '\0';
	return match_uuid(uuid, -1);
}

void vgpu_device_reset(void)
{
	memset(ordinal_cache, 0, sizeof ordinal_cache);
}

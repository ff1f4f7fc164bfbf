/*
 * fakegpu libamdhip64: attaching to the simulated machine, visible devices, the current
 * device, the per-process runtime state on each device, the last error.
 *
 * The runtime attaches on the first HIP call (as the real one initializes ROCr on first use).
 * ROCR_VISIBLE_DEVICES and then HIP_VISIBLE_DEVICES (CUDA_VISIBLE_DEVICES when that is unset)
 * select devices by index, each relative to the list before it (ROCR_VISIBLE_DEVICES also by
 * "GPU-<16 hex>" unique id, as ROCr accepts); a list ends at the first entry naming no device
 * or repeating one. The first call that works on a device (memory,
 * launches, streams, synchronization, memory info) sets the process up there: that costs the
 * state's ctx_overhead of device memory, charged to the process, as the CUDA fake's context.
 */
#include "hip_internal.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct fg_state *shm;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int count;
static uint32_t visible[FG_MAX_DEVICES];
static pthread_mutex_t ready_mu = PTHREAD_MUTEX_INITIALIZER;
static int ready[FG_MAX_DEVICES];
static __thread int current;
static __thread hipError_t last_error;

/* The physical device whose ROCm unique id (the state's uuid bytes 8..15, big-endian: what
 * the fake ROCm SMI reports) a "GPU-<16 hex>" token names, among list[0..n); -1: none. */
static long by_uuid(const char *token, const char **end, const uint32_t *list, int n)
{
	unsigned long long want;
	char *stop;

	if (strncmp(token, "GPU-", 4) != 0 || !isxdigit((unsigned char)token[4]))
		return -1;
	want = strtoull(token + 4, &stop, 16);
	if (stop - (token + 4) != 16)
		return -1;
	*end = stop;
	for (int i = 0; i < n; i++) {
		unsigned long long id = 0;

		for (int b = 8; b < 16; b++)
			id = (id << 8) | shm->config[list[i]].uuid[b];
		if (id == want)
			return i;
	}
	return -1;
}

/* Keep the entries of list[0..*n) that the variable names, in its order: by index, or (uuids:
 * ROCR_VISIBLE_DEVICES, as ROCr) by "GPU-<16 hex>" unique id. */
static void filter(const char *var, uint32_t *list, int *n, int uuids)
{
	const char *v = getenv(var);
	uint32_t out[FG_MAX_DEVICES];
	int k = 0;

	if (!v)
		return;
	while (*v && k < (int)FG_MAX_DEVICES) {
		char *end;
		long idx;
		int dup = 0;

		while (isspace((unsigned char)*v))
			v++;
		if (uuids && *v == 'G') {
			const char *stop = v;

			idx = by_uuid(v, &stop, list, *n);
			end = (char *)(uintptr_t)stop;
			if (idx < 0)
				break;
		} else if (!isdigit((unsigned char)*v)) {
			break;
		} else {
			idx = strtol(v, &end, 10);
		}
		while (isspace((unsigned char)*end))
			end++;
		if ((*end && *end != ',') || idx < 0 || idx >= *n)
			break;
		for (int j = 0; j < k; j++)
			dup |= out[j] == list[idx];
		if (dup)
			break;
		out[k++] = list[idx];
		v = *end ? end + 1 : end;
	}
	memcpy(list, out, (size_t)k * sizeof(*out));
	*n = k;
}

static void attach(void)
{
	char err[512];

	fg_trace_init();
	shm = fg_state_attach_vendor(FG_VENDOR_AMD, err, sizeof(err));
	if (!shm) {
		fg_msg("%s", err);
		return;
	}
	count = (int)(shm->device_count < FG_MAX_DEVICES ? shm->device_count : FG_MAX_DEVICES);
	for (int i = 0; i < count; i++)
		visible[i] = (uint32_t)i;
	filter("ROCR_VISIBLE_DEVICES", visible, &count, 1);
	if (getenv("HIP_VISIBLE_DEVICES"))
		filter("HIP_VISIBLE_DEVICES", visible, &count, 0);
	else
		filter("CUDA_VISIBLE_DEVICES", visible, &count, 0);
	if (fg_lock(shm) == 0) {
		fg_reap_dead(shm);
		fg_unlock(shm);
	}
	FG_TRACE("hip attach: %d visible device(s)", count);
}

hipError_t fg_hip_init(void)
{
	pthread_once(&once, attach);
	return shm && count ? hipSuccess : hipErrorNoDevice;
}

struct fg_state *fg_hip_state(void)
{
	return shm;
}

int fg_hip_count(void)
{
	return count;
}

uint32_t fg_hip_phys(int dev)
{
	return visible[dev];
}

int fg_hip_current(void)
{
	return current;
}

hipError_t fg_hip_set_current(int dev)
{
	hipError_t r = fg_hip_init();

	if (r)
		return r;
	if (dev < 0 || dev >= count)
		return hipErrorInvalidDevice;
	current = dev;
	return hipSuccess;
}

hipError_t fg_hip_device_ready(int dev)
{
	hipError_t r = fg_hip_init();

	if (r)
		return r;
	if (dev < 0 || dev >= count)
		return hipErrorInvalidDevice;
	pthread_mutex_lock(&ready_mu);
	if (!ready[dev]) {
		r = fg_hip_charge(dev, (int64_t)((uint64_t)shm->ctx_overhead_mib << 20));
		if (!r)
			ready[dev] = 1;
	}
	pthread_mutex_unlock(&ready_mu);
	return r;
}

void fg_hip_device_release(int dev)
{
	pthread_mutex_lock(&ready_mu);
	if (ready[dev]) {
		fg_hip_charge(dev, -(int64_t)((uint64_t)shm->ctx_overhead_mib << 20));
		ready[dev] = 0;
	}
	pthread_mutex_unlock(&ready_mu);
}

hipError_t fg_hip_err(hipError_t e)
{
	if (e != hipSuccess)
		last_error = e;
	return e;
}

hipError_t hipInit(unsigned int flags)
{
	if (flags)
		return fg_hip_err(hipErrorInvalidValue);
	return fg_hip_err(fg_hip_init());
}

hipError_t hipGetLastError(void)
{
	hipError_t e = last_error;

	last_error = hipSuccess;
	return e;
}

hipError_t hipPeekAtLastError(void)
{
	return last_error;
}

hipError_t hipRuntimeGetVersion(int *v)
{
	if (!v)
		return fg_hip_err(hipErrorInvalidValue);
	*v = FG_HIP_VERSION;
	return hipSuccess;
}

hipError_t hipDriverGetVersion(int *v)
{
	if (!v)
		return fg_hip_err(hipErrorInvalidValue);
	*v = FG_HIP_VERSION;
	return hipSuccess;
}

/* fakegpu libcuda: cuInit, versions, CUDA_VISIBLE_DEVICES, error names and strings. */
#include "cuda_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static struct fg_state *shm;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int initialized;
static int visible_count;
static uint32_t visible[FG_MAX_DEVICES];

struct fg_state *fg_shm(void)
{
	return shm;
}

int fg_visible_count(void)
{
	return visible_count;
}

uint32_t fg_phys(int dev)
{
	return visible[dev];
}

int fg_valid_dev(int dev)
{
	return dev >= 0 && dev < visible_count;
}

CUresult fg_ready(void)
{
	return __atomic_load_n(&initialized, __ATOMIC_ACQUIRE) ? CUDA_SUCCESS :
								 CUDA_ERROR_NOT_INITIALIZED;
}

/* Like the real driver: a list of indices or (unique prefixes of) UUIDs; the list ends at
 * the first entry that names no device or repeats one. Unset means every device. */
static void parse_visible(const struct fg_state *s)
{
	const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
	char tok[128];
	uint32_t n = s->device_count;

	visible_count = 0;
	if (!cvd) {
		for (uint32_t i = 0; i < n; i++)
			visible[visible_count++] = i;
		return;
	}
	while (*cvd && visible_count < (int)FG_MAX_DEVICES) {
		size_t len = strcspn(cvd, ",");
		const char *t = tok;
		int64_t idx = -1;

		if (len >= sizeof(tok))
			break;
		memcpy(tok, cvd, len);
		tok[len] = '\0';
		while (isspace((unsigned char)*t))
			t++;
		if (!strncmp(t, "GPU-", 4)) {
			for (uint32_t i = 0; i < n; i++) {
				char u[64];

				fg_uuid_format(s->config[i].uuid, u, sizeof(u));
				if (!strncmp(u, t, strlen(t))) {
					if (idx >= 0) { /* ambiguous prefix */
						idx = -1;
						break;
					}
					idx = i;
				}
			}
		} else if (isdigit((unsigned char)*t)) {
			char *end;
			long v = strtol(t, &end, 10);

			while (isspace((unsigned char)*end))
				end++;
			if (!*end && v >= 0 && v < (long)n)
				idx = v;
		}
		if (idx < 0)
			break;
		for (int k = 0; k < visible_count; k++)
			if (visible[k] == (uint32_t)idx)
				idx = -1;
		if (idx < 0)
			break;
		visible[visible_count++] = (uint32_t)idx;
		cvd += len;
		if (*cvd == ',')
			cvd++;
	}
}

static void init_process(void)
{
	char err[512];

	fg_trace_init();
	shm = fg_state_attach(err, sizeof(err));
	if (!shm) {
		fg_msg("%s", err);
		return;
	}
	parse_visible(shm);
	if (fg_lock(shm) == 0) {
		fg_reap_dead(shm);
		fg_unlock(shm);
	}
}

CUresult cuInit(unsigned int flags)
{
	pthread_once(&init_once, init_process);
	FG_TRACE("cuInit(%u) visible=%d", flags, visible_count);
	if (flags)
		return CUDA_ERROR_INVALID_VALUE;
	if (!shm || !visible_count)
		return CUDA_ERROR_NO_DEVICE;
	__atomic_store_n(&initialized, 1, __ATOMIC_RELEASE);
	return CUDA_SUCCESS;
}

CUresult cuDriverGetVersion(int *v)
{
	if (!v)
		return CUDA_ERROR_INVALID_VALUE;
	*v = FG_DRIVER_VERSION;
	return CUDA_SUCCESS;
}

/* ---- error names (generated from cuda.h) and the driver's descriptions ---- */

static const struct {
	CUresult code;
	const char *name;
} error_names[] = {
#define X(n) { n, #n },
#include "cuda_error_names.h"
#undef X
};

static const struct {
	CUresult code;
	const char *text;
} error_texts[] = {
	{ CUDA_SUCCESS, "no error" },
	{ CUDA_ERROR_INVALID_VALUE, "invalid argument" },
	{ CUDA_ERROR_OUT_OF_MEMORY, "out of memory" },
	{ CUDA_ERROR_NOT_INITIALIZED, "initialization error" },
	{ CUDA_ERROR_DEINITIALIZED, "driver shutting down" },
	{ CUDA_ERROR_STUB_LIBRARY, "CUDA driver is a stub library" },
	{ CUDA_ERROR_DEVICE_UNAVAILABLE, "CUDA-capable device(s) is/are busy or unavailable" },
	{ CUDA_ERROR_NO_DEVICE, "no CUDA-capable device is detected" },
	{ CUDA_ERROR_INVALID_DEVICE, "invalid device ordinal" },
	{ CUDA_ERROR_INVALID_IMAGE, "device kernel image is invalid" },
	{ CUDA_ERROR_INVALID_CONTEXT, "invalid device context" },
	{ CUDA_ERROR_CONTEXT_ALREADY_CURRENT, "context already current" },
	{ CUDA_ERROR_MAP_FAILED, "mapping of buffer object failed" },
	{ CUDA_ERROR_UNMAP_FAILED, "unmapping of buffer object failed" },
	{ CUDA_ERROR_ALREADY_MAPPED, "resource already mapped" },
	{ CUDA_ERROR_NO_BINARY_FOR_GPU, "no kernel image is available for execution on the device" },
	{ CUDA_ERROR_NOT_MAPPED, "resource not mapped" },
	{ CUDA_ERROR_UNSUPPORTED_LIMIT, "limit is not supported on this architecture" },
	{ CUDA_ERROR_PEER_ACCESS_UNSUPPORTED, "peer access is not supported between these two devices" },
	{ CUDA_ERROR_INVALID_SOURCE, "device kernel image is invalid" },
	{ CUDA_ERROR_FILE_NOT_FOUND, "file not found" },
	{ CUDA_ERROR_OPERATING_SYSTEM, "OS call failed or operation not supported on this OS" },
	{ CUDA_ERROR_INVALID_HANDLE, "invalid resource handle" },
	{ CUDA_ERROR_ILLEGAL_STATE, "the operation cannot be performed in the present state" },
	{ CUDA_ERROR_NOT_FOUND, "named symbol not found" },
	{ CUDA_ERROR_NOT_READY, "device not ready" },
	{ CUDA_ERROR_ILLEGAL_ADDRESS, "an illegal memory access was encountered" },
	{ CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, "too many resources requested for launch" },
	{ CUDA_ERROR_LAUNCH_TIMEOUT, "the launch timed out and was terminated" },
	{ CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED, "peer access is already enabled" },
	{ CUDA_ERROR_PEER_ACCESS_NOT_ENABLED, "peer access has not been enabled" },
	{ CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE, "cannot set while device is active in this process" },
	{ CUDA_ERROR_CONTEXT_IS_DESTROYED, "context is destroyed" },
	{ CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED, "part or all of the requested memory range is already mapped" },
	{ CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED, "pointer does not correspond to a registered memory region" },
	{ CUDA_ERROR_LAUNCH_FAILED, "unspecified launch failure" },
	{ CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE, "too many blocks in cooperative launch" },
	{ CUDA_ERROR_NOT_PERMITTED, "operation not permitted" },
	{ CUDA_ERROR_NOT_SUPPORTED, "operation not supported" },
	{ CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "operation not permitted when stream is capturing" },
	{ CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "operation failed due to a previous error during capture" },
	{ CUDA_ERROR_STREAM_CAPTURE_UNMATCHED, "capture was not initiated in this stream" },
	{ CUDA_ERROR_STREAM_CAPTURE_IMPLICIT, "operation would make the legacy stream depend on a capturing blocking stream" },
	{ CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE, "the graph update was not performed because it included changes which violated constraints specific to instantiated graph update" },
	{ CUDA_ERROR_UNKNOWN, "unknown error" },
};

const char *fg_error_name(CUresult r)
{
	for (size_t i = 0; i < sizeof(error_names) / sizeof(error_names[0]); i++)
		if (error_names[i].code == r)
			return error_names[i].name;
	return NULL;
}

CUresult cuGetErrorName(CUresult error, const char **pStr)
{
	const char *n = fg_error_name(error);

	if (!pStr)
		return CUDA_ERROR_INVALID_VALUE;
	*pStr = n;
	return n ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuGetErrorString(CUresult error, const char **pStr)
{
	const char *n = fg_error_name(error);

	if (!pStr)
		return CUDA_ERROR_INVALID_VALUE;
	*pStr = NULL;
	if (!n)
		return CUDA_ERROR_INVALID_VALUE;
	*pStr = n;
	for (size_t i = 0; i < sizeof(error_texts) / sizeof(error_texts[0]); i++)
		if (error_texts[i].code == error)
			*pStr = error_texts[i].text;
	return CUDA_SUCCESS;
}

/*
 * fakegpu librocm_smi64: init/shutdown (reference counted), versions, status strings, device
 * count. rsmi_init on a machine with no AMD GPU fails with RSMI_STATUS_INIT_ERROR, as the real
 * library does when it finds no amdgpu devices: a state file of NVIDIA devices is such a
 * machine.
 */
#include "rsmi_internal.h"

#include <pthread.h>
#include <string.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct fg_state *shm;
static int refs;

struct fg_state *fg_rsmi_state(void)
{
	return __atomic_load_n(&refs, __ATOMIC_ACQUIRE) > 0 ? shm : NULL;
}

rsmi_status_t fg_rsmi_dev(uint32_t dv_ind, struct fg_state **s)
{
	struct fg_state *st = fg_rsmi_state();

	if (!st)
		return RSMI_STATUS_INIT_ERROR;
	if (dv_ind >= st->device_count || dv_ind >= FG_MAX_DEVICES)
		return RSMI_STATUS_INVALID_ARGS;
	*s = st;
	return RSMI_STATUS_SUCCESS;
}

rsmi_status_t fg_rsmi_put(char *out, size_t len, const char *s)
{
	size_t n = strlen(s);

	if (!out || !len)
		return RSMI_STATUS_INVALID_ARGS;
	if (n >= len) {
		memcpy(out, s, len - 1);
		out[len - 1] = '\0';
		return RSMI_STATUS_INSUFFICIENT_SIZE;
	}
	memcpy(out, s, n + 1);
	return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_init(uint64_t init_flags)
{
	char err[512];
	rsmi_status_t r = RSMI_STATUS_SUCCESS;

	(void)init_flags;
	fg_trace_init();
	pthread_mutex_lock(&mu);
	if (!shm) {
		shm = fg_state_attach_vendor(FG_VENDOR_AMD, err, sizeof(err));
		if (!shm) {
			fg_msg("%s", err);
			r = RSMI_STATUS_INIT_ERROR;
			goto out;
		}
	}
	__atomic_add_fetch(&refs, 1, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&mu);
	FG_TRACE("rsmi_init -> %d", (int)r);
	return r;
}

rsmi_status_t rsmi_shut_down(void)
{
	rsmi_status_t r = RSMI_STATUS_SUCCESS;

	pthread_mutex_lock(&mu);
	if (refs > 0)
		__atomic_sub_fetch(&refs, 1, __ATOMIC_RELEASE);
	else
		r = RSMI_STATUS_INIT_ERROR;
	pthread_mutex_unlock(&mu);
	return r;
}

rsmi_status_t rsmi_num_monitor_devices(uint32_t *num_devices)
{
	struct fg_state *s = fg_rsmi_state();

	if (!num_devices)
		return RSMI_STATUS_INVALID_ARGS;
	if (!s)
		return RSMI_STATUS_INIT_ERROR;
	*num_devices = s->device_count < FG_MAX_DEVICES ? s->device_count : FG_MAX_DEVICES;
	return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_version_get(rsmi_version_t *version)
{
	if (!version)
		return RSMI_STATUS_INVALID_ARGS;
	/* what Debian 12's library reports */
	version->major = 1;
	version->minor = 0;
	version->patch = 0;
	version->build = "fakegpu";
	return RSMI_STATUS_SUCCESS;
}

static const struct {
	rsmi_status_t code;
	const char *text;
} texts[] = {
	{ RSMI_STATUS_SUCCESS, "RSMI_STATUS_SUCCESS: the call succeeded" },
	{ RSMI_STATUS_INVALID_ARGS, "RSMI_STATUS_INVALID_ARGS: an argument is not valid" },
	{ RSMI_STATUS_NOT_SUPPORTED, "RSMI_STATUS_NOT_SUPPORTED: not supported by this device" },
	{ RSMI_STATUS_FILE_ERROR, "RSMI_STATUS_FILE_ERROR: a sysfs file could not be accessed" },
	{ RSMI_STATUS_PERMISSION, "RSMI_STATUS_PERMISSION: permission denied" },
	{ RSMI_STATUS_OUT_OF_RESOURCES, "RSMI_STATUS_OUT_OF_RESOURCES: out of memory or other resources" },
	{ RSMI_STATUS_INTERNAL_EXCEPTION, "RSMI_STATUS_INTERNAL_EXCEPTION: internal error" },
	{ RSMI_STATUS_INPUT_OUT_OF_BOUNDS, "RSMI_STATUS_INPUT_OUT_OF_BOUNDS: an input is out of range" },
	{ RSMI_STATUS_INIT_ERROR,
	  "RSMI_STATUS_INIT_ERROR: ROCm SMI is not initialized or found no AMD GPU" },
	{ RSMI_STATUS_NOT_YET_IMPLEMENTED, "RSMI_STATUS_NOT_YET_IMPLEMENTED: not implemented" },
	{ RSMI_STATUS_NOT_FOUND, "RSMI_STATUS_NOT_FOUND: the item was not found" },
	{ RSMI_STATUS_INSUFFICIENT_SIZE, "RSMI_STATUS_INSUFFICIENT_SIZE: the buffer is too small" },
	{ RSMI_STATUS_INTERRUPT, "RSMI_STATUS_INTERRUPT: interrupted" },
	{ RSMI_STATUS_UNEXPECTED_SIZE, "RSMI_STATUS_UNEXPECTED_SIZE: unexpected amount of data read" },
	{ RSMI_STATUS_NO_DATA, "RSMI_STATUS_NO_DATA: no data for the input" },
	{ RSMI_STATUS_UNEXPECTED_DATA, "RSMI_STATUS_UNEXPECTED_DATA: unexpected data" },
	{ RSMI_STATUS_BUSY, "RSMI_STATUS_BUSY: a resource is busy" },
	{ RSMI_STATUS_REFCOUNT_OVERFLOW, "RSMI_STATUS_REFCOUNT_OVERFLOW: reference count overflow" },
	{ RSMI_STATUS_UNKNOWN_ERROR, "RSMI_STATUS_UNKNOWN_ERROR: unknown error" },
};

rsmi_status_t rsmi_status_string(rsmi_status_t status, const char **status_string)
{
	if (!status_string)
		return RSMI_STATUS_INVALID_ARGS;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		if (texts[i].code == status) {
			*status_string = texts[i].text;
			return RSMI_STATUS_SUCCESS;
		}
	}
	*status_string = "An unknown error occurred";
	return RSMI_STATUS_INVALID_ARGS;
}

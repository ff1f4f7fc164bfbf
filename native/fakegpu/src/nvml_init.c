/* fakegpu libnvidia-ml: init/shutdown, error strings, system queries, device handles. */
#include "nvml_internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fg_state *shm;
static int init_count;
static struct fg_nvml_device devices[FG_MAX_DEVICES];

struct fg_state *fg_nvml_state(void)
{
	return shm;
}

int fg_nvml_initialized(void)
{
	return __atomic_load_n(&init_count, __ATOMIC_ACQUIRE) > 0;
}

const struct fg_nvml_device *fg_nvml_device(nvmlDevice_t h)
{
	uintptr_t p = (uintptr_t)h, base = (uintptr_t)devices;

	if (p < base || p >= base + sizeof(devices) || (p - base) % sizeof(devices[0]))
		return NULL;
	if (((const struct fg_nvml_device *)h)->index >= shm->device_count)
		return NULL;
	return (const struct fg_nvml_device *)h;
}

nvmlDevice_t fg_nvml_handle(unsigned index)
{
	return (nvmlDevice_t)&devices[index];
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags)
{
	char err[512];
	nvmlReturn_t r = NVML_SUCCESS;

	(void)flags;
	fg_trace_init();
	pthread_mutex_lock(&init_mu);
	if (!shm) {
		shm = fg_state_attach(err, sizeof(err));
		if (!shm) {
			fg_msg("%s", err);
			r = NVML_ERROR_DRIVER_NOT_LOADED;
			goto out;
		}
		for (unsigned i = 0; i < FG_MAX_DEVICES; i++)
			devices[i].index = i;
	}
	__atomic_add_fetch(&init_count, 1, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&init_mu);
	FG_TRACE("nvmlInit -> %d", (int)r);
	return r;
}

nvmlReturn_t nvmlInit_v2(void)
{
	return nvmlInitWithFlags(0);
}

nvmlReturn_t nvmlInit(void)
{
	return nvmlInitWithFlags(0);
}

nvmlReturn_t nvmlShutdown(void)
{
	nvmlReturn_t r = NVML_SUCCESS;

	pthread_mutex_lock(&init_mu);
	if (init_count <= 0)
		r = NVML_ERROR_UNINITIALIZED;
	else
		__atomic_sub_fetch(&init_count, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&init_mu);
	return r;
}

const char *nvmlErrorString(nvmlReturn_t result)
{
	switch (result) {
	case NVML_SUCCESS: return "Success";
	case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
	case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
	case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
	case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
	case NVML_ERROR_ALREADY_INITIALIZED: return "Already Initialized";
	case NVML_ERROR_NOT_FOUND: return "Not Found";
	case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
	case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
	case NVML_ERROR_TIMEOUT: return "Timeout";
	case NVML_ERROR_FUNCTION_NOT_FOUND: return "Function Not Found";
	case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument Version Mismatch";
	case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
	default: return "Unknown Error";
	}
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
	if (!version)
		return NVML_ERROR_INVALID_ARGUMENT;
	if ((size_t)snprintf(version, length, "580.65.06") >= length)
		return NVML_ERROR_INSUFFICIENT_SIZE;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length)
{
	if (!version)
		return NVML_ERROR_INVALID_ARGUMENT;
	if ((size_t)snprintf(version, length, "13.580.65.06") >= length)
		return NVML_ERROR_INSUFFICIENT_SIZE;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v)
{
	if (!v)
		return NVML_ERROR_INVALID_ARGUMENT;
	*v = 13000;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v)
{
	return nvmlSystemGetCudaDriverVersion(v);
}

nvmlReturn_t nvmlSystemGetProcessName(unsigned int pid, char *name, unsigned int length)
{
	char path[64], buf[256];
	ssize_t n;
	int fd;

	if (!fg_nvml_initialized())
		return NVML_ERROR_UNINITIALIZED;
	if (!name || !length)
		return NVML_ERROR_INVALID_ARGUMENT;
	snprintf(path, sizeof(path), "/proc/%u/comm", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NVML_ERROR_NOT_FOUND;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return NVML_ERROR_NOT_FOUND;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	snprintf(name, length, "%s", buf);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount)
{
	if (!fg_nvml_initialized())
		return NVML_ERROR_UNINITIALIZED;
	if (!deviceCount)
		return NVML_ERROR_INVALID_ARGUMENT;
	*deviceCount = shm->device_count;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount(unsigned int *deviceCount)
{
	return nvmlDeviceGetCount_v2(deviceCount);
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
	if (!fg_nvml_initialized())
		return NVML_ERROR_UNINITIALIZED;
	if (!device || index >= shm->device_count)
		return NVML_ERROR_INVALID_ARGUMENT;
	*device = fg_nvml_handle(index);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device)
{
	return nvmlDeviceGetHandleByIndex_v2(index, device);
}

nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device)
{
	if (!fg_nvml_initialized())
		return NVML_ERROR_UNINITIALIZED;
	if (!uuid || !device)
		return NVML_ERROR_INVALID_ARGUMENT;
	for (unsigned i = 0; i < shm->device_count; i++) {
		char s[64];

		fg_uuid_format(shm->config[i].uuid, s, sizeof(s));
		if (!strcmp(s, uuid)) {
			*device = fg_nvml_handle(i);
			return NVML_SUCCESS;
		}
	}
	return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *pciBusId, nvmlDevice_t *device)
{
	unsigned dom = 0, bus, dev, fn;

	if (!fg_nvml_initialized())
		return NVML_ERROR_UNINITIALIZED;
	if (!pciBusId || !device)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (sscanf(pciBusId, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4 &&
	    sscanf(pciBusId, "%x:%x.%x", &bus, &dev, &fn) != 3)
		return NVML_ERROR_INVALID_ARGUMENT;
	for (unsigned i = 0; i < shm->device_count; i++) {
		const struct fg_device_config *c = &shm->config[i];

		if (c->pci_domain == dom && c->pci_bus == bus && c->pci_device == dev) {
			*device = fg_nvml_handle(i);
			return NVML_SUCCESS;
		}
	}
	return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetHandleByPciBusId(const char *pciBusId, nvmlDevice_t *device)
{
	return nvmlDeviceGetHandleByPciBusId_v2(pciBusId, device);
}

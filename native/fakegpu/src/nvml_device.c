/* fakegpu libnvidia-ml: identity, PCI, memory and static properties of a device. */
#include "nvml_internal.h"

#include <stdio.h>
#include <string.h>

static const struct fg_device_config *cfg(const struct fg_nvml_device *d)
{
	return &fg_nvml_state()->config[d->index];
}

static nvmlReturn_t put_string(char *out, unsigned int length, const char *s)
{
	if (!out)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (strlen(s) >= length)
		return NVML_ERROR_INSUFFICIENT_SIZE;
	memcpy(out, s, strlen(s) + 1);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)
{
	NVML_DEV(device, d);
	if (!index)
		return NVML_ERROR_INVALID_ARGUMENT;
	*index = d->index;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minorNumber)
{
	return nvmlDeviceGetIndex(device, minorNumber);
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
	char buf[FG_NAME_LEN];

	NVML_DEV(device, d);
	snprintf(buf, sizeof(buf), "%.*s", (int)FG_NAME_LEN - 1, cfg(d)->name);
	return put_string(name, length, buf);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
	char buf[64];

	NVML_DEV(device, d);
	fg_uuid_format(cfg(d)->uuid, buf, sizeof(buf));
	return put_string(uuid, length, buf);
}

nvmlReturn_t nvmlDeviceGetSerial(nvmlDevice_t device, char *serial, unsigned int length)
{
	char buf[32];

	NVML_DEV(device, d);
	snprintf(buf, sizeof(buf), "FAKE%08u", d->index);
	return put_string(serial, length, buf);
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor)
{
	NVML_DEV(device, d);
	if (!major || !minor)
		return NVML_ERROR_INVALID_ARGUMENT;
	*major = (int)cfg(d)->cc_major;
	*minor = (int)cfg(d)->cc_minor;
	return NVML_SUCCESS;
}

static void fill_pci(const struct fg_device_config *c, nvmlPciInfo_t *p)
{
	memset(p, 0, sizeof(*p));
	fg_busid_format(c, p->busId, sizeof(p->busId));
	snprintf(p->busIdLegacy, sizeof(p->busIdLegacy), "%04X:%02X:%02X.0",
		 c->pci_domain & 0xffff, c->pci_bus & 0xff, c->pci_device & 0x1f);
	p->domain = c->pci_domain;
	p->bus = c->pci_bus;
	p->device = c->pci_device;
	p->pciDeviceId = c->pci_device_id;
	p->pciSubSystemId = c->pci_subsystem_id;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
	NVML_DEV(device, d);
	if (!pci)
		return NVML_ERROR_INVALID_ARGUMENT;
	fill_pci(cfg(d), pci);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
	return nvmlDeviceGetPciInfo_v3(device, pci);
}

nvmlReturn_t nvmlDeviceGetPciInfo(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
	return nvmlDeviceGetPciInfo_v3(device, pci);
}

/* Like the real driver, memory of processes that died is free again: reap them first. */
static uint64_t used_bytes(const struct fg_nvml_device *d)
{
	struct fg_state *s = fg_nvml_state();
	uint64_t used, total = cfg(d)->memory_bytes;

	if (fg_lock(s) == 0) {
		fg_reap_dead(s);
		fg_unlock(s);
	}
	used = __atomic_load_n(&s->dev[d->index].used_bytes, __ATOMIC_RELAXED);
	return used < total ? used : total;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
	uint64_t used;

	NVML_DEV(device, d);
	if (!memory)
		return NVML_ERROR_INVALID_ARGUMENT;
	used = used_bytes(d);
	memory->total = cfg(d)->memory_bytes;
	memory->used = used;
	memory->free = memory->total - used;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
	uint64_t used;

	NVML_DEV(device, d);
	if (!memory)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (memory->version != nvmlMemory_v2)
		return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
	used = used_bytes(d);
	memory->total = cfg(d)->memory_bytes;
	memory->reserved = 0;
	memory->used = used;
	memory->free = memory->total - used;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *currentMode,
				  unsigned int *pendingMode)
{
	(void)currentMode;
	(void)pendingMode;
	NVML_DEV(device, d);
	(void)d;
	return NVML_ERROR_NOT_SUPPORTED;
}

nvmlReturn_t nvmlDeviceGetComputeMode(nvmlDevice_t device, nvmlComputeMode_t *mode)
{
	NVML_DEV(device, d);
	(void)d;
	if (!mode)
		return NVML_ERROR_INVALID_ARGUMENT;
	*mode = NVML_COMPUTEMODE_DEFAULT;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPersistenceMode(nvmlDevice_t device, nvmlEnableState_t *mode)
{
	NVML_DEV(device, d);
	(void)d;
	if (!mode)
		return NVML_ERROR_INVALID_ARGUMENT;
	*mode = NVML_FEATURE_ENABLED;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensorType,
				      unsigned int *temp)
{
	NVML_DEV(device, d);
	(void)d;
	if (!temp || sensorType != NVML_TEMPERATURE_GPU)
		return NVML_ERROR_INVALID_ARGUMENT;
	*temp = 40;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power)
{
	NVML_DEV(device, d);
	(void)d;
	if (!power)
		return NVML_ERROR_INVALID_ARGUMENT;
	*power = 60000;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetAttributes_v2(nvmlDevice_t device, nvmlDeviceAttributes_t *attributes)
{
	NVML_DEV(device, d);
	if (!attributes)
		return NVML_ERROR_INVALID_ARGUMENT;
	memset(attributes, 0, sizeof(*attributes));
	attributes->multiprocessorCount = cfg(d)->sms;
	attributes->sharedCopyEngineCount = 2;
	attributes->gpuInstanceSliceCount = 1;
	attributes->computeInstanceSliceCount = 1;
	attributes->memorySizeMB = cfg(d)->memory_bytes >> 20;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetAttributes(nvmlDevice_t device, nvmlDeviceAttributes_t *attributes)
{
	return nvmlDeviceGetAttributes_v2(device, attributes);
}

/* Every simulated device sits on NUMA node 0. */
nvmlReturn_t nvmlDeviceGetNumaNodeId(nvmlDevice_t device, unsigned int *node)
{
	NVML_DEV(device, d);
	(void)d;
	if (!node)
		return NVML_ERROR_INVALID_ARGUMENT;
	*node = 0;
	return NVML_SUCCESS;
}

/* Interconnect queries PyTorch makes at start-up: the simulated GPU has no NVLink, no fabric
 * and no peer-to-peer path, as a PCIe card alone in its node. */
nvmlReturn_t nvmlDeviceGetNvLinkRemoteDeviceType(nvmlDevice_t device, unsigned int link,
						 nvmlIntNvLinkDeviceType_t *type)
{
	NVML_DEV(device, d);
	(void)d;
	(void)link;
	if (!type)
		return NVML_ERROR_INVALID_ARGUMENT;
	return NVML_ERROR_NOT_SUPPORTED;
}

nvmlReturn_t nvmlDeviceGetNvLinkRemotePciInfo_v2(nvmlDevice_t device, unsigned int link,
						 nvmlPciInfo_t *pci)
{
	NVML_DEV(device, d);
	(void)d;
	(void)link;
	if (!pci)
		return NVML_ERROR_INVALID_ARGUMENT;
	return NVML_ERROR_NOT_SUPPORTED;
}

nvmlReturn_t nvmlDeviceGetGpuFabricInfoV(nvmlDevice_t device, nvmlGpuFabricInfoV_t *info)
{
	NVML_DEV(device, d);
	(void)d;
	if (!info)
		return NVML_ERROR_INVALID_ARGUMENT;
	return NVML_ERROR_NOT_SUPPORTED;
}

nvmlReturn_t nvmlDeviceGetP2PStatus(nvmlDevice_t device1, nvmlDevice_t device2,
				    nvmlGpuP2PCapsIndex_t p2pIndex, nvmlGpuP2PStatus_t *p2pStatus)
{
	NVML_DEV(device1, a);
	NVML_DEV(device2, b);
	(void)a;
	(void)b;
	(void)p2pIndex;
	if (!p2pStatus)
		return NVML_ERROR_INVALID_ARGUMENT;
	*p2pStatus = NVML_P2P_STATUS_NOT_SUPPORTED;
	return NVML_SUCCESS;
}

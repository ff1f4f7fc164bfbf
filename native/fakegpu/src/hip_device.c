/*
 * fakegpu libamdhip64: device count, selection, properties and attributes.
 *
 * Name, memory, compute units (the state's "sms"), PCI ids, UUID and gfx arch come from the
 * state file; the rest are the figures of an MI200-class (CDNA2) device: wavefronts of 64,
 * 1024 threads per block, 2048 per CU, 64 KiB LDS, 8 MiB L2, 1.7 GHz, 4096-bit HBM2e.
 */
#include "hip_internal.h"

#include <stdio.h>
#include <string.h>

static const struct fg_device_config *cfg(int dev)
{
	return &fg_hip_state()->config[fg_hip_phys(dev)];
}

static hipError_t valid(int dev)
{
	hipError_t r = fg_hip_init();

	if (r)
		return r;
	return dev >= 0 && dev < fg_hip_count() ? hipSuccess : hipErrorInvalidDevice;
}

/* "gfx90a:sramecc+:xnack-" as the runtime reports CDNA devices; others without features. */
static void arch_name(int dev, char *out, size_t n)
{
	char gfx[32];

	fg_gfx_format(cfg(dev), gfx, sizeof(gfx));
	if (cfg(dev)->cc_major == 9)
		snprintf(out, n, "%s:sramecc+:xnack-", gfx);
	else
		snprintf(out, n, "%s", gfx);
}

hipError_t hipGetDeviceCount(int *n)
{
	hipError_t r;

	if (!n)
		return fg_hip_err(hipErrorInvalidValue);
	r = fg_hip_init();
	*n = r ? 0 : fg_hip_count();
	return fg_hip_err(r);
}

hipError_t hipSetDevice(int dev)
{
	return fg_hip_err(fg_hip_set_current(dev));
}

hipError_t hipGetDevice(int *dev)
{
	hipError_t r = fg_hip_init();

	if (r)
		return fg_hip_err(r);
	if (!dev)
		return fg_hip_err(hipErrorInvalidValue);
	*dev = fg_hip_current();
	return hipSuccess;
}

hipError_t hipDeviceGet(hipDevice_t *device, int ordinal)
{
	hipError_t r = valid(ordinal);

	if (r)
		return fg_hip_err(r);
	if (!device)
		return fg_hip_err(hipErrorInvalidValue);
	*device = ordinal;
	return hipSuccess;
}

hipError_t hipSetDeviceFlags(unsigned flags)
{
	hipError_t r = fg_hip_init();

	if (r)
		return fg_hip_err(r);
	return fg_hip_err(flags > 0x1f ? hipErrorInvalidValue : hipSuccess);
}

hipError_t hipGetDeviceFlags(unsigned int *flags)
{
	if (!flags)
		return fg_hip_err(hipErrorInvalidValue);
	*flags = 0;
	return hipSuccess;
}

hipError_t hipGetDeviceProperties(hipDeviceProp_t *p, int dev)
{
	const struct fg_device_config *c;
	hipError_t r = valid(dev);

	if (r)
		return fg_hip_err(r);
	if (!p)
		return fg_hip_err(hipErrorInvalidValue);
	c = cfg(dev);
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%.*s", (int)FG_NAME_LEN - 1, c->name);
	p->totalGlobalMem = (size_t)c->memory_bytes;
	p->sharedMemPerBlock = 65536;
	p->regsPerBlock = 65536;
	p->warpSize = 64;
	p->maxThreadsPerBlock = 1024;
	p->maxThreadsDim[0] = p->maxThreadsDim[1] = p->maxThreadsDim[2] = 1024;
	p->maxGridSize[0] = 2147483647;
	p->maxGridSize[1] = p->maxGridSize[2] = 65536;
	p->clockRate = 1700000;
	p->memoryClockRate = 1600000;
	p->memoryBusWidth = 4096;
	p->totalConstMem = 2147483647;
	p->major = (int)c->cc_major;
	p->minor = (int)c->cc_minor;
	p->multiProcessorCount = (int)c->sms;
	p->l2CacheSize = 8 << 20;
	p->maxThreadsPerMultiProcessor = 2048;
	p->computeMode = 0;
	p->clockInstructionRate = 1000000;
	p->arch.hasGlobalInt32Atomics = 1;
	p->arch.hasGlobalFloatAtomicExch = 1;
	p->arch.hasSharedInt32Atomics = 1;
	p->arch.hasSharedFloatAtomicExch = 1;
	p->arch.hasFloatAtomicAdd = 1;
	p->arch.hasGlobalInt64Atomics = 1;
	p->arch.hasSharedInt64Atomics = 1;
	p->arch.hasDoubles = 1;
	p->arch.hasWarpVote = 1;
	p->arch.hasWarpBallot = 1;
	p->arch.hasWarpShuffle = 1;
	p->arch.hasFunnelShift = 1;
	p->arch.hasThreadFenceSystem = 1;
	p->arch.hasSyncThreadsExt = 1;
	p->arch.has3dGrid = 1;
	p->concurrentKernels = 1;
	p->pciDomainID = (int)c->pci_domain;
	p->pciBusID = (int)c->pci_bus;
	p->pciDeviceID = (int)c->pci_device;
	p->maxSharedMemoryPerMultiProcessor = 65536;
	p->canMapHostMemory = 1;
	p->gcnArch = (int)(c->cc_major * 100 + c->cc_minor * 10 + c->gfx_step);
	arch_name(dev, p->gcnArchName, sizeof(p->gcnArchName));
	p->cooperativeLaunch = 1;
	p->cooperativeMultiDeviceLaunch = 1;
	p->maxTexture1DLinear = 1 << 27;
	p->maxTexture1D = 16384;
	p->maxTexture2D[0] = p->maxTexture2D[1] = 16384;
	p->maxTexture3D[0] = p->maxTexture3D[1] = p->maxTexture3D[2] = 8192;
	p->memPitch = 2147483647;
	p->textureAlignment = 256;
	p->texturePitchAlignment = 256;
	p->ECCEnabled = 1;
	p->isLargeBar = 1;
	p->managedMemory = 1;
	p->concurrentManagedAccess = 1;
	return hipSuccess;
}

hipError_t hipDeviceGetAttribute(int *v, hipDeviceAttribute_t attr, int dev)
{
	hipDeviceProp_t p;
	hipError_t r;

	if (!v)
		return fg_hip_err(hipErrorInvalidValue);
	r = hipGetDeviceProperties(&p, dev);
	if (r)
		return r;
	switch (attr) {
	case hipDeviceAttributeMaxThreadsPerBlock: *v = p.maxThreadsPerBlock; break;
	case hipDeviceAttributeMaxBlockDimX: *v = p.maxThreadsDim[0]; break;
	case hipDeviceAttributeMaxBlockDimY: *v = p.maxThreadsDim[1]; break;
	case hipDeviceAttributeMaxBlockDimZ: *v = p.maxThreadsDim[2]; break;
	case hipDeviceAttributeMaxGridDimX: *v = p.maxGridSize[0]; break;
	case hipDeviceAttributeMaxGridDimY: *v = p.maxGridSize[1]; break;
	case hipDeviceAttributeMaxGridDimZ: *v = p.maxGridSize[2]; break;
	case hipDeviceAttributeMaxSharedMemoryPerBlock: *v = (int)p.sharedMemPerBlock; break;
	case hipDeviceAttributeSharedMemPerBlockOptin: *v = (int)p.sharedMemPerBlock; break;
	case hipDeviceAttributeTotalConstantMemory: *v = (int)p.totalConstMem; break;
	case hipDeviceAttributeWarpSize: *v = p.warpSize; break;
	case hipDeviceAttributeMaxRegistersPerBlock: *v = p.regsPerBlock; break;
	case hipDeviceAttributeMaxRegistersPerMultiprocessor: *v = p.regsPerBlock; break;
	case hipDeviceAttributeClockRate: *v = p.clockRate; break;
	case hipDeviceAttributeMemoryClockRate: *v = p.memoryClockRate; break;
	case hipDeviceAttributeMemoryBusWidth: *v = p.memoryBusWidth; break;
	case hipDeviceAttributeMultiprocessorCount: *v = p.multiProcessorCount; break;
	case hipDeviceAttributePhysicalMultiProcessorCount: *v = p.multiProcessorCount; break;
	case hipDeviceAttributeComputeMode: *v = p.computeMode; break;
	case hipDeviceAttributeL2CacheSize: *v = p.l2CacheSize; break;
	case hipDeviceAttributeMaxThreadsPerMultiProcessor: *v = p.maxThreadsPerMultiProcessor; break;
	case hipDeviceAttributeComputeCapabilityMajor: *v = p.major; break;
	case hipDeviceAttributeComputeCapabilityMinor: *v = p.minor; break;
	case hipDeviceAttributeConcurrentKernels: *v = p.concurrentKernels; break;
	case hipDeviceAttributePciBusId: *v = p.pciBusID; break;
	case hipDeviceAttributePciDeviceId: *v = p.pciDeviceID; break;
	case hipDeviceAttributePciDomainID: *v = p.pciDomainID; break;
	case hipDeviceAttributeMaxSharedMemoryPerMultiprocessor:
	case hipDeviceAttributeSharedMemPerMultiprocessor:
		*v = (int)p.maxSharedMemoryPerMultiProcessor;
		break;
	case hipDeviceAttributeIsMultiGpuBoard: *v = 0; break;
	case hipDeviceAttributeIntegrated: *v = 0; break;
	case hipDeviceAttributeCooperativeLaunch: *v = 1; break;
	case hipDeviceAttributeCooperativeMultiDeviceLaunch: *v = 1; break;
	case hipDeviceAttributeCanMapHostMemory: *v = 1; break;
	case hipDeviceAttributeManagedMemory: *v = 1; break;
	case hipDeviceAttributeConcurrentManagedAccess: *v = 1; break;
	case hipDeviceAttributeDirectManagedMemAccessFromHost: *v = 0; break;
	case hipDeviceAttributePageableMemoryAccess: *v = 0; break;
	case hipDeviceAttributePageableMemoryAccessUsesHostPageTables: *v = 0; break;
	case hipDeviceAttributeEccEnabled: *v = 1; break;
	case hipDeviceAttributeKernelExecTimeout: *v = 0; break;
	case hipDeviceAttributeUnifiedAddressing: *v = 1; break;
	case hipDeviceAttributeIsLargeBar: *v = 1; break;
	case hipDeviceAttributeAsicRevision: *v = 0; break;
	case hipDeviceAttributeClockInstructionRate: *v = p.clockInstructionRate; break;
	case hipDeviceAttributeGcnArch: *v = p.gcnArch; break;
	case hipDeviceAttributeMaxPitch: *v = (int)p.memPitch; break;
	case hipDeviceAttributeTextureAlignment: *v = (int)p.textureAlignment; break;
	case hipDeviceAttributeTexturePitchAlignment: *v = (int)p.texturePitchAlignment; break;
	case hipDeviceAttributeMaxTexture1DWidth: *v = p.maxTexture1D; break;
	case hipDeviceAttributeMaxTexture1DLinear: *v = p.maxTexture1DLinear; break;
	case hipDeviceAttributeMaxTexture2DWidth: *v = p.maxTexture2D[0]; break;
	case hipDeviceAttributeMaxTexture2DHeight: *v = p.maxTexture2D[1]; break;
	case hipDeviceAttributeMaxTexture3DWidth: *v = p.maxTexture3D[0]; break;
	case hipDeviceAttributeMaxTexture3DHeight: *v = p.maxTexture3D[1]; break;
	case hipDeviceAttributeMaxTexture3DDepth: *v = p.maxTexture3D[2]; break;
	case hipDeviceAttributeStreamPrioritiesSupported: *v = 1; break;
	case hipDeviceAttributeMemoryPoolsSupported: *v = 1; break;
	case hipDeviceAttributeHostNativeAtomicSupported: *v = 1; break;
	case hipDeviceAttributeImageSupport: *v = 1; break;
	case hipDeviceAttributeFineGrainSupport: *v = 1; break;
	case hipDeviceAttributeCanUseStreamWaitValue: *v = 1; break;
	case hipDeviceAttributeMaxBlocksPerMultiProcessor: *v = 32; break;
	default:
		return fg_hip_err(hipErrorInvalidValue);
	}
	return hipSuccess;
}

hipError_t hipDeviceTotalMem(size_t *bytes, hipDevice_t dev)
{
	hipError_t r = valid(dev);

	if (r)
		return fg_hip_err(r);
	if (!bytes)
		return fg_hip_err(hipErrorInvalidValue);
	*bytes = (size_t)cfg(dev)->memory_bytes;
	return hipSuccess;
}

hipError_t hipDeviceGetName(char *name, int len, hipDevice_t dev)
{
	hipError_t r = valid(dev);

	if (r)
		return fg_hip_err(r);
	if (!name || len <= 0)
		return fg_hip_err(hipErrorInvalidValue);
	snprintf(name, (size_t)len, "%.*s", (int)FG_NAME_LEN - 1, cfg(dev)->name);
	return hipSuccess;
}

hipError_t hipDeviceComputeCapability(int *major, int *minor, hipDevice_t dev)
{
	hipError_t r = valid(dev);

	if (r)
		return fg_hip_err(r);
	if (!major || !minor)
		return fg_hip_err(hipErrorInvalidValue);
	*major = (int)cfg(dev)->cc_major;
	*minor = (int)cfg(dev)->cc_minor;
	return hipSuccess;
}

hipError_t hipDeviceGetUuid(hipUUID *uuid, hipDevice_t dev)
{
	hipError_t r = valid(dev);

	if (r)
		return fg_hip_err(r);
	if (!uuid)
		return fg_hip_err(hipErrorInvalidValue);
	/* As the real runtime: the characters of the HSA agent's UUID after "GPU-", i.e. the 16
	 * lowercase hex digits of ROCm SMI's unique id (rsmi_dev_unique_id_get: the UUID's last
	 * eight bytes, big-endian), not 16 binary bytes. */
	{
		char text[17];
		const unsigned char *b = cfg(dev)->uuid;

		snprintf(text, sizeof(text), "%02x%02x%02x%02x%02x%02x%02x%02x", b[8], b[9], b[10],
			 b[11], b[12], b[13], b[14], b[15]);
		memcpy(uuid->bytes, text, sizeof(uuid->bytes));
	}
	return hipSuccess;
}

hipError_t hipDeviceGetPCIBusId(char *bus, int len, int dev)
{
	const struct fg_device_config *c;
	hipError_t r = valid(dev);

	if (r)
		return fg_hip_err(r);
	if (!bus || len <= 0)
		return fg_hip_err(hipErrorInvalidValue);
	c = cfg(dev);
	snprintf(bus, (size_t)len, "%04x:%02x:%02x.0", c->pci_domain & 0xffff, c->pci_bus & 0xff,
		 c->pci_device & 0x1f);
	return hipSuccess;
}

hipError_t hipDeviceGetByPCIBusId(int *device, const char *bus)
{
	unsigned dom = 0, b, d, f;
	hipError_t r = fg_hip_init();

	if (r)
		return fg_hip_err(r);
	if (!device || !bus)
		return fg_hip_err(hipErrorInvalidValue);
	if (sscanf(bus, "%x:%x:%x.%x", &dom, &b, &d, &f) != 4 &&
	    (dom = 0, sscanf(bus, "%x:%x.%x", &b, &d, &f) != 3))
		return fg_hip_err(hipErrorInvalidValue);
	for (int i = 0; i < fg_hip_count(); i++) {
		const struct fg_device_config *c = cfg(i);

		if (c->pci_domain == dom && c->pci_bus == b && c->pci_device == d) {
			*device = i;
			return hipSuccess;
		}
	}
	return fg_hip_err(hipErrorInvalidDevice);
}

hipError_t hipDeviceCanAccessPeer(int *can, int dev, int peer)
{
	hipError_t r = valid(dev);

	if (!r)
		r = valid(peer);
	if (r)
		return fg_hip_err(r);
	if (!can)
		return fg_hip_err(hipErrorInvalidValue);
	*can = 0; /* peer access is not simulated */
	return hipSuccess;
}

hipError_t hipDeviceGetStreamPriorityRange(int *least, int *greatest)
{
	if (least)
		*least = 0;
	if (greatest)
		*greatest = -1;
	return hipSuccess;
}

hipError_t hipDeviceReset(void)
{
	int dev = fg_hip_current();
	hipError_t r = fg_hip_init();

	if (r)
		return fg_hip_err(r);
	fg_hip_wait(fg_hip_dev_last(dev));
	fg_hip_free_device(dev);
	fg_hip_device_release(dev);
	return hipSuccess;
}

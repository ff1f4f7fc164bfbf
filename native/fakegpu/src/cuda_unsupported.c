/*
 * fakegpu libcuda: driver entry points the simulation deliberately does not offer.
 *
 * cudart asks cuGetProcAddress for every entry point at start-up. For these, the fake hands
 * out a function that fails with CUDA_ERROR_NOT_SUPPORTED (and says so), so a program that
 * uses IPC, interop, textures, ... gets a clean error instead of a missing function.
 */
#include "cuda_internal.h"

#include <string.h>

static const char *const unsupported[] = {
	"cuIpcGetMemHandle", "cuIpcOpenMemHandle", "cuIpcCloseMemHandle", "cuIpcGetEventHandle",
	"cuIpcOpenEventHandle", "cuImportExternalMemory", "cuDestroyExternalMemory",
	"cuExternalMemoryGetMappedBuffer", "cuExternalMemoryGetMappedMipmappedArray",
	"cuImportExternalSemaphore", "cuDestroyExternalSemaphore",
	"cuSignalExternalSemaphoresAsync", "cuWaitExternalSemaphoresAsync",
	"cuTexObjectCreate", "cuTexObjectDestroy", "cuTexObjectGetResourceDesc",
	"cuTexObjectGetTextureDesc", "cuTexObjectGetResourceViewDesc", "cuSurfObjectCreate",
	"cuSurfObjectDestroy", "cuSurfObjectGetResourceDesc", "cuMipmappedArrayCreate",
	"cuMipmappedArrayDestroy", "cuMipmappedArrayGetLevel", "cuLinkCreate", "cuLinkAddData",
	"cuLinkAddFile", "cuLinkComplete", "cuLinkDestroy", "cuMemPoolExportToShareableHandle",
	"cuMemPoolImportFromShareableHandle", "cuMemPoolExportPointer", "cuMemPoolImportPointer",
	"cuStreamBatchMemOp", "cuStreamWaitValue32", "cuStreamWaitValue64",
	"cuGraphAddExternalSemaphoresSignalNode", "cuGraphAddExternalSemaphoresWaitNode",
	"cuGraphAddMemFreeNode", "cuGraphConditionalHandleCreate", "cuUserObjectCreate",
	"cuUserObjectRetain", "cuUserObjectRelease", "cuGraphRetainUserObject",
	"cuGraphReleaseUserObject", "cuOccupancyMaxActiveClusters",
	"cuOccupancyMaxPotentialClusterSize", "cuFuncGetParamInfo", "cuKernelGetParamInfo",
	"cuMemcpyBatchAsync", "cuMemcpy3DBatchAsync", "cuMemPrefetchBatchAsync",
	"cuMemDiscardBatchAsync", "cuMemDiscardAndPrefetchBatchAsync",
	"cuDeviceRegisterAsyncNotification", "cuDeviceUnregisterAsyncNotification",
	"cuGraphicsMapResources", "cuGraphicsUnmapResources", "cuGraphicsUnregisterResource",
	"cuGraphicsResourceGetMappedPointer", "cuGraphicsSubResourceGetMappedArray",
	"cuGraphicsResourceSetMapFlags", "cuGraphicsResourceGetMappedMipmappedArray",
	"cuDeviceGetHostAtomicCapabilities", "cuDeviceGetP2PAtomicCapabilities",
	"cuDeviceGetNvSciSyncAttributes", "cuGraphExecChildGraphNodeSetParams",
	"cuGraphNodeSetParams", "cuGraphExecNodeSetParams", "cuMipmappedArrayGetMemoryRequirements",
	"cuMipmappedArrayGetSparseProperties", "cuArrayGetMemoryRequirements",
	"cuArrayGetSparseProperties", "cuArrayGetPlane", "cuModuleGetTexRef", "cuModuleGetSurfRef",
	"cuLogsRegisterCallback", "cuLogsUnregisterCallback", "cuLogsCurrent", "cuLogsDumpToFile",
	"cuLogsDumpToMemory", "cuGraphMemAllocNodeGetParams", "cuGraphMemFreeNodeGetParams",
	/* asked for by PyTorch 2.14 (cu130) and CuPy 14 at start-up */
	"cuMemImportFromShareableHandle", "cuMemExportToShareableHandle",
	"cuMemGetHandleForAddressRange", "cuCtxFromGreenCtx", "cuDeviceGetDevResource",
	"cuCtxGetDevResource", "cuStreamGetDevResource", "cuCtxDetach",
};

/* graphics and EGL/VDPAU interop: there is no display side at all; multicast objects,
 * green contexts and device resources (SM partitions), external semaphores in graphs */
static const char *const unsupported_prefixes[] = {
	"cuGL", "cuEGL", "cuVDPAU", "cuGraphicsGL", "cuGraphicsEGL", "cuGraphicsVDPAU",
	"cuGraphicsResourceGetMappedEgl", "cuMulticast", "cuGreenCtx", "cuDevSmResource",
	"cuDevResource", "cuGraphExternalSemaphores", "cuGraphExecExternalSemaphores",
};

static CUresult not_supported(void)
{
	fg_msg("a CUDA feature the simulated GPU does not offer was called (see FAKEGPU_TRACE=1)");
	return CUDA_ERROR_NOT_SUPPORTED;
}

static CUresult profiler_noop(void)
{
	return CUDA_SUCCESS;
}

void *fg_unsupported_lookup(const char *name)
{
	if (!strncmp(name, "cuProfiler", 10))
		return (void *)profiler_noop;
	for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
		if (!strcmp(unsupported[i], name))
			return (void *)not_supported;
	for (size_t i = 0; i < sizeof(unsupported_prefixes) / sizeof(unsupported_prefixes[0]); i++)
		if (!strncmp(unsupported_prefixes[i], name, strlen(unsupported_prefixes[i])))
			return (void *)not_supported;
	return NULL;
}

/*
 * fakegpu libcuda: cuGetProcAddress. cudart finds every driver entry point here (it dlsyms
 * only cuGetProcAddress_v2): a request names the base symbol, the CUDA version the caller
 * was built for, and whether it wants the per-thread default stream variant. The answer is
 * the newest ABI version not newer than the caller's (the _v2, _v3 ... suffixes).
 */
#include "cuda_internal.h"
#include "cuda_ptsz.h"

#include <string.h>

/* declared here because cuda.h maps these names to newer versions or omits them */
CUresult cuEventElapsedTime_v2(float *ms, CUevent a, CUevent b);
CUresult cuCtxGetDevice_v2(CUdevice *device, CUcontext ctx);
CUresult cuCtxSynchronize_v2(CUcontext ctx);
CUresult cuGraphInstantiate_v2(CUgraphExec *phExec, CUgraph g, CUgraphNode *phErrorNode,
			       char *logBuffer, size_t bufferSize);
CUresult cuStreamGetCaptureInfo_v2(CUstream s, CUstreamCaptureStatus *st, cuuint64_t *id,
				   CUgraph *g, const CUgraphNode **deps, size_t *n);
CUresult cuStreamGetCaptureInfo_v3(CUstream s, CUstreamCaptureStatus *st, cuuint64_t *id,
				   CUgraph *g, const CUgraphNode **deps,
				   const CUgraphEdgeData **data, size_t *n);
CUresult cuStreamUpdateCaptureDependencies_v2(CUstream s, CUgraphNode *d,
					      const CUgraphEdgeData *data, size_t n, unsigned f);
CUresult cuGraphAddDependencies_v2(CUgraph g, const CUgraphNode *from, const CUgraphNode *to,
				   const CUgraphEdgeData *data, size_t n);
CUresult cuGraphAddNode_v2(CUgraphNode *ph, CUgraph g, const CUgraphNode *deps,
			   const CUgraphEdgeData *data, size_t n, CUgraphNodeParams *p);
CUresult cuGraphInstantiateWithParams_ptsz(CUgraphExec *phExec, CUgraph g,
					   CUDA_GRAPH_INSTANTIATE_PARAMS *p);
CUresult fg_stream_begin_capture_v1(CUstream hStream);
CUresult cuMemGetDefaultMemPool(CUmemoryPool *pool_out, CUmemLocation *location,
				CUmemAllocationType type);
CUresult cuMemGetMemPool(CUmemoryPool *pool, CUmemLocation *location, CUmemAllocationType type);
CUresult cuMemSetMemPool(CUmemLocation *location, CUmemAllocationType type, CUmemoryPool pool);
CUresult cuMemcpy3DPeer(const CUDA_MEMCPY3D_PEER *p);
CUresult cuMemcpy3DPeerAsync(const CUDA_MEMCPY3D_PEER *p, CUstream s);
CUresult cuMemcpy3DPeer_ptds(const CUDA_MEMCPY3D_PEER *p);
CUresult cuMemcpy3DPeerAsync_ptsz(const CUDA_MEMCPY3D_PEER *p, CUstream s);
CUresult cuMemPrefetchAsync_ptsz(CUdeviceptr p, size_t n, CUdevice d, CUstream s);
CUresult cuStreamWriteValue32_ptsz(CUstream s, CUdeviceptr a, cuuint32_t v, unsigned int f);
CUresult cuStreamWriteValue64_ptsz(CUstream s, CUdeviceptr a, cuuint64_t v, unsigned int f);
CUresult cuGraphGetEdges_v2(CUgraph hGraph, CUgraphNode *from, CUgraphNode *to,
			    CUgraphEdgeData *edgeData, size_t *numEdges);
CUresult cuGraphNodeGetDependencies_v2(CUgraphNode hNode, CUgraphNode *deps,
				       CUgraphEdgeData *edgeData, size_t *n);
CUresult cuGraphNodeGetDependentNodes_v2(CUgraphNode hNode, CUgraphNode *nodes,
					 CUgraphEdgeData *edgeData, size_t *n);
CUresult cuGraphRemoveDependencies_v2(CUgraph hGraph, const CUgraphNode *from,
				      const CUgraphNode *to, const CUgraphEdgeData *edgeData,
				      size_t n);
#undef cuGraphGetEdges
#undef cuGraphNodeGetDependencies
#undef cuGraphNodeGetDependentNodes
#undef cuGraphRemoveDependencies
CUresult cuGraphGetEdges(CUgraph hGraph, CUgraphNode *from, CUgraphNode *to, size_t *numEdges);
CUresult cuGraphNodeGetDependencies(CUgraphNode hNode, CUgraphNode *deps, size_t *n);
CUresult cuGraphNodeGetDependentNodes(CUgraphNode hNode, CUgraphNode *nodes, size_t *n);
CUresult cuGraphRemoveDependencies(CUgraph hGraph, const CUgraphNode *from,
				   const CUgraphNode *to, size_t n);

struct entry {
	const char *name;
	int version;  /* first CUDA version with this ABI */
	void *fn;
	void *fn_pt;  /* per-thread default stream variant, if any */
};

#define E(n, v, f) { #n, v, (void *)(f), NULL }
#define P(n, v, f) { #n, v, (void *)(f), (void *)(f##_ptsz) }
#define D(n, v, f) { #n, v, (void *)(f), (void *)(f##_ptds) }

static const struct entry table[] = {
	E(cuInit, 2000, cuInit),
	E(cuDriverGetVersion, 2020, cuDriverGetVersion),
	E(cuGetProcAddress, 11030, cuGetProcAddress),
	E(cuGetProcAddress, 12000, cuGetProcAddress_v2),
	E(cuGetExportTable, 3000, cuGetExportTable),
	E(cuGetErrorString, 6000, cuGetErrorString),
	E(cuGetErrorName, 6000, cuGetErrorName),
	/* devices */
	E(cuDeviceGet, 2000, cuDeviceGet),
	E(cuDeviceGetCount, 2000, cuDeviceGetCount),
	E(cuDeviceGetName, 2000, cuDeviceGetName),
	E(cuDeviceTotalMem, 3020, cuDeviceTotalMem_v2),
	E(cuDeviceGetAttribute, 2000, cuDeviceGetAttribute),
	E(cuDeviceGetProperties, 2000, cuDeviceGetProperties),
	E(cuDeviceGetUuid, 9020, cuDeviceGetUuid),
	E(cuDeviceGetUuid, 11040, cuDeviceGetUuid_v2),
	E(cuDeviceGetLuid, 10000, cuDeviceGetLuid),
	E(cuDeviceComputeCapability, 2000, cuDeviceComputeCapability),
	E(cuDeviceGetPCIBusId, 4010, cuDeviceGetPCIBusId),
	E(cuDeviceGetByPCIBusId, 4010, cuDeviceGetByPCIBusId),
	E(cuDeviceCanAccessPeer, 4000, cuDeviceCanAccessPeer),
	E(cuDeviceGetP2PAttribute, 8000, cuDeviceGetP2PAttribute),
	E(cuDeviceGetTexture1DLinearMaxWidth, 11010, cuDeviceGetTexture1DLinearMaxWidth),
	E(cuDeviceGetExecAffinitySupport, 11040, cuDeviceGetExecAffinitySupport),
	E(cuDeviceGetDefaultMemPool, 11020, cuDeviceGetDefaultMemPool),
	E(cuDeviceGetMemPool, 11020, cuDeviceGetMemPool),
	E(cuDeviceSetMemPool, 11020, cuDeviceSetMemPool),
	E(cuFlushGPUDirectRDMAWrites, 11030, cuFlushGPUDirectRDMAWrites),
	/* primary and regular contexts */
	E(cuDevicePrimaryCtxRetain, 7000, cuDevicePrimaryCtxRetain),
	E(cuDevicePrimaryCtxRelease, 7000, cuDevicePrimaryCtxRelease_v2),
	E(cuDevicePrimaryCtxGetState, 7000, cuDevicePrimaryCtxGetState),
	E(cuDevicePrimaryCtxSetFlags, 7000, cuDevicePrimaryCtxSetFlags_v2),
	E(cuDevicePrimaryCtxReset, 7000, cuDevicePrimaryCtxReset_v2),
	E(cuCtxCreate, 3020, cuCtxCreate_v2),
	E(cuCtxCreate, 11040, cuCtxCreate_v3),
	E(cuCtxCreate, 12050, cuCtxCreate_v4),
	E(cuCtxDestroy, 4000, cuCtxDestroy_v2),
	E(cuCtxGetCurrent, 4000, cuCtxGetCurrent),
	E(cuCtxSetCurrent, 4000, cuCtxSetCurrent),
	E(cuCtxPushCurrent, 4000, cuCtxPushCurrent_v2),
	E(cuCtxPopCurrent, 4000, cuCtxPopCurrent_v2),
	E(cuCtxGetDevice, 2000, cuCtxGetDevice),
	E(cuCtxGetDevice, 13000, cuCtxGetDevice_v2),
	E(cuCtxGetFlags, 7000, cuCtxGetFlags),
	E(cuCtxSetFlags, 12010, cuCtxSetFlags),
	E(cuCtxGetId, 12000, cuCtxGetId),
	E(cuCtxGetApiVersion, 3020, cuCtxGetApiVersion),
	E(cuCtxGetLimit, 3010, cuCtxGetLimit),
	E(cuCtxSetLimit, 3010, cuCtxSetLimit),
	E(cuCtxGetCacheConfig, 3020, cuCtxGetCacheConfig),
	E(cuCtxSetCacheConfig, 3020, cuCtxSetCacheConfig),
	E(cuCtxGetSharedMemConfig, 4020, cuCtxGetSharedMemConfig),
	E(cuCtxSetSharedMemConfig, 4020, cuCtxSetSharedMemConfig),
	E(cuCtxGetStreamPriorityRange, 5050, cuCtxGetStreamPriorityRange),
	E(cuCtxResetPersistingL2Cache, 11000, cuCtxResetPersistingL2Cache),
	E(cuCtxGetExecAffinity, 11040, cuCtxGetExecAffinity),
	E(cuCtxSynchronize, 2000, cuCtxSynchronize),
	E(cuCtxSynchronize, 13000, cuCtxSynchronize_v2),
	E(cuCtxEnablePeerAccess, 4000, cuCtxEnablePeerAccess),
	E(cuCtxDisablePeerAccess, 4000, cuCtxDisablePeerAccess),
	/* memory */
	E(cuMemAlloc, 3020, cuMemAlloc_v2),
	E(cuMemFree, 3020, cuMemFree_v2),
	E(cuMemGetInfo, 3020, cuMemGetInfo_v2),
	E(cuMemAllocManaged, 6000, cuMemAllocManaged),
	E(cuMemAllocPitch, 3020, cuMemAllocPitch_v2),
	E(cuMemGetAddressRange, 3020, cuMemGetAddressRange_v2),
	E(cuMemAllocHost, 3020, cuMemAllocHost_v2),
	E(cuMemHostAlloc, 2020, cuMemHostAlloc),
	E(cuMemFreeHost, 2000, cuMemFreeHost),
	E(cuMemHostGetDevicePointer, 3020, cuMemHostGetDevicePointer_v2),
	E(cuMemHostGetFlags, 2030, cuMemHostGetFlags),
	E(cuMemHostRegister, 6050, cuMemHostRegister_v2),
	E(cuMemHostUnregister, 4000, cuMemHostUnregister),
	E(cuPointerGetAttribute, 4000, cuPointerGetAttribute),
	E(cuPointerGetAttributes, 7000, cuPointerGetAttributes),
	E(cuPointerSetAttribute, 6000, cuPointerSetAttribute),
	P(cuMemAllocAsync, 11020, cuMemAllocAsync),
	P(cuMemAllocFromPoolAsync, 11020, cuMemAllocFromPoolAsync),
	P(cuMemFreeAsync, 11020, cuMemFreeAsync),
	E(cuMemPoolCreate, 11020, cuMemPoolCreate),
	E(cuMemPoolDestroy, 11020, cuMemPoolDestroy),
	E(cuMemPoolTrimTo, 11020, cuMemPoolTrimTo),
	E(cuMemPoolSetAttribute, 11020, cuMemPoolSetAttribute),
	E(cuMemPoolGetAttribute, 11020, cuMemPoolGetAttribute),
	E(cuMemPoolSetAccess, 11020, cuMemPoolSetAccess),
	E(cuMemPoolGetAccess, 11020, cuMemPoolGetAccess),
	P(cuMemPrefetchAsync, 8000, cuMemPrefetchAsync),
	P(cuMemPrefetchAsync, 12020, cuMemPrefetchAsync_v2),
	E(cuMemAdvise, 8000, cuMemAdvise),
	E(cuMemAdvise, 12020, cuMemAdvise_v2),
	E(cuMemGetDefaultMemPool, 13000, cuMemGetDefaultMemPool),
	E(cuMemGetMemPool, 13000, cuMemGetMemPool),
	E(cuMemSetMemPool, 13000, cuMemSetMemPool),
	E(cuMemRangeGetAttribute, 8000, cuMemRangeGetAttribute),
	E(cuMemRangeGetAttributes, 8000, cuMemRangeGetAttributes),
	E(cuMemGetAllocationGranularity, 10020, cuMemGetAllocationGranularity),
	E(cuMemCreate, 10020, cuMemCreate),
	E(cuMemRelease, 10020, cuMemRelease),
	E(cuMemAddressReserve, 10020, cuMemAddressReserve),
	E(cuMemAddressFree, 10020, cuMemAddressFree),
	E(cuMemMap, 10020, cuMemMap),
	E(cuMemUnmap, 10020, cuMemUnmap),
	E(cuMemSetAccess, 10020, cuMemSetAccess),
	E(cuMemGetAccess, 10020, cuMemGetAccess),
	E(cuMemRetainAllocationHandle, 11000, cuMemRetainAllocationHandle),
	E(cuMemGetAllocationPropertiesFromHandle, 10020, cuMemGetAllocationPropertiesFromHandle),
	E(cuMemExportToShareableHandle, 10020, cuMemExportToShareableHandle),
	E(cuArrayCreate, 3020, cuArrayCreate_v2),
	E(cuArray3DCreate, 3020, cuArray3DCreate_v2),
	E(cuArrayDestroy, 2000, cuArrayDestroy),
	E(cuArrayGetDescriptor, 3020, cuArrayGetDescriptor_v2),
	E(cuArray3DGetDescriptor, 3020, cuArray3DGetDescriptor_v2),
	/* copies and memsets */
	D(cuMemcpy, 4000, cuMemcpy),
	P(cuMemcpyAsync, 4000, cuMemcpyAsync),
	D(cuMemcpyPeer, 4000, cuMemcpyPeer),
	P(cuMemcpyPeerAsync, 4000, cuMemcpyPeerAsync),
	D(cuMemcpyHtoD, 3020, cuMemcpyHtoD_v2),
	D(cuMemcpyDtoH, 3020, cuMemcpyDtoH_v2),
	D(cuMemcpyDtoD, 3020, cuMemcpyDtoD_v2),
	D(cuMemcpyHtoA, 3020, cuMemcpyHtoA_v2),
	D(cuMemcpyAtoH, 3020, cuMemcpyAtoH_v2),
	D(cuMemcpyDtoA, 3020, cuMemcpyDtoA_v2),
	D(cuMemcpyAtoD, 3020, cuMemcpyAtoD_v2),
	D(cuMemcpyAtoA, 3020, cuMemcpyAtoA_v2),
	P(cuMemcpyHtoDAsync, 3020, cuMemcpyHtoDAsync_v2),
	P(cuMemcpyDtoHAsync, 3020, cuMemcpyDtoHAsync_v2),
	P(cuMemcpyDtoDAsync, 3020, cuMemcpyDtoDAsync_v2),
	P(cuMemcpyHtoAAsync, 3020, cuMemcpyHtoAAsync_v2),
	P(cuMemcpyAtoHAsync, 3020, cuMemcpyAtoHAsync_v2),
	D(cuMemcpy2D, 3020, cuMemcpy2D_v2),
	D(cuMemcpy2DUnaligned, 3020, cuMemcpy2DUnaligned_v2),
	P(cuMemcpy2DAsync, 3020, cuMemcpy2DAsync_v2),
	D(cuMemcpy3D, 3020, cuMemcpy3D_v2),
	P(cuMemcpy3DAsync, 3020, cuMemcpy3DAsync_v2),
	D(cuMemcpy3DPeer, 4000, cuMemcpy3DPeer),
	P(cuMemcpy3DPeerAsync, 4000, cuMemcpy3DPeerAsync),
	D(cuMemsetD8, 3020, cuMemsetD8_v2),
	D(cuMemsetD16, 3020, cuMemsetD16_v2),
	D(cuMemsetD32, 3020, cuMemsetD32_v2),
	D(cuMemsetD2D8, 3020, cuMemsetD2D8_v2),
	D(cuMemsetD2D16, 3020, cuMemsetD2D16_v2),
	D(cuMemsetD2D32, 3020, cuMemsetD2D32_v2),
	P(cuMemsetD8Async, 3020, cuMemsetD8Async),
	P(cuMemsetD16Async, 3020, cuMemsetD16Async),
	P(cuMemsetD32Async, 3020, cuMemsetD32Async),
	P(cuMemsetD2D8Async, 3020, cuMemsetD2D8Async),
	P(cuMemsetD2D16Async, 3020, cuMemsetD2D16Async),
	P(cuMemsetD2D32Async, 3020, cuMemsetD2D32Async),
	/* modules, libraries, functions */
	E(cuModuleLoad, 2000, cuModuleLoad),
	E(cuModuleLoadData, 2000, cuModuleLoadData),
	E(cuModuleLoadDataEx, 2010, cuModuleLoadDataEx),
	E(cuModuleLoadFatBinary, 2000, cuModuleLoadFatBinary),
	E(cuModuleUnload, 2000, cuModuleUnload),
	E(cuModuleGetFunction, 2000, cuModuleGetFunction),
	E(cuModuleGetGlobal, 3020, cuModuleGetGlobal_v2),
	E(cuModuleGetLoadingMode, 11070, cuModuleGetLoadingMode),
	E(cuModuleGetFunctionCount, 12040, cuModuleGetFunctionCount),
	E(cuLibraryLoadData, 12000, cuLibraryLoadData),
	E(cuLibraryLoadFromFile, 12000, cuLibraryLoadFromFile),
	E(cuLibraryUnload, 12000, cuLibraryUnload),
	E(cuLibraryGetModule, 12000, cuLibraryGetModule),
	E(cuLibraryGetKernel, 12000, cuLibraryGetKernel),
	E(cuLibraryGetKernelCount, 12040, cuLibraryGetKernelCount),
	E(cuLibraryEnumerateKernels, 12040, cuLibraryEnumerateKernels),
	E(cuModuleEnumerateFunctions, 12040, cuModuleEnumerateFunctions),
	E(cuLibraryGetGlobal, 12000, cuLibraryGetGlobal),
	E(cuLibraryGetManaged, 12000, cuLibraryGetManaged),
	E(cuLibraryGetUnifiedFunction, 12000, cuLibraryGetUnifiedFunction),
	E(cuKernelGetFunction, 12000, cuKernelGetFunction),
	E(cuKernelGetLibrary, 12050, cuKernelGetLibrary),
	E(cuKernelGetAttribute, 12000, cuKernelGetAttribute),
	E(cuKernelSetAttribute, 12000, cuKernelSetAttribute),
	E(cuKernelSetCacheConfig, 12000, cuKernelSetCacheConfig),
	E(cuKernelGetName, 12030, cuKernelGetName),
	E(cuFuncGetName, 12030, cuFuncGetName),
	E(cuFuncGetAttribute, 2020, cuFuncGetAttribute),
	E(cuFuncSetAttribute, 9000, cuFuncSetAttribute),
	E(cuFuncSetCacheConfig, 3000, cuFuncSetCacheConfig),
	E(cuFuncSetSharedMemConfig, 4020, cuFuncSetSharedMemConfig),
	E(cuFuncGetModule, 11000, cuFuncGetModule),
	E(cuFuncIsLoaded, 12040, cuFuncIsLoaded),
	E(cuFuncLoad, 12040, cuFuncLoad),
	E(cuOccupancyMaxActiveBlocksPerMultiprocessor, 6050,
	  cuOccupancyMaxActiveBlocksPerMultiprocessor),
	E(cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags, 7000,
	  cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags),
	E(cuOccupancyMaxPotentialBlockSize, 6050, cuOccupancyMaxPotentialBlockSize),
	E(cuOccupancyMaxPotentialBlockSizeWithFlags, 7000, cuOccupancyMaxPotentialBlockSizeWithFlags),
	E(cuOccupancyAvailableDynamicSMemPerBlock, 10020, cuOccupancyAvailableDynamicSMemPerBlock),
	/* streams and events */
	E(cuStreamCreate, 2000, cuStreamCreate),
	E(cuStreamCreateWithPriority, 5050, cuStreamCreateWithPriority),
	E(cuStreamDestroy, 4000, cuStreamDestroy_v2),
	P(cuStreamGetPriority, 5050, cuStreamGetPriority),
	P(cuStreamGetFlags, 5050, cuStreamGetFlags),
	P(cuStreamGetId, 12000, cuStreamGetId),
	P(cuStreamGetCtx, 9020, cuStreamGetCtx),
	P(cuStreamGetCtx, 12050, cuStreamGetCtx_v2),
	P(cuStreamGetDevice, 12080, cuStreamGetDevice),
	P(cuStreamSynchronize, 2000, cuStreamSynchronize),
	P(cuStreamQuery, 2000, cuStreamQuery),
	P(cuStreamWaitEvent, 3020, cuStreamWaitEvent),
	P(cuStreamAddCallback, 5000, cuStreamAddCallback),
	P(cuLaunchHostFunc, 10000, cuLaunchHostFunc),
	P(cuStreamAttachMemAsync, 6000, cuStreamAttachMemAsync),
	P(cuStreamGetAttribute, 11000, cuStreamGetAttribute),
	P(cuStreamSetAttribute, 11000, cuStreamSetAttribute),
	P(cuStreamCopyAttributes, 11000, cuStreamCopyAttributes),
	P(cuStreamWriteValue32, 8000, cuStreamWriteValue32),
	P(cuStreamWriteValue32, 11070, cuStreamWriteValue32_v2),
	P(cuStreamWriteValue64, 9000, cuStreamWriteValue64),
	P(cuStreamWriteValue64, 11070, cuStreamWriteValue64_v2),
	E(cuStreamBeginCapture, 10000, fg_stream_begin_capture_v1),
	P(cuStreamBeginCapture, 10010, cuStreamBeginCapture_v2),
	P(cuStreamBeginCaptureToGraph, 12030, cuStreamBeginCaptureToGraph),
	P(cuStreamEndCapture, 10000, cuStreamEndCapture),
	P(cuStreamIsCapturing, 10000, cuStreamIsCapturing),
	P(cuStreamGetCaptureInfo, 10010, cuStreamGetCaptureInfo),
	P(cuStreamGetCaptureInfo, 11030, cuStreamGetCaptureInfo_v2),
	P(cuStreamGetCaptureInfo, 12030, cuStreamGetCaptureInfo_v3),
	P(cuStreamUpdateCaptureDependencies, 11030, cuStreamUpdateCaptureDependencies),
	P(cuStreamUpdateCaptureDependencies, 12030, cuStreamUpdateCaptureDependencies_v2),
	E(cuThreadExchangeStreamCaptureMode, 10010, cuThreadExchangeStreamCaptureMode),
	E(cuEventCreate, 2000, cuEventCreate),
	E(cuEventDestroy, 4000, cuEventDestroy_v2),
	P(cuEventRecord, 2000, cuEventRecord),
	P(cuEventRecordWithFlags, 11010, cuEventRecordWithFlags),
	E(cuEventQuery, 2000, cuEventQuery),
	E(cuEventSynchronize, 2000, cuEventSynchronize),
	E(cuEventElapsedTime, 2000, cuEventElapsedTime),
	E(cuEventElapsedTime, 12080, cuEventElapsedTime_v2),
	/* launches */
	P(cuLaunchKernel, 4000, cuLaunchKernel),
	P(cuLaunchKernelEx, 11060, cuLaunchKernelEx),
	P(cuLaunchCooperativeKernel, 9000, cuLaunchCooperativeKernel),
	/* graphs */
	E(cuGraphCreate, 10000, cuGraphCreate),
	E(cuGraphDestroy, 10000, cuGraphDestroy),
	E(cuGraphClone, 10000, cuGraphClone),
	E(cuGraphAddKernelNode, 10000, cuGraphAddKernelNode),
	E(cuGraphAddKernelNode, 12000, cuGraphAddKernelNode_v2),
	E(cuGraphKernelNodeGetParams, 12000, cuGraphKernelNodeGetParams_v2),
	E(cuGraphKernelNodeSetParams, 12000, cuGraphKernelNodeSetParams_v2),
	E(cuGraphAddMemcpyNode, 10000, cuGraphAddMemcpyNode),
	E(cuGraphAddMemsetNode, 10000, cuGraphAddMemsetNode),
	E(cuGraphAddHostNode, 10000, cuGraphAddHostNode),
	E(cuGraphAddEmptyNode, 10000, cuGraphAddEmptyNode),
	E(cuGraphAddChildGraphNode, 10000, cuGraphAddChildGraphNode),
	E(cuGraphAddEventRecordNode, 11010, cuGraphAddEventRecordNode),
	E(cuGraphAddEventWaitNode, 11010, cuGraphAddEventWaitNode),
	E(cuGraphAddMemAllocNode, 11040, cuGraphAddMemAllocNode),
	E(cuGraphAddNode, 12020, cuGraphAddNode),
	E(cuGraphAddNode, 12030, cuGraphAddNode_v2),
	E(cuGraphAddDependencies, 10000, cuGraphAddDependencies),
	E(cuGraphAddDependencies, 12030, cuGraphAddDependencies_v2),
	E(cuGraphGetNodes, 10000, cuGraphGetNodes),
	E(cuGraphGetEdges, 10000, cuGraphGetEdges),
	E(cuGraphGetEdges, 12030, cuGraphGetEdges_v2),
	E(cuGraphNodeGetDependencies, 10000, cuGraphNodeGetDependencies),
	E(cuGraphNodeGetDependencies, 12030, cuGraphNodeGetDependencies_v2),
	E(cuGraphNodeGetDependentNodes, 10000, cuGraphNodeGetDependentNodes),
	E(cuGraphNodeGetDependentNodes, 12030, cuGraphNodeGetDependentNodes_v2),
	E(cuGraphRemoveDependencies, 10000, cuGraphRemoveDependencies),
	E(cuGraphRemoveDependencies, 12030, cuGraphRemoveDependencies_v2),
	E(cuGraphMemcpyNodeGetParams, 10000, cuGraphMemcpyNodeGetParams),
	E(cuGraphMemcpyNodeSetParams, 10000, cuGraphMemcpyNodeSetParams),
	E(cuGraphMemsetNodeGetParams, 10000, cuGraphMemsetNodeGetParams),
	E(cuGraphMemsetNodeSetParams, 10000, cuGraphMemsetNodeSetParams),
	E(cuGraphHostNodeGetParams, 10000, cuGraphHostNodeGetParams),
	E(cuGraphHostNodeSetParams, 10000, cuGraphHostNodeSetParams),
	E(cuGraphChildGraphNodeGetGraph, 10000, cuGraphChildGraphNodeGetGraph),
	E(cuGraphEventRecordNodeGetEvent, 11010, cuGraphEventRecordNodeGetEvent),
	E(cuGraphEventRecordNodeSetEvent, 11010, cuGraphEventRecordNodeSetEvent),
	E(cuGraphEventWaitNodeGetEvent, 11010, cuGraphEventWaitNodeGetEvent),
	E(cuGraphEventWaitNodeSetEvent, 11010, cuGraphEventWaitNodeSetEvent),
	E(cuGraphNodeFindInClone, 10000, cuGraphNodeFindInClone),
	E(cuGraphNodeSetEnabled, 11060, cuGraphNodeSetEnabled),
	E(cuGraphNodeGetEnabled, 11060, cuGraphNodeGetEnabled),
	E(cuGraphExecMemcpyNodeSetParams, 10020, cuGraphExecMemcpyNodeSetParams),
	E(cuGraphExecMemsetNodeSetParams, 10020, cuGraphExecMemsetNodeSetParams),
	E(cuGraphExecHostNodeSetParams, 10020, cuGraphExecHostNodeSetParams),
	E(cuGraphExecEventRecordNodeSetEvent, 11010, cuGraphExecEventRecordNodeSetEvent),
	E(cuGraphExecEventWaitNodeSetEvent, 11010, cuGraphExecEventWaitNodeSetEvent),
	E(cuGraphKernelNodeGetAttribute, 11000, cuGraphKernelNodeGetAttribute),
	E(cuGraphKernelNodeSetAttribute, 11000, cuGraphKernelNodeSetAttribute),
	E(cuGraphKernelNodeCopyAttributes, 11000, cuGraphKernelNodeCopyAttributes),
	E(cuGraphDebugDotPrint, 11030, cuGraphDebugDotPrint),
	E(cuDeviceGetGraphMemAttribute, 11040, cuDeviceGetGraphMemAttribute),
	E(cuDeviceSetGraphMemAttribute, 11040, cuDeviceSetGraphMemAttribute),
	E(cuDeviceGraphMemTrim, 11040, cuDeviceGraphMemTrim),
	E(cuGraphGetRootNodes, 10000, cuGraphGetRootNodes),
	E(cuGraphNodeGetType, 10000, cuGraphNodeGetType),
	E(cuGraphDestroyNode, 10000, cuGraphDestroyNode),
	E(cuGraphInstantiate, 10000, cuGraphInstantiate_v2),
	E(cuGraphInstantiate, 11000, cuGraphInstantiate_v2),
	E(cuGraphInstantiate, 12000, cuGraphInstantiateWithFlags),
	E(cuGraphInstantiateWithFlags, 11040, cuGraphInstantiateWithFlags),
	P(cuGraphInstantiateWithParams, 12000, cuGraphInstantiateWithParams),
	E(cuGraphExecDestroy, 10000, cuGraphExecDestroy),
	E(cuGraphExecGetFlags, 12000, cuGraphExecGetFlags),
	E(cuGraphExecKernelNodeSetParams, 12000, cuGraphExecKernelNodeSetParams_v2),
	E(cuGraphExecUpdate, 12000, cuGraphExecUpdate_v2),
	P(cuGraphLaunch, 10000, cuGraphLaunch),
	P(cuGraphUpload, 11010, cuGraphUpload),
};

#undef E
#undef P
#undef D

CUresult cuGraphInstantiateWithParams_ptsz(CUgraphExec *phExec, CUgraph g,
					   CUDA_GRAPH_INSTANTIATE_PARAMS *p)
{
	return cuGraphInstantiateWithParams(phExec, g, p);
}

static const struct entry unsupported_entry = { "", 0, NULL, NULL };

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
			     CUdriverProcAddressQueryResult *symbolStatus)
{
	const struct entry *best = NULL;
	int found = 0;

	fg_trace_init();
	if (!symbol || !pfn)
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (strcmp(table[i].name, symbol))
			continue;
		found = 1;
		if (table[i].version <= cudaVersion &&
		    (!best || table[i].version > best->version))
			best = &table[i];
	}
	*pfn = NULL;
	if (!best && (*pfn = fg_unsupported_lookup(symbol)))
		best = &unsupported_entry;
	else if (best)
		*pfn = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) && best->fn_pt ?
			       best->fn_pt : best->fn;
	if (symbolStatus)
		*symbolStatus = best ? CU_GET_PROC_ADDRESS_SUCCESS :
			found ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT :
				CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
	FG_TRACE("cuGetProcAddress %s v%d flags=%llu -> %s", symbol, cudaVersion,
		 (unsigned long long)flags, best ? "ok" : found ? "version too old" : "not found");
	return best ? CUDA_SUCCESS : CUDA_ERROR_NOT_FOUND;
}

CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
{
	return cuGetProcAddress_v2(symbol, pfn, cudaVersion, flags, NULL);
}

CUresult cuGetProcAddress_v2_ptsz(const char *symbol, void **pfn, int cudaVersion,
				  cuuint64_t flags, CUdriverProcAddressQueryResult *symbolStatus)
{
	return cuGetProcAddress_v2(symbol, pfn, cudaVersion,
				   flags | CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM,
				   symbolStatus);
}

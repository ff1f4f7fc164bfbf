/*
 * The few HIP 5.2 runtime types and constants the hook touches, with their public ABI values
 * (Debian 12's /usr/include/hip/hip_runtime_api.h and driver_types.h), so the hook builds
 * without the HIP headers, as cuda_min.h does for CUDA. Handles are passed through, never read.
 */
#ifndef VGPU_HIP_MIN_H
#define VGPU_HIP_MIN_H

#include <stddef.h>

typedef int hipError_t;
typedef int hipDevice_t;
typedef struct ihipStream_t *hipStream_t;
typedef struct ihipEvent_t *hipEvent_t;
typedef struct ihipModuleSymbol_t *hipFunction_t;
typedef struct hipGraphExec *hipGraphExec_t;
typedef struct ihipMemPoolHandle_t *hipMemPool_t;
typedef struct hipArray *hipArray_t;
typedef struct hipMipmappedArray *hipMipmappedArray_t;
typedef void *hipDeviceptr_t;
typedef unsigned long long hipMemGenericAllocationHandle_t; /* a pointer-sized handle */
typedef struct { unsigned int x, y, z; } hipDim3; /* dim3: passed by value */
typedef struct { char bytes[16]; } hipUUID;

#define hipSuccess 0
#define hipErrorInvalidValue 1
#define hipErrorOutOfMemory 2
#define hipErrorNotInitialized 3
#define hipErrorNotFound 500
#define hipMemLocationTypeDevice 1

typedef struct {
	int x, y, z, w; /* bits per channel */
	int f;          /* hipChannelFormatKind */
} hipChannelFormatDesc;

typedef struct {
	size_t Width;
	size_t Height;
	int Format; /* hipArray_Format: the CUDA values (HIP_AD_FORMAT_*) */
	unsigned int NumChannels;
} HIP_ARRAY_DESCRIPTOR;

typedef struct {
	size_t Width;
	size_t Height;
	size_t Depth;
	int Format;
	unsigned int NumChannels;
	unsigned int Flags;
} HIP_ARRAY3D_DESCRIPTOR;

typedef struct {
	size_t width, height, depth; /* passed by value */
} hipExtent;

typedef struct {
	void *ptr;
	size_t pitch;
	size_t xsize;
	size_t ysize;
} hipPitchedPtr;

typedef struct {
	unsigned char compressionType;
	struct {
		int type; /* hipMemLocationType */
		int id;
	} location;
	int requestedHandleType;
	int type;
	unsigned short usage;
	void *win32HandleMetaData;
} hipMemAllocationProp;

#endif /* VGPU_HIP_MIN_H */

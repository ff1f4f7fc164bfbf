/*
 * fakegpu libamdhip64: __device__ variables, kernel attributes and configuration hints.
 *
 * Device memory is host memory here, so a __device__ (or __constant__) variable is its host
 * shadow, the address clang registers with __hipRegisterVar: hipMemcpyToSymbol and friends copy
 * to and from it. Cache, shared-memory and managed-memory hints are accepted and change
 * nothing (no kernel body runs to feel them).
 */
#include "hip_internal.h"

#include <string.h>

struct var {
	const void *host;
	size_t size;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct var vars[4096];
static size_t nvars;

void __hipRegisterVar(void **modules, void *var, char *hostVar, char *deviceVar, int ext,
		      size_t size, int constant, int global)
{
	(void)modules; (void)hostVar; (void)deviceVar; (void)ext; (void)constant; (void)global;
	pthread_mutex_lock(&mu);
	if (nvars < sizeof(vars) / sizeof(vars[0])) {
		vars[nvars].host = var;
		vars[nvars].size = size;
		nvars++;
	} else {
		fg_msg("more than %zu __device__ variables; the rest are not known to "
		       "hipMemcpyToSymbol", sizeof(vars) / sizeof(vars[0]));
	}
	pthread_mutex_unlock(&mu);
}

static int find_var(const void *symbol, size_t *size)
{
	int rv = -1;

	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < nvars; i++) {
		if (vars[i].host == symbol) {
			*size = vars[i].size;
			rv = 0;
			break;
		}
	}
	pthread_mutex_unlock(&mu);
	return rv;
}

hipError_t hipGetSymbolAddress(void **devPtr, const void *symbol)
{
	size_t size;

	if (!devPtr || find_var(symbol, &size))
		return fg_hip_err(hipErrorInvalidSymbol);
	*devPtr = (void *)symbol;
	return hipSuccess;
}

hipError_t hipGetSymbolSize(size_t *size, const void *symbol)
{
	if (!size || find_var(symbol, size))
		return fg_hip_err(hipErrorInvalidSymbol);
	return hipSuccess;
}

static hipError_t symbol_range(const void *symbol, size_t n, size_t offset)
{
	size_t size;

	if (find_var(symbol, &size))
		return hipErrorInvalidSymbol;
	if (offset > size || n > size - offset)
		return hipErrorInvalidValue;
	return hipSuccess;
}

hipError_t hipMemcpyToSymbol(const void *symbol, const void *src, size_t sizeBytes,
			     size_t offset, hipMemcpyKind kind)
{
	hipError_t r = symbol_range(symbol, sizeBytes, offset);

	if (r)
		return fg_hip_err(r);
	return hipMemcpy((char *)symbol + offset, src, sizeBytes, kind);
}

hipError_t hipMemcpyToSymbolAsync(const void *symbol, const void *src, size_t sizeBytes,
				  size_t offset, hipMemcpyKind kind, hipStream_t stream)
{
	hipError_t r = symbol_range(symbol, sizeBytes, offset);

	if (r)
		return fg_hip_err(r);
	return hipMemcpyAsync((char *)symbol + offset, src, sizeBytes, kind, stream);
}

hipError_t hipMemcpyFromSymbol(void *dst, const void *symbol, size_t sizeBytes, size_t offset,
			       hipMemcpyKind kind)
{
	hipError_t r = symbol_range(symbol, sizeBytes, offset);

	if (r)
		return fg_hip_err(r);
	return hipMemcpy(dst, (const char *)symbol + offset, sizeBytes, kind);
}

hipError_t hipMemcpyFromSymbolAsync(void *dst, const void *symbol, size_t sizeBytes,
				    size_t offset, hipMemcpyKind kind, hipStream_t stream)
{
	hipError_t r = symbol_range(symbol, sizeBytes, offset);

	if (r)
		return fg_hip_err(r);
	return hipMemcpyAsync(dst, (const char *)symbol + offset, sizeBytes, kind, stream);
}

hipError_t hipFuncGetAttributes(struct hipFuncAttributes *attr, const void *func)
{
	if (!attr)
		return fg_hip_err(hipErrorInvalidValue);
	if (!fg_hip_kernel_known(func))
		return fg_hip_err(hipErrorInvalidDeviceFunction);
	memset(attr, 0, sizeof(*attr));
	attr->maxThreadsPerBlock = 1024;
	attr->maxDynamicSharedSizeBytes = 65536;
	attr->numRegs = 32;
	attr->binaryVersion = 90;
	attr->ptxVersion = 90;
	return hipSuccess;
}

hipError_t hipFuncSetAttribute(const void *func, hipFuncAttribute attr, int value)
{
	(void)attr; (void)value;
	return fg_hip_err(fg_hip_kernel_known(func) ? hipSuccess : hipErrorInvalidDeviceFunction);
}

hipError_t hipFuncSetCacheConfig(const void *func, hipFuncCache_t config)
{
	(void)config;
	return fg_hip_err(fg_hip_kernel_known(func) ? hipSuccess : hipErrorInvalidDeviceFunction);
}

hipError_t hipFuncSetSharedMemConfig(const void *func, hipSharedMemConfig config)
{
	(void)config;
	return fg_hip_err(fg_hip_kernel_known(func) ? hipSuccess : hipErrorInvalidDeviceFunction);
}

static hipFuncCache_t cache_config = hipFuncCachePreferNone;

hipError_t hipDeviceSetCacheConfig(hipFuncCache_t cacheConfig)
{
	cache_config = cacheConfig;
	return hipSuccess;
}

hipError_t hipDeviceGetCacheConfig(hipFuncCache_t *cacheConfig)
{
	if (!cacheConfig)
		return fg_hip_err(hipErrorInvalidValue);
	*cacheConfig = cache_config;
	return hipSuccess;
}

hipError_t hipDeviceGetLimit(size_t *pValue, enum hipLimit_t limit)
{
	if (!pValue)
		return fg_hip_err(hipErrorInvalidValue);
	switch (limit) {
	case hipLimitMallocHeapSize:
		*pValue = 8 << 20;
		return hipSuccess;
	default:
		return fg_hip_err(hipErrorUnsupportedLimit);
	}
}

static hipError_t managed(const void *p, size_t count, int device)
{
	uintptr_t base;
	size_t size;
	int kind;

	if (!p || !count)
		return hipErrorInvalidValue;
	if (fg_hip_lookup((uintptr_t)p, &base, &size, &kind, NULL) || kind != FG_HIP_MANAGED ||
	    (uintptr_t)p + count > base + size)
		return hipErrorInvalidValue;
	if (device != hipCpuDeviceId && (fg_hip_init() || device < 0 || device >= fg_hip_count()))
		return hipErrorInvalidDevice;
	return hipSuccess;
}

hipError_t hipMemPrefetchAsync(const void *dev_ptr, size_t count, int device, hipStream_t stream)
{
	int dev;
	hipError_t r = managed(dev_ptr, count, device);

	if (!r && fg_hip_stream(stream, NULL, &dev))
		r = hipErrorInvalidHandle;
	return fg_hip_err(r);
}

hipError_t hipMemAdvise(const void *dev_ptr, size_t count, hipMemoryAdvise advice, int device)
{
	(void)advice;
	return fg_hip_err(managed(dev_ptr, count, device));
}

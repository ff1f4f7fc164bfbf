/*
 * fakegpu libamdhip64: copies and memsets. Device memory is host memory, so they really move
 * data; they take no simulated device time. Synchronous ones first wait for the work this
 * process queued on the device (as hipMemcpy waits for the null stream); asynchronous ones
 * happen at once, in order with nothing (kernels never touch memory).
 */
#include "hip_internal.h"

#include <string.h>

static hipError_t sync_dev(void)
{
	hipError_t r = fg_hip_device_ready(fg_hip_current());

	if (r)
		return r;
	return fg_hip_wait(fg_hip_dev_last(fg_hip_current()));
}

static hipError_t check_stream(hipStream_t s)
{
	int dev;
	hipError_t r = fg_hip_init();

	if (r)
		return r;
	return fg_hip_stream(s, NULL, &dev);
}

static hipError_t copy(void *dst, const void *src, size_t n)
{
	if (!n)
		return hipSuccess;
	if (!dst || !src)
		return hipErrorInvalidValue;
	memmove(dst, src, n);
	return hipSuccess;
}

hipError_t hipMemcpy(void *dst, const void *src, size_t n, hipMemcpyKind kind)
{
	hipError_t r;

	if ((unsigned)kind > hipMemcpyDefault)
		return fg_hip_err(hipErrorInvalidMemcpyDirection);
	r = sync_dev();
	return fg_hip_err(r ? r : copy(dst, src, n));
}

hipError_t hipMemcpyWithStream(void *dst, const void *src, size_t n, hipMemcpyKind kind,
			       hipStream_t stream)
{
	hipError_t r = check_stream(stream);

	if (r)
		return fg_hip_err(r);
	r = fg_hip_wait(fg_hip_stream_last(stream));
	if ((unsigned)kind > hipMemcpyDefault)
		return fg_hip_err(hipErrorInvalidMemcpyDirection);
	return fg_hip_err(r ? r : copy(dst, src, n));
}

hipError_t hipMemcpyAsync(void *dst, const void *src, size_t n, hipMemcpyKind kind,
			  hipStream_t stream)
{
	hipError_t r = check_stream(stream);

	if (r)
		return fg_hip_err(r);
	if ((unsigned)kind > hipMemcpyDefault)
		return fg_hip_err(hipErrorInvalidMemcpyDirection);
	return fg_hip_err(copy(dst, src, n));
}

hipError_t hipMemcpyHtoD(hipDeviceptr_t dst, void *src, size_t n)
{
	return hipMemcpy(dst, src, n, hipMemcpyHostToDevice);
}

hipError_t hipMemcpyDtoH(void *dst, hipDeviceptr_t src, size_t n)
{
	return hipMemcpy(dst, src, n, hipMemcpyDeviceToHost);
}

hipError_t hipMemcpyDtoD(hipDeviceptr_t dst, hipDeviceptr_t src, size_t n)
{
	return hipMemcpy(dst, src, n, hipMemcpyDeviceToDevice);
}

hipError_t hipMemcpyHtoDAsync(hipDeviceptr_t dst, void *src, size_t n, hipStream_t s)
{
	return hipMemcpyAsync(dst, src, n, hipMemcpyHostToDevice, s);
}

hipError_t hipMemcpyDtoHAsync(void *dst, hipDeviceptr_t src, size_t n, hipStream_t s)
{
	return hipMemcpyAsync(dst, src, n, hipMemcpyDeviceToHost, s);
}

hipError_t hipMemcpyDtoDAsync(hipDeviceptr_t dst, hipDeviceptr_t src, size_t n, hipStream_t s)
{
	return hipMemcpyAsync(dst, src, n, hipMemcpyDeviceToDevice, s);
}

hipError_t hipMemcpyPeer(void *dst, int dstDevice, const void *src, int srcDevice, size_t n)
{
	if (fg_hip_init() || dstDevice < 0 || dstDevice >= fg_hip_count() || srcDevice < 0 ||
	    srcDevice >= fg_hip_count())
		return fg_hip_err(hipErrorInvalidDevice);
	return hipMemcpy(dst, src, n, hipMemcpyDeviceToDevice);
}

static hipError_t copy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t w,
			 size_t h)
{
	if (!h || !w)
		return hipSuccess;
	if (!dst || !src || w > dpitch || w > spitch)
		return hipErrorInvalidValue;
	for (size_t y = 0; y < h; y++)
		memmove((char *)dst + y * dpitch, (const char *)src + y * spitch, w);
	return hipSuccess;
}

hipError_t hipMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
		       size_t height, hipMemcpyKind kind)
{
	hipError_t r = sync_dev();

	(void)kind;
	return fg_hip_err(r ? r : copy2d(dst, dpitch, src, spitch, width, height));
}

hipError_t hipMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch,
			    size_t width, size_t height, hipMemcpyKind kind, hipStream_t stream)
{
	hipError_t r = check_stream(stream);

	(void)kind;
	return fg_hip_err(r ? r : copy2d(dst, dpitch, src, spitch, width, height));
}

static void fill(void *dst, uint32_t v, size_t elt, size_t count)
{
	if (elt == 1) {
		memset(dst, (int)(v & 0xff), count);
		return;
	}
	for (size_t i = 0; i < count; i++) {
		if (elt == 2) {
			uint16_t x = (uint16_t)v;

			memcpy((char *)dst + i * 2, &x, 2);
		} else {
			memcpy((char *)dst + i * 4, &v, 4);
		}
	}
}

static hipError_t set_sync(void *dst, uint32_t v, size_t elt, size_t count)
{
	hipError_t r = sync_dev();

	if (r)
		return fg_hip_err(r);
	if (!count)
		return hipSuccess;
	if (!dst)
		return fg_hip_err(hipErrorInvalidValue);
	fill(dst, v, elt, count);
	return hipSuccess;
}

static hipError_t set_async(void *dst, uint32_t v, size_t elt, size_t count, hipStream_t s)
{
	hipError_t r = check_stream(s);

	if (r)
		return fg_hip_err(r);
	if (!count)
		return hipSuccess;
	if (!dst)
		return fg_hip_err(hipErrorInvalidValue);
	fill(dst, v, elt, count);
	return hipSuccess;
}

hipError_t hipMemset(void *dst, int value, size_t n)
{
	return set_sync(dst, (uint32_t)value, 1, n);
}

hipError_t hipMemsetAsync(void *dst, int value, size_t n, hipStream_t s)
{
	return set_async(dst, (uint32_t)value, 1, n, s);
}

hipError_t hipMemsetD8(hipDeviceptr_t dst, unsigned char value, size_t count)
{
	return set_sync(dst, value, 1, count);
}

hipError_t hipMemsetD8Async(hipDeviceptr_t dst, unsigned char value, size_t count,
			    hipStream_t s)
{
	return set_async(dst, value, 1, count, s);
}

hipError_t hipMemsetD16(hipDeviceptr_t dst, unsigned short value, size_t count)
{
	return set_sync(dst, value, 2, count);
}

hipError_t hipMemsetD16Async(hipDeviceptr_t dst, unsigned short value, size_t count,
			     hipStream_t s)
{
	return set_async(dst, value, 2, count, s);
}

hipError_t hipMemsetD32(hipDeviceptr_t dst, int value, size_t count)
{
	return set_sync(dst, (uint32_t)value, 4, count);
}

hipError_t hipMemsetD32Async(hipDeviceptr_t dst, int value, size_t count, hipStream_t s)
{
	return set_async(dst, (uint32_t)value, 4, count, s);
}

hipError_t hipMemset2D(void *dst, size_t pitch, int value, size_t width, size_t height)
{
	hipError_t r = sync_dev();

	if (r)
		return fg_hip_err(r);
	if (width > pitch || (!dst && width && height))
		return fg_hip_err(hipErrorInvalidValue);
	for (size_t y = 0; y < height; y++)
		memset((char *)dst + y * pitch, value, width);
	return hipSuccess;
}

/*
 * fakegpu libcuda: memcpy and memset. Device memory is host memory, so a copy is a memmove
 * after checking that the device side lies inside an allocation (the real driver answers
 * CUDA_ERROR_INVALID_VALUE where a fake would crash). Synchronous calls first wait for the
 * legacy (or per-thread) stream's earlier work, as the real ones do; copies take no
 * simulated device time.
 */
#include "cuda_internal.h"

#include <string.h>

int fg_array_linear(CUarray a, uintptr_t *base, size_t *pitch);

static int device_range(uintptr_t p, size_t n)
{
	uintptr_t base;
	size_t size;
	int kind;

	if (fg_ptr_lookup(p, &base, &size, &kind, NULL, NULL))
		return -1;
	return n > size || p - base > size - n ? -1 : 0;
}

CUresult fg_copy(void *dst, const void *src, size_t n)
{
	if (n)
		memmove(dst, src, n);
	return CUDA_SUCCESS;
}

/* Wait for earlier work of the stream a synchronous call is ordered on. */
static CUresult sync_before(CUstream s)
{
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	return fg_wait_until(fg_stream_end(c, s));
}

static CUresult copy_checked(uintptr_t dst, int dst_dev, uintptr_t src, int src_dev, size_t n,
			     CUstream s, int sync)
{
	struct fg_graph *g;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (fg_stream_bad(s))
		return CUDA_ERROR_INVALID_HANDLE;
	if (!n)
		return CUDA_SUCCESS;
	if (!dst || !src || (dst_dev && device_range(dst, n)) || (src_dev && device_range(src, n)))
		return CUDA_ERROR_INVALID_VALUE;
	if (sync) {
		r = sync_before(s);
		if (r)
			return r;
	} else {
		fg_capture_check(s, &g);
		if (g)
			return fg_capture_memcpy(g, (void *)dst, (const void *)src, n) ?
				       CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
	}
	return fg_copy((void *)dst, (const void *)src, n);
}

/* Unified addressing: a pointer the table does not know is pageable host memory. */
static int known(uintptr_t p)
{
	return fg_ptr_lookup(p, NULL, NULL, NULL, NULL, NULL) == 0;
}

CUresult cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t n)
{
	return copy_checked(dst, known(dst), src, known(src), n, NULL, 1);
}

CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s)
{
	return copy_checked(dst, known(dst), src, known(src), n, s, 0);
}

CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n)
{
	return copy_checked(dst, 1, (uintptr_t)src, 0, n, NULL, 1);
}

CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n)
{
	return copy_checked((uintptr_t)dst, 0, src, 1, n, NULL, 1);
}

CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n)
{
	return copy_checked(dst, 1, src, 1, n, NULL, 1);
}

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream s)
{
	return copy_checked(dst, 1, (uintptr_t)src, 0, n, s, 0);
}

CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream s)
{
	return copy_checked((uintptr_t)dst, 0, src, 1, n, s, 0);
}

CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s)
{
	return copy_checked(dst, 1, src, 1, n, s, 0);
}

CUresult cuMemcpyPeer(CUdeviceptr dst, CUcontext dstCtx, CUdeviceptr src, CUcontext srcCtx,
		      size_t n)
{
	if (!fg_ctx_valid((struct fg_ctx *)dstCtx) || !fg_ctx_valid((struct fg_ctx *)srcCtx))
		return CUDA_ERROR_INVALID_CONTEXT;
	return copy_checked(dst, 1, src, 1, n, NULL, 1);
}

CUresult cuMemcpyPeerAsync(CUdeviceptr dst, CUcontext dstCtx, CUdeviceptr src, CUcontext srcCtx,
			   size_t n, CUstream s)
{
	if (!fg_ctx_valid((struct fg_ctx *)dstCtx) || !fg_ctx_valid((struct fg_ctx *)srcCtx))
		return CUDA_ERROR_INVALID_CONTEXT;
	return copy_checked(dst, 1, src, 1, n, s, 0);
}

/* Arrays are linear device memory in the fake. */
CUresult cuMemcpyHtoA_v2(CUarray dst, size_t off, const void *src, size_t n)
{
	uintptr_t base;
	size_t pitch;

	if (fg_array_linear(dst, &base, &pitch))
		return CUDA_ERROR_INVALID_HANDLE;
	return copy_checked(base + off, 1, (uintptr_t)src, 0, n, NULL, 1);
}

CUresult cuMemcpyAtoH_v2(void *dst, CUarray src, size_t off, size_t n)
{
	uintptr_t base;
	size_t pitch;

	if (fg_array_linear(src, &base, &pitch))
		return CUDA_ERROR_INVALID_HANDLE;
	return copy_checked((uintptr_t)dst, 0, base + off, 1, n, NULL, 1);
}

CUresult cuMemcpyHtoAAsync_v2(CUarray dst, size_t off, const void *src, size_t n, CUstream s)
{
	uintptr_t base;
	size_t pitch;

	if (fg_array_linear(dst, &base, &pitch))
		return CUDA_ERROR_INVALID_HANDLE;
	return copy_checked(base + off, 1, (uintptr_t)src, 0, n, s, 0);
}

CUresult cuMemcpyAtoHAsync_v2(void *dst, CUarray src, size_t off, size_t n, CUstream s)
{
	uintptr_t base;
	size_t pitch;

	if (fg_array_linear(src, &base, &pitch))
		return CUDA_ERROR_INVALID_HANDLE;
	return copy_checked((uintptr_t)dst, 0, base + off, 1, n, s, 0);
}

CUresult cuMemcpyDtoA_v2(CUarray dst, size_t off, CUdeviceptr src, size_t n)
{
	uintptr_t base;
	size_t pitch;

	if (fg_array_linear(dst, &base, &pitch))
		return CUDA_ERROR_INVALID_HANDLE;
	return copy_checked(base + off, 1, src, 1, n, NULL, 1);
}

CUresult cuMemcpyAtoD_v2(CUdeviceptr dst, CUarray src, size_t off, size_t n)
{
	uintptr_t base;
	size_t pitch;

	if (fg_array_linear(src, &base, &pitch))
		return CUDA_ERROR_INVALID_HANDLE;
	return copy_checked(dst, 1, base + off, 1, n, NULL, 1);
}

CUresult cuMemcpyAtoA_v2(CUarray dst, size_t doff, CUarray src, size_t soff, size_t n)
{
	uintptr_t db, sb;
	size_t pitch;

	if (fg_array_linear(dst, &db, &pitch) || fg_array_linear(src, &sb, &pitch))
		return CUDA_ERROR_INVALID_HANDLE;
	return copy_checked(db + doff, 1, sb + soff, 1, n, NULL, 1);
}

/* One side of a 2D/3D copy resolved to a linear address and pitch. */
static CUresult side(CUmemorytype type, const void *host, CUdeviceptr dev, CUarray arr,
		     size_t pitch_in, uintptr_t *addr, size_t *pitch, int *is_dev)
{
	switch (type) {
	case CU_MEMORYTYPE_HOST:
		*addr = (uintptr_t)host;
		*pitch = pitch_in;
		*is_dev = 0;
		return host ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
	case CU_MEMORYTYPE_DEVICE:
	case CU_MEMORYTYPE_UNIFIED:
		*addr = (uintptr_t)dev;
		*pitch = pitch_in;
		*is_dev = known((uintptr_t)dev);
		return dev ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
	case CU_MEMORYTYPE_ARRAY:
		*is_dev = 1;
		return fg_array_linear(arr, addr, pitch) ? CUDA_ERROR_INVALID_HANDLE : CUDA_SUCCESS;
	default:
		return CUDA_ERROR_INVALID_VALUE;
	}
}

CUresult fg_copy3d(const CUDA_MEMCPY3D *p, CUstream s, int sync)
{
	uintptr_t sa, da;
	size_t sp, dp, sh, dh;
	int sd, dd;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!p)
		return CUDA_ERROR_INVALID_VALUE;
	r = side(p->srcMemoryType, p->srcHost, p->srcDevice, p->srcArray, p->srcPitch, &sa, &sp,
		 &sd);
	if (!r)
		r = side(p->dstMemoryType, p->dstHost, p->dstDevice, p->dstArray, p->dstPitch, &da,
			 &dp, &dd);
	if (r)
		return r;
	if (!sp)
		sp = p->WidthInBytes;
	if (!dp)
		dp = p->WidthInBytes;
	if (sp < p->WidthInBytes || dp < p->WidthInBytes)
		return CUDA_ERROR_INVALID_VALUE;
	sh = p->srcHeight ? p->srcHeight : p->Height;
	dh = p->dstHeight ? p->dstHeight : p->Height;
	for (size_t z = 0; z < (p->Depth ? p->Depth : 1); z++) {
		for (size_t y = 0; y < p->Height; y++) {
			uintptr_t from = sa + ((p->srcZ + z) * sh + p->srcY + y) * sp + p->srcXInBytes;
			uintptr_t to = da + ((p->dstZ + z) * dh + p->dstY + y) * dp + p->dstXInBytes;

			r = copy_checked(to, dd, from, sd, p->WidthInBytes, s, sync && !z && !y);
			if (r)
				return r;
		}
	}
	return CUDA_SUCCESS;
}

static void from2d(CUDA_MEMCPY3D *t, const CUDA_MEMCPY2D *p)
{
	memset(t, 0, sizeof(*t));
	t->srcXInBytes = p->srcXInBytes;
	t->srcY = p->srcY;
	t->srcMemoryType = p->srcMemoryType;
	t->srcHost = p->srcHost;
	t->srcDevice = p->srcDevice;
	t->srcArray = p->srcArray;
	t->srcPitch = p->srcPitch;
	t->dstXInBytes = p->dstXInBytes;
	t->dstY = p->dstY;
	t->dstMemoryType = p->dstMemoryType;
	t->dstHost = p->dstHost;
	t->dstDevice = p->dstDevice;
	t->dstArray = p->dstArray;
	t->dstPitch = p->dstPitch;
	t->WidthInBytes = p->WidthInBytes;
	t->Height = p->Height;
	t->Depth = 1;
}

CUresult cuMemcpy2D_v2(const CUDA_MEMCPY2D *p)
{
	CUDA_MEMCPY3D t;

	if (!p)
		return CUDA_ERROR_INVALID_VALUE;
	from2d(&t, p);
	return fg_copy3d(&t, NULL, 1);
}

CUresult cuMemcpy2DUnaligned_v2(const CUDA_MEMCPY2D *p)
{
	return cuMemcpy2D_v2(p);
}

CUresult cuMemcpy2DAsync_v2(const CUDA_MEMCPY2D *p, CUstream s)
{
	CUDA_MEMCPY3D t;

	if (!p)
		return CUDA_ERROR_INVALID_VALUE;
	from2d(&t, p);
	return fg_copy3d(&t, s, 0);
}

CUresult cuMemcpy3D_v2(const CUDA_MEMCPY3D *p)
{
	return fg_copy3d(p, NULL, 1);
}

CUresult cuMemcpy3DAsync_v2(const CUDA_MEMCPY3D *p, CUstream s)
{
	return fg_copy3d(p, s, 0);
}

void fg_memset_run(void *dst, unsigned val, unsigned elt, size_t w, size_t h, size_t pitch)
{
	for (size_t y = 0; y < h; y++) {
		unsigned char *row = (unsigned char *)dst + y * pitch;

		if (elt == 1) {
			memset(row, (int)(val & 0xff), w);
		} else if (elt == 2) {
			uint16_t v = (uint16_t)val;

			for (size_t i = 0; i < w; i++)
				memcpy(row + i * 2, &v, 2);
		} else {
			uint32_t v = val;

			for (size_t i = 0; i < w; i++)
				memcpy(row + i * 4, &v, 4);
		}
	}
}

static CUresult memset_checked(CUdeviceptr dst, size_t pitch, unsigned val, unsigned elt,
			       size_t w, size_t h, CUstream s, int sync)
{
	struct fg_graph *g;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (fg_stream_bad(s))
		return CUDA_ERROR_INVALID_HANDLE;
	if (!w || !h)
		return CUDA_SUCCESS;
	if (!pitch)
		pitch = w * elt;
	if (pitch < w * elt || (dst % elt) || device_range(dst, pitch * (h - 1) + w * elt))
		return CUDA_ERROR_INVALID_VALUE;
	if (sync) {
		r = sync_before(s);
		if (r)
			return r;
	} else {
		fg_capture_check(s, &g);
		if (g)
			return fg_capture_memset(g, (void *)dst, val, elt, w, h, pitch) ?
				       CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
	}
	fg_memset_run((void *)dst, val, elt, w, h, pitch);
	return CUDA_SUCCESS;
}

CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char v, size_t n)
{
	return memset_checked(d, 0, v, 1, n, 1, NULL, 1);
}

CUresult cuMemsetD16_v2(CUdeviceptr d, unsigned short v, size_t n)
{
	return memset_checked(d, 0, v, 2, n, 1, NULL, 1);
}

CUresult cuMemsetD32_v2(CUdeviceptr d, unsigned int v, size_t n)
{
	return memset_checked(d, 0, v, 4, n, 1, NULL, 1);
}

CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, CUstream s)
{
	return memset_checked(d, 0, v, 1, n, 1, s, 0);
}

CUresult cuMemsetD16Async(CUdeviceptr d, unsigned short v, size_t n, CUstream s)
{
	return memset_checked(d, 0, v, 2, n, 1, s, 0);
}

CUresult cuMemsetD32Async(CUdeviceptr d, unsigned int v, size_t n, CUstream s)
{
	return memset_checked(d, 0, v, 4, n, 1, s, 0);
}

CUresult cuMemsetD2D8_v2(CUdeviceptr d, size_t pitch, unsigned char v, size_t w, size_t h)
{
	return memset_checked(d, pitch, v, 1, w, h, NULL, 1);
}

CUresult cuMemsetD2D16_v2(CUdeviceptr d, size_t pitch, unsigned short v, size_t w, size_t h)
{
	return memset_checked(d, pitch, v, 2, w, h, NULL, 1);
}

CUresult cuMemsetD2D32_v2(CUdeviceptr d, size_t pitch, unsigned int v, size_t w, size_t h)
{
	return memset_checked(d, pitch, v, 4, w, h, NULL, 1);
}

CUresult cuMemsetD2D8Async(CUdeviceptr d, size_t pitch, unsigned char v, size_t w, size_t h,
			   CUstream s)
{
	return memset_checked(d, pitch, v, 1, w, h, s, 0);
}

CUresult cuMemsetD2D16Async(CUdeviceptr d, size_t pitch, unsigned short v, size_t w, size_t h,
			    CUstream s)
{
	return memset_checked(d, pitch, v, 2, w, h, s, 0);
}

CUresult cuMemsetD2D32Async(CUdeviceptr d, size_t pitch, unsigned int v, size_t w, size_t h,
			    CUstream s)
{
	return memset_checked(d, pitch, v, 4, w, h, s, 0);
}

static CUresult copy3d_peer(const CUDA_MEMCPY3D_PEER *p, CUstream s, int sync)
{
	CUDA_MEMCPY3D t;

	if (!p)
		return CUDA_ERROR_INVALID_VALUE;
	memset(&t, 0, sizeof(t));
	t.srcXInBytes = p->srcXInBytes;
	t.srcY = p->srcY;
	t.srcZ = p->srcZ;
	t.srcMemoryType = p->srcMemoryType;
	t.srcHost = p->srcHost;
	t.srcDevice = p->srcDevice;
	t.srcArray = p->srcArray;
	t.srcPitch = p->srcPitch;
	t.srcHeight = p->srcHeight;
	t.dstXInBytes = p->dstXInBytes;
	t.dstY = p->dstY;
	t.dstZ = p->dstZ;
	t.dstMemoryType = p->dstMemoryType;
	t.dstHost = p->dstHost;
	t.dstDevice = p->dstDevice;
	t.dstArray = p->dstArray;
	t.dstPitch = p->dstPitch;
	t.dstHeight = p->dstHeight;
	t.WidthInBytes = p->WidthInBytes;
	t.Height = p->Height;
	t.Depth = p->Depth;
	return fg_copy3d(&t, s, sync);
}

CUresult cuMemcpy3DPeer(const CUDA_MEMCPY3D_PEER *p)
{
	return copy3d_peer(p, NULL, 1);
}

CUresult cuMemcpy3DPeerAsync(const CUDA_MEMCPY3D_PEER *p, CUstream s)
{
	return copy3d_peer(p, s, 0);
}

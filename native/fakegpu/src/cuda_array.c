/* fakegpu libcuda: CUDA arrays, stored as linear device memory (pitch = width x element). */
#include "cuda_internal.h"

#include <stdlib.h>
#include <string.h>

struct fg_array {
	uint32_t tag;
	CUDA_ARRAY3D_DESCRIPTOR desc;
	CUdeviceptr base;
	size_t pitch;
};

static size_t format_bytes(CUarray_format f)
{
	switch (f) {
	case CU_AD_FORMAT_UNSIGNED_INT8:
	case CU_AD_FORMAT_SIGNED_INT8: return 1;
	case CU_AD_FORMAT_UNSIGNED_INT16:
	case CU_AD_FORMAT_SIGNED_INT16:
	case CU_AD_FORMAT_HALF: return 2;
	case CU_AD_FORMAT_UNSIGNED_INT32:
	case CU_AD_FORMAT_SIGNED_INT32:
	case CU_AD_FORMAT_FLOAT: return 4;
	default: return 0;
	}
}

int fg_array_linear(CUarray a, uintptr_t *base, size_t *pitch)
{
	struct fg_array *x = (struct fg_array *)a;

	if (!fg_handle_is(x, FG_TAG_ARRAY))
		return -1;
	*base = (uintptr_t)x->base;
	*pitch = x->pitch;
	return 0;
}

CUresult cuArray3DCreate_v2(CUarray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *d)
{
	struct fg_array *x;
	struct fg_ctx *c;
	size_t elt, rows;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	if (!pHandle || !d || !d->Width)
		return CUDA_ERROR_INVALID_VALUE;
	elt = format_bytes(d->Format);
	if (!elt || (d->NumChannels != 1 && d->NumChannels != 2 && d->NumChannels != 4))
		return CUDA_ERROR_INVALID_VALUE;
	x = calloc(1, sizeof(*x));
	if (!x)
		return CUDA_ERROR_OUT_OF_MEMORY;
	x->desc = *d;
	x->pitch = d->Width * elt * d->NumChannels;
	rows = (d->Height ? d->Height : 1) * (d->Depth ? d->Depth : 1);
	r = fg_alloc(&x->base, x->pitch * rows, FG_ALLOC_ARRAY, c->dev, NULL);
	if (!r && fg_handle_add(x, FG_TAG_ARRAY)) {
		fg_free(x->base, 0);
		r = CUDA_ERROR_OUT_OF_MEMORY;
	}
	if (r) {
		free(x);
		return r;
	}
	x->tag = FG_TAG_ARRAY;
	*pHandle = (CUarray)x;
	return CUDA_SUCCESS;
}

CUresult cuArrayCreate_v2(CUarray *pHandle, const CUDA_ARRAY_DESCRIPTOR *d)
{
	CUDA_ARRAY3D_DESCRIPTOR d3;

	if (!d)
		return CUDA_ERROR_INVALID_VALUE;
	memset(&d3, 0, sizeof(d3));
	d3.Width = d->Width;
	d3.Height = d->Height;
	d3.Format = d->Format;
	d3.NumChannels = d->NumChannels;
	return cuArray3DCreate_v2(pHandle, &d3);
}

CUresult cuArrayDestroy(CUarray hArray)
{
	struct fg_array *x = (struct fg_array *)hArray;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!fg_handle_is(x, FG_TAG_ARRAY))
		return CUDA_ERROR_INVALID_HANDLE;
	fg_handle_del(x, FG_TAG_ARRAY);
	fg_free(x->base, 0);
	free(x);
	return CUDA_SUCCESS;
}

CUresult cuArray3DGetDescriptor_v2(CUDA_ARRAY3D_DESCRIPTOR *d, CUarray hArray)
{
	struct fg_array *x = (struct fg_array *)hArray;

	if (!fg_handle_is(x, FG_TAG_ARRAY))
		return CUDA_ERROR_INVALID_HANDLE;
	if (!d)
		return CUDA_ERROR_INVALID_VALUE;
	*d = x->desc;
	return CUDA_SUCCESS;
}

CUresult cuArrayGetDescriptor_v2(CUDA_ARRAY_DESCRIPTOR *d, CUarray hArray)
{
	struct fg_array *x = (struct fg_array *)hArray;

	if (!fg_handle_is(x, FG_TAG_ARRAY))
		return CUDA_ERROR_INVALID_HANDLE;
	if (!d)
		return CUDA_ERROR_INVALID_VALUE;
	d->Width = x->desc.Width;
	d->Height = x->desc.Height;
	d->Format = x->desc.Format;
	d->NumChannels = x->desc.NumChannels;
	return CUDA_SUCCESS;
}

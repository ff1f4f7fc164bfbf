/* Drives the hook's HIP entry points that the simulated GPU lacks, over null_hip.c. Each
 * argument is one path; per path: allocate 64 MiB worth, print the slice's free bytes, try
 * 4 GiB worth (must fail past a small cap), free, print free again:
 *   "<path> rc=<first alloc> big=<4 GiB alloc> free1=<bytes> freed=<free rc> free2=<bytes>"
 * Paths: 3d 3darray array3d mipmap mipmapcreate. */
#include <stdio.h>
#include <string.h>

#include "hip_min.h"

hipError_t hipMemGetInfo(size_t *free_bytes, size_t *total);
hipError_t hipFree(void *p);
hipError_t hipMalloc3D(hipPitchedPtr *p, hipExtent e);
hipError_t hipMalloc3DArray(hipArray_t *a, const hipChannelFormatDesc *d, hipExtent e,
			    unsigned int flags);
hipError_t hipArray3DCreate(hipArray_t *a, const HIP_ARRAY3D_DESCRIPTOR *d);
hipError_t hipMallocMipmappedArray(hipMipmappedArray_t *a, const hipChannelFormatDesc *d,
				   hipExtent e, unsigned int levels, unsigned int flags);
hipError_t hipMipmappedArrayCreate(hipMipmappedArray_t *a, HIP_ARRAY3D_DESCRIPTOR *d,
				   unsigned int levels);
hipError_t hipFreeArray(hipArray_t a);
hipError_t hipFreeMipmappedArray(hipMipmappedArray_t a);
hipError_t hipMipmappedArrayDestroy(hipMipmappedArray_t a);

/* MiB of 1024 x 256 x 4-byte texels (one texel channel of 32 bits) */
static hipError_t alloc(const char *path, size_t mib, void **out)
{
	hipChannelFormatDesc d = {32, 0, 0, 0, 2};
	HIP_ARRAY3D_DESCRIPTOR ad = {1024, 256, mib, 0x20 /* float */, 1, 0};
	hipExtent e = {1024, 256, mib};
	if (!strcmp(path, "3d")) {
		hipPitchedPtr p;
		hipExtent b = {4096, 256, mib}; /* bytes: 1 MiB per depth slice */
		hipError_t r = hipMalloc3D(&p, b);
		*out = p.ptr;
		return r;
	}
	if (!strcmp(path, "3darray"))
		return hipMalloc3DArray((hipArray_t *)out, &d, e, 0);
	if (!strcmp(path, "array3d"))
		return hipArray3DCreate((hipArray_t *)out, &ad);
	if (!strcmp(path, "mipmap"))
		return hipMallocMipmappedArray((hipMipmappedArray_t *)out, &d, e, 1, 0);
	if (!strcmp(path, "mipmapcreate"))
		return hipMipmappedArrayCreate((hipMipmappedArray_t *)out, &ad, 1);
	return hipErrorInvalidValue;
}

static hipError_t release(const char *path, void *h)
{
	if (!strcmp(path, "3d"))
		return hipFree(h);
	if (!strcmp(path, "3darray") || !strcmp(path, "array3d"))
		return hipFreeArray(h);
	if (!strcmp(path, "mipmap"))
		return hipFreeMipmappedArray(h);
	return hipMipmappedArrayDestroy(h);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		void *h = NULL, *big = NULL;
		size_t f1 = 0, f2 = 0, t = 0;
		hipError_t r = alloc(argv[i], 64, &h);
		hipError_t rb = alloc(argv[i], 4096, &big);
		hipMemGetInfo(&f1, &t);
		hipError_t rf = r == hipSuccess ? release(argv[i], h) : -1;
		if (rb == hipSuccess)
			release(argv[i], big);
		hipMemGetInfo(&f2, &t);
		printf("%s rc=%d big=%d free1=%zu freed=%d free2=%zu\n", argv[i], (int)r, (int)rb, f1,
		       (int)rf, f2);
	}
	return 0;
}

/* bench_calls: the cost of intercepted calls, hooked or not (bench/bench_hook.py).
 * usage: bench_calls CALL N      CALL = meminfo | allocfree | launch
 * Prints "<call> ns_per_call=<x>". Linked -lcuda: with LD_PRELOAD=libvgpu.so the calls go
 * through the hook, without it straight to the driver (the baseline). */
#define _GNU_SOURCE
#include <cuda.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef CUresult (*info_fn)(size_t *, size_t *);
typedef CUresult (*alloc_fn)(CUdeviceptr *, size_t);
typedef CUresult (*free_fn)(CUdeviceptr);
typedef CUresult (*launch_fn)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
			      unsigned, unsigned, CUstream, void **, void **);

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	long n = atol(argv[2]);
	info_fn info;
	alloc_fn alloc;
	free_fn release;
	launch_fn launch;
	CUresult (*init)(unsigned) = cuInit;
	CUresult (*dget)(CUdevice *, int) = cuDeviceGet;
	CUresult (*retain)(CUcontext *, CUdevice) = cuDevicePrimaryCtxRetain;
	CUresult (*setcur)(CUcontext) = cuCtxSetCurrent;
	CUresult (*modload)(CUmodule *, const void *) = cuModuleLoadData;
	CUresult (*getfn)(CUfunction *, CUmodule, const char *) = cuModuleGetFunction;
	CUresult (*sync)(void) = cuCtxSynchronize;
	info = cuMemGetInfo;
	alloc = cuMemAlloc;
	release = cuMemFree;
	launch = cuLaunchKernel;
	CUdevice dev;
	CUcontext ctx;
	CUmodule mod;
	CUfunction fn;
	if (init(0) || dget(&dev, 0) || retain(&ctx, dev) || setcur(ctx))
		return 1;
	const char *image = getenv("PROBE_MODULE_IMAGE");
	if (modload(&mod, image ? image : "vgpu bench image") || getfn(&fn, mod, "spin"))
		return 1;
	size_t fr, tot;
	CUdeviceptr p;
	double t0 = now();
	if (!strcmp(argv[1], "meminfo")) {
		for (long i = 0; i < n; i++)
			info(&fr, &tot);
	} else if (!strcmp(argv[1], "allocfree")) {
		for (long i = 0; i < n; i++) {
			if (alloc(&p, 1 << 20) == CUDA_SUCCESS)
				release(p);
		}
	} else if (!strcmp(argv[1], "launch")) {
		for (long i = 0; i < n; i++) {
			launch(fn, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL);
			if ((i & 1023) == 1023)
				sync();
		}
		sync();
	} else {
		return 2;
	}
	printf("%s ns_per_call=%.2f\n", argv[1], (now() - t0) * 1e9 / (double)n);
	return 0;
}

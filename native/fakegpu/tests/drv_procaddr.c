/*
 * test-drv-procaddr: finds functions like cudart does: dlopen + dlsym("cuGetProcAddress_v2")
 * only, then cuGetProcAddress for everything else (including a per-thread-stream variant).
 *   test-drv-procaddr [MIB]   allocate MIB (default 512), print free/total, launch, free
 */
#include <cuda.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef CUresult (*gpa_t)(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *);

static gpa_t gpa;

static void *get(const char *name, int version, cuuint64_t flags)
{
	CUdriverProcAddressQueryResult st;
	void *fn = NULL;

	if (gpa(name, &fn, version, flags, &st) != CUDA_SUCCESS || st != CU_GET_PROC_ADDRESS_SUCCESS)
		printf("FAIL cuGetProcAddress %s\n", name);
	return fn;
}

int main(int argc, char **argv)
{
	CUresult (*init)(unsigned), (*dget)(CUdevice *, int), (*retain)(CUcontext *, CUdevice);
	CUresult (*set)(CUcontext), (*alloc)(CUdeviceptr *, size_t), (*mfree)(CUdeviceptr);
	CUresult (*info)(size_t *, size_t *), (*load)(CUmodule *, const void *);
	CUresult (*getfn)(CUfunction *, CUmodule, const char *), (*sync)(CUstream);
	CUresult (*launch)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
			   unsigned, CUstream, void **, void **);
	size_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 512, fr = 0, tot = 0;
	void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	unsigned long long ns = 1000000;
	void *args[] = { &ns };
	CUfunction f;
	CUmodule m;
	CUdeviceptr p;
	CUcontext c;
	CUdevice d;
	CUresult r;

	if (!h || !(*(void **)&gpa = dlsym(h, "cuGetProcAddress_v2"))) {
		printf("FAIL dlopen/dlsym: %s\n", dlerror());
		return 1;
	}
	*(void **)&init = get("cuInit", 2000, 0);
	*(void **)&dget = get("cuDeviceGet", 2000, 0);
	*(void **)&retain = get("cuDevicePrimaryCtxRetain", 7000, 0);
	*(void **)&set = get("cuCtxSetCurrent", 4000, 0);
	*(void **)&alloc = get("cuMemAlloc", 3020, 0);
	*(void **)&mfree = get("cuMemFree", 3020, 0);
	*(void **)&info = get("cuMemGetInfo", 3020, 0);
	*(void **)&load = get("cuModuleLoadData", 2000, 0);
	*(void **)&getfn = get("cuModuleGetFunction", 2000, 0);
	*(void **)&launch = get("cuLaunchKernel", 13000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM);
	*(void **)&sync = get("cuStreamSynchronize", 13000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM);
	if (!init || !dget || !retain || !set || !alloc || !mfree || !info || !load || !getfn ||
	    !launch || !sync)
		return 1;
	if (init(0) || dget(&d, 0) || retain(&c, d) || set(c)) {
		printf("FAIL init\n");
		return 1;
	}
	r = alloc(&p, mib << 20);
	info(&fr, &tot);
	printf("alloc=%d free=%zu total=%zu\n", (int)r, fr, tot);
	if (load(&m, "image") || getfn(&f, m, "fakegpu_ns") ||
	    launch(f, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL) || sync(NULL)) {
		printf("FAIL launch\n");
		return 1;
	}
	if (!r)
		mfree(p);
	return r ? 3 : 0;
}

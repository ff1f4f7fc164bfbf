/*
 * test-drv-dlsym: finds the driver with dlopen("libcuda.so.1") and every function with
 * dlsym, by its exported (versioned) name. Prints the memory it sees; exit 0 on success.
 *   test-drv-dlsym [MIB]   allocate MIB (default 512), print free/total, free it
 */
#include <cuda.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#define SYM(h, var, name)                                               \
	do {                                                            \
		*(void **)&(var) = dlsym(h, name);                      \
		if (!(var)) {                                           \
			printf("FAIL dlsym %s: %s\n", name, dlerror()); \
			return 1;                                       \
		}                                                       \
	} while (0)

int main(int argc, char **argv)
{
	CUresult (*init)(unsigned), (*get)(CUdevice *, int), (*retain)(CUcontext *, CUdevice);
	CUresult (*set)(CUcontext), (*alloc)(CUdeviceptr *, size_t), (*mfree)(CUdeviceptr);
	CUresult (*info)(size_t *, size_t *);
	size_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 512, fr = 0, tot = 0;
	void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	CUdeviceptr p;
	CUcontext c;
	CUdevice d;
	CUresult r;

	if (!h) {
		printf("FAIL dlopen: %s\n", dlerror());
		return 1;
	}
	SYM(h, init, "cuInit");
	SYM(h, get, "cuDeviceGet");
	SYM(h, retain, "cuDevicePrimaryCtxRetain");
	SYM(h, set, "cuCtxSetCurrent");
	SYM(h, alloc, "cuMemAlloc_v2");
	SYM(h, mfree, "cuMemFree_v2");
	SYM(h, info, "cuMemGetInfo_v2");
	if (init(0) || get(&d, 0) || retain(&c, d) || set(c)) {
		printf("FAIL init\n");
		return 1;
	}
	r = alloc(&p, mib << 20);
	info(&fr, &tot);
	printf("alloc=%d free=%zu total=%zu\n", (int)r, fr, tot);
	if (!r)
		mfree(p);
	return r ? 3 : 0;
}

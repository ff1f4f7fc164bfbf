/* A driver that does nothing: libcuda.so.1 whose functions return at once. bench_hook.py
 * times the hook against it, so the hook's own cost is not lost in a driver's. */
#include <stdint.h>
#include <string.h>

typedef int CUresult;
#define API __attribute__((visibility("default")))

static unsigned long long next_ptr = 1ull << 40;

API CUresult cuInit(unsigned int f) { (void)f; return 0; }
API CUresult cuDeviceGet(int *d, int o) { *d = o; return 0; }
API CUresult cuDevicePrimaryCtxRetain(void **c, int d) { (void)d; *c = &next_ptr; return 0; }
API CUresult cuCtxSetCurrent(void *c) { (void)c; return 0; }
API CUresult cuCtxGetDevice(int *d) { *d = 0; return 0; }
API CUresult cuCtxSynchronize(void) { return 0; }
API CUresult cuDeviceGetUuid_v2(unsigned char *u, int d) { memset(u, 0, 16); u[15] = (unsigned char)d; return 0; }
API CUresult cuModuleLoadData(void **m, const void *img) { (void)img; *m = &next_ptr; return 0; }
API CUresult cuModuleGetFunction(void **f, void *m, const char *n) { (void)m; (void)n; *f = &next_ptr; return 0; }
API CUresult cuMemGetInfo_v2(size_t *fr, size_t *tot) { *fr = *tot = 16ull << 30; return 0; }
API CUresult cuMemAlloc_v2(unsigned long long *p, size_t n) { *p = next_ptr; next_ptr += n + 512; return 0; }
API CUresult cuMemFree_v2(unsigned long long p) { (void)p; return 0; }
API CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
			    unsigned bz, unsigned shm, void *s, void **p, void **e)
{
	(void)f; (void)gx; (void)gy; (void)gz; (void)bx; (void)by; (void)bz; (void)shm; (void)s;
	(void)p; (void)e;
	return 0;
}

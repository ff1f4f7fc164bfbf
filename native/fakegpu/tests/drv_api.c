/*
 * test-drv-api: a driver API program linked with -lcuda (direct symbol binding), used by
 * tests/test_fakegpu*.py and by the hook's tests.
 *
 *   test-drv-api basic                 device info, alloc, copy round trip, OOM, launch, sync
 *   test-drv-api families              every API family; prints "PASS <family>" lines
 *   test-drv-api errors                misuse returns the real error codes
 *   test-drv-api hold MIB SECONDS      allocate MIB and hold it (prints "holding")
 *   test-drv-api busy MS [KERNEL_US]   keep the device busy for MS ms with kernels of KERNEL_US
 *   test-drv-api launch NS COUNT [LINGER_S]
 *                                      COUNT kernels of NS each, then sync; prints timings,
 *                                      then stays alive LINGER_S seconds (for ground truth)
 *   test-drv-api duty MS ON_US OFF_US  for MS ms: a kernel of ON_US, sync, OFF_US idle
 *   test-drv-api grid BLOCKS COUNT     COUNT ordinary kernels of BLOCKS blocks, then sync
 *   test-drv-api meminfo               print free= total= of the current device
 *   test-drv-api threads N COUNT       N threads, each COUNT x (alloc, 100 us kernel on its own
 *                                      stream and on the per-thread stream, sync, free)
 *   test-drv-api bench N               per-call cost of cuMemGetInfo, a 0 ns launch,
 *                                      cuMemAlloc+cuMemFree (JSON on one line)
 *
 * A kernel named "fakegpu_ns" lasts as long as its first (uint64) parameter says.
 * Exit 0 when every check passed.
 */
#include <cuda.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int failures;

#define CK(x)                                                                    \
	do {                                                                     \
		CUresult r_ = (x);                                               \
		if (r_ != CUDA_SUCCESS) {                                        \
			const char *n_ = NULL;                                   \
			cuGetErrorName(r_, &n_);                                 \
			printf("FAIL %s:%d %s -> %d %s\n", __FILE__, __LINE__, #x, \
			       (int)r_, n_ ? n_ : "?");                         \
			failures++;                                              \
			return 1;                                                \
		}                                                                \
	} while (0)

#define EXPECT(x, want)                                                          \
	do {                                                                     \
		CUresult r_ = (x);                                               \
		if (r_ != (want)) {                                              \
			printf("FAIL %s:%d %s -> %d, expected %d\n", __FILE__, __LINE__, \
			       #x, (int)r_, (int)(want));                       \
			failures++;                                              \
		}                                                                \
	} while (0)

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static CUcontext ctx;
static CUmodule mod;
static CUfunction sleep_fn, plain_fn;
static int sms;

static int setup(void)
{
	CUdevice dev;

	CK(cuInit(0));
	CK(cuDeviceGet(&dev, 0));
	CK(cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev));
	CK(cuDevicePrimaryCtxRetain(&ctx, dev));
	CK(cuCtxSetCurrent(ctx));
	CK(cuModuleLoadData(&mod, "fakegpu test module"));
	CK(cuModuleGetFunction(&sleep_fn, mod, "fakegpu_ns"));
	CK(cuModuleGetFunction(&plain_fn, mod, "plain_kernel"));
	return 0;
}

static int launch_ns(uint64_t ns, CUstream s)
{
	void *args[] = { &ns };

	CK(cuLaunchKernel(sleep_fn, 1, 1, 1, 32, 1, 1, 0, s, args, NULL));
	return 0;
}

static int basic(void)
{
	char name[128], bus[32];
	size_t total, free_b;
	CUdeviceptr p, q;
	CUuuid uuid;
	int n, v, h[4] = { 1, 2, 3, 4 }, b[4] = { 0 };
	double t0, t1, t2;

	CK(cuDriverGetVersion(&v));
	CK(cuDeviceGetCount(&n));
	CK(cuDeviceGetName(name, sizeof(name), 0));
	CK(cuDeviceTotalMem(&total, 0));
	CK(cuDeviceGetUuid(&uuid, 0));
	CK(cuDeviceGetPCIBusId(bus, sizeof(bus), 0));
	printf("driver=%d devices=%d name=%s total=%zu sms=%d bus=%s\n", v, n, name, total, sms, bus);
	CK(cuMemAlloc(&p, 256 << 20));
	CK(cuMemGetInfo(&free_b, &total));
	printf("after_alloc free=%zu total=%zu\n", free_b, total);
	EXPECT(cuMemAlloc(&q, total), CUDA_ERROR_OUT_OF_MEMORY);
	CK(cuMemcpyHtoD(p, h, sizeof(h)));
	CK(cuMemcpyDtoH(b, p, sizeof(b)));
	if (memcmp(h, b, sizeof(h))) {
		printf("FAIL memcpy round trip\n");
		failures++;
	}
	t0 = now_s();
	for (int i = 0; i < 5; i++)
		if (launch_ns(2000000, NULL))
			return 1;
	t1 = now_s();
	CK(cuCtxSynchronize());
	t2 = now_s();
	printf("enqueue_ms=%.3f sync_ms=%.3f\n", (t1 - t0) * 1e3, (t2 - t1) * 1e3);
	if (t2 - t0 < 0.0099) {
		printf("FAIL 5 x 2 ms kernels finished in %.3f ms\n", (t2 - t0) * 1e3);
		failures++;
	}
	CK(cuMemFree(p));
	CK(cuMemGetInfo(&free_b, &total));
	printf("after_free free=%zu\n", free_b);
	return 0;
}

static int family_memory(void)
{
	CUdeviceptr d, m, pitch_p, a;
	size_t pitch, base_size;
	CUdeviceptr base;
	void *host;
	unsigned mt = 0;
	int managed = 0;
	char buf[64];

	CK(cuMemAlloc(&d, 4096));
	CK(cuMemAllocManaged(&m, 4096, CU_MEM_ATTACH_GLOBAL));
	CK(cuMemAllocPitch(&pitch_p, &pitch, 1000, 10, 4));
	CK(cuMemAllocHost(&host, 4096));
	CK(cuMemGetAddressRange(&base, &base_size, d + 100));
	if (base != d || base_size != 4096 || pitch < 1000) {
		printf("FAIL address range / pitch\n");
		return 1;
	}
	CK(cuPointerGetAttribute(&mt, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, d));
	CK(cuPointerGetAttribute(&managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, m));
	if (mt != CU_MEMORYTYPE_DEVICE || !managed) {
		printf("FAIL pointer attributes\n");
		return 1;
	}
	CK(cuMemsetD8(d, 0x5a, 4096));
	CK(cuMemcpyDtoH(buf, d + 10, sizeof(buf)));
	if (buf[0] != 0x5a || buf[63] != 0x5a) {
		printf("FAIL memset\n");
		return 1;
	}
	CK(cuMemsetD32(m, 0x01020304, 1024));
	CK(cuMemcpyDtoD(d, m, 4096));
	CK(cuMemcpyDtoH(buf, d, 8));
	if (((unsigned *)buf)[1] != 0x01020304) {
		printf("FAIL DtoD\n");
		return 1;
	}
	CK(cuMemAllocAsync(&a, 1 << 20, NULL));
	CK(cuMemFreeAsync(a, NULL));
	CK(cuMemFreeHost(host));
	CK(cuMemFree(pitch_p));
	CK(cuMemFree(m));
	CK(cuMemFree(d));
	printf("PASS memory\n");
	return 0;
}

static int family_pool(void)
{
	CUmemPoolProps props;
	CUmemoryPool pool, def;
	CUdeviceptr p;
	cuuint64_t used = 0;
	size_t free0, free1, total;

	memset(&props, 0, sizeof(props));
	props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
	props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	props.location.id = 0;
	CK(cuDeviceGetDefaultMemPool(&def, 0));
	CK(cuMemPoolCreate(&pool, &props));
	CK(cuMemGetInfo(&free0, &total));
	CK(cuMemAllocFromPoolAsync(&p, 8 << 20, pool, NULL));
	CK(cuMemPoolGetAttribute(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &used));
	CK(cuMemGetInfo(&free1, &total));
	if (used != (8 << 20) || free0 - free1 != (8 << 20)) {
		printf("FAIL pool accounting used=%llu delta=%zu\n", (unsigned long long)used,
		       free0 - free1);
		return 1;
	}
	CK(cuMemFreeAsync(p, NULL));
	CK(cuStreamSynchronize(NULL));
	CK(cuMemPoolDestroy(pool));
	printf("PASS pool\n");
	return 0;
}

static int family_vmm(void)
{
	CUmemAllocationProp prop;
	CUmemAccessDesc acc;
	CUmemGenericAllocationHandle h;
	CUdeviceptr va, va2;
	size_t gran, free0, free1, free2, total;
	int v = 1234, back = 0;

	memset(&prop, 0, sizeof(prop));
	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = 0;
	CK(cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
	CK(cuMemGetInfo(&free0, &total));
	CK(cuMemCreate(&h, 2 * gran, &prop, 0));
	CK(cuMemGetInfo(&free1, &total));
	CK(cuMemAddressReserve(&va, 2 * gran, 0, 0, 0));
	CK(cuMemAddressReserve(&va2, 2 * gran, 0, 0, 0));
	CK(cuMemMap(va, 2 * gran, 0, h, 0));
	CK(cuMemMap(va2, 2 * gran, 0, h, 0));
	memset(&acc, 0, sizeof(acc));
	acc.location = prop.location;
	acc.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
	CK(cuMemSetAccess(va, 2 * gran, &acc, 1));
	CK(cuMemcpyHtoD(va + 16, &v, sizeof(v)));
	CK(cuMemcpyDtoH(&back, va2 + 16, sizeof(back))); /* same physical memory */
	CK(cuMemRelease(h));
	CK(cuMemUnmap(va, 2 * gran));
	CK(cuMemUnmap(va2, 2 * gran));
	CK(cuMemGetInfo(&free2, &total));
	CK(cuMemAddressFree(va, 2 * gran));
	CK(cuMemAddressFree(va2, 2 * gran));
	if (back != v || free0 - free1 != 2 * gran || free2 != free0) {
		printf("FAIL vmm back=%d charged=%zu returned=%d\n", back, free0 - free1,
		       free2 == free0);
		return 1;
	}
	printf("PASS vmm\n");
	return 0;
}

static int family_array(void)
{
	CUDA_ARRAY_DESCRIPTOR d;
	CUarray arr;
	float in[64], out[64];

	for (int i = 0; i < 64; i++)
		in[i] = (float)i;
	memset(&d, 0, sizeof(d));
	d.Width = 64;
	d.Height = 1;
	d.Format = CU_AD_FORMAT_FLOAT;
	d.NumChannels = 1;
	CK(cuArrayCreate(&arr, &d));
	CK(cuMemcpyHtoA(arr, 0, in, sizeof(in)));
	CK(cuMemcpyAtoH(out, arr, 0, sizeof(out)));
	CK(cuArrayDestroy(arr));
	if (memcmp(in, out, sizeof(in))) {
		printf("FAIL array round trip\n");
		return 1;
	}
	printf("PASS array\n");
	return 0;
}

static int family_context(void)
{
	CUcontext c2, cur, popped;
	CUdevice dev;
	unsigned long long id1, id2;
	unsigned flags;
	int active;

	CK(cuCtxCreate(&c2, NULL, 0, 0));
	CK(cuCtxGetCurrent(&cur));
	CK(cuCtxGetId(ctx, &id1));
	CK(cuCtxGetId(c2, &id2));
	if (cur != c2 || id1 == id2) {
		printf("FAIL ctx create/current\n");
		return 1;
	}
	CK(cuCtxPopCurrent(&popped));
	CK(cuCtxGetDevice(&dev));
	CK(cuCtxPushCurrent(c2));
	CK(cuCtxDestroy(c2));
	CK(cuCtxSetCurrent(ctx));
	CK(cuDevicePrimaryCtxGetState(0, &flags, &active));
	if (!active) {
		printf("FAIL primary ctx not active\n");
		return 1;
	}
	printf("PASS context\n");
	return 0;
}

static int family_module(void)
{
	CUlibrary lib;
	CUkernel k;
	CUfunction f;
	CUdeviceptr g;
	size_t gsize;
	const char *name;

	CK(cuLibraryLoadData(&lib, "fakegpu test library", NULL, NULL, 0, NULL, NULL, 0));
	CK(cuLibraryGetKernel(&k, lib, "fakegpu_ns"));
	CK(cuKernelGetFunction(&f, k));
	CK(cuFuncGetName(&name, f));
	CK(cuModuleGetGlobal(&g, &gsize, mod, "some_global"));
	CK(cuMemsetD8(g, 1, 16));
	CK(cuLibraryUnload(lib));
	if (strcmp(name, "fakegpu_ns")) {
		printf("FAIL kernel name\n");
		return 1;
	}
	printf("PASS module\n");
	return 0;
}

static int family_stream_event(void)
{
	CUstream s;
	CUevent a, b;
	float ms = 0;

	CK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CK(cuEventCreate(&a, 0));
	CK(cuEventCreate(&b, 0));
	CK(cuEventRecord(a, s));
	for (int i = 0; i < 4; i++)
		if (launch_ns(5000000, s))
			return 1;
	CK(cuEventRecord(b, s));
	EXPECT(cuEventElapsedTime(&ms, a, b), CUDA_ERROR_NOT_READY);
	EXPECT(cuStreamQuery(s), CUDA_ERROR_NOT_READY);
	CK(cuEventSynchronize(b));
	CK(cuStreamQuery(s));
	CK(cuEventElapsedTime(&ms, a, b));
	CK(cuStreamWaitEvent(NULL, b, 0));
	CK(cuEventDestroy(a));
	CK(cuEventDestroy(b));
	CK(cuStreamDestroy(s));
	if (ms < 19.9f || ms > 40.0f) {
		printf("FAIL elapsed %.3f ms for 4 x 5 ms kernels\n", (double)ms);
		return 1;
	}
	printf("PASS stream_event elapsed_ms=%.3f\n", (double)ms);
	return 0;
}

static int family_launch(void)
{
	CUlaunchConfig cfg;
	CUlaunchAttribute attr;
	uint64_t ns = 1000000;
	void *args[] = { &ns };
	unsigned char buf[8];
	size_t bufsize = sizeof(buf);
	void *extra[] = { CU_LAUNCH_PARAM_BUFFER_POINTER, buf, CU_LAUNCH_PARAM_BUFFER_SIZE,
			  &bufsize, CU_LAUNCH_PARAM_END };

	memset(&cfg, 0, sizeof(cfg));
	cfg.gridDimX = cfg.gridDimY = cfg.gridDimZ = 1;
	cfg.blockDimX = 64;
	cfg.blockDimY = cfg.blockDimZ = 1;
	attr.id = CU_LAUNCH_ATTRIBUTE_COOPERATIVE;
	attr.value.cooperative = 1;
	cfg.attrs = &attr;
	cfg.numAttrs = 1;
	CK(cuLaunchKernelEx(&cfg, sleep_fn, args, NULL));
	CK(cuLaunchCooperativeKernel(plain_fn, (unsigned)sms, 1, 1, 128, 1, 1, 0, NULL, NULL));
	EXPECT(cuLaunchCooperativeKernel(plain_fn, (unsigned)sms * 64, 1, 1, 1024, 1, 1, 0, NULL,
					 NULL), CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE);
	memcpy(buf, &ns, sizeof(ns));
	CK(cuLaunchKernel(sleep_fn, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, extra));
	CK(cuLaunchKernel(plain_fn, (unsigned)sms * 4, 1, 1, 256, 1, 1, 0, CU_STREAM_PER_THREAD,
			  NULL, NULL));
	CK(cuCtxSynchronize());
	printf("PASS launch\n");
	return 0;
}

static int family_graph(void)
{
	CUgraph g, cap;
	CUgraphExec ge, ce;
	CUgraphNode k1, k2, ms;
	CUDA_KERNEL_NODE_PARAMS kp;
	CUDA_MEMSET_NODE_PARAMS mp;
	CUstream s;
	CUdeviceptr d;
	uint64_t ns = 3000000;
	void *args[] = { &ns };
	unsigned char b = 0;
	size_t n = 0;
	double t0, t1;

	CK(cuMemAlloc(&d, 256));
	CK(cuGraphCreate(&g, 0));
	memset(&kp, 0, sizeof(kp));
	kp.func = sleep_fn;
	kp.gridDimX = kp.gridDimY = kp.gridDimZ = 1;
	kp.blockDimX = kp.blockDimY = kp.blockDimZ = 1;
	kp.kernelParams = args;
	CK(cuGraphAddKernelNode(&k1, g, NULL, 0, &kp));
	CK(cuGraphAddKernelNode(&k2, g, &k1, 1, &kp));
	memset(&mp, 0, sizeof(mp));
	mp.dst = d;
	mp.value = 7;
	mp.elementSize = 1;
	mp.width = 256;
	mp.height = 1;
	CK(cuGraphAddMemsetNode(&ms, g, &k2, 1, &mp, ctx));
	CK(cuGraphGetNodes(g, NULL, &n));
	CK(cuGraphInstantiate(&ge, g, 0));
	t0 = now_s();
	CK(cuGraphLaunch(ge, NULL));
	CK(cuStreamSynchronize(NULL));
	t1 = now_s();
	CK(cuMemcpyDtoH(&b, d + 100, 1));
	if (n != 3 || b != 7 || t1 - t0 < 0.0059) {
		printf("FAIL built graph nodes=%zu byte=%u took=%.3f ms\n", n, b, (t1 - t0) * 1e3);
		return 1;
	}
	/* stream capture */
	CK(cuStreamCreate(&s, 0));
	CK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	if (launch_ns(2000000, s) || launch_ns(2000000, s))
		return 1;
	CK(cuMemsetD8Async(d, 9, 256, s));
	CK(cuStreamEndCapture(s, &cap));
	CK(cuMemcpyDtoH(&b, d, 1));
	if (b != 7) {
		printf("FAIL captured work ran during capture\n");
		return 1;
	}
	CK(cuGraphInstantiate(&ce, cap, 0));
	t0 = now_s();
	CK(cuGraphLaunch(ce, s));
	CK(cuStreamSynchronize(s));
	t1 = now_s();
	CK(cuMemcpyDtoH(&b, d, 1));
	if (b != 9 || t1 - t0 < 0.0039) {
		printf("FAIL captured graph byte=%u took=%.3f ms\n", b, (t1 - t0) * 1e3);
		return 1;
	}
	CK(cuGraphExecDestroy(ge));
	CK(cuGraphExecDestroy(ce));
	CK(cuGraphDestroy(g));
	CK(cuGraphDestroy(cap));
	CK(cuStreamDestroy(s));
	CK(cuMemFree(d));
	printf("PASS graph\n");
	return 0;
}

static int family_procaddr(void)
{
	CUresult (*launch)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
			   unsigned, CUstream, void **, void **) = NULL;
	CUresult (*alloc)(CUdeviceptr *, size_t) = NULL;
	CUdriverProcAddressQueryResult st;
	void *fn = NULL;

	CK(cuGetProcAddress("cuLaunchKernel", (void **)&launch, 13000,
			    CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &st));
	CK(cuGetProcAddress("cuMemAlloc", (void **)&alloc, 13000, 0, &st));
	if (alloc != cuMemAlloc_v2 || !launch || (void *)launch == (void *)cuLaunchKernel) {
		printf("FAIL GPA picked alloc=%p launch=%p\n", (void *)alloc, (void *)launch);
		return 1;
	}
	EXPECT(cuGetProcAddress("cuNoSuchFunction", &fn, 13000, 0, &st), CUDA_ERROR_NOT_FOUND);
	if (st != CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND)
		failures++;
	EXPECT(cuGetProcAddress("cuMemAllocAsync", &fn, 11000, 0, &st), CUDA_ERROR_NOT_FOUND);
	if (st != CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT)
		failures++;
	printf("PASS procaddr\n");
	return 0;
}

static void *thread_body(void *arg)
{
	long count = *(long *)arg, i;
	CUstream s;
	CUdeviceptr p;

	if (cuCtxSetCurrent(ctx) || cuStreamCreate(&s, CU_STREAM_NON_BLOCKING))
		return (void *)1;
	for (i = 0; i < count; i++) {
		if (cuMemAlloc(&p, 1 << 20) || launch_ns(100000, s) ||
		    launch_ns(100000, CU_STREAM_PER_THREAD) || cuStreamSynchronize(s) ||
		    cuStreamSynchronize(CU_STREAM_PER_THREAD) || cuMemFree(p))
			return (void *)1;
	}
	return cuStreamDestroy(s) ? (void *)1 : NULL;
}

static int threads(int n, long count)
{
	pthread_t t[64];
	int bad = 0;

	if (n < 1 || n > 64)
		return 1;
	for (int i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, thread_body, &count))
			return 1;
	for (int i = 0; i < n; i++) {
		void *r;

		pthread_join(t[i], &r);
		bad |= r != NULL;
	}
	printf("%s threads\n", bad ? "FAIL" : "PASS");
	return bad;
}

static int families(void)
{
	int bad = 0;

	bad |= family_context();
	bad |= family_memory();
	bad |= family_pool();
	bad |= family_vmm();
	bad |= family_array();
	bad |= family_module();
	bad |= family_stream_event();
	bad |= family_launch();
	bad |= family_graph();
	bad |= family_procaddr();
	return bad;
}

static int errors(void)
{
	CUdeviceptr p;
	CUdevice dev;
	CUstream bogus = (CUstream)(uintptr_t)0x1234560;
	CUevent e;
	CUcontext c;
	const char *s = NULL;
	float ms;
	int n;

	EXPECT(cuDeviceGet(&dev, 99), CUDA_ERROR_INVALID_DEVICE);
	EXPECT(cuDeviceGetCount(NULL), CUDA_ERROR_INVALID_VALUE);
	EXPECT(cuMemAlloc(&p, 0), CUDA_ERROR_INVALID_VALUE);
	EXPECT(cuMemFree((CUdeviceptr)0x1000), CUDA_ERROR_INVALID_VALUE);
	CK(cuMemAlloc(&p, 64));
	CK(cuMemFree(p));
	EXPECT(cuMemFree(p), CUDA_ERROR_INVALID_VALUE);
	EXPECT(cuMemcpyHtoD((CUdeviceptr)0x1000, &n, sizeof(n)), CUDA_ERROR_INVALID_VALUE);
	EXPECT(cuStreamSynchronize(bogus), CUDA_ERROR_INVALID_HANDLE);
	EXPECT(cuLaunchKernel((CUfunction)bogus, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL),
	       CUDA_ERROR_INVALID_HANDLE);
	EXPECT(cuLaunchKernel(plain_fn, 1, 1, 1, 2048, 1, 1, 0, NULL, NULL, NULL),
	       CUDA_ERROR_INVALID_VALUE);
	EXPECT(cuLaunchKernel(plain_fn, 0, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL),
	       CUDA_ERROR_INVALID_VALUE);
	CK(cuEventCreate(&e, CU_EVENT_DISABLE_TIMING));
	CK(cuEventRecord(e, NULL));
	EXPECT(cuEventElapsedTime(&ms, e, e), CUDA_ERROR_INVALID_HANDLE);
	CK(cuEventDestroy(e));
	EXPECT(cuEventDestroy(e), CUDA_ERROR_INVALID_HANDLE);
	EXPECT(cuCtxDestroy(ctx), CUDA_ERROR_INVALID_CONTEXT); /* primary */
	EXPECT(cuGetErrorString((CUresult)12345, &s), CUDA_ERROR_INVALID_VALUE);
	CK(cuGetErrorName(CUDA_ERROR_OUT_OF_MEMORY, &s));
	if (strcmp(s, "CUDA_ERROR_OUT_OF_MEMORY"))
		failures++;
	CK(cuGetErrorString(CUDA_ERROR_INVALID_VALUE, &s));
	if (strcmp(s, "invalid argument"))
		failures++;
	CK(cuCtxPopCurrent(&c));
	EXPECT(cuMemAlloc(&p, 64), CUDA_ERROR_INVALID_CONTEXT);
	CK(cuCtxPushCurrent(c));
	printf("%s errors\n", failures ? "FAIL" : "PASS");
	return failures != 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "basic";
	int rv;

	if (!strcmp(mode, "uninit")) { /* before cuInit everything is NOT_INITIALIZED */
		int n;

		EXPECT(cuDeviceGetCount(&n), CUDA_ERROR_NOT_INITIALIZED);
		printf("%s uninit\n", failures ? "FAIL" : "PASS");
		return failures != 0;
	}
	if (setup())
		return 1;
	if (!strcmp(mode, "basic")) {
		rv = basic();
	} else if (!strcmp(mode, "families")) {
		rv = families();
	} else if (!strcmp(mode, "errors")) {
		rv = errors();
	} else if (!strcmp(mode, "meminfo")) {
		size_t f, t;

		CK(cuMemGetInfo(&f, &t));
		printf("free=%zu total=%zu\n", f, t);
		rv = 0;
	} else if (!strcmp(mode, "hold") && argc > 3) {
		CUdeviceptr p;

		CK(cuMemAlloc(&p, (size_t)atol(argv[2]) << 20));
		printf("holding %s MiB pid=%d\n", argv[2], (int)getpid());
		fflush(stdout);
		sleep((unsigned)atoi(argv[3]));
		rv = 0;
	} else if (!strcmp(mode, "busy") && argc > 2) {
		double end = now_s() + atof(argv[2]) / 1e3;
		uint64_t ns = argc > 3 ? (uint64_t)(atof(argv[3]) * 1e3) : 1000000;
		long k = 0;

		while (now_s() < end) {
			if (launch_ns(ns, NULL))
				return 1;
			CK(cuCtxSynchronize());
			k++;
		}
		printf("launches=%ld pid=%d\n", k, (int)getpid());
		rv = 0;
	} else if (!strcmp(mode, "threads") && argc > 3) {
		rv = threads(atoi(argv[2]), atol(argv[3]));
	} else if (!strcmp(mode, "bench") && argc > 2) {
		long n = atol(argv[2]);
		double t0, info_ns, launch_ns_each, alloc_ns;
		size_t f, t;
		CUdeviceptr p;

		t0 = now_s();
		for (long i = 0; i < n; i++)
			CK(cuMemGetInfo(&f, &t));
		info_ns = (now_s() - t0) * 1e9 / (double)n;
		t0 = now_s();
		for (long i = 0; i < n; i++)
			if (launch_ns(0, NULL))
				return 1;
		launch_ns_each = (now_s() - t0) * 1e9 / (double)n;
		CK(cuCtxSynchronize());
		t0 = now_s();
		for (long i = 0; i < n / 10; i++) {
			CK(cuMemAlloc(&p, 1 << 20));
			CK(cuMemFree(p));
		}
		alloc_ns = (now_s() - t0) * 1e9 / (double)(n / 10 ? n / 10 : 1);
		printf("{\"calls\": %ld, \"mem_get_info_ns\": %.1f, \"launch_ns\": %.1f, "
		       "\"alloc_free_ns\": %.1f}\n", n, info_ns, launch_ns_each, alloc_ns);
		rv = 0;
	} else if (!strcmp(mode, "grid") && argc > 3) {
		unsigned blocks = (unsigned)strtoul(argv[2], NULL, 10);
		long count = atol(argv[3]);

		for (long i = 0; i < count; i++)
			CK(cuLaunchKernel(plain_fn, blocks, 1, 1, 128, 1, 1, 0, NULL, NULL, NULL));
		CK(cuCtxSynchronize());
		printf("launched=%ld\n", count);
		rv = 0;
	} else if (!strcmp(mode, "launch") && argc > 3) {
		uint64_t ns = strtoull(argv[2], NULL, 10);
		long count = atol(argv[3]);
		double t0 = now_s(), t1;

		for (long i = 0; i < count; i++)
			if (launch_ns(ns, NULL))
				return 1;
		t1 = now_s();
		CK(cuCtxSynchronize());
		printf("enqueue_s=%.6f total_s=%.6f pid=%d\n", t1 - t0, now_s() - t0, (int)getpid());
		fflush(stdout);
		if (argc > 4)
			sleep((unsigned)atoi(argv[4]));
		rv = 0;
	} else if (!strcmp(mode, "duty") && argc > 4) {
		double end = now_s() + atof(argv[2]) / 1e3;
		uint64_t on = (uint64_t)(atof(argv[3]) * 1e3);
		useconds_t off = (useconds_t)atol(argv[4]);
		long k = 0;

		while (now_s() < end) {
			if (launch_ns(on, NULL))
				return 1;
			CK(cuCtxSynchronize());
			usleep(off);
			k++;
		}
		printf("launches=%ld pid=%d\n", k, (int)getpid());
		rv = 0;
	} else {
		fprintf(stderr, "usage: test-drv-api basic|families|errors|meminfo|uninit|"
			"hold MIB S|busy MS [US]|launch NS COUNT [LINGER_S]|grid BLOCKS COUNT|"
			"duty MS ON_US OFF_US|threads N COUNT|bench N\n");
		return 2;
	}
	return rv || failures;
}

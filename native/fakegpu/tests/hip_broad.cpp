// fakegpu: broader HIP runtime coverage on the simulated AMD GPU (hipcc, AMD platform):
// streams and events, graph capture, stream-ordered and pool allocation, managed, pitch and
// array memory, virtual memory management, hipExtLaunchKernel, cooperative launches, modules.
// Prints one line per check and "OK" at the end; exit 0 when everything passed.
#include <hip/hip_ext.h>
#include <hip/hip_runtime.h>

#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#define CHECK(x)                                                                          \
	do {                                                                              \
		hipError_t e_ = (x);                                                      \
		if (e_ != hipSuccess) {                                                   \
			std::printf("FAIL %s:%d %s -> %d %s\n", __FILE__, __LINE__, #x,   \
				    (int)e_, hipGetErrorName(e_));                        \
			return 1;                                                         \
		}                                                                         \
	} while (0)
#define EXPECT(x, code)                                                                   \
	do {                                                                              \
		hipError_t e_ = (x);                                                      \
		if (e_ != (code)) {                                                       \
			std::printf("FAIL %s:%d %s -> %d, expected %d\n", __FILE__, __LINE__, \
				    #x, (int)e_, (int)(code));                            \
			return 1;                                                         \
		}                                                                         \
		(void)hipGetLastError();                                                  \
	} while (0)

extern "C" __global__ void fakegpu_ns(unsigned long long ns)
{
	(void)ns;
}

__device__ int table[16];

static int symbols()
{
	int in[16], out[16] = {};
	size_t size = 0;
	void *addr = nullptr;
	hipFuncAttributes fa;
	for (int i = 0; i < 16; i++)
		in[i] = i * i;
	CHECK(hipMemcpyToSymbol(HIP_SYMBOL(table), in, sizeof(in)));
	CHECK(hipMemcpyFromSymbol(out, HIP_SYMBOL(table), sizeof(out)));
	CHECK(hipGetSymbolSize(&size, HIP_SYMBOL(table)));
	CHECK(hipGetSymbolAddress(&addr, HIP_SYMBOL(table)));
	if (std::memcmp(in, out, sizeof(in)) || size != sizeof(in) || !addr)
		return std::printf("FAIL symbol copy (size %zu)\n", size), 1;
	EXPECT(hipMemcpyToSymbol(HIP_SYMBOL(table), in, sizeof(in), 4), hipErrorInvalidValue);
	CHECK(hipFuncGetAttributes(&fa, (const void *)fakegpu_ns));
	if (fa.maxThreadsPerBlock != 1024)
		return std::printf("FAIL func attributes\n"), 1;
	std::printf("symbols ok\n");
	return 0;
}

static size_t used_mib()
{
	size_t fr = 0, tot = 0;
	if (hipMemGetInfo(&fr, &tot) != hipSuccess)
		return (size_t)-1;
	return (tot - fr) >> 20;
}

static int streams_events()
{
	hipStream_t s;
	hipEvent_t a, b;
	float ms = 0;
	CHECK(hipStreamCreateWithFlags(&s, hipStreamNonBlocking));
	CHECK(hipEventCreate(&a));
	CHECK(hipEventCreate(&b));
	CHECK(hipEventRecord(a, s));
	fakegpu_ns<<<1, 1, 0, s>>>(30000000ULL); // 30 ms
	CHECK(hipEventRecord(b, s));
	EXPECT(hipStreamQuery(s), hipErrorNotReady);
	EXPECT(hipEventElapsedTime(&ms, a, b), hipErrorNotReady);
	CHECK(hipStreamSynchronize(s));
	CHECK(hipStreamQuery(s));
	CHECK(hipEventElapsedTime(&ms, a, b));
	if (ms < 29.0f || ms > 500.0f) {
		std::printf("FAIL event time %.3f ms\n", ms);
		return 1;
	}
	CHECK(hipStreamWaitEvent(s, a, 0));
	CHECK(hipEventDestroy(a));
	CHECK(hipEventDestroy(b));
	CHECK(hipStreamDestroy(s));
	EXPECT(hipStreamSynchronize(s), hipErrorInvalidHandle);
	std::printf("streams/events ok (%.1f ms)\n", ms);
	return 0;
}

static int graphs()
{
	hipStream_t s;
	hipGraph_t g;
	hipGraphExec_t x;
	hipStreamCaptureStatus st;
	CHECK(hipStreamCreate(&s));
	CHECK(hipStreamBeginCapture(s, hipStreamCaptureModeGlobal));
	CHECK(hipStreamIsCapturing(s, &st));
	if (st != hipStreamCaptureStatusActive)
		return std::printf("FAIL not capturing\n"), 1;
	for (int i = 0; i < 4; i++)
		fakegpu_ns<<<1, 1, 0, s>>>(5000000ULL); // 4 x 5 ms, recorded
	CHECK(hipStreamEndCapture(s, &g));
	CHECK(hipGraphInstantiate(&x, g, nullptr, nullptr, 0));
	CHECK(hipGraphLaunch(x, s));
	CHECK(hipGraphLaunch(x, s));
	EXPECT(hipStreamQuery(s), hipErrorNotReady);
	CHECK(hipStreamSynchronize(s));
	CHECK(hipGraphExecDestroy(x));
	CHECK(hipGraphDestroy(g));
	CHECK(hipStreamDestroy(s));
	std::printf("graphs ok\n");
	return 0;
}

static int memory()
{
	size_t base = used_mib(), pitch = 0;
	void *a, *b, *m, *p, *h;
	hipMemPool_t pool;
	hipArray *arr;
	hipChannelFormatDesc desc = hipCreateChannelDesc(32, 0, 0, 0, hipChannelFormatKindFloat);
	HIP_ARRAY_DESCRIPTOR ad = {};
	CHECK(hipMallocAsync(&a, 64 << 20, 0));
	CHECK(hipDeviceGetDefaultMemPool(&pool, 0));
	CHECK(hipMallocFromPoolAsync(&b, 32 << 20, pool, 0));
	CHECK(hipMallocManaged(&m, 16 << 20, hipMemAttachGlobal));
	CHECK(hipMallocPitch(&p, &pitch, 1000, 1024)); // 1 MiB with 1024-byte rows
	CHECK(hipExtMallocWithFlags(&h, 8 << 20, hipDeviceMallocFinegrained));
	CHECK(hipMallocArray(&arr, &desc, 1024, 1024, 0)); // 4 MiB
	if (used_mib() != base + 64 + 32 + 16 + 1 + 8 + 4 || pitch != 1024) {
		std::printf("FAIL used %zu MiB over %zu, pitch %zu\n", used_mib(), base, pitch);
		return 1;
	}
	std::memset(m, 7, 16 << 20); // managed memory is host accessible
	CHECK(hipFreeAsync(a, 0));
	CHECK(hipFreeAsync(b, 0));
	CHECK(hipFree(m));
	CHECK(hipFree(p));
	CHECK(hipFree(h));
	CHECK(hipFreeArray(arr));
	ad.Width = 256;
	ad.Height = 256;
	ad.Format = HIP_AD_FORMAT_FLOAT;
	ad.NumChannels = 4;
	CHECK(hipArrayCreate(&arr, &ad)); // 1 MiB
	CHECK(hipArrayDestroy(arr));
	EXPECT(hipFree((void *)0x1234), hipErrorInvalidDevicePointer);
	if (used_mib() != base)
		return std::printf("FAIL leak: %zu MiB over %zu\n", used_mib(), base), 1;
	void *host;
	CHECK(hipHostMalloc(&host, 1 << 20, 0));
	CHECK(hipHostFree(host));
	std::printf("memory ok\n");
	return 0;
}

static int vmm()
{
	size_t gran = 0, base = used_mib();
	hipMemAllocationProp prop = {};
	hipMemGenericAllocationHandle_t hnd;
	hipMemAccessDesc acc = {};
	void *va;
	prop.type = hipMemAllocationTypePinned;
	prop.location.type = hipMemLocationTypeDevice;
	prop.location.id = 0;
	CHECK(hipMemGetAllocationGranularity(&gran, &prop, hipMemAllocationGranularityMinimum));
	CHECK(hipMemCreate(&hnd, 8 << 20, &prop, 0));
	CHECK(hipMemAddressReserve(&va, 16 << 20, 0, nullptr, 0));
	CHECK(hipMemMap(va, 8 << 20, 0, hnd, 0));
	CHECK(hipMemMap((char *)va + (8 << 20), 8 << 20, 0, hnd, 0));
	acc.location = prop.location;
	acc.flags = hipMemAccessFlagsProtReadWrite;
	CHECK(hipMemSetAccess(va, 16 << 20, &acc, 1));
	std::strcpy((char *)va, "shared");
	if (std::strcmp((char *)va + (8 << 20), "shared"))
		return std::printf("FAIL mappings do not share bytes\n"), 1;
	if (used_mib() != base + 8)
		return std::printf("FAIL vmm used %zu over %zu\n", used_mib(), base), 1;
	CHECK(hipMemRelease(hnd)); // still mapped: still charged
	if (used_mib() != base + 8)
		return std::printf("FAIL released while mapped\n"), 1;
	CHECK(hipMemUnmap(va, 8 << 20));
	CHECK(hipMemUnmap((char *)va + (8 << 20), 8 << 20));
	CHECK(hipMemAddressFree(va, 16 << 20));
	if (used_mib() != base)
		return std::printf("FAIL vmm leak %zu over %zu\n", used_mib(), base), 1;
	std::printf("vmm ok (granularity %zu)\n", gran);
	return 0;
}

static int launches()
{
	hipEvent_t a, b;
	float ms = 0;
	unsigned long long ns = 10000000ULL;
	void *args[] = { &ns };
	int cus = 0;
	CHECK(hipEventCreate(&a));
	CHECK(hipEventCreate(&b));
	CHECK(hipExtLaunchKernel((const void *)fakegpu_ns, dim3(1), dim3(1), args, 0, 0, a, b, 0));
	CHECK(hipEventSynchronize(b));
	CHECK(hipEventElapsedTime(&ms, a, b));
	if (ms < 9.0f)
		return std::printf("FAIL ext launch %.3f ms\n", ms), 1;
	CHECK(hipDeviceGetAttribute(&cus, hipDeviceAttributeMultiprocessorCount, 0));
	CHECK(hipLaunchCooperativeKernel((const void *)fakegpu_ns, dim3(cus), dim3(64), args, 0, 0));
	EXPECT(hipLaunchCooperativeKernel((const void *)fakegpu_ns, dim3(cus * 1000), dim3(1024),
					  args, 0, 0),
	       hipErrorCooperativeLaunchTooLarge);
	EXPECT(hipLaunchKernel((const void *)used_mib, dim3(1), dim3(1), nullptr, 0, 0),
	       hipErrorInvalidDeviceFunction);
	fakegpu_ns<<<1, 2048>>>(1); // too many threads per block
	EXPECT(hipGetLastError(), hipErrorInvalidConfiguration);
	EXPECT(hipPeekAtLastError(), hipSuccess);

	// modules: any code object loads; launches queue like any kernel
	hipModule_t mod;
	hipFunction_t f;
	char path[] = "/tmp/fakegpu-hip-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return std::printf("FAIL mkstemp\n"), 1;
	close(fd);
	CHECK(hipModuleLoad(&mod, path));
	unlink(path);
	CHECK(hipModuleGetFunction(&f, mod, "fakegpu_ns"));
	CHECK(hipEventRecord(a, 0));
	CHECK(hipModuleLaunchKernel(f, 1, 1, 1, 64, 1, 1, 0, 0, args, nullptr));
	CHECK(hipEventRecord(b, 0));
	CHECK(hipDeviceSynchronize());
	CHECK(hipEventElapsedTime(&ms, a, b));
	if (ms < 9.0f)
		return std::printf("FAIL module launch %.3f ms\n", ms), 1;
	CHECK(hipModuleUnload(mod));
	EXPECT(hipModuleLoad(&mod, "/nonexistent/x.co"), hipErrorFileNotFound);
	CHECK(hipEventDestroy(a));
	CHECK(hipEventDestroy(b));
	std::printf("launches ok\n");
	return 0;
}

int main()
{
	int n = 0;
	CHECK(hipGetDeviceCount(&n));
	CHECK(hipSetDevice(0));
	if (streams_events() || graphs() || memory() || vmm() || launches() || symbols())
		return 1;
	if (n > 1) { // the second device has its own memory and timeline
		size_t fr0, tot0, fr1, tot1;
		void *p;
		CHECK(hipMemGetInfo(&fr0, &tot0));
		CHECK(hipSetDevice(1));
		CHECK(hipMalloc(&p, 1 << 20));
		fakegpu_ns<<<1, 1>>>(1000000ULL);
		CHECK(hipDeviceSynchronize());
		CHECK(hipMemGetInfo(&fr1, &tot1));
		CHECK(hipFree(p));
		std::printf("device 1: total %zu MiB\n", tot1 >> 20);
	}
	CHECK(hipDeviceSynchronize());
	std::printf("OK\n");
	return 0;
}

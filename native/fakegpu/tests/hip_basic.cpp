// fakegpu: a HIP program built with hipcc for the AMD platform; run it on the simulated AMD
// GPU (LD_LIBRARY_PATH=build/fakegpu FAKEGPU_STATE=<amd state file>).
//   props                 device count and properties as JSON
//   meminfo               hipMemGetInfo as JSON
//   hold MIB S            allocate MIB MiB, print "ready", sleep S seconds
//   oom                   allocating more than is free gives hipErrorOutOfMemory
//   launch NS COUNT       COUNT kernels of NS ns each (fakegpu_ns), then synchronize
//   grid BLOCKS COUNT     COUNT ordinary kernels of BLOCKS blocks, then synchronize
//   basic                 malloc, copies, kernels, events, synchronize, free
#include <hip/hip_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#define CHECK(x)                                                                          \
	do {                                                                              \
		hipError_t e_ = (x);                                                      \
		if (e_ != hipSuccess) {                                                   \
			std::printf("FAIL %s:%d %s -> %d %s\n", __FILE__, __LINE__, #x,   \
				    (int)e_, hipGetErrorName(e_));                        \
			return 1;                                                         \
		}                                                                         \
	} while (0)

extern "C" __global__ void fakegpu_ns(unsigned long long ns)
{
	(void)ns;
}

__global__ void add_one(float *x, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		x[i] += 1.0f;
}

static int props()
{
	int n = 0, rt = 0, drv = 0;
	CHECK(hipGetDeviceCount(&n));
	CHECK(hipRuntimeGetVersion(&rt));
	CHECK(hipDriverGetVersion(&drv));
	std::printf("{\"count\":%d,\"runtime\":%d,\"driver\":%d,\"devices\":[", n, rt, drv);
	for (int i = 0; i < n; i++) {
		hipDeviceProp_t p;
		size_t total = 0;
		int cus = 0, warp = 0;
		char bus[32];
		CHECK(hipGetDeviceProperties(&p, i));
		CHECK(hipDeviceTotalMem(&total, i));
		CHECK(hipDeviceGetAttribute(&cus, hipDeviceAttributeMultiprocessorCount, i));
		CHECK(hipDeviceGetAttribute(&warp, hipDeviceAttributeWarpSize, i));
		CHECK(hipDeviceGetPCIBusId(bus, sizeof(bus), i));
		std::printf("%s{\"name\":\"%s\",\"arch\":\"%s\",\"total\":%zu,\"total_mem\":%zu,"
			    "\"cus\":%d,\"cus_attr\":%d,\"warp\":%d,\"major\":%d,\"minor\":%d,"
			    "\"bus\":\"%s\"}",
			    i ? "," : "", p.name, p.gcnArchName, p.totalGlobalMem, total,
			    p.multiProcessorCount, cus, warp, p.major, p.minor, bus);
	}
	std::printf("]}\n");
	int bad = 0;
	hipError_t e = hipSetDevice(n);
	if (e != hipErrorInvalidDevice) {
		std::printf("FAIL hipSetDevice(%d) -> %d\n", n, (int)e);
		bad = 1;
	}
	return bad;
}

static int meminfo()
{
	size_t fr = 0, tot = 0;
	CHECK(hipMemGetInfo(&fr, &tot));
	std::printf("{\"free\":%zu,\"total\":%zu}\n", fr, tot);
	return 0;
}

static int hold(size_t mib, int secs)
{
	void *p = nullptr;
	CHECK(hipMalloc(&p, mib << 20));
	std::printf("ready\n");
	std::fflush(stdout);
	std::this_thread::sleep_for(std::chrono::seconds(secs));
	CHECK(hipFree(p));
	return 0;
}

static int oom()
{
	size_t fr = 0, tot = 0;
	void *p = nullptr, *q = nullptr;
	CHECK(hipMemGetInfo(&fr, &tot));
	hipError_t e = hipMalloc(&p, fr + (1 << 20));
	hipError_t last = hipGetLastError();
	hipError_t after = hipGetLastError();
	std::printf("{\"code\":%d,\"name\":\"%s\",\"last\":%d,\"after\":%d,\"ptr_null\":%s}\n",
		    (int)e, hipGetErrorName(e), (int)last, (int)after, p ? "false" : "true");
	CHECK(hipMalloc(&q, fr / 2)); // what fits still does
	CHECK(hipFree(q));
	return e == hipErrorOutOfMemory ? 0 : 1;
}

static int launch(unsigned long long ns, int count)
{
	auto t0 = std::chrono::steady_clock::now();
	for (int i = 0; i < count; i++)
		fakegpu_ns<<<1, 64>>>(ns);
	CHECK(hipGetLastError());
	CHECK(hipDeviceSynchronize());
	auto t1 = std::chrono::steady_clock::now();
	std::printf("{\"elapsed_ns\":%lld}\n",
		    (long long)std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
	return 0;
}

static int grid(unsigned blocks, int count)
{
	float *d = nullptr;
	CHECK(hipMalloc(&d, 4096));
	for (int i = 0; i < count; i++)
		hipLaunchKernelGGL(add_one, dim3(blocks), dim3(256), 0, 0, d, 1024);
	CHECK(hipGetLastError());
	CHECK(hipDeviceSynchronize());
	CHECK(hipFree(d));
	std::printf("ok\n");
	return 0;
}

static int basic()
{
	const int n = 1024;
	float h[n], back[n];
	float *d = nullptr;
	hipEvent_t a, b;
	float ms = 0;
	for (int i = 0; i < n; i++)
		h[i] = (float)i;
	CHECK(hipMalloc(&d, sizeof(h)));
	CHECK(hipMemcpy(d, h, sizeof(h), hipMemcpyHostToDevice));
	CHECK(hipEventCreate(&a));
	CHECK(hipEventCreate(&b));
	CHECK(hipEventRecord(a, 0));
	fakegpu_ns<<<1, 1>>>(20000000ULL); // 20 ms
	add_one<<<4, 256>>>(d, n);
	CHECK(hipGetLastError());
	CHECK(hipEventRecord(b, 0));
	CHECK(hipEventSynchronize(b));
	CHECK(hipEventElapsedTime(&ms, a, b));
	CHECK(hipMemcpy(back, d, sizeof(back), hipMemcpyDeviceToHost));
	if (std::memcmp(h, back, sizeof(h))) { // kernels do not run: the data comes back as is
		std::printf("FAIL copy round trip\n");
		return 1;
	}
	CHECK(hipMemset(d, 0, sizeof(h)));
	CHECK(hipMemcpy(back, d, sizeof(back), hipMemcpyDeviceToHost));
	if (back[7] != 0.0f) {
		std::printf("FAIL memset\n");
		return 1;
	}
	CHECK(hipEventDestroy(a));
	CHECK(hipEventDestroy(b));
	CHECK(hipFree(d));
	hipError_t e = hipFree((void *)h); // not device memory
	std::printf("{\"elapsed_ms\":%.3f,\"bad_free\":%d}\n", ms, (int)e);
	return ms >= 19.0f && ms < 1000.0f && e != hipSuccess ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "basic";
	if (!std::strcmp(mode, "props"))
		return props();
	if (!std::strcmp(mode, "meminfo"))
		return meminfo();
	if (!std::strcmp(mode, "hold") && argc > 3)
		return hold(std::strtoull(argv[2], nullptr, 10), std::atoi(argv[3]));
	if (!std::strcmp(mode, "oom"))
		return oom();
	if (!std::strcmp(mode, "launch") && argc > 3)
		return launch(std::strtoull(argv[2], nullptr, 10), std::atoi(argv[3]));
	if (!std::strcmp(mode, "grid") && argc > 3)
		return grid((unsigned)std::strtoul(argv[2], nullptr, 10), std::atoi(argv[3]));
	if (!std::strcmp(mode, "basic"))
		return basic();
	std::fprintf(stderr, "usage: test-hip-basic props|meminfo|hold MIB S|oom|launch NS COUNT|"
			     "grid BLOCKS COUNT|basic\n");
	return 2;
}

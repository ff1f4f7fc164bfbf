// The hook's HIP probe (tests/test_hook_hip.py): a hipcc-built program scripted from the
// command line, run under LD_PRELOAD=libvgpu.so on the simulated AMD GPU. One output line per
// command, "<cmd> rc=<hipError_t> key=value ...":
//   info                  hipMemGetInfo (free, total), hipDeviceTotalMem(0), device count
//   alloc PATH MIB        allocate MIB MiB through PATH and keep it: malloc ext managed pitch
//                         mempitch async pool array arraycreate vmm
//   fill PATH MIB         allocate MIB MiB at a time through PATH until one fails (n = granted)
//   freeall               free everything kept, each through its own free path
//   ready | wait | sleep MS   print "ready" / read a line from stdin / sleep
//   launch KIND NS COUNT  COUNT kernels of NS ns through KIND (launch ext coop module graph
//                         spt), synchronize; ms = wall time
//   spin KIND NS SECONDS  keep about 1 ms of such kernels queued for SECONDS
#include <hip/hip_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

extern "C" __global__ void fakegpu_ns(unsigned long long ns)
{
	(void)ns;
}

struct kept {
	std::string path;
	void *ptr;
	hipArray_t arr;
	hipMemGenericAllocationHandle_t hnd;
};
static std::vector<kept> held;
static hipModule_t mod;
static hipFunction_t modfn;

static hipError_t alloc(const std::string &path, size_t mib)
{
	size_t bytes = mib << 20, pitch = 0;
	kept k{path, nullptr, nullptr, 0};
	hipError_t r;
	if (path == "malloc") {
		r = hipMalloc(&k.ptr, bytes);
	} else if (path == "ext") {
		r = hipExtMallocWithFlags(&k.ptr, bytes, hipDeviceMallocDefault);
	} else if (path == "managed") {
		r = hipMallocManaged(&k.ptr, bytes, hipMemAttachGlobal);
	} else if (path == "pitch") {
		r = hipMallocPitch(&k.ptr, &pitch, 1 << 20, mib);
	} else if (path == "mempitch") {
		r = hipMemAllocPitch((hipDeviceptr_t *)&k.ptr, &pitch, 1 << 20, mib, 4);
	} else if (path == "async") {
		r = hipMallocAsync(&k.ptr, bytes, 0);
	} else if (path == "pool") {
		hipMemPool_t pool;
		r = hipDeviceGetDefaultMemPool(&pool, 0);
		if (r == hipSuccess)
			r = hipMallocFromPoolAsync(&k.ptr, bytes, pool, 0);
	} else if (path == "array") {
		hipChannelFormatDesc d = hipCreateChannelDesc(32, 0, 0, 0, hipChannelFormatKindFloat);
		r = hipMallocArray(&k.arr, &d, 1024, 256 * mib, 0);
	} else if (path == "arraycreate") {
		HIP_ARRAY_DESCRIPTOR d = {};
		d.Width = 1024;
		d.Height = 256 * mib;
		d.Format = HIP_AD_FORMAT_FLOAT;
		d.NumChannels = 1;
		r = hipArrayCreate(&k.arr, &d);
	} else if (path == "vmm") {
		hipMemAllocationProp prop = {};
		prop.type = hipMemAllocationTypePinned;
		prop.location.type = hipMemLocationTypeDevice;
		prop.location.id = 0;
		r = hipMemCreate(&k.hnd, bytes, &prop, 0);
	} else {
		return hipErrorInvalidValue;
	}
	if (r == hipSuccess)
		held.push_back(k);
	return r;
}

static hipError_t release(const kept &k)
{
	if (k.path == "async" || k.path == "pool") {
		hipError_t r = hipFreeAsync(k.ptr, 0);
		return r ? r : hipStreamSynchronize(0);
	}
	if (k.path == "array")
		return hipFreeArray(k.arr);
	if (k.path == "arraycreate")
		return hipArrayDestroy(k.arr);
	if (k.path == "vmm")
		return hipMemRelease(k.hnd);
	return hipFree(k.ptr);
}

static hipError_t launch_one(const std::string &kind, unsigned long long ns, hipStream_t s)
{
	void *args[] = {&ns};
	if (kind == "launch")
		return hipLaunchKernel((const void *)fakegpu_ns, dim3(1), dim3(1), args, 0, s);
	if (kind == "chevron") {
		fakegpu_ns<<<1, 1, 0, s>>>(ns);
		return hipGetLastError();
	}
	if (kind == "ext")
		return hipExtLaunchKernel((const void *)fakegpu_ns, dim3(1), dim3(1), args, 0, s,
					  nullptr, nullptr, 0);
	if (kind == "coop")
		return hipLaunchCooperativeKernel((const void *)fakegpu_ns, dim3(1), dim3(1), args, 0,
						  s);
	if (kind == "module") {
		if (!modfn) {
			char path[] = "/tmp/vgpu-hip-probe-XXXXXX";
			int fd = mkstemp(path);
			if (fd < 0)
				return hipErrorFileNotFound;
			close(fd);
			hipError_t r = hipModuleLoad(&mod, path);
			unlink(path);
			if (r == hipSuccess)
				r = hipModuleGetFunction(&modfn, mod, "fakegpu_ns");
			if (r != hipSuccess)
				return r;
		}
		return hipModuleLaunchKernel(modfn, 1, 1, 1, 1, 1, 1, 0, s, args, nullptr);
	}
	return hipErrorInvalidValue;
}

/* A graph of one kernel of ns ns, instantiated once per (ns). */
static hipError_t launch_graph(unsigned long long ns, hipStream_t s)
{
	static hipGraphExec_t exec;
	static unsigned long long made_ns;
	if (!exec || made_ns != ns) {
		hipStream_t cs;
		hipGraph_t g;
		hipError_t r = hipStreamCreate(&cs);
		if (r)
			return r;
		if ((r = hipStreamBeginCapture(cs, hipStreamCaptureModeGlobal)))
			return r;
		fakegpu_ns<<<1, 1, 0, cs>>>(ns);
		if ((r = hipStreamEndCapture(cs, &g)) || (r = hipGraphInstantiate(&exec, g, nullptr, nullptr, 0)))
			return r;
		made_ns = ns;
	}
	return hipGraphLaunch(exec, s);
}

static hipError_t launch(const std::string &kind, unsigned long long ns, hipStream_t s)
{
	return kind == "graph" ? launch_graph(ns, s) : launch_one(kind, ns, s);
}

static double now_s()
{
	return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
		.count();
}

int main(int argc, char **argv)
{
	std::setvbuf(stdout, nullptr, _IOLBF, 0);
	for (int i = 1; i < argc; i++) {
		std::string cmd = argv[i];
		auto arg = [&](void) -> const char * { return i + 1 < argc ? argv[++i] : "0"; };
		if (cmd == "info") {
			size_t fr = 0, total = 0, dt = 0;
			int n = 0;
			hipError_t r = hipMemGetInfo(&fr, &total);
			hipError_t r2 = hipDeviceTotalMem(&dt, 0);
			(void)hipGetDeviceCount(&n);
			std::printf("info rc=%d free=%zu total=%zu devtotal_rc=%d devtotal=%zu count=%d\n",
				    (int)r, fr, total, (int)r2, dt, n);
		} else if (cmd == "alloc") {
			std::string path = arg();
			size_t mib = std::strtoull(arg(), nullptr, 10);
			std::printf("alloc rc=%d path=%s\n", (int)alloc(path, mib), path.c_str());
		} else if (cmd == "fill") {
			std::string path = arg();
			size_t mib = std::strtoull(arg(), nullptr, 10);
			hipError_t r;
			int n = 0;
			while ((r = alloc(path, mib)) == hipSuccess && n < 100000)
				n++;
			std::printf("fill rc=%d n=%d\n", (int)r, n);
		} else if (cmd == "freeall") {
			hipError_t first = hipSuccess;
			int n = 0;
			for (const kept &k : held) {
				hipError_t r = release(k);
				if (r != hipSuccess && first == hipSuccess)
					first = r;
				n++;
			}
			held.clear();
			std::printf("freeall rc=%d n=%d\n", (int)first, n);
		} else if (cmd == "ready") {
			std::printf("ready\n");
		} else if (cmd == "wait") {
			char line[64];
			if (!std::fgets(line, sizeof line, stdin))
				return 1;
		} else if (cmd == "sleep") {
			std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(arg())));
		} else if (cmd == "launch") {
			std::string kind = arg();
			unsigned long long ns = std::strtoull(arg(), nullptr, 10);
			int count = std::atoi(arg());
			double t0 = now_s();
			hipError_t r = hipSuccess;
			for (int k = 0; k < count && r == hipSuccess; k++)
				r = launch(kind, ns, 0);
			if (r == hipSuccess)
				r = hipDeviceSynchronize();
			std::printf("launch rc=%d kind=%s ms=%.1f\n", (int)r, kind.c_str(),
				    (now_s() - t0) * 1e3);
		} else if (cmd == "spin") {
			std::string kind = arg();
			unsigned long long ns = std::strtoull(arg(), nullptr, 10);
			double secs = std::atof(arg());
			int batch = ns >= 1000000 ? 1 : (int)(1000000 / (ns ? ns : 1));
			hipEvent_t ev[2];
			(void)hipEventCreate(&ev[0]);
			(void)hipEventCreate(&ev[1]);
			hipError_t r = hipSuccess;
			long n = 0;
			double t0 = now_s();
			for (int b = 0; now_s() - t0 < secs && r == hipSuccess; b++) {
				for (int k = 0; k < batch && r == hipSuccess; k++, n++)
					r = launch(kind, ns, 0);
				(void)hipEventRecord(ev[b & 1], 0);
				if (b > 0)
					(void)hipEventSynchronize(ev[(b + 1) & 1]); /* one batch stays queued */
			}
			(void)hipDeviceSynchronize();
			std::printf("spin rc=%d n=%ld\n", (int)r, n);
		} else {
			std::printf("%s rc=-1 unknown=1\n", cmd.c_str());
			return 2;
		}
	}
	return 0;
}

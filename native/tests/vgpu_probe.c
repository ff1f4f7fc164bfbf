/*
 * vgpu_probe: a driver-API program that the hook's tests script from the command line.
 * Built three ways, one per lookup path the hook must cover:
 *   -DPROBE_LINKED  linked -lcuda (calls bind through the dynamic linker)
 *   -DPROBE_DLSYM   dlopen("libcuda.so.1") + dlsym of every function
 *   -DPROBE_GPA     dlopen + dlsym("cuGetProcAddress_v2") + cuGetProcAddress for the rest
 *                   (PROBE_PTSZ=1 asks for the per-thread-default-stream variants)
 *
 * usage: vgpu_probe CMD [ARG...] [CMD [ARG...]]...    (sizes accept K, M, G suffixes)
 *   info | total | alloc N | fill CHUNK | free | managed N | pitch W H | async N | freeasync |
 *   pool N | keep N (default pool's release threshold) |
 *   vmm N | vmmfree | array W H | array3d W H D | mipmap W H LEVELS | arrayfree |
 *   launch N | launchex N | coop N | graph N | busy MS [KIND] | sync | sleep MS | hold | fork |
 *   rtldnext | churn N MAX | wait (until a line arrives on stdin)
 * Each command prints one line "<cmd> rc=<CUresult> [key=value]..." on stdout. `hold` prints
 * "hold ready" and sleeps until killed; busy syncs after every PROBE_BATCH launches (default 1); `fork` runs the remaining commands in a child (which
 * calls cuInit and makes its own context) and waits for it. PROBE_DEVICE picks the device.
 */
#define _GNU_SOURCE
#include <cuda.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_HELD 4096

static struct {
	CUresult (*init)(unsigned int);
	CUresult (*device_get)(CUdevice *, int);
	CUresult (*primary_retain)(CUcontext *, CUdevice);
	CUresult (*ctx_set)(CUcontext);
	CUresult (*mem_info)(size_t *, size_t *);
	CUresult (*total_mem)(size_t *, CUdevice);
	CUresult (*alloc)(CUdeviceptr *, size_t);
	CUresult (*free)(CUdeviceptr);
	CUresult (*managed)(CUdeviceptr *, size_t, unsigned int);
	CUresult (*pitch)(CUdeviceptr *, size_t *, size_t, size_t, unsigned int);
	CUresult (*alloc_async)(CUdeviceptr *, size_t, CUstream);
	CUresult (*free_async)(CUdeviceptr, CUstream);
	CUresult (*pool_get)(CUmemoryPool *, CUdevice);
	CUresult (*alloc_pool)(CUdeviceptr *, size_t, CUmemoryPool, CUstream);
	CUresult (*pool_set)(CUmemoryPool, CUmemPool_attribute, void *);
	CUresult (*mem_create)(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *,
			       unsigned long long);
	CUresult (*mem_release)(CUmemGenericAllocationHandle);
	CUresult (*array_create)(CUarray *, const CUDA_ARRAY_DESCRIPTOR *);
	CUresult (*array3d_create)(CUarray *, const CUDA_ARRAY3D_DESCRIPTOR *);
	CUresult (*array_destroy)(CUarray);
	CUresult (*mipmap_create)(CUmipmappedArray *, const CUDA_ARRAY3D_DESCRIPTOR *, unsigned int);
	CUresult (*mipmap_destroy)(CUmipmappedArray);
	CUresult (*module_load)(CUmodule *, const void *);
	CUresult (*module_function)(CUfunction *, CUmodule, const char *);
	CUresult (*launch)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
			   unsigned, CUstream, void **, void **);
	CUresult (*launch_ex)(const CUlaunchConfig *, CUfunction, void **, void **);
	CUresult (*coop)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
			 unsigned, CUstream, void **);
	CUresult (*graph_create)(CUgraph *, unsigned int);
	CUresult (*graph_add_kernel)(CUgraphNode *, CUgraph, const CUgraphNode *, size_t,
				     const CUDA_KERNEL_NODE_PARAMS *);
	CUresult (*graph_instantiate)(CUgraphExec *, CUgraph, unsigned long long);
	CUresult (*graph_launch)(CUgraphExec, CUstream);
	CUresult (*ctx_sync)(void);
	CUresult (*attr)(int *, CUdevice_attribute, CUdevice);
	CUresult (*event_create)(CUevent *, unsigned int);
	CUresult (*event_record)(CUevent, CUstream);
	CUresult (*event_sync)(CUevent);
} api;

#define PTR(field) ((void **)&api.field)

#if defined(PROBE_LINKED)
/* Weak: a driver (or simulated one) without them still runs the rest; calls report 500. */
#pragma weak cuArrayCreate_v2
#pragma weak cuArray3DCreate_v2
#pragma weak cuArrayDestroy
#pragma weak cuMipmappedArrayCreate
#pragma weak cuMipmappedArrayDestroy
#pragma weak cuMemAllocFromPoolAsync
#pragma weak cuDeviceGetDefaultMemPool
#pragma weak cuGraphCreate
#pragma weak cuGraphAddKernelNode_v2
#pragma weak cuGraphInstantiateWithFlags
#pragma weak cuGraphLaunch
#pragma weak cuLaunchKernelEx
#pragma weak cuLaunchCooperativeKernel
#pragma weak cuMemCreate
#pragma weak cuMemRelease
#pragma weak cuMemAllocAsync
#pragma weak cuMemFreeAsync
#pragma weak cuMemAllocManaged
static int load_api(void)
{
	api.init = cuInit;
	api.device_get = cuDeviceGet;
	api.primary_retain = cuDevicePrimaryCtxRetain;
	api.ctx_set = cuCtxSetCurrent;
	api.mem_info = cuMemGetInfo;
	api.total_mem = cuDeviceTotalMem;
	api.alloc = cuMemAlloc;
	api.free = cuMemFree;
	api.managed = cuMemAllocManaged;
	api.pitch = cuMemAllocPitch;
	api.alloc_async = cuMemAllocAsync;
	api.free_async = cuMemFreeAsync;
	api.pool_get = cuDeviceGetDefaultMemPool;
	api.alloc_pool = cuMemAllocFromPoolAsync;
	api.pool_set = cuMemPoolSetAttribute;
	api.mem_create = cuMemCreate;
	api.mem_release = cuMemRelease;
	api.array_create = cuArrayCreate;
	api.array3d_create = cuArray3DCreate;
	api.array_destroy = cuArrayDestroy;
	api.mipmap_create = cuMipmappedArrayCreate;
	api.mipmap_destroy = cuMipmappedArrayDestroy;
	api.module_load = cuModuleLoadData;
	api.module_function = cuModuleGetFunction;
	api.launch = cuLaunchKernel;
	api.launch_ex = cuLaunchKernelEx;
	api.coop = cuLaunchCooperativeKernel;
	api.graph_create = cuGraphCreate;
	api.graph_add_kernel = cuGraphAddKernelNode;
	api.graph_instantiate = cuGraphInstantiate;
	api.graph_launch = cuGraphLaunch;
	api.ctx_sync = cuCtxSynchronize;
	api.attr = cuDeviceGetAttribute;
	api.event_create = cuEventCreate;
	api.event_record = cuEventRecord;
	api.event_sync = cuEventSynchronize;
	return 0;
}
#else
struct lookup {
	void **slot;
	const char *exported; /* the versioned name dlsym needs */
	const char *base;     /* the name cuGetProcAddress takes */
	int version;
};
static const struct lookup table[] = {
	{PTR(init), "cuInit", "cuInit", 2000},
	{PTR(device_get), "cuDeviceGet", "cuDeviceGet", 2000},
	{PTR(primary_retain), "cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRetain", 7000},
	{PTR(ctx_set), "cuCtxSetCurrent", "cuCtxSetCurrent", 4000},
	{PTR(mem_info), "cuMemGetInfo_v2", "cuMemGetInfo", 3020},
	{PTR(total_mem), "cuDeviceTotalMem_v2", "cuDeviceTotalMem", 3020},
	{PTR(alloc), "cuMemAlloc_v2", "cuMemAlloc", 3020},
	{PTR(free), "cuMemFree_v2", "cuMemFree", 3020},
	{PTR(managed), "cuMemAllocManaged", "cuMemAllocManaged", 6000},
	{PTR(pitch), "cuMemAllocPitch_v2", "cuMemAllocPitch", 3020},
	{PTR(alloc_async), "cuMemAllocAsync", "cuMemAllocAsync", 11020},
	{PTR(free_async), "cuMemFreeAsync", "cuMemFreeAsync", 11020},
	{PTR(pool_get), "cuDeviceGetDefaultMemPool", "cuDeviceGetDefaultMemPool", 11020},
	{PTR(alloc_pool), "cuMemAllocFromPoolAsync", "cuMemAllocFromPoolAsync", 11020},
	{PTR(pool_set), "cuMemPoolSetAttribute", "cuMemPoolSetAttribute", 11020},
	{PTR(mem_create), "cuMemCreate", "cuMemCreate", 10020},
	{PTR(mem_release), "cuMemRelease", "cuMemRelease", 10020},
	{PTR(array_create), "cuArrayCreate_v2", "cuArrayCreate", 3020},
	{PTR(array3d_create), "cuArray3DCreate_v2", "cuArray3DCreate", 3020},
	{PTR(array_destroy), "cuArrayDestroy", "cuArrayDestroy", 2000},
	{PTR(mipmap_create), "cuMipmappedArrayCreate", "cuMipmappedArrayCreate", 5000},
	{PTR(mipmap_destroy), "cuMipmappedArrayDestroy", "cuMipmappedArrayDestroy", 5000},
	{PTR(module_load), "cuModuleLoadData", "cuModuleLoadData", 2000},
	{PTR(module_function), "cuModuleGetFunction", "cuModuleGetFunction", 2000},
	{PTR(launch), "cuLaunchKernel", "cuLaunchKernel", 4000},
	{PTR(launch_ex), "cuLaunchKernelEx", "cuLaunchKernelEx", 11060},
	{PTR(coop), "cuLaunchCooperativeKernel", "cuLaunchCooperativeKernel", 9000},
	{PTR(graph_create), "cuGraphCreate", "cuGraphCreate", 10000},
	{PTR(graph_add_kernel), "cuGraphAddKernelNode_v2", "cuGraphAddKernelNode", 12000},
	{PTR(graph_instantiate), "cuGraphInstantiateWithFlags", "cuGraphInstantiate", 12000},
	{PTR(graph_launch), "cuGraphLaunch", "cuGraphLaunch", 10000},
	{PTR(ctx_sync), "cuCtxSynchronize", "cuCtxSynchronize", 2000},
	{PTR(attr), "cuDeviceGetAttribute", "cuDeviceGetAttribute", 2000},
	{PTR(event_create), "cuEventCreate", "cuEventCreate", 2000},
	{PTR(event_record), "cuEventRecord", "cuEventRecord", 2000},
	{PTR(event_sync), "cuEventSynchronize", "cuEventSynchronize", 2000},
};

static int load_api(void)
{
	void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "probe: dlopen libcuda.so.1: %s\n", dlerror());
		return -1;
	}
#if defined(PROBE_GPA)
	CUresult (*gpa)(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *) =
		(CUresult(*)(const char *, void **, int, cuuint64_t,
			     CUdriverProcAddressQueryResult *))dlsym(h, "cuGetProcAddress_v2");
	if (!gpa)
		return -1;
	const char *pt = getenv("PROBE_PTSZ");
	cuuint64_t flags = pt && *pt == '1' ? CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM
					   : CU_GET_PROC_ADDRESS_DEFAULT;
	const char *ver = getenv("PROBE_CUDA_VERSION");
	int version = ver ? atoi(ver) : 13000;
	for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
		CUdriverProcAddressQueryResult st;
		*table[i].slot = NULL;
		/* From CUDA 13.0, cuCtxSynchronize means cuCtxSynchronize_v2(ctx): ask for the
		 * signature this program calls. */
		int v = !strcmp(table[i].base, "cuCtxSynchronize") && version > 12000 ? 12000
										  : version;
		gpa(table[i].base, table[i].slot, v, flags, &st);
	}
#else
	for (size_t i = 0; i < sizeof table / sizeof *table; i++)
		*table[i].slot = dlsym(h, table[i].exported);
#endif
	return 0;
}
#endif

static size_t parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	switch (*end) {
	case 'k': case 'K': v *= 1024.0; break;
	case 'm': case 'M': v *= 1048576.0; break;
	case 'g': case 'G': v *= 1073741824.0; break;
	default: break;
	}
	return (size_t)v;
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define CALL(fn, ...) ((fn) ? (fn)(__VA_ARGS__) : CUDA_ERROR_NOT_FOUND)

static CUdeviceptr held[MAX_HELD];
static int nheld;
static CUmemGenericAllocationHandle vmm[MAX_HELD];
static int nvmm;
static CUarray arrays[MAX_HELD];
static int narrays;
static CUmipmappedArray mipmaps[MAX_HELD];
static int nmipmaps;
static CUdevice dev;
static CUcontext ctx;
static CUfunction kernel;
static int sms = 108;

static CUresult setup(void)
{
	const char *ordinal = getenv("PROBE_DEVICE"); /* device ordinal to use, default 0 */
	CUresult r = CALL(api.init, 0);
	if (!r)
		r = CALL(api.device_get, &dev, ordinal ? atoi(ordinal) : 0);
	if (!r)
		r = CALL(api.primary_retain, &ctx, dev);
	if (!r)
		r = CALL(api.ctx_set, ctx);
	if (!r)
		CALL(api.attr, &sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
	return r;
}

static CUresult need_kernel(void)
{
	if (kernel)
		return CUDA_SUCCESS;
	CUmodule mod;
	const char *image = getenv("PROBE_MODULE_IMAGE");
	CUresult r = CALL(api.module_load, &mod, image ? image : "vgpu probe image");
	if (!r)
		r = CALL(api.module_function, &kernel, mod, "spin");
	return r;
}

/* One launch of `kind` with a grid of one wave (sms * 2 blocks). */
static CUresult launch_one(const char *kind)
{
	unsigned grid = (unsigned)sms * 2;
	if (!strcmp(kind, "launchex")) {
		CUlaunchConfig cfg;
		memset(&cfg, 0, sizeof cfg);
		cfg.gridDimX = grid;
		cfg.gridDimY = cfg.gridDimZ = 1;
		cfg.blockDimX = 128;
		cfg.blockDimY = cfg.blockDimZ = 1;
		return CALL(api.launch_ex, &cfg, kernel, NULL, NULL);
	}
	if (!strcmp(kind, "coop"))
		return CALL(api.coop, kernel, grid, 1, 1, 128, 1, 1, 0, NULL, NULL);
	return CALL(api.launch, kernel, grid, 1, 1, 128, 1, 1, 0, NULL, NULL, NULL);
}

static CUgraphExec graph_exec;

/* A graph of one kernel node, instantiated once. */
static CUresult need_graph(void)
{
	if (graph_exec)
		return CUDA_SUCCESS;
	CUgraph g = NULL;
	CUgraphNode node;
	CUDA_KERNEL_NODE_PARAMS kp;
	memset(&kp, 0, sizeof kp);
	kp.func = kernel;
	kp.gridDimX = (unsigned)sms * 2;
	kp.gridDimY = kp.gridDimZ = 1;
	kp.blockDimX = 128;
	kp.blockDimY = kp.blockDimZ = 1;
	/* PROBE_GRAPH_NODES kernels in a chain (default 1), as frameworks capture several */
	const char *gn = getenv("PROBE_GRAPH_NODES");
	long nodes = gn && atol(gn) > 0 && atol(gn) <= 64 ? atol(gn) : 1;
	CUresult r = CALL(api.graph_create, &g, 0);
	for (long k = 0; !r && k < nodes; k++) {
		CUgraphNode prev = node;
		r = CALL(api.graph_add_kernel, &node, g, k ? &prev : NULL, k ? 1 : 0, &kp);
	}
	if (!r)
		r = CALL(api.graph_instantiate, &graph_exec, g, 0);
	return r;
}

static int run(int argc, char **argv, int i);

static int command(int argc, char **argv, int *pi)
{
	int i = *pi;
	const char *cmd = argv[i++];
	const char *a1 = i < argc ? argv[i] : "0";
	const char *a2 = i + 1 < argc ? argv[i + 1] : "0";
	const char *a3 = i + 2 < argc ? argv[i + 2] : "0";
	CUresult r = CUDA_SUCCESS;
	if (!strcmp(cmd, "info")) {
		size_t fr = 0, tot = 0;
		r = CALL(api.mem_info, &fr, &tot);
		printf("info rc=%d free=%zu total=%zu\n", r, fr, tot);
	} else if (!strcmp(cmd, "total")) {
		size_t tot = 0;
		r = CALL(api.total_mem, &tot, dev);
		printf("total rc=%d total=%zu\n", r, tot);
	} else if (!strcmp(cmd, "alloc") || !strcmp(cmd, "managed") || !strcmp(cmd, "async") ||
		   !strcmp(cmd, "pool")) {
		size_t n = parse_size(a1);
		CUdeviceptr p = 0;
		i++;
		if (!strcmp(cmd, "alloc"))
			r = CALL(api.alloc, &p, n);
		else if (!strcmp(cmd, "managed"))
			r = CALL(api.managed, &p, n, CU_MEM_ATTACH_GLOBAL);
		else if (!strcmp(cmd, "async"))
			r = CALL(api.alloc_async, &p, n, NULL);
		else {
			CUmemoryPool pool = NULL;
			r = CALL(api.pool_get, &pool, dev);
			if (!r)
				r = CALL(api.alloc_pool, &p, n, pool, NULL);
		}
		if (!r && nheld < MAX_HELD)
			held[nheld++] = p;
		printf("%s rc=%d bytes=%zu\n", cmd, r, n);
	} else if (!strcmp(cmd, "keep")) {
		/* the default pool keeps up to N freed bytes (its release threshold) */
		cuuint64_t n = parse_size(a1);
		CUmemoryPool pool = NULL;
		i++;
		r = CALL(api.pool_get, &pool, dev);
		if (!r)
			r = CALL(api.pool_set, pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &n);
		printf("keep rc=%d bytes=%llu\n", r, (unsigned long long)n);
	} else if (!strcmp(cmd, "fill")) {
		/* cuMemAlloc chunks of N until the first failure; prints what it got */
		size_t n = parse_size(a1), got = 0;
		CUdeviceptr p = 0;
		i++;
		while (nheld < MAX_HELD && (r = CALL(api.alloc, &p, n)) == CUDA_SUCCESS) {
			held[nheld++] = p;
			got += n;
		}
		printf("fill rc=%d bytes=%zu\n", r, got);
	} else if (!strcmp(cmd, "pitch")) {
		size_t pitch = 0, w = parse_size(a1), h = parse_size(a2);
		CUdeviceptr p = 0;
		i += 2;
		r = CALL(api.pitch, &p, &pitch, w, h, 4);
		if (!r && nheld < MAX_HELD)
			held[nheld++] = p;
		printf("pitch rc=%d pitch=%zu\n", r, pitch);
	} else if (!strcmp(cmd, "free") || !strcmp(cmd, "freeasync")) {
		if (nheld)
			r = !strcmp(cmd, "free") ? CALL(api.free, held[--nheld])
						 : CALL(api.free_async, held[--nheld], NULL);
		printf("%s rc=%d\n", cmd, r);
	} else if (!strcmp(cmd, "vmm")) {
		CUmemAllocationProp prop;
		memset(&prop, 0, sizeof prop);
		prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
		prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
		prop.location.id = dev;
		CUmemGenericAllocationHandle h = 0;
		size_t n = parse_size(a1);
		i++;
		r = CALL(api.mem_create, &h, n, &prop, 0);
		if (!r && nvmm < MAX_HELD)
			vmm[nvmm++] = h;
		printf("vmm rc=%d bytes=%zu\n", r, n);
	} else if (!strcmp(cmd, "vmmfree")) {
		if (nvmm)
			r = CALL(api.mem_release, vmm[--nvmm]);
		printf("vmmfree rc=%d\n", r);
	} else if (!strcmp(cmd, "array")) {
		CUDA_ARRAY_DESCRIPTOR d = {parse_size(a1), parse_size(a2), CU_AD_FORMAT_FLOAT, 4};
		CUarray a = NULL;
		i += 2;
		r = CALL(api.array_create, &a, &d);
		if (!r && narrays < MAX_HELD)
			arrays[narrays++] = a;
		printf("array rc=%d\n", r);
	} else if (!strcmp(cmd, "array3d") || !strcmp(cmd, "mipmap")) {
		int mip = !strcmp(cmd, "mipmap");
		CUDA_ARRAY3D_DESCRIPTOR d = {parse_size(a1), parse_size(a2), mip ? 0 : parse_size(a3),
					     CU_AD_FORMAT_FLOAT, 4, 0};
		i += 3;
		if (mip) {
			CUmipmappedArray m = NULL;
			r = CALL(api.mipmap_create, &m, &d, (unsigned)atoi(a3));
			if (!r && nmipmaps < MAX_HELD)
				mipmaps[nmipmaps++] = m;
		} else {
			CUarray a = NULL;
			r = CALL(api.array3d_create, &a, &d);
			if (!r && narrays < MAX_HELD)
				arrays[narrays++] = a;
		}
		printf("%s rc=%d\n", cmd, r);
	} else if (!strcmp(cmd, "arrayfree")) {
		if (narrays)
			r = CALL(api.array_destroy, arrays[--narrays]);
		else if (nmipmaps)
			r = CALL(api.mipmap_destroy, mipmaps[--nmipmaps]);
		printf("arrayfree rc=%d\n", r);
	} else if (!strcmp(cmd, "launch") || !strcmp(cmd, "launchex") || !strcmp(cmd, "coop")) {
		long n = atol(a1);
		i++;
		r = need_kernel();
		for (long k = 0; k < n && !r; k++)
			r = launch_one(cmd);
		printf("%s rc=%d n=%ld\n", cmd, r, n);
	} else if (!strcmp(cmd, "graph")) {
		long n = atol(a1);
		i++;
		r = need_kernel();
		if (!r)
			r = need_graph();
		for (long k = 0; k < n && !r; k++)
			r = CALL(api.graph_launch, graph_exec, NULL);
		printf("graph rc=%d n=%ld\n", r, n);
	} else if (!strcmp(cmd, "busy") || !strcmp(cmd, "busyk")) {
		/* Keep the device busy for MS ms of wall time, one wave per launch, synchronizing
		 * after each (a typical training loop's shape). busyk KIND MS picks the launch
		 * path: launch, launchex, coop or graph. */
		int k_arg = !strcmp(cmd, "busyk");
		const char *kind = k_arg ? a1 : "launch";
		double end = now_s() + atof(k_arg ? a2 : a1) / 1e3;
		long k = 0;
		i += k_arg ? 2 : 1;
		r = need_kernel();
		if (!r && !strcmp(kind, "graph"))
			r = need_graph();
		const char *b = getenv("PROBE_BATCH"); /* launches per synchronization */
		long batch = b && atol(b) > 0 ? atol(b) : 1;
		/* PROBE_PIPELINE=1: wait for the batch before the one just launched (an event per
		 * batch), so the device always has work queued, as a framework keeps it. */
		const char *pl = getenv("PROBE_PIPELINE");
		int pipeline = pl && *pl == '1';
		CUevent ev[2] = {NULL, NULL};
		if (!r && pipeline)
			r = CALL(api.event_create, &ev[0], 0);
		if (!r && pipeline)
			r = CALL(api.event_create, &ev[1], 0);
		for (long batches = 0; !r && now_s() < end; batches++) {
			for (long n = 0; n < batch && !r; n++, k++)
				r = !strcmp(kind, "graph") ? CALL(api.graph_launch, graph_exec, NULL)
							   : launch_one(kind);
			if (r)
				break;
			if (!pipeline) {
				r = CALL(api.ctx_sync);
				continue;
			}
			r = CALL(api.event_record, ev[batches & 1], NULL);
			if (!r && batches > 0)
				r = CALL(api.event_sync, ev[(batches - 1) & 1]);
		}
		if (!r)
			r = CALL(api.ctx_sync);
		printf("%s rc=%d launches=%ld\n", cmd, r, k);
	} else if (!strcmp(cmd, "churn")) {
		/* N random steps over at most 16 live allocations of 1..MAX bytes: free one, or
		 * allocate (an out-of-memory answer is expected under a tight cap). */
		long n = atol(a1), allocs = 0, ooms = 0, frees = 0;
		size_t max = parse_size(a2);
		CUdeviceptr live[16];
		int nlive = 0;
		unsigned seed = (unsigned)getpid();
		i += 2;
		for (long k = 0; k < n && !r; k++) {
			if (nlive == 16 || (nlive && rand_r(&seed) % 2)) {
				int victim = rand_r(&seed) % nlive;
				r = CALL(api.free, live[victim]);
				live[victim] = live[--nlive];
				frees++;
				continue;
			}
			CUdeviceptr p = 0;
			CUresult a = CALL(api.alloc, &p, 1 + (size_t)rand_r(&seed) % (max ? max : 1));
			if (a == CUDA_SUCCESS) {
				live[nlive++] = p;
				allocs++;
			} else if (a == CUDA_ERROR_OUT_OF_MEMORY) {
				ooms++;
			} else {
				r = a;
			}
		}
		while (nlive && !r)
			r = CALL(api.free, live[--nlive]);
		printf("churn rc=%d allocs=%ld ooms=%ld frees=%ld\n", r, allocs, ooms, frees);
	} else if (!strcmp(cmd, "rtldnext")) {
		/* An interposed dlsym must keep RTLD_NEXT relative to ITS caller: from here the
		 * next dlsym after this executable is the preloaded hook's, not libc's. */
		void *next = dlsym(RTLD_NEXT, "dlsym");
		printf("rtldnext rc=0 same=%d\n", next == (void *)dlsym);
	} else if (!strcmp(cmd, "sync")) {
		r = CALL(api.ctx_sync);
		printf("sync rc=%d\n", r);
	} else if (!strcmp(cmd, "sleep")) {
		i++;
		usleep((useconds_t)(atof(a1) * 1000));
		printf("sleep rc=0\n");
	} else if (!strcmp(cmd, "wait")) {
		/* Block until the test writes a line on stdin: steps it controls, no timing. */
		char line[64];
		printf("wait ready\n");
		fflush(stdout);
		if (!fgets(line, sizeof line, stdin))
			r = CUDA_ERROR_INVALID_VALUE;
		printf("wait rc=%d\n", r);
	} else if (!strcmp(cmd, "hold")) {
		printf("hold ready\n");
		fflush(stdout);
		for (;;)
			pause();
	} else if (!strcmp(cmd, "fork")) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			kernel = NULL;
			graph_exec = NULL;
			r = setup();
			printf("forkchild rc=%d pid=%d\n", r, (int)getpid());
			exit(r ? 1 : run(argc, argv, i));
		}
		int status = 0;
		waitpid(pid, &status, 0);
		printf("fork rc=0 child_exit=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		*pi = argc;
		return 0;
	} else {
		fprintf(stderr, "probe: unknown command %s\n", cmd);
		return 2;
	}
	fflush(stdout);
	*pi = i;
	return 0;
}

static int run(int argc, char **argv, int i)
{
	while (i < argc) {
		int rc = command(argc, argv, &i);
		if (rc)
			return rc;
	}
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (load_api() != 0)
		return 3;
	CUresult r = setup();
	printf("setup rc=%d\n", r);
	if (r)
		return 1;
	return run(argc, argv, 1);
}

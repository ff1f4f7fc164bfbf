/*
 * fakegpu libamdhip64: kernel registration, launch configuration and launches.
 *
 * hipcc (clang) gives every program a constructor that registers its code object
 * (__hipRegisterFatBinary) and each kernel's host stub (__hipRegisterFunction, with the
 * kernel's device name); `kernel<<<g, b, shmem, stream>>>(args)` pushes the configuration
 * (__hipPushCallConfiguration), and the stub pops it and calls hipLaunchKernel with its own
 * address. Kernels never run: a launch queues simulated work on the device, in this process's
 * queue, exactly as the CUDA fake's launches do (the same wave model and the same
 * time-slicing scheduler, fg_sched.c):
 *  - a kernel whose name contains "fakegpu_ns" lasts as many nanoseconds as its first
 *    parameter (a 64-bit unsigned integer);
 *  - any other lasts ceil(blocks / (CUs x blocks_per_sm)) x kernel_ns (FAKEGPU_KERNEL_NS
 *    overrides kernel_ns per process).
 * A process with FG_HIP_PENDING launches still queued on a device blocks in launch until the
 * oldest is done, as a full hardware queue does.
 */
#include "hip_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_KERNEL_NS (3600ULL * 1000000000ULL)

struct kernel {
	const void *host;        /* host stub (registered) or NULL (module function) */
	int sleep;               /* name contains "fakegpu_ns" */
	char name[256];
};

struct module_fn {           /* what hipFunction_t points at */
	uint32_t tag;
	struct kernel k;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct kernel *kernels;
static size_t nkernels, capkernels;
static int fatbin_token[64]; /* handles returned by __hipRegisterFatBinary */
static unsigned fatbins;

static uint64_t pending[FG_MAX_DEVICES][FG_HIP_PENDING];
static uint32_t pending_next[FG_MAX_DEVICES];
static pthread_mutex_t pending_mu = PTHREAD_MUTEX_INITIALIZER;

static void name_kernel(struct kernel *k, const char *name)
{
	snprintf(k->name, sizeof(k->name), "%s", name ? name : "");
	k->sleep = strstr(k->name, "fakegpu_ns") != NULL;
}

void **__hipRegisterFatBinary(const void *data)
{
	void **h;

	(void)data;
	pthread_mutex_lock(&reg_mu);
	h = (void **)&fatbin_token[fatbins++ % 64];
	pthread_mutex_unlock(&reg_mu);
	return h;
}

void __hipUnregisterFatBinary(void **modules)
{
	(void)modules;
}

void __hipRegisterFunction(void **modules, const void *hostFunction, char *deviceFunction,
			   const char *deviceName, unsigned int threadLimit, void *tid, void *bid,
			   dim3 *blockDim, dim3 *gridDim, int *wSize)
{
	(void)modules; (void)deviceFunction; (void)threadLimit; (void)tid; (void)bid;
	(void)blockDim; (void)gridDim; (void)wSize;
	pthread_mutex_lock(&reg_mu);
	if (nkernels == capkernels) {
		size_t n = capkernels ? capkernels * 2 : 64;
		struct kernel *t = realloc(kernels, n * sizeof(*t));

		if (!t) {
			pthread_mutex_unlock(&reg_mu);
			fg_msg("out of memory registering kernel %s", deviceName ? deviceName : "?");
			return;
		}
		kernels = t;
		capkernels = n;
	}
	kernels[nkernels].host = hostFunction;
	name_kernel(&kernels[nkernels], deviceName);
	nkernels++;
	pthread_mutex_unlock(&reg_mu);
}

void __hipRegisterManagedVar(void *hipModule, void **pointer, void *init_value,
			     const char *name, size_t size, unsigned align)
{
	void *p = NULL;

	(void)hipModule; (void)name; (void)align;
	if (!pointer || posix_memalign(&p, 4096, size ? size : 1))
		return;
	if (init_value)
		memcpy(p, init_value, size);
	*pointer = p;
}

static int find_kernel(const void *host, struct kernel *out)
{
	int rv = -1;

	pthread_mutex_lock(&reg_mu);
	for (size_t i = 0; i < nkernels; i++) {
		if (kernels[i].host == host) {
			*out = kernels[i];
			rv = 0;
			break;
		}
	}
	pthread_mutex_unlock(&reg_mu);
	return rv;
}

int fg_hip_kernel_known(const void *host)
{
	struct kernel k;

	return find_kernel(host, &k) == 0;
}

/* ---- launch configuration (the <<< >>> syntax) ---- */

struct config {
	dim3 grid, block;
	size_t shmem;
	hipStream_t stream;
};
static __thread struct config configs[16];
static __thread unsigned nconfigs;

hipError_t __hipPushCallConfiguration(dim3 gridDim, dim3 blockDim, size_t sharedMem,
				      hipStream_t stream)
{
	if (nconfigs >= 16)
		return fg_hip_err(hipErrorInvalidConfiguration);
	configs[nconfigs].grid = gridDim;
	configs[nconfigs].block = blockDim;
	configs[nconfigs].shmem = sharedMem;
	configs[nconfigs].stream = stream;
	nconfigs++;
	return hipSuccess;
}

hipError_t __hipPopCallConfiguration(dim3 *gridDim, dim3 *blockDim, size_t *sharedMem,
				     hipStream_t *stream)
{
	if (!nconfigs)
		return fg_hip_err(hipErrorInvalidConfiguration);
	nconfigs--;
	*gridDim = configs[nconfigs].grid;
	*blockDim = configs[nconfigs].block;
	*sharedMem = configs[nconfigs].shmem;
	*stream = configs[nconfigs].stream;
	return hipSuccess;
}

/* ---- the timeline ---- */

static uint64_t kernel_ns_override;
static pthread_once_t override_once = PTHREAD_ONCE_INIT;

static void read_override(void)
{
	const char *v = getenv("FAKEGPU_KERNEL_NS");
	char *end;

	if (v && *v) {
		unsigned long long n = strtoull(v, &end, 10);

		if (!*end)
			kernel_ns_override = n ? n : 1;
		else
			fg_msg("FAKEGPU_KERNEL_NS=%s is not a number of nanoseconds; ignored", v);
	}
}

uint64_t fg_hip_kernel_ns(int dev, uint64_t blocks, int sleep_kernel, uint64_t first_arg)
{
	const struct fg_state *s = fg_hip_state();
	uint64_t slots, wave, ns;

	if (sleep_kernel)
		return first_arg > MAX_KERNEL_NS ? MAX_KERNEL_NS : first_arg;
	pthread_once(&override_once, read_override);
	wave = kernel_ns_override ? kernel_ns_override : s->kernel_ns;
	slots = (uint64_t)s->config[fg_hip_phys(dev)].sms * s->blocks_per_sm;
	if (!slots)
		slots = 1;
	ns = (blocks + slots - 1) / slots * wave;
	return ns > MAX_KERNEL_NS ? MAX_KERNEL_NS : ns;
}

hipError_t fg_hip_queue(int dev, uint64_t dur, hipStream_t stream, uint64_t *ticket_out)
{
	struct fg_state *s = fg_hip_state();
	uint32_t phys = fg_hip_phys(dev);
	struct fg_device_state *d = &s->dev[phys];
	uint64_t now, oldest, ticket = 0;
	struct fg_proc *p;
	hipError_t r;

	pthread_mutex_lock(&pending_mu);
	oldest = pending[dev][pending_next[dev]];
	pthread_mutex_unlock(&pending_mu);
	r = fg_hip_wait(oldest); /* the queue is full: wait for its oldest launch */
	if (r)
		return r;
	if (fg_lock(s))
		return hipErrorUnknown;
	now = fg_now_ns();
	fg_sched_advance(s, phys, now);
	d->busy_until_ns = (d->busy_until_ns > now ? d->busy_until_ns : now) + dur;
	d->busy_total_ns += dur;
	d->launches++;
	p = fg_proc_slot(s, getpid(), phys);
	if (p) {
		p->launches++;
		p->busy_ns += dur;
		ticket = fg_hip_ticket(phys, fg_sched_submit(s, phys, p, dur, now));
	}
	fg_unlock(s);
	if (!ticket)
		return hipErrorOutOfMemory; /* no process slot left on the simulated machine */
	pthread_mutex_lock(&pending_mu);
	pending[dev][pending_next[dev]] = ticket;
	pending_next[dev] = (pending_next[dev] + 1) % FG_HIP_PENDING;
	pthread_mutex_unlock(&pending_mu);
	fg_hip_stream_note(stream, dev, ticket);
	if (ticket_out)
		*ticket_out = ticket;
	FG_TRACE("hip launch dev=%u dur=%.3fms", phys, (double)dur / 1e6);
	return hipSuccess;
}

static int first_u64(void **args, void **extra, uint64_t *out)
{
	if (args && args[0]) {
		memcpy(out, args[0], sizeof(*out));
		return 0;
	}
	for (size_t i = 0; extra && i < 16 && extra[i] != HIP_LAUNCH_PARAM_END; i += 2) {
		if (extra[i] == HIP_LAUNCH_PARAM_BUFFER_POINTER && extra[i + 1]) {
			memcpy(out, extra[i + 1], sizeof(*out));
			return 0;
		}
	}
	return -1;
}

/* Everything a launch does after finding its kernel. coop: cooperative (grid must fit). */
static hipError_t launch(const struct kernel *k, dim3 g, dim3 b, size_t shmem,
			 hipStream_t stream, void **args, void **extra, int coop)
{
	struct fg_hip_stream *x;
	uint64_t blocks, threads, arg = 0, dur;
	int dev;
	hipError_t r = fg_hip_init();

	if (r)
		return r;
	r = fg_hip_stream(stream, &x, &dev);
	if (r)
		return r;
	r = fg_hip_device_ready(dev);
	if (r)
		return r;
	if (!g.x || !g.y || !g.z || !b.x || !b.y || !b.z || b.x > 1024 || b.y > 1024 ||
	    b.z > 1024 || g.y > 65536 || g.z > 65536)
		return hipErrorInvalidConfiguration;
	threads = (uint64_t)b.x * b.y * b.z;
	if (threads > 1024 || shmem > 65536)
		return hipErrorInvalidConfiguration;
	blocks = (uint64_t)g.x * g.y * g.z;
	if (coop) {
		uint64_t per_cu = 2048 / threads;

		if (!per_cu)
			per_cu = 1;
		if (blocks > per_cu * fg_hip_state()->config[fg_hip_phys(dev)].sms)
			return hipErrorCooperativeLaunchTooLarge;
	}
	if (k->sleep && first_u64(args, extra, &arg))
		arg = 0;
	dur = fg_hip_kernel_ns(dev, blocks, k->sleep, arg);
	FG_TRACE("hip kernel %s blocks=%llu", k->name, (unsigned long long)blocks);
	if (x && x->capture)
		return fg_hip_capture_add(x->capture, dur) ? hipErrorOutOfMemory : hipSuccess;
	return fg_hip_queue(dev, dur, stream, NULL);
}

hipError_t hipLaunchKernel(const void *function_address, dim3 numBlocks, dim3 dimBlocks,
			   void **args, size_t sharedMemBytes, hipStream_t stream)
{
	struct kernel k;

	if (find_kernel(function_address, &k))
		return fg_hip_err(hipErrorInvalidDeviceFunction);
	return fg_hip_err(launch(&k, numBlocks, dimBlocks, sharedMemBytes, stream, args, NULL, 0));
}

hipError_t hipLaunchKernel_spt(const void *function_address, dim3 numBlocks, dim3 dimBlocks,
			       void **args, size_t sharedMemBytes, hipStream_t stream)
{
	return hipLaunchKernel(function_address, numBlocks, dimBlocks, args, sharedMemBytes,
			       stream ? stream : hipStreamPerThread);
}

hipError_t hipExtLaunchKernel(const void *function_address, dim3 numBlocks, dim3 dimBlocks,
			      void **args, size_t sharedMemBytes, hipStream_t stream,
			      hipEvent_t startEvent, hipEvent_t stopEvent, int flags)
{
	struct kernel k;
	hipError_t r;

	(void)flags;
	if (find_kernel(function_address, &k))
		return fg_hip_err(hipErrorInvalidDeviceFunction);
	if (startEvent && (r = hipEventRecord(startEvent, stream)))
		return r;
	r = launch(&k, numBlocks, dimBlocks, sharedMemBytes, stream, args, NULL, 0);
	if (!r && stopEvent)
		r = hipEventRecord(stopEvent, stream);
	return fg_hip_err(r);
}

hipError_t hipLaunchCooperativeKernel(const void *f, dim3 gridDim, dim3 blockDimX,
				      void **kernelParams, unsigned int sharedMemBytes,
				      hipStream_t stream)
{
	struct kernel k;

	if (find_kernel(f, &k))
		return fg_hip_err(hipErrorInvalidDeviceFunction);
	return fg_hip_err(launch(&k, gridDim, blockDimX, sharedMemBytes, stream, kernelParams,
				 NULL, 1));
}

hipError_t hipLaunchCooperativeKernel_spt(const void *f, dim3 gridDim, dim3 blockDim,
					  void **kernelParams, uint32_t sharedMemBytes,
					  hipStream_t stream)
{
	return hipLaunchCooperativeKernel(f, gridDim, blockDim, kernelParams, sharedMemBytes,
					  stream ? stream : hipStreamPerThread);
}

/* ---- modules: any code object loads; any kernel name resolves ---- */

hipError_t hipModuleLoadData(hipModule_t *module, const void *image)
{
	uint32_t *m;
	hipError_t r = fg_hip_init();

	if (r)
		return fg_hip_err(r);
	if (!module || !image)
		return fg_hip_err(hipErrorInvalidValue);
	m = calloc(1, sizeof(*m));
	if (!m || fg_hip_handle_add(m, FG_HIP_TAG_MOD)) {
		free(m);
		return fg_hip_err(hipErrorOutOfMemory);
	}
	*m = FG_HIP_TAG_MOD;
	*module = (hipModule_t)m;
	return hipSuccess;
}

hipError_t hipModuleLoadDataEx(hipModule_t *module, const void *image, unsigned int numOptions,
			       hipJitOption *options, void **optionValues)
{
	(void)numOptions; (void)options; (void)optionValues;
	return hipModuleLoadData(module, image);
}

hipError_t hipModuleLoad(hipModule_t *module, const char *fname)
{
	if (!fname || access(fname, R_OK))
		return fg_hip_err(hipErrorFileNotFound);
	return hipModuleLoadData(module, fname);
}

hipError_t hipModuleUnload(hipModule_t module)
{
	if (fg_hip_handle_del(module, FG_HIP_TAG_MOD))
		return fg_hip_err(hipErrorInvalidResourceHandle);
	free(module);
	return hipSuccess;
}

hipError_t hipModuleGetFunction(hipFunction_t *function, hipModule_t module, const char *kname)
{
	struct module_fn *f;

	if (!function || !kname)
		return fg_hip_err(hipErrorInvalidValue);
	if (!fg_hip_handle_is(module, FG_HIP_TAG_MOD))
		return fg_hip_err(hipErrorInvalidResourceHandle);
	f = calloc(1, sizeof(*f));
	if (!f || fg_hip_handle_add(f, FG_HIP_TAG_FUNC)) {
		free(f);
		return fg_hip_err(hipErrorOutOfMemory);
	}
	f->tag = FG_HIP_TAG_FUNC;
	name_kernel(&f->k, kname);
	*function = (hipFunction_t)f;
	return hipSuccess;
}

hipError_t hipModuleGetGlobal(hipDeviceptr_t *dptr, size_t *bytes, hipModule_t hmod,
			      const char *name)
{
	(void)dptr; (void)bytes; (void)name;
	if (!fg_hip_handle_is(hmod, FG_HIP_TAG_MOD))
		return fg_hip_err(hipErrorInvalidResourceHandle);
	return fg_hip_err(hipErrorNotFound); /* module globals are not simulated */
}

hipError_t hipModuleLaunchKernel(hipFunction_t f, unsigned int gridDimX, unsigned int gridDimY,
				 unsigned int gridDimZ, unsigned int blockDimX,
				 unsigned int blockDimY, unsigned int blockDimZ,
				 unsigned int sharedMemBytes, hipStream_t stream,
				 void **kernelParams, void **extra)
{
	struct module_fn *m = (struct module_fn *)f;
	dim3 g = { gridDimX, gridDimY, gridDimZ }, b = { blockDimX, blockDimY, blockDimZ };

	if (!fg_hip_handle_is(m, FG_HIP_TAG_FUNC))
		return fg_hip_err(hipErrorInvalidResourceHandle);
	if (kernelParams && extra)
		return fg_hip_err(hipErrorInvalidValue);
	return fg_hip_err(launch(&m->k, g, b, sharedMemBytes, stream, kernelParams, extra, 0));
}

/* ---- occupancy, as for a kernel using no registers or LDS worth mentioning ---- */

hipError_t hipOccupancyMaxActiveBlocksPerMultiprocessor(int *numBlocks, const void *f,
							int blockSize, size_t dynSharedMemPerBlk)
{
	(void)f; (void)dynSharedMemPerBlk;
	if (!numBlocks || blockSize <= 0 || blockSize > 1024)
		return fg_hip_err(hipErrorInvalidValue);
	*numBlocks = 2048 / blockSize;
	return hipSuccess;
}

hipError_t hipOccupancyMaxPotentialBlockSize(int *gridSize, int *blockSize, const void *f,
					     size_t dynSharedMemPerBlk, int blockSizeLimit)
{
	int b = blockSizeLimit > 0 && blockSizeLimit < 1024 ? blockSizeLimit : 1024;
	hipError_t r = fg_hip_init();

	(void)f; (void)dynSharedMemPerBlk;
	if (r)
		return fg_hip_err(r);
	if (!gridSize || !blockSize)
		return fg_hip_err(hipErrorInvalidValue);
	*blockSize = b;
	*gridSize = (int)fg_hip_state()->config[fg_hip_phys(fg_hip_current())].sms * (2048 / b);
	return hipSuccess;
}

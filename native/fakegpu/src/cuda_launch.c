/*
 * fakegpu libcuda: kernel launches on the shared device timeline.
 *
 * Kernels never run. Each launch queues simulated work on its device, in its process's queue;
 * the device time-slices between processes (fg_sched.c). Duration model:
 *  - a kernel whose name contains "fakegpu_ns" lasts as many nanoseconds as its first
 *    parameter says (a 64-bit unsigned integer): tests choose each launch's duration;
 *  - any other kernel lasts ceil(blocks / (SMs x blocks_per_sm)) waves of kernel_ns
 *    (state file value; FAKEGPU_KERNEL_NS overrides it per process).
 * A context with FG_PENDING_LIMIT launches still queued blocks in launch until the oldest
 * ends, as a real driver does when its push buffer is full.
 */
#include "cuda_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_KERNEL_NS (3600ULL * 1000000000ULL)

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

static int param_u64(void **params, void **extra, uint64_t *out)
{
	if (params && params[0]) {
		memcpy(out, params[0], sizeof(*out));
		return 0;
	}
	for (size_t i = 0; extra && extra[i] != CU_LAUNCH_PARAM_END && i < 16; i += 2) {
		if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER && extra[i + 1]) {
			memcpy(out, extra[i + 1], sizeof(*out));
			return 0;
		}
	}
	return -1;
}

uint64_t fg_kernel_duration(struct fg_ctx *c, const struct fg_function *f, uint64_t blocks,
			    void **params, void **extra)
{
	const struct fg_state *s = fg_shm();
	uint64_t ns, slots, per_wave;

	if (f->sleep_kernel && param_u64(params, extra, &ns) == 0)
		return ns > MAX_KERNEL_NS ? MAX_KERNEL_NS : ns;
	pthread_once(&override_once, read_override);
	per_wave = kernel_ns_override ? kernel_ns_override : s->kernel_ns;
	slots = (uint64_t)s->config[fg_phys(c->dev)].sms * s->blocks_per_sm;
	if (!slots)
		slots = 1;
	ns = (blocks + slots - 1) / slots * per_wave;
	return ns > MAX_KERNEL_NS ? MAX_KERNEL_NS : ns;
}

CUresult fg_timeline_launch(struct fg_ctx *c, uint64_t dur, CUstream hs)
{
	struct fg_state *s = fg_shm();
	uint32_t phys = fg_phys(c->dev);
	struct fg_device_state *d = &s->dev[phys];
	struct fg_proc *p;
	uint64_t now, oldest, ticket = 0;
	int pid = getpid();
	CUresult r;

	pthread_mutex_lock(&c->mu);
	oldest = c->pending[c->pending_next];
	pthread_mutex_unlock(&c->mu);
	r = fg_wait_until(oldest); /* push buffer full: wait for the oldest launch */
	if (r)
		return r;
	if (fg_lock(s))
		return CUDA_ERROR_UNKNOWN;
	now = fg_now_ns();
	fg_sched_advance(s, phys, now);
	d->busy_until_ns = (d->busy_until_ns > now ? d->busy_until_ns : now) + dur;
	d->busy_total_ns += dur;
	d->launches++;
	p = fg_proc_slot(s, pid, phys);
	if (p) {
		p->launches++;
		p->busy_ns += dur;
		ticket = fg_ticket(phys, fg_sched_submit(s, phys, p, dur, now));
	}
	fg_unlock(s);
	if (!ticket)
		return CUDA_ERROR_OUT_OF_MEMORY; /* no process slot left on the simulated machine */
	pthread_mutex_lock(&c->mu);
	c->pending[c->pending_next] = ticket;
	c->pending_next = (c->pending_next + 1) % FG_PENDING_LIMIT;
	pthread_mutex_unlock(&c->mu);
	fg_stream_set_end(c, hs, ticket);
	FG_TRACE("launch dev=%u dur=%.3fms", phys, (double)dur / 1e6);
	return CUDA_SUCCESS;
}

CUresult fg_launch(struct fg_ctx *c, struct fg_function *f, uint64_t blocks, CUstream hs,
		   void **params, void **extra)
{
	struct fg_graph *g;
	uint64_t dur;

	fg_capture_check(hs, &g);
	dur = fg_kernel_duration(c, f, blocks, params, extra);
	FG_TRACE("kernel %s blocks=%llu", f->name, (unsigned long long)blocks);
	if (g)
		return fg_capture_kernel(g, c, dur) ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
	return fg_timeline_launch(c, dur, hs);
}

static CUresult check_launch(struct fg_ctx **c, CUfunction f, unsigned gx, unsigned gy,
			     unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shmem,
			     CUstream hs, void **params, void **extra)
{
	struct fg_stream *s;
	CUresult r = fg_need_ctx(c);

	if (r)
		return r;
	if (!fg_function_valid((struct fg_function *)f))
		return CUDA_ERROR_INVALID_HANDLE;
	if (fg_stream_bad(hs))
		return CUDA_ERROR_INVALID_HANDLE;
	s = fg_stream_get(hs);
	if (s) {
		if (!fg_ctx_valid(s->ctx))
			return CUDA_ERROR_CONTEXT_IS_DESTROYED;
		*c = s->ctx; /* work runs on the stream's device */
	}
	if (!gx || !gy || !gz || !bx || !by || !bz || gy > 65535 || gz > 65535 || bx > 1024 ||
	    by > 1024 || bz > 64)
		return CUDA_ERROR_INVALID_VALUE;
	if ((uint64_t)bx * by * bz > 1024)
		return CUDA_ERROR_INVALID_VALUE;
	if (shmem > 166912)
		return CUDA_ERROR_INVALID_VALUE;
	if (params && extra)
		return CUDA_ERROR_INVALID_VALUE;
	return CUDA_SUCCESS;
}

CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
			unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
			unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,
			void **kernelParams, void **extra)
{
	struct fg_ctx *c;
	CUresult r = check_launch(&c, f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY,
				  blockDimZ, sharedMemBytes, hStream, kernelParams, extra);

	if (r)
		return r;
	return fg_launch(c, (struct fg_function *)f, (uint64_t)gridDimX * gridDimY * gridDimZ,
			 hStream, kernelParams, extra);
}

static CUresult cooperative_fits(struct fg_ctx *c, uint64_t blocks, uint64_t threads)
{
	uint64_t per_sm = threads ? 2048 / threads : 1;

	if (per_sm > 32)
		per_sm = 32;
	if (!per_sm)
		per_sm = 1;
	return blocks > per_sm * fg_shm()->config[fg_phys(c->dev)].sms ?
		       CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE : CUDA_SUCCESS;
}

CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **kernelParams,
			  void **extra)
{
	struct fg_ctx *c;
	CUresult r;
	uint64_t blocks;

	if (!config)
		return CUDA_ERROR_INVALID_VALUE;
	r = check_launch(&c, f, config->gridDimX, config->gridDimY, config->gridDimZ,
			 config->blockDimX, config->blockDimY, config->blockDimZ,
			 config->sharedMemBytes, config->hStream, kernelParams, extra);
	if (r)
		return r;
	if (config->numAttrs && !config->attrs)
		return CUDA_ERROR_INVALID_VALUE;
	blocks = (uint64_t)config->gridDimX * config->gridDimY * config->gridDimZ;
	for (unsigned i = 0; i < config->numAttrs; i++) {
		if (config->attrs[i].id == CU_LAUNCH_ATTRIBUTE_COOPERATIVE &&
		    config->attrs[i].value.cooperative) {
			r = cooperative_fits(c, blocks, (uint64_t)config->blockDimX *
							       config->blockDimY * config->blockDimZ);
			if (r)
				return r;
		}
	}
	return fg_launch(c, (struct fg_function *)f, blocks, config->hStream, kernelParams, extra);
}

CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
				   unsigned int gridDimZ, unsigned int blockDimX,
				   unsigned int blockDimY, unsigned int blockDimZ,
				   unsigned int sharedMemBytes, CUstream hStream,
				   void **kernelParams)
{
	struct fg_ctx *c;
	uint64_t blocks = (uint64_t)gridDimX * gridDimY * gridDimZ;
	CUresult r = check_launch(&c, f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY,
				  blockDimZ, sharedMemBytes, hStream, kernelParams, NULL);

	if (r)
		return r;
	r = cooperative_fits(c, blocks, (uint64_t)blockDimX * blockDimY * blockDimZ);
	if (r)
		return r;
	return fg_launch(c, (struct fg_function *)f, blocks, hStream, kernelParams, NULL);
}

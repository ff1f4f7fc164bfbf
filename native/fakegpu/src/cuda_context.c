/* fakegpu libcuda: primary and regular contexts, the per-thread context stack. */
#include "cuda_internal.h"

#include <stdlib.h>
#include <string.h>

#define STACK_DEPTH 64

void fg_free_ctx_allocs(struct fg_ctx *c);

static struct fg_ctx primary[FG_MAX_DEVICES];
static pthread_once_t primary_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t ctx_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long next_ctx_id = 1;
static __thread struct fg_ctx *stack[STACK_DEPTH];
static __thread int depth;

static void primary_init(void)
{
	for (unsigned i = 0; i < FG_MAX_DEVICES; i++) {
		primary[i].tag = FG_TAG_CTX;
		primary[i].dev = (int)i;
		primary[i].primary = 1;
		primary[i].id = next_ctx_id++;
		pthread_mutex_init(&primary[i].mu, NULL);
	}
}

/* Each live context takes ctx_overhead_mib of its device's memory, as real ones do. */
static CUresult charge_ctx(int dev, int sign)
{
	uint64_t bytes = (uint64_t)fg_shm()->ctx_overhead_mib << 20;

	if (!bytes)
		return CUDA_SUCCESS;
	return fg_mem_usage(fg_phys(dev), sign * (int64_t)bytes);
}

static struct fg_ctx *primary_ctx(int dev)
{
	pthread_once(&primary_once, primary_init);
	return &primary[dev];
}

int fg_ctx_valid(const struct fg_ctx *c)
{
	return c && c->tag == FG_TAG_CTX;
}

struct fg_ctx *fg_current_ctx(void)
{
	return depth ? stack[depth - 1] : NULL;
}

CUresult fg_need_ctx(struct fg_ctx **c)
{
	CUresult r = fg_ready();

	if (r)
		return r;
	*c = fg_current_ctx();
	if (!*c)
		return CUDA_ERROR_INVALID_CONTEXT;
	if (!fg_ctx_valid(*c))
		return CUDA_ERROR_CONTEXT_IS_DESTROYED;
	return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
	struct fg_ctx *c;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!pctx)
		return CUDA_ERROR_INVALID_VALUE;
	if (!fg_valid_dev(dev))
		return CUDA_ERROR_INVALID_DEVICE;
	c = primary_ctx(dev);
	pthread_mutex_lock(&ctx_mu);
	if (c->refcount == 0 && (r = charge_ctx(dev, 1))) {
		pthread_mutex_unlock(&ctx_mu);
		return r;
	}
	c->refcount++;
	pthread_mutex_unlock(&ctx_mu);
	*pctx = (CUcontext)c;
	FG_TRACE("cuDevicePrimaryCtxRetain(%d) -> %p", dev, (void *)c);
	return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
	struct fg_ctx *c;
	CUresult r = fg_ready();
	int last = 0;

	if (r)
		return r;
	if (!fg_valid_dev(dev))
		return CUDA_ERROR_INVALID_DEVICE;
	c = primary_ctx(dev);
	pthread_mutex_lock(&ctx_mu);
	if (c->refcount <= 0) {
		pthread_mutex_unlock(&ctx_mu);
		return CUDA_ERROR_INVALID_CONTEXT;
	}
	last = --c->refcount == 0;
	pthread_mutex_unlock(&ctx_mu);
	if (last) { /* the last release destroys the primary context's resources */
		fg_sync_ctx(c);
		fg_free_ctx_allocs(c);
		charge_ctx(dev, -1);
	}
	return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags, int *active)
{
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!fg_valid_dev(dev))
		return CUDA_ERROR_INVALID_DEVICE;
	if (!flags || !active)
		return CUDA_ERROR_INVALID_VALUE;
	*flags = primary_ctx(dev)->flags;
	*active = primary_ctx(dev)->refcount > 0;
	return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice dev, unsigned int flags)
{
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!fg_valid_dev(dev))
		return CUDA_ERROR_INVALID_DEVICE;
	if (flags & ~0x1fu)
		return CUDA_ERROR_INVALID_VALUE;
	primary_ctx(dev)->flags = flags;
	return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev)
{
	struct fg_ctx *c;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!fg_valid_dev(dev))
		return CUDA_ERROR_INVALID_DEVICE;
	c = primary_ctx(dev);
	fg_sync_ctx(c);
	fg_free_ctx_allocs(c);
	c->flags = 0;
	return CUDA_SUCCESS;
}

static void push(struct fg_ctx *c)
{
	if (depth < STACK_DEPTH)
		stack[depth++] = c;
}

static CUresult ctx_create(CUcontext *pctx, unsigned flags, CUdevice dev)
{
	struct fg_ctx *c;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!pctx)
		return CUDA_ERROR_INVALID_VALUE;
	if (!fg_valid_dev(dev))
		return CUDA_ERROR_INVALID_DEVICE;
	r = charge_ctx(dev, 1);
	if (r)
		return r;
	c = calloc(1, sizeof(*c));
	if (!c) {
		charge_ctx(dev, -1);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	c->tag = FG_TAG_CTX;
	c->dev = dev;
	c->flags = flags;
	c->refcount = 1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_lock(&ctx_mu);
	c->id = next_ctx_id++;
	pthread_mutex_unlock(&ctx_mu);
	push(c);
	*pctx = (CUcontext)c;
	FG_TRACE("cuCtxCreate(dev=%d) -> %p", dev, (void *)c);
	return CUDA_SUCCESS;
}

CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
	return ctx_create(pctx, flags, dev);
}

CUresult cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *params, int n, unsigned int flags,
			CUdevice dev)
{
	if (n && !params)
		return CUDA_ERROR_INVALID_VALUE;
	return ctx_create(pctx, flags, dev);
}

CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *params, unsigned int flags,
			CUdevice dev)
{
	(void)params;
	return ctx_create(pctx, flags, dev);
}

CUresult cuCtxDestroy_v2(CUcontext ctx)
{
	struct fg_ctx *c = (struct fg_ctx *)ctx;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!fg_ctx_valid(c) || c->primary)
		return CUDA_ERROR_INVALID_CONTEXT;
	fg_sync_ctx(c);
	fg_free_ctx_allocs(c);
	charge_ctx(c->dev, -1);
	for (int i = 0; i < depth; i++) {
		if (stack[i] == c) {
			memmove(&stack[i], &stack[i + 1], (size_t)(depth - i - 1) * sizeof(stack[0]));
			depth--;
			i--;
		}
	}
	/* Kept allocated (tag cleared) so a stale handle is detected, never dereferenced freed. */
	c->tag = FG_TAG_DEAD;
	return CUDA_SUCCESS;
}

CUresult cuCtxGetCurrent(CUcontext *pctx)
{
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!pctx)
		return CUDA_ERROR_INVALID_VALUE;
	*pctx = (CUcontext)fg_current_ctx();
	return CUDA_SUCCESS;
}

CUresult cuCtxSetCurrent(CUcontext ctx)
{
	struct fg_ctx *c = (struct fg_ctx *)ctx;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!c) {
		if (depth)
			depth--;
		return CUDA_SUCCESS;
	}
	if (!fg_ctx_valid(c))
		return CUDA_ERROR_INVALID_CONTEXT;
	if (depth)
		stack[depth - 1] = c;
	else
		push(c);
	return CUDA_SUCCESS;
}

CUresult cuCtxPushCurrent_v2(CUcontext ctx)
{
	struct fg_ctx *c = (struct fg_ctx *)ctx;
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!fg_ctx_valid(c))
		return CUDA_ERROR_INVALID_CONTEXT;
	if (depth >= STACK_DEPTH)
		return CUDA_ERROR_INVALID_VALUE;
	push(c);
	return CUDA_SUCCESS;
}

CUresult cuCtxPopCurrent_v2(CUcontext *pctx)
{
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!depth)
		return CUDA_ERROR_INVALID_CONTEXT;
	depth--;
	if (pctx)
		*pctx = (CUcontext)stack[depth];
	return CUDA_SUCCESS;
}

CUresult cuCtxGetDevice(CUdevice *device)
{
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	if (!device)
		return CUDA_ERROR_INVALID_VALUE;
	*device = c->dev;
	return CUDA_SUCCESS;
}

CUresult cuCtxGetDevice_v2(CUdevice *device, CUcontext ctx)
{
	struct fg_ctx *c = (struct fg_ctx *)ctx;

	if (!c)
		return cuCtxGetDevice(device);
	if (fg_ready())
		return CUDA_ERROR_NOT_INITIALIZED;
	if (!fg_ctx_valid(c))
		return CUDA_ERROR_INVALID_CONTEXT;
	if (!device)
		return CUDA_ERROR_INVALID_VALUE;
	*device = c->dev;
	return CUDA_SUCCESS;
}

CUresult cuCtxGetFlags(unsigned int *flags)
{
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	if (!flags)
		return CUDA_ERROR_INVALID_VALUE;
	*flags = c->flags;
	return CUDA_SUCCESS;
}

CUresult cuCtxSetFlags(unsigned int flags)
{
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	c->flags = flags;
	return CUDA_SUCCESS;
}

CUresult cuCtxGetId(CUcontext ctx, unsigned long long *id)
{
	struct fg_ctx *c = ctx ? (struct fg_ctx *)ctx : fg_current_ctx();
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!fg_ctx_valid(c))
		return CUDA_ERROR_INVALID_CONTEXT;
	if (!id)
		return CUDA_ERROR_INVALID_VALUE;
	*id = c->id;
	return CUDA_SUCCESS;
}

CUresult cuCtxGetApiVersion(CUcontext ctx, unsigned int *version)
{
	struct fg_ctx *c = ctx ? (struct fg_ctx *)ctx : fg_current_ctx();
	CUresult r = fg_ready();

	if (r)
		return r;
	if (!fg_ctx_valid(c))
		return CUDA_ERROR_INVALID_CONTEXT;
	if (!version)
		return CUDA_ERROR_INVALID_VALUE;
	*version = 3020;
	return CUDA_SUCCESS;
}

CUresult cuCtxSynchronize(void)
{
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	return fg_sync_ctx(c);
}

CUresult cuCtxSynchronize_v2(CUcontext ctx)
{
	struct fg_ctx *c = (struct fg_ctx *)ctx;

	if (!c)
		return cuCtxSynchronize();
	if (fg_ready())
		return CUDA_ERROR_NOT_INITIALIZED;
	if (!fg_ctx_valid(c))
		return CUDA_ERROR_INVALID_CONTEXT;
	return fg_sync_ctx(c);
}

CUresult cuCtxGetLimit(size_t *value, CUlimit limit)
{
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	if (!value)
		return CUDA_ERROR_INVALID_VALUE;
	switch (limit) {
	case CU_LIMIT_STACK_SIZE: *value = 1024; break;
	case CU_LIMIT_PRINTF_FIFO_SIZE:
	case CU_LIMIT_MALLOC_HEAP_SIZE: *value = 8 << 20; break;
	case CU_LIMIT_DEV_RUNTIME_SYNC_DEPTH: *value = 2; break;
	case CU_LIMIT_DEV_RUNTIME_PENDING_LAUNCH_COUNT: *value = 2048; break;
	case CU_LIMIT_MAX_L2_FETCH_GRANULARITY: *value = 64; break;
	case CU_LIMIT_PERSISTING_L2_CACHE_SIZE: *value = 0; break;
	default: return CUDA_ERROR_UNSUPPORTED_LIMIT;
	}
	return CUDA_SUCCESS;
}

CUresult cuCtxSetLimit(CUlimit limit, size_t value)
{
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	(void)value;
	if (r)
		return r;
	if ((int)limit < 0 || limit >= CU_LIMIT_MAX)
		return CUDA_ERROR_UNSUPPORTED_LIMIT;
	return CUDA_SUCCESS;
}

CUresult cuCtxGetCacheConfig(CUfunc_cache *config)
{
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	if (!config)
		return CUDA_ERROR_INVALID_VALUE;
	*config = CU_FUNC_CACHE_PREFER_NONE;
	return CUDA_SUCCESS;
}

CUresult cuCtxSetCacheConfig(CUfunc_cache config)
{
	struct fg_ctx *c;

	(void)config;
	return fg_need_ctx(&c);
}

CUresult cuCtxGetSharedMemConfig(CUsharedconfig *config)
{
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	if (!config)
		return CUDA_ERROR_INVALID_VALUE;
	*config = CU_SHARED_MEM_CONFIG_FOUR_BYTE_BANK_SIZE;
	return CUDA_SUCCESS;
}

CUresult cuCtxSetSharedMemConfig(CUsharedconfig config)
{
	struct fg_ctx *c;

	(void)config;
	return fg_need_ctx(&c);
}

CUresult cuCtxGetStreamPriorityRange(int *leastPriority, int *greatestPriority)
{
	struct fg_ctx *c;
	CUresult r = fg_need_ctx(&c);

	if (r)
		return r;
	if (leastPriority)
		*leastPriority = 0;
	if (greatestPriority)
		*greatestPriority = -5;
	return CUDA_SUCCESS;
}

CUresult cuCtxResetPersistingL2Cache(void)
{
	struct fg_ctx *c;

	return fg_need_ctx(&c);
}

CUresult cuCtxGetExecAffinity(CUexecAffinityParam *pExecAffinity, CUexecAffinityType type)
{
	(void)pExecAffinity;
	(void)type;
	return CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY;
}

CUresult cuCtxEnablePeerAccess(CUcontext peerContext, unsigned int flags)
{
	(void)peerContext;
	(void)flags;
	return CUDA_ERROR_PEER_ACCESS_UNSUPPORTED;
}

CUresult cuCtxDisablePeerAccess(CUcontext peerContext)
{
	(void)peerContext;
	return CUDA_ERROR_PEER_ACCESS_NOT_ENABLED;
}
